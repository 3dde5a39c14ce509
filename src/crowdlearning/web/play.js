// The Play page: server-authoritative; we send inputs tagged with the newest frame's tick and
// draw what the server streams (docs/protocol.md). Drawing: render.js (a chase camera at the
// display's rate, between the server's frames); devices: controls.js; a new player's first run
// guided: tutorial.js.
"use strict";
const $ = (id) => document.getElementById(id);
const canvas = $("view"), ctx = canvas.getContext("2d");
const TICK_HZ = 20, COUNTDOWN_STEP_MS = 700;
let ws = null, view = null, lastFrame = null, playing = false, runTrack = null;
let explained = null;  // the last verdict's explanation: its stretches are drawn on the track
// why a run ended, in words (the "end" message's reason)
const END_REASONS = { left_track: "the car left the track", time_up: "time is up",
  stalled: "the car stood still for 3 s", stopped: "you stopped it", disconnected: "disconnected" };
const controls = Controls.create(canvas, $("touchpad"));
const input = { sentNull: true, last: null };  // what was last sent: hands off told once
const frames = new Render.FrameBuffer(1000 / TICK_HZ);
const chase = new Render.ChaseView(canvas);
const loop = { raf: 0, last: 0 };
// the lap clock, in ticks (fractions: a lap ends where the progress crossed the lap's length)
const laps = { count: 0, startTick: 0, last: null, best: null, prev: null };
const countdown = { timer: 0, n: 0 };
// the first run, guided: its Start button starts a practice run in label mode
const tutorial = Tutorial.create({
  box: $("tutorial"), hint: $("tutorialHint"), keys: $("tutorialKeys"), next: $("tutorialNext"),
  skip: $("tutorialSkip"), touchpad: $("touchpad"),
  startPractice() {
    document.querySelector('input[name="money"][value="practice"]').checked = true;
    $("mode").value = "label";
    $("start").click();
  },
});

function connect() {
  ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/play`);
  ws.onmessage = (ev) => handle(JSON.parse(ev.data));
  ws.onclose = (ev) => {
    cancelCountdown(); setPlaying(false);
    $("error").textContent = `disconnected (${ev.code} ${ev.reason})`;
  };
}

function handle(msg) {
  switch (msg.type) {
    case "hello": $("error").textContent = ""; break;
    case "start": startRun(msg); break;
    case "frame": onFrame(msg); break;
    case "end": {
      setPlaying(false); $("driver").textContent = "RUN OVER"; $("driver").className = "badge";
      if (msg.best_lap_s) saveBest(msg.best_lap_s);
      const why = END_REASONS[msg.reason] || msg.reason.replace("_", " ");
      $("verdict").textContent = `run over (${why}), ${msg.ticks} ticks: judging…`;
      tutorial.ended(msg, why);
      refreshMissions();
      break;
    }
    case "queued": $("verdict").textContent =
      `judging… ${msg.position - 1} runs ahead of yours (the verdict also lands in your wallet's run history)`; break;
    case "verdict": showVerdict(msg); break;
    case "settled":
      $("txid").textContent = `payout ${msg.state} on Hedera: ${msg.transaction_id}`; refreshWallet(); break;
    case "error":
      // an input still in flight when the run ended is normal (docs/protocol.md): not an error
      if (msg.code !== "no_run") { $("error").textContent = msg.message || msg.code; cancelCountdown(); }
      if (msg.code === "unknown_mission") refreshMissions();  // a new champion: new missions
      break;
  }
}

