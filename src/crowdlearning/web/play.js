// The Play page: server-authoritative; we send inputs tagged with the newest frame's tick and
// draw what the server streams (docs/protocol.md).
"use strict";
const $ = (id) => document.getElementById(id);
const canvas = $("view"), ctx = canvas.getContext("2d");
const RAY_DEG = [-90, -60, -35, -15, 0, 15, 35, 60, 90];
let ws = null, view = null, lastFrame = null, playing = false;
let explained = null;  // the last verdict's explanation: its stretches are drawn on the track
// why a run ended, in words (the "end" message's reason)
const END_REASONS = { left_track: "the car left the track", time_up: "time is up",
  stalled: "the car stood still for 3 s", stopped: "you stopped it", disconnected: "disconnected" };
// what the devices do; the server decides what it means (a keyboard's held keys turn its wheel)
const input = { keys: new Set(), pointer: null, pointerType: "mouse", sentNull: true, last: null };

function connect() {
  ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/play`);
  ws.onmessage = (ev) => handle(JSON.parse(ev.data));
  ws.onclose = (ev) => { setPlaying(false); $("error").textContent = `disconnected (${ev.code} ${ev.reason})`; };
}

function handle(msg) {
  switch (msg.type) {
    case "hello": $("error").textContent = ""; break;
    case "start":
      view = CL.trackView(msg.track, canvas); setPlaying(true); clearExplanation();
      $("verdict").textContent = "driving…"; $("verdict").className = "verdict muted";
      $("money").innerHTML = msg.paid ? `${CL.money(msg.held_tinybar)} of your stake is held until the verdict` +
        " (leaving the page ends the run; it is judged all the same)" : "";
      $("txid").textContent = ""; break;
    case "frame": lastFrame = msg; draw(msg); sendInput(msg); break;
    case "end": setPlaying(false); $("driver").textContent = "RUN OVER"; $("driver").className = "badge";
      $("verdict").textContent =
      `run over (${END_REASONS[msg.reason] || msg.reason.replace("_", " ")}), ${msg.ticks} ticks: judging…`; break;
    case "queued": $("verdict").textContent =
      `judging… ${msg.position - 1} runs ahead of yours (the verdict also lands in your wallet's run history)`; break;
    case "verdict": showVerdict(msg); break;
    case "settled":
      $("txid").textContent = `payout ${msg.state} on Hedera: ${msg.transaction_id}`; refreshWallet(); break;
    case "error":
      // an input still in flight when the run ended is normal (docs/protocol.md): not an error
      if (msg.code !== "no_run") $("error").textContent = msg.message || msg.code;
      break;
  }
}

function setPlaying(on) {
  playing = on; $("start").disabled = on; $("stop").disabled = !on;
  if (on) { input.last = null; input.sentNull = true; }  // a new run: the wheel starts at rest
  document.body.dataset.playing = on ? "1" : "0";
}

function draw(f) {
  if (!view) return;
  CL.drawTrack(ctx, view);
  const [x, y, yaw] = f.pose;
  ctx.strokeStyle = "rgba(255,80,80,.55)"; ctx.lineWidth = 1;
  f.rays.forEach((d, i) => {
    const a = yaw + RAY_DEG[i] * Math.PI / 180;
    ctx.beginPath(); ctx.moveTo(view.tx(x), view.ty(y));
    ctx.lineTo(view.tx(x + d * Math.cos(a)), view.ty(y + d * Math.sin(a))); ctx.stroke();
  });
  const you = f.driver === "player";
  CL.drawCar(ctx, view, f.pose, you ? "#f0c000" : "#58a6ff", f.policy[0]);
  $("driver").textContent = you ? "YOU DRIVE" : "POLICY DRIVES";
  $("driver").className = "badge " + (you ? "player" : "policy");
  $("tick").textContent = f.tick; $("speed").textContent = f.pose[3].toFixed(1);
  $("progress").textContent = f.progress_m.toFixed(0); $("laps").textContent = f.laps;
  $("policy").textContent = f.policy[0].toFixed(2);
  // the player's input as the server applied it (a keyboard: its wheel), null where none
  $("you").textContent = f.player[0] === null ? "-" : f.player[0].toFixed(2);
  drawWheel(f);
}

// a steering gauge under the track: the policy's wish (blue) and yours (yellow); left is left
function drawWheel(f) {
  const w = canvas.width * 0.4, x0 = canvas.width / 2, y = canvas.height - 18;
  ctx.fillStyle = "rgba(0,0,0,.45)"; ctx.fillRect(x0 - w - 6, y - 8, 2 * w + 12, 16);
  ctx.fillStyle = "#888"; ctx.fillRect(x0 - 1, y - 8, 2, 16);
  const mark = (steer, color) => { ctx.fillStyle = color; ctx.fillRect(x0 - steer * w - 3, y - 7, 6, 14); };
  mark(f.policy[0], "#58a6ff");
  if (f.player[0] !== null) mark(f.player[0], "#f0c000");
}

