// The League page: leaderboards of the current season and the champion's lap times.
"use strict";
const $ = (id) => document.getElementById(id);

async function board(by) {
  const b = await CL.api("GET", `/api/league/leaderboard?by=${by}`);
  $("season").textContent = b.season;
  const main = by === "earnings" ? "earnings" : "improvement";
  const cells = (r, i) => {
    const improvement = `<td data-label="improvement">${(r.improvement_bp / 100).toFixed(1)}%</td>`;
    const earnings = `<td data-label="earnings">${CL.money(r.earnings_tinybar, true)}</td>`;
    return `<td data-label="#">${i + 1}</td><td data-label="player">${CL.esc(r.username)}</td>` +
      (main === "earnings" ? earnings + improvement : improvement + earnings) +
      `<td data-label="runs">${r.runs}</td>`;
  };
  const head = main === "earnings" ? "<th>earnings</th><th>improvement</th>" : "<th>improvement</th><th>earnings</th>";
  $(by).innerHTML = `<thead><tr><th>#</th><th>player</th>${head}<th>runs</th></tr></thead><tbody>` +
    b.rows.map((r, i) => `<tr>${cells(r, i)}</tr>`).join("") +
    (b.rows.length ? "" : '<tr><td colspan="5" class="muted">No judged runs this season yet: ' +
     '<a href="index.html">play one</a> and be the first on the board.</td></tr>') + "</tbody>";
}

async function champion() {
  const curve = await CL.api("GET", "/api/league/champion");
  const times = curve.map((c) => c.mean_lap_time_s);
  const drawn = CL.lineChart($("laps"), curve.map((c) => "v" + c.version),
                             [{ name: "mean lap time [s]", color: "#f0c000", values: times }]);
  $("laps").hidden = !drawn; $("lapsEmpty").hidden = drawn;
  $("versions").innerHTML = "<thead><tr><th>version</th><th>lap completion</th><th>mean lap</th><th>left the track</th></tr></thead><tbody>" +
    curve.map((c) => `<tr><td data-label="version">v${c.version}</td>
      <td data-label="lap completion">${(100 * c.lap_completion).toFixed(0)}%</td>
      <td data-label="mean lap">${c.mean_lap_time_s === null ? "-" : c.mean_lap_time_s.toFixed(2) + " s"}</td>
      <td data-label="left the track">${(100 * c.exit_rate).toFixed(0)}% of runs</td></tr>`).join("") + "</tbody>";
}

CL.nav("League").then(() => Promise.all([board("improvement"), board("earnings"), champion()]))
  .catch((e) => { $("season").textContent = "(could not load: " + CL.plain(e.message) + ")"; });