function startRun(msg) {
  runTrack = Render.track(msg.track); runTrack.raw = msg.track;
  chase.fit(); chase.setTrack(runTrack); frames.reset(); lastFrame = null;
  Object.assign(laps, { count: 0, startTick: 0, last: null, prev: null, best: loadBest() });
  $("hudTrack").textContent = `${msg.track.name || "track"} · ${Math.round(runTrack.length)} m` +
    (msg.mission ? " · mission" : "");
  showLaps(0);
  view = CL.trackView(msg.track, canvas); setPlaying(true); clearExplanation();
  showCountdown("GO", 600);
  $("verdict").textContent = "driving…"; $("verdict").className = "verdict muted";
  $("money").innerHTML = msg.paid ? `${CL.money(msg.held_tinybar)} of your stake is held until the verdict` +
    " (leaving the page ends the run; it is judged all the same)" : "";
  $("txid").textContent = "";
  tutorial.runStarted(msg);
}

function onFrame(f) {
  if (!playing) return;
  frames.push(f, performance.now());
  countLap(f);
  lastFrame = f;
  const you = f.driver === "player";
  $("driver").textContent = you ? "YOU DRIVE" : "POLICY DRIVES";
  $("driver").className = "badge " + (you ? "player" : "policy");
  $("tick").textContent = f.tick; $("speed").textContent = f.pose[3].toFixed(1);
  $("progress").textContent = f.progress_m.toFixed(0); $("laps").textContent = f.laps;
  $("policy").textContent = f.policy[0].toFixed(2);
  // the player's input as the server applied it (a keyboard: its wheel), null where none
  $("you").textContent = f.player[0] === null ? "-" : f.player[0].toFixed(2);
  sendInput(f);
  tutorial.frame(f);
}

function setPlaying(on) {
  playing = on; $("start").disabled = on || countdown.timer !== 0; $("stop").disabled = !on && !countdown.timer;
  if (on) { input.last = null; input.sentNull = true; }  // a new run: the wheel starts at rest
  document.body.dataset.playing = on ? "1" : "0";
  if (on && !loop.raf) { loop.last = performance.now(); loop.raf = requestAnimationFrame(render); }
  if (!on) {
    if (loop.raf) cancelAnimationFrame(loop.raf);
    loop.raf = 0;
    controls.clear();
    drawOverview();
  }
}

// ---- drawing: every display frame while a run goes, between the server's frames
function render(now) {
  loop.raf = requestAnimationFrame(render);
  const dt = Math.min(100, now - loop.last); loop.last = now;
  const scene = frames.sample(now);
  if (!scene || !runTrack) return;
  chase.draw(scene, dt);
  const lapS = Math.max(0, (scene.tick - laps.startTick) / TICK_HZ);
  const text = lapTime(lapS);
  if ($("hudTime").textContent !== text) $("hudTime").textContent = text;
}

// after a run: the whole track, the car where it stopped (the verdict's stretches go on top)
function drawOverview() {
  if (!runTrack || !view) return;
  chase.fit();
  view = CL.trackView(runTrack.raw, canvas);
  CL.drawTrack(ctx, view);
  if (lastFrame) CL.drawCar(ctx, view, lastFrame.pose, "#58a6ff");
  drawStretches();
}

// ---- laps: the lap clock, the last and the best lap (best kept per track in this browser)
const lapTime = (s) => `${Math.floor(s / 60)}:${(s % 60).toFixed(1).padStart(4, "0")}`;
const bestKey = () => `crowdlearning.bestLap.${runTrack ? runTrack.seed : "?"}`;
function loadBest() {
  try { const v = Number(localStorage.getItem(bestKey())); return v > 0 ? v : null; } catch (e) { return null; }
}
function saveBest(s) {
  if (laps.best !== null && laps.best <= s) return;
  laps.best = s; showLaps(laps.count);
  try { localStorage.setItem(bestKey(), String(s)); } catch (e) { /* storage off */ }
}
function countLap(f) {
  const p = laps.prev;
  if (p && f.laps > laps.count) {
    const boundary = f.laps * runTrack.length, dp = f.progress_m - p.progress_m;
    const cross = p.tick + (dp > 0 ? Math.min(1, Math.max(0, (boundary - p.progress_m) / dp)) : 1) * (f.tick - p.tick);
    laps.last = (cross - laps.startTick) / TICK_HZ; laps.startTick = cross; laps.count = f.laps;
    saveBest(laps.last); showLaps(f.laps);
  }
  laps.prev = f;
}
function showLaps(n) {
  $("hudLap").textContent = `lap ${n + 1}`;
  $("hudLast").textContent = laps.last === null ? "last lap —" : `last ${lapTime(laps.last)}`;
  $("hudBest").textContent = laps.best === null ? "best —" : `best ${lapTime(laps.best)}`;
}

