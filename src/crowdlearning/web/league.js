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

// The race league: timetable with countdowns, recent results, the season table.
let clockSkew = 0, timetable = [];
const inSeconds = (at) => Math.round(at - Date.now() / 1000 - clockSkew);
function countdownText(r) {
  if (r.status === "racing") return "racing now";
  if (r.status === "grid") return "on the grid";
  const s = inSeconds(r.starts_at);
  if (s <= 0) return "starting";
  return s >= 60 ? `in ${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s` : `in ${s} s`;
}
const secs = (v) => (v === null || v === undefined ? "–" : `${v.toFixed(2)} s`);

function showTimetable() {
  $("timetable").innerHTML = "<thead><tr><th>race</th><th>track</th><th>cars</th><th>starts</th><th></th></tr></thead><tbody>" +
    timetable.map((r) => `<tr><td data-label="race">${CL.esc(r.race_id)}</td>
      <td data-label="track" class="wrap">${CL.esc(r.track.name)} · ${r.laps} lap${r.laps > 1 ? "s" : ""}</td>
      <td data-label="cars">${r.cars.length}</td>
      <td data-label="starts"><span class="race-countdown" data-race="${CL.esc(r.race_id)}">${countdownText(r)}</span>
        <span class="muted">${new Date(r.starts_at * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}</span></td>
      <td data-label=""><a href="${CL.esc(r.share_url)}">watch</a></td></tr>`).join("") + "</tbody>";
}

function tickCountdowns() {
  for (const el of document.querySelectorAll(".race-countdown[data-race]")) {
    const r = timetable.find((x) => x.race_id === el.dataset.race);
    if (r) el.textContent = countdownText(r);
  }
  if (timetable.length && timetable[0].status === "scheduled" && inSeconds(timetable[0].starts_at) < -5) races();
}

async function races() {
  const body = await CL.api("GET", "/api/races?recent=10");
  clockSkew = Date.now() / 1000 - body.now;
  timetable = body.timetable;
  showTimetable();
  $("recentRaces").innerHTML = "<thead><tr><th>race</th><th>winner</th><th>time</th><th>best lap</th><th>out</th><th></th></tr></thead><tbody>" +
    body.recent.map((r) => {
      const cars = r.result.cars, won = cars[0].state === "finished";
      const best = Math.min(...cars.filter((c) => c.best_lap_s !== null).map((c) => c.best_lap_s));
      const out = cars.filter((c) => c.state === "out").map((c) => `${CL.esc(c.name)} (${c.reason.replace("_", " ")})`);
      return `<tr><td data-label="race">${CL.esc(r.race_id)} <span class="muted">${CL.esc(r.track.name)}</span></td>
        <td data-label="winner">${won ? CL.esc(cars[0].name) : "nobody finished"}</td>
        <td data-label="time">${won ? secs(cars[0].race_time_s) : "–"}</td>
        <td data-label="best lap">${Number.isFinite(best) ? secs(best) : "–"}</td>
        <td data-label="out" title="${out.join(", ")}">${out.length ? `${out.length} of ${cars.length}` : "none"}</td>
        <td data-label=""><a href="${CL.esc(r.share_url)}">replay</a></td></tr>`;
    }).join("") +
    (body.recent.length ? "" : '<tr><td colspan="6" class="muted">No race finished yet: the first starts soon.</td></tr>') + "</tbody>";
}

async function raceSeason() {
  const s = await CL.api("GET", "/api/league/season");
  $("raceSeason").textContent = s.season;
  const credit = (m) => m.credits.length ? m.credits.map((c) => `${CL.esc(c.username)} (${c.contributions})`).join(", ") +
    (m.contributors > m.credits.length ? ` and ${m.contributors - m.credits.length} more` : "") : '<span class="muted">the initial demonstrations</span>';
  $("seasonModels").innerHTML = "<thead><tr><th>#</th><th>model</th><th>points</th><th>wins</th><th>races</th><th>best lap</th><th>built with data from</th></tr></thead><tbody>" +
    s.models.map((m) => `<tr><td data-label="#">${m.rank}</td><td data-label="model">v${m.version}${m.team ? ` <span class="muted">(team ${CL.esc(m.team)})</span>` : ""}</td>
      <td data-label="points">${m.points}</td><td data-label="wins">${m.wins}</td><td data-label="races">${m.races}</td>
      <td data-label="best lap">${secs(m.best_lap_s)}</td><td data-label="built with data from">${credit(m)}</td></tr>`).join("") +
    (s.models.length ? "" : '<tr><td colspan="7" class="muted">No race this season yet.</td></tr>') + "</tbody>";
  $("seasonPlayers").innerHTML = "<thead><tr><th>#</th><th>player</th><th>points</th><th>models</th></tr></thead><tbody>" +
    s.players.map((p) => `<tr><td data-label="#">${p.rank}</td><td data-label="player">${CL.esc(p.username)}</td>
      <td data-label="points">${p.points.toFixed(1)}</td><td data-label="models">${p.models.map((v) => "v" + v).join(", ")}</td></tr>`).join("") +
    (s.players.length ? "" : '<tr><td colspan="4" class="muted">No player-built model has raced this season yet.</td></tr>') + "</tbody>";
}

