// The League page: leaderboards of the current season and the champion's lap times.
"use strict";
const $ = (id) => document.getElementById(id);

async function board(by) {
  const b = await CL.api("GET", `/api/league/leaderboard?by=${by}`);
  $("season").textContent = b.season;
  $(by).innerHTML = "<tr><th>#</th><th>player</th><th>improvement</th><th>earnings</th><th>runs</th></tr>" +
    b.rows.map((r, i) => `<tr><td>${i + 1}</td><td>${r.username}</td><td>${(r.improvement_bp / 100).toFixed(1)}%</td>
      <td>${CL.hbar(r.earnings_tinybar)}</td><td>${r.runs}</td></tr>`).join("") +
    (b.rows.length ? "" : '<tr><td colspan="5" class="muted">No judged runs this season yet: ' +
     '<a href="/play.html">play one</a> and be the first on the board.</td></tr>');
}

async function champion() {
  const curve = await CL.api("GET", "/api/league/champion");
  CL.lineChart($("laps"), curve.map((c) => "v" + c.version),
               [{ name: "mean lap time [s]", color: "#f0c000", values: curve.map((c) => c.mean_lap_time_s) }]);
  $("versions").innerHTML = "<tr><th>version</th><th>lap completion</th><th>mean lap [s]</th><th>exit rate</th></tr>" +
    curve.map((c) => `<tr><td>v${c.version}</td><td>${(100 * c.lap_completion).toFixed(0)}%</td>
      <td>${c.mean_lap_time_s === null ? "-" : c.mean_lap_time_s.toFixed(2)}</td><td>${(100 * c.exit_rate).toFixed(0)}%</td></tr>`).join("");
}

CL.nav("League").then(() => Promise.all([board("improvement"), board("earnings"), champion()]));