// ---- the countdown before a run: 3, 2, 1, then the start is sent (and GO when it begins)
function showCountdown(text, forMs) {
  const el = $("countdown");
  el.textContent = text; el.hidden = false;
  clearTimeout(el.hideTimer);
  if (forMs) el.hideTimer = setTimeout(() => { el.hidden = true; }, forMs);
}
function cancelCountdown() {
  clearTimeout(countdown.timer); countdown.timer = 0; $("countdown").hidden = true;
  if (!playing) { $("start").disabled = false; $("stop").disabled = true; }
}
function beginCountdown(onDone) {
  countdown.n = 3; $("start").disabled = true; $("stop").disabled = false;
  const step = () => {
    if (countdown.n === 0) { countdown.timer = 0; showCountdown("…"); onDone(); return; }
    showCountdown(String(countdown.n--)); countdown.timer = setTimeout(step, COUNTDOWN_STEP_MS);
  };
  step();
}

// This tick's input, as the device gives it (docs/protocol.md): an analog value (a drag on the
// track, a gamepad), or the keys held. Keys are sent every frame while the server's wheel is
// still off the policy's steering (f.player not null), so each tick says which frame it answers.
function sendInput(f) {
  if (!playing || !ws || ws.readyState !== 1) return;
  const wheelOff = f.player[0] !== null || f.player[1] !== null;
  let msg = controls.read(wheelOff, input.last);
  if (msg === null) {
    if (input.sentNull) return;  // hands off: tell the server once
    input.sentNull = true;
    msg = input.last === "keyboard" ? { device: "keyboard" } : { steer: null, throttle: null };
  } else {
    input.sentNull = false; input.last = msg.device;
  }
  // takeover: the player drives while steering or working the pedals
  const active = msg.device === "keyboard" ? Boolean(msg.left || msg.right || msg.up || msg.down)
    : msg.steer != null || msg.throttle != null;
  ws.send(JSON.stringify({ type: "input", tick: f.tick, ...msg,
                           intervene: $("mode").value === "takeover" && active }));
}

function showVerdict(v) {
  const el = $("verdict");
  const labels = { improved: "improved", no_effect: "no measurable effect", worse: "made it worse",
                   rejected: "rejected" };
  el.textContent = `${labels[v.decision]} ${v.effect_pct > 0 ? "+" : ""}${v.effect_pct}%`;
  el.className = "verdict " + (v.decision === "improved" ? "good" : v.decision === "worse" ? "bad" : "muted");
  // a reward is paid in proportion to the steadiness of the run's steering (docs/verdict.md)
  const steady = v.reward_tinybar && v.label_precision != null && v.label_precision < 1
    ? ` <span class="muted">(× ${Math.round(v.label_precision * 100)}% for steering steadiness)</span>` : "";
  $("money").innerHTML = v.reward_tinybar ? `<span class="good">earned ${CL.money(v.reward_tinybar)}</span>${steady}`
    : v.penalty_tinybar ? `<span class="bad">paid a penalty of ${CL.money(v.penalty_tinybar)}</span>`
    : (v.paid_mode ? "no money moved" : "practice run: no money at stake") + (v.reason ? ` (${CL.esc(v.reason)})` : "");
  // the verdict's entry in the audit journal, published in a block on the Hedera audit topic
  // within seconds (`crowdlearning audit verify --contribution <id>` proves it)
  $("txid").textContent = v.audit_transaction_id
    ? `verdict in the audit trail (${v.audit_transaction_id.replace("audit:", "entry ")}, published on Hedera in a block)` : "";
  if (v.payout_id) $("txid").textContent += " · payout pending…";
  if (v.explanation) showExplanation(v.explanation);
  tutorial.verdict(v);
  refreshWallet();
}