function gamepadInput() {
  let steer = null, throttle = null;
  for (const pad of navigator.getGamepads ? navigator.getGamepads() : []) {
    if (pad && Math.abs(pad.axes[0]) > 0.15) steer = -pad.axes[0];
    if (pad && pad.buttons[7] && pad.buttons[7].value > 0.1) throttle = pad.buttons[7].value;
    if (pad && pad.buttons[6] && pad.buttons[6].value > 0.1) throttle = -pad.buttons[6].value;
  }
  return steer === null && throttle === null ? null : { device: "gamepad", steer, throttle };
}

// This tick's input, as the device gives it (docs/protocol.md): an analog value (a drag on the
// track, a gamepad), or the keys held. Keys are sent every frame while the server's wheel is
// still off the policy's steering (f.player not null), so each tick says which frame it answers.
function currentInput(f) {
  if (input.pointer !== null) return { device: input.pointerType, steer: input.pointer, throttle: null };
  const pad = gamepadInput();
  if (pad) return pad;
  const k = input.keys;
  const keys = { left: k.has("ArrowLeft") || k.has("a"), right: k.has("ArrowRight") || k.has("d"),
                 up: k.has("ArrowUp") || k.has("w"), down: k.has("ArrowDown") || k.has("s") };
  const wheelOff = f.player[0] !== null || f.player[1] !== null;
  if (keys.left || keys.right || keys.up || keys.down || (input.last === "keyboard" && wheelOff))
    return { device: "keyboard", ...keys };
  return null;
}

function sendInput(f) {
  if (!playing || !ws || ws.readyState !== 1) return;
  let msg = currentInput(f);
  if (msg === null) {
    if (input.sentNull) return;  // hands off: tell the server once
    input.sentNull = true;
    msg = input.last === "keyboard" ? { device: "keyboard" } : { steer: null, throttle: null };
  } else {
    input.sentNull = false; input.last = msg.device;
  }
  const steering = msg.device === "keyboard" ? Boolean(msg.left || msg.right) : msg.steer != null;
  ws.send(JSON.stringify({ type: "input", tick: f.tick, ...msg,
                           intervene: $("mode").value === "takeover" && steering }));
}

function showVerdict(v) {
  const el = $("verdict");
  const labels = { improved: "improved", no_effect: "no measurable effect", worse: "made it worse",
                   rejected: "rejected" };
  el.textContent = `${labels[v.decision]} ${v.effect_pct > 0 ? "+" : ""}${v.effect_pct}%`;
  el.className = "verdict " + (v.decision === "improved" ? "good" : v.decision === "worse" ? "bad" : "muted");
  $("money").innerHTML = v.reward_tinybar ? `<span class="good">earned ${CL.money(v.reward_tinybar)}</span>`
    : v.penalty_tinybar ? `<span class="bad">paid a penalty of ${CL.money(v.penalty_tinybar)}</span>`
    : (v.paid_mode ? "no money moved" : "practice run: no money at stake") + (v.reason ? ` (${CL.esc(v.reason)})` : "");
  // the verdict's entry in the audit journal, published in a block on the Hedera audit topic
  // within seconds (`crowdlearning audit verify --contribution <id>` proves it)
  $("txid").textContent = v.audit_transaction_id
    ? `verdict in the audit trail (${v.audit_transaction_id.replace("audit:", "entry ")}, published on Hedera in a block)` : "";
  if (v.payout_id) $("txid").textContent += " · payout pending…";
  if (v.explanation) showExplanation(v.explanation);
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

$("start").onclick = () => {
  $("error").textContent = "";
  const paid = document.querySelector('input[name="money"]:checked').value === "paid";
  ws.send(JSON.stringify({ type: "start", mode: $("mode").value, paid }));
};
$("stop").onclick = () => ws.send(JSON.stringify({ type: "stop" }));
addEventListener("keydown", (e) => {
  if (["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", " "].includes(e.key)) e.preventDefault();
  input.keys.add(e.key.length === 1 ? e.key.toLowerCase() : e.key);
});
addEventListener("keyup", (e) => input.keys.delete(e.key.length === 1 ? e.key.toLowerCase() : e.key));
addEventListener("blur", () => input.keys.clear());
function pointerSteer(e) {
  const r = canvas.getBoundingClientRect();
  input.pointerType = e.pointerType === "mouse" ? "mouse" : e.pointerType === "touch" ? "touch" : "analog";
  input.pointer = Math.max(-1, Math.min(1, -((e.clientX - r.left) / r.width * 2 - 1) * 1.5));
}
canvas.addEventListener("pointerdown", (e) => { canvas.setPointerCapture(e.pointerId); pointerSteer(e); });
canvas.addEventListener("pointermove", (e) => { if (input.pointer !== null) pointerSteer(e); });
canvas.addEventListener("pointerup", () => { input.pointer = null; });
canvas.addEventListener("pointercancel", () => { input.pointer = null; });

CL.nav("Play").then((user) => {
  const start = () => {
    $("landing").hidden = true;  // signed in: the game; "How it works" stays one click away
    $("game").hidden = false; connect(); refreshWallet(); refreshBacklog();
    setInterval(() => { if (!document.hidden) refreshBacklog(); }, 10000);
  };
  if (user) start();
  else CL.authForm($("auth"), start, "Sign up to play (free), or sign in");
});