// Teams: list, create, join, leave (a signed-in player is in one team at most).
const TEAM_NAME = /^[A-Za-z0-9]+(?:[ _-][A-Za-z0-9]+)*$/;
function teamNameProblem(name) {
  if (name.length < 3 || name.length > 24) return "A team name is 3 to 24 characters";
  if (!TEAM_NAME.test(name)) return "A team name is words of letters A-Z and digits, with one space, - or _ between two words";
  return null;
}

async function teamAction(method, path, body) {
  $("teamError").textContent = "";
  try { await CL.api(method, path, body); } catch (e) { $("teamError").textContent = CL.plain(e.message); }
  await teams().catch(() => {});
}

async function teams() {
  const body = await CL.api("GET", "/api/teams");
  const mine = CL.user ? await CL.api("GET", "/api/teams/mine").catch(() => null) : null;
  $("teamMin").textContent = `${body.min_contributions}`;
  const fork = (t) => t.fork ? `v${t.fork.version} <span class="muted">(${t.fork.contributions} contributions)</span>`
    : '<span class="muted">not yet</span>';
  const action = (t) => {
    if (!CL.user) return "";
    if (mine && mine.id === t.id) return '<button class="secondary small" data-leave="1">Leave</button>';
    if (mine || t.members.length >= t.max_members) return "";
    return `<button class="small" data-join="${t.id}">Join</button>`;
  };
  $("teams").innerHTML = "<thead><tr><th>team</th><th>members</th><th>fork</th><th>points</th><th></th></tr></thead><tbody>" +
    body.teams.map((t) => `<tr><td data-label="team">${CL.esc(t.name)}${mine && mine.id === t.id ? ' <span class="muted">(yours)</span>' : ""}</td>
      <td data-label="members" class="wrap">${t.members.map(CL.esc).join(", ")} <span class="muted">${t.members.length}/${t.max_members}</span></td>
      <td data-label="fork">${fork(t)}</td><td data-label="points">${t.season_points}</td>
      <td data-label="">${action(t)}</td></tr>`).join("") +
    (body.teams.length ? "" : '<tr><td colspan="5" class="muted">No team yet: create the first.</td></tr>') + "</tbody>";
  for (const b of document.querySelectorAll("#teams button[data-join]"))
    b.onclick = () => teamAction("POST", `/api/teams/${b.dataset.join}/join`);
  for (const b of document.querySelectorAll("#teams button[data-leave]"))
    b.onclick = () => teamAction("POST", "/api/teams/leave");
  $("teamForm").hidden = !CL.user || !!mine;
  $("teamHint").textContent = CL.user ? (mine ? "Leave your team to create or join another." : "")
    : "Sign in (on the Play page) to create or join a team.";
}

$("teamForm").onsubmit = (e) => {
  e.preventDefault();
  const name = $("teamName").value.trim(), problem = teamNameProblem(name);
  if (problem) { $("teamError").textContent = problem; return; }
  teamAction("POST", "/api/teams", { name }).then(() => { if (!$("teamError").textContent) $("teamName").value = ""; });
};

CL.nav("League").then(() => {
  races().then(() => setInterval(tickCountdowns, 1000)).catch(() => {
    $("timetable").innerHTML = '<tbody><tr><td class="muted">Races are off on this server.</td></tr></tbody>';
  });
  raceSeason().catch(() => {});
  teams().catch(() => { $("teamsPanel").hidden = true; });
  setInterval(() => { races().catch(() => {}); raceSeason().catch(() => {}); teams().catch(() => {}); }, 30000);
  return Promise.all([board("improvement"), board("earnings"), champion()]);
})
  .catch((e) => { $("season").textContent = "(could not load: " + CL.plain(e.message) + ")"; });