// ---- the verdict explained (docs/protocol.md "Verdict explanations"): words, two charts and
// the stretches where the player's steering differed most, drawn on the track
const SVG_NS = "http://www.w3.org/2000/svg";
function svgEl(tag, attrs, text) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function clearExplanation() {
  explained = null; $("explain").hidden = true; $("trackLegend").hidden = true;
}

function showExplanation(e) {
  explained = e;
  $("explainSummary").textContent = [e.comparison, e.confidence_text, e.decision_text]
    .filter(Boolean).join(" ");
  $("explainFigures").hidden = !e.evaluated;
  $("explainChart").replaceChildren(...(e.evaluated ? [withWithoutChart(e)] : []));
  $("explainBand").replaceChildren(...(e.evaluated ? [differenceChart(e)] : []));
  $("explainMoney").textContent = e.money.text;
  $("explainStretches").textContent = e.stretches_text;
  $("explain").hidden = false;
  drawStretches();
}

// metres driven per hidden track: the model trained on the player's labels (yellow) beside the
// same model trained on the car's own labels (blue)
function withWithoutChart(e) {
  const W = 340, H = 150, L = 40, B = 22, T = 8;
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": "wwTitle" });
  svg.append(svgEl("title", { id: "wwTitle" }, `Metres driven per hidden track: ${e.with_mean_m} m ` +
    `on average trained on your labels, ${e.without_mean_m} m trained on the car's own labels`));
  const hi = Math.max(1, ...e.tracks.flatMap((t) => [t.with_m, t.without_m]));
  const slot = (W - L - 4) / e.tracks.length, bar = Math.max(1, slot * 0.42);
  const y = (v) => T + (H - T - B) * (1 - Math.max(0, v) / hi);
  e.tracks.forEach((t, i) => {
    const x = L + i * slot + slot * 0.08;
    svg.append(svgEl("rect", { x, y: y(t.with_m), width: bar, height: y(0) - y(t.with_m), class: "bar-with" }));
    svg.append(svgEl("rect", { x: x + bar, y: y(t.without_m), width: bar, height: y(0) - y(t.without_m), class: "bar-without" }));
  });
  svg.append(svgEl("line", { x1: L, y1: y(0), x2: W, y2: y(0), class: "axis" }));
  svg.append(svgEl("text", { x: L - 4, y: y(hi) + 8, "text-anchor": "end", class: "tick" }, `${Math.round(hi)} m`));
  svg.append(svgEl("text", { x: L - 4, y: y(0), "text-anchor": "end", class: "tick" }, "0 m"));
  svg.append(svgEl("text", { x: L, y: H - 6, class: "tick" },
    `${e.tracks.length} hidden tracks · ${e.runs} runs of ${e.window_s} s`));
  return svg;
}

