// The Watch page: live runs and the champion, streamed from /ws/watch.
"use strict";
const $ = (id) => document.getElementById(id);
const canvas = $("view"), ctx = canvas.getContext("2d");
const tracks = {};
let follow = "champion", view = null, viewSeed = null;

async function trackView(seed) {
  if (!tracks[seed]) tracks[seed] = CL.api("GET", `/api/game/tracks/${seed}`);
  return CL.trackView(await tracks[seed], canvas);
}

async function show(snap) {
  const cars = [snap.champion, ...snap.runs];
  const car = cars.find((c) => c.run_id === follow) || snap.champion;
  if (viewSeed !== car.track_seed) {  // a new track: draw once it has loaded
    const seed = car.track_seed;
    viewSeed = seed; view = null;
    let loaded = null;
    try { loaded = await trackView(seed); } catch (e) { delete tracks[seed]; }  // retried next time
    if (viewSeed === seed) { view = loaded; if (!loaded) viewSeed = null; }
  }
  showList(snap, cars);
  if (!view) return;  // (snapshots arriving while the track loads only update the list)
  CL.drawTrack(ctx, view);
  for (const c of cars) {
    if (c.track_seed !== car.track_seed) continue;
    const color = c.run_id === "champion" ? "#3fb950" : c.driver === "player" ? "#f0c000" : "#58a6ff";
    CL.drawCar(ctx, view, c.pose, color, c === car ? c.policy[0] : undefined);
  }
  ctx.fillStyle = "#fff"; ctx.font = "16px sans-serif";
  ctx.fillText(`${car.name} · ${car.progress_m} m · lap ${car.laps} · ${car.driver} drives`, 12, 22);
}

function showList(snap, cars) {
  $("count").textContent = `(${snap.players} playing${snap.servers > 1 ? ` on ${snap.servers} servers` : ""})`;
  $("runs").innerHTML = cars.map((c) => `<li><a href="#" data-run="${CL.esc(c.run_id)}">${CL.esc(c.name)}</a>
    <span class="muted">track ${c.track_seed}, ${c.progress_m} m${c.server && snap.servers > 1 ? ` · ${CL.esc(c.server)}` : ""}</span></li>`).join("");
}

$("runs").addEventListener("click", (e) => {
  const run = e.target.dataset && e.target.dataset.run;
  if (run) { e.preventDefault(); follow = run; }
});

CL.nav("Watch").then(() => {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/watch`);
  ws.onmessage = (ev) => show(JSON.parse(ev.data));
});