// the difference (with − without) on a line in metres: the dot and its interval, the grey band
// training noise alone gives, and zero
function differenceChart(e) {
  const W = 340, H = 58, P = 14, mid = 22;
  const values = [e.ci_low_m, e.ci_high_m, e.null_low_m, e.null_high_m, e.mean_diff_m, 0];
  let lo = Math.min(...values), hi = Math.max(...values);
  const pad = Math.max(0.5, (hi - lo) * 0.08); lo -= pad; hi += pad;
  const x = (v) => P + (W - 2 * P) * (v - lo) / (hi - lo);
  const sign = (v) => `${v > 0 ? "+" : ""}${v.toFixed(1)} m`;
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": "diffTitle" });
  svg.append(svgEl("title", { id: "diffTitle" }, `Difference ${sign(e.mean_diff_m)} per run, ` +
    `${Math.round(e.confidence * 100)}% sure between ${sign(e.ci_low_m)} and ${sign(e.ci_high_m)}; ` +
    `training noise alone: ${sign(e.null_low_m)} to ${sign(e.null_high_m)}`));
  svg.append(svgEl("rect", { x: x(e.null_low_m), y: mid - 10, width: Math.max(1, x(e.null_high_m) - x(e.null_low_m)), height: 20, class: "noise" }));
  svg.append(svgEl("line", { x1: x(0), y1: mid - 14, x2: x(0), y2: mid + 14, class: "zero" }));
  svg.append(svgEl("line", { x1: x(e.ci_low_m), y1: mid, x2: x(e.ci_high_m), y2: mid, class: "interval" }));
  svg.append(svgEl("circle", { cx: x(e.mean_diff_m), cy: mid, r: 5, class: "mean" }));
  svg.append(svgEl("text", { x: P, y: H - 4, class: "tick" }, sign(lo)));
  svg.append(svgEl("text", { x: W - P, y: H - 4, "text-anchor": "end", class: "tick" }, sign(hi)));
  svg.append(svgEl("text", { x: x(0), y: H - 4, "text-anchor": "middle", class: "tick" }, "0"));
  return svg;
}

// the stretches of the last judged run where the player's steering differed most from the
// car's, in their own colour and numbered (1 = most), over the track (not during a run)
function drawStretches() {
  if (!view || playing || !explained || !explained.stretches.length) return;
  CL.drawTrack(ctx, view);
  const color = getComputedStyle(document.documentElement).getPropertyValue("--stretch").trim() || "#ff7bd5";
  ctx.lineCap = "round"; ctx.lineJoin = "round";
  explained.stretches.forEach((s, i) => {
    ctx.strokeStyle = color; ctx.lineWidth = Math.max(5, view.width * view.scale * 0.5);
    ctx.beginPath();
    s.points_m.forEach(([x, y], k) => (k ? ctx.lineTo(view.tx(x), view.ty(y)) : ctx.moveTo(view.tx(x), view.ty(y))));
    if (s.points_m.length === 1) ctx.lineTo(view.tx(s.points_m[0][0]) + 0.1, view.ty(s.points_m[0][1]));
    ctx.stroke();
    const px = view.tx(s.x_m), py = view.ty(s.y_m);
    ctx.fillStyle = "#0f1419"; ctx.beginPath(); ctx.arc(px, py - 16, 10, 0, 2 * Math.PI); ctx.fill();
    ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.stroke();
    ctx.fillStyle = color; ctx.font = "bold 13px system-ui, sans-serif"; ctx.textAlign = "center";
    ctx.fillText(String(i + 1), px, py - 11.5);
  });
  ctx.textAlign = "start";
  if (lastFrame) CL.drawCar(ctx, view, lastFrame.pose, "#58a6ff");
  $("trackLegend").hidden = false;
}

async function refreshWallet() {
  try {
    const w = await CL.api("GET", "/api/wallet");
    $("balance").innerHTML = CL.money(w.available_tinybar); $("stake").innerHTML = CL.money(w.stake_tinybar);
  } catch (e) { /* signed out */ }
}

// how far behind the verdicts are, before a player starts a run
async function refreshBacklog() {
  try {
    const s = await CL.api("GET", "/api/game/stats");
    $("backlog").textContent = s.verdicts_waiting > 1
      ? `${s.verdicts_waiting} finished runs are waiting for their verdict: yours will take longer than usual` : "";
  } catch (e) { /* offline */ }
}

// a run: anywhere (the server picks), or on a mission (its id: the server starts it there)
function beginRun(mission) {
  if (playing || countdown.timer) return;
  $("error").textContent = "";
  const paid = document.querySelector('input[name="money"]:checked').value === "paid";
  const mode = $("mode").value;
  drawIdle(mission ? "get ready: mission" : "get ready");
  tutorial.countdown();
  beginCountdown(() => {
    const start = mission ? { type: "start", mode, paid, mission } : { type: "start", mode, paid };
    if (ws && ws.readyState === 1) ws.send(JSON.stringify(start));
    else cancelCountdown();
  });
}
$("start").onclick = () => beginRun(null);

// ---- missions: where help is worth most for the current champion (GET /api/game/missions)
const MISSION_WHY = { failed: "the car fails here", unsure: "the car is unsure here",
  explore: "a place it has not been judged on" };
const missions = { timer: 0 };
async function refreshMissions(afterMs) {
  clearTimeout(missions.timer);
  let board = null;
  try { board = await CL.api("GET", "/api/game/missions"); } catch (e) { /* offline */ }
  const list = $("missions");
  list.replaceChildren();
  if (!board || !board.ready) {  // being worked out (a few seconds after a new champion)
    $("missionsNote").textContent = board ? "finding where the car needs help…" : "missions unavailable";
    missions.timer = setTimeout(refreshMissions, 3000);
    return;
  }
  $("missionsNote").textContent = board.missions.length
    ? `for model v${board.model_version} · value: how unsure the car is there (1 = a typical place, more when it fails)`
    : "no missions right now: Start run drives anywhere";
  for (const m of board.missions) {
    const item = document.createElement("li");
    const pick = document.createElement("button");
    pick.type = "button"; pick.className = `mission ${m.reason}`; pick.dataset.mission = m.id;
    const where = document.createElement("span");
    where.className = "mission-where";
    // a mission on the champion's approach to a failure starts with the car moving as it moved
    const hot = m.speed_mps != null ? ` · in at ${Math.round(m.speed_mps * 3.6)} km/h` : "";
    where.textContent = `${m.track_name} · ${Math.round(m.target_m)} m${hot}`;
    const why = document.createElement("span");
    why.className = "mission-why";
    why.textContent = MISSION_WHY[m.reason] || m.reason;
    const value = document.createElement("strong");
    value.className = "mission-value";
    value.textContent = `value ${m.value.toFixed(1)}`;
    pick.append(where, why, value);
    // the visible text is the button's name (axe: label-content-name-mismatch); the title adds
    // what clicking does
    pick.title = `start a run on ${m.track_name} just before ${Math.round(m.target_m)} m`;
    pick.onclick = () => beginRun(m.id);
    item.append(pick);
    list.append(item);
  }
  missions.timer = setTimeout(refreshMissions, afterMs || 30000);
}
$("stop").onclick = () => {
  if (countdown.timer) { cancelCountdown(); drawIdle("press Start run"); return; }
  ws.send(JSON.stringify({ type: "stop" }));
};
$("tutorialAgain").onclick = () => {
  tutorial.restart().then(() => $("tutorial").scrollIntoView({ block: "nearest" }));
};
addEventListener("resize", () => { if (playing) chase.fit(); else drawOverview(); });

// before the first run: the canvas at its shown size with a word on what to do
function drawIdle(text) {
  if (playing) return;
  chase.fit();
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = Render.COLORS.grass; ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = "#9aa7b4"; ctx.font = `${Math.round(canvas.width / 28)}px system-ui, sans-serif`;
  ctx.textAlign = "center"; ctx.fillText(text, canvas.width / 2, canvas.height / 2); ctx.textAlign = "start";
}
CL.nav("Play").then((user) => {
  const start = () => {
    $("landing").hidden = true;  // signed in: the game; "How it works" stays one click away
    $("game").hidden = false; connect(); refreshWallet(); refreshBacklog(); refreshMissions();
    drawIdle("press Start run");
    tutorial.begin(CL.user);
    setInterval(() => { if (!document.hidden) refreshBacklog(); }, 10000);
  };
  if (user) start();
  else CL.authForm($("auth"), start, "Sign up to play (free), or sign in");
});
