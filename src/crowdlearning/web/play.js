// The Play page: server-authoritative; we send inputs tagged with the newest frame's tick and
// draw what the server streams (docs/protocol.md).
"use strict";
const $ = (id) => document.getElementById(id);
const canvas = $("view"), ctx = canvas.getContext("2d");
const RAY_DEG = [-90, -60, -35, -15, 0, 15, 35, 60, 90];
let ws = null, view = null, lastFrame = null, playing = false;
const input = { keys: new Set(), pointer: null, sentNull: true };

function connect() {
  ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/play`);
  ws.onmessage = (ev) => handle(JSON.parse(ev.data));
  ws.onclose = (ev) => { setPlaying(false); $("error").textContent = `disconnected (${ev.code} ${ev.reason})`; };
}

function handle(msg) {
  switch (msg.type) {
    case "hello": $("error").textContent = ""; break;
    case "start":
      view = CL.trackView(msg.track, canvas); setPlaying(true);
      $("verdict").textContent = "driving…"; $("verdict").className = "verdict muted";
      $("money").textContent = ""; $("txid").textContent = ""; break;
    case "frame": lastFrame = msg; draw(msg); sendInput(msg.tick); break;
    case "end": setPlaying(false); $("driver").textContent = "RUN OVER"; $("driver").className = "badge";
      $("verdict").textContent =
      `run over (${msg.reason.replace("_", " ")}), ${msg.ticks} ticks: judging…`; break;
    case "queued": $("verdict").textContent =
      `judging… ${msg.position - 1} runs ahead of yours (the verdict also lands in your wallet's run history)`; break;
    case "verdict": showVerdict(msg); break;
    case "settled":
      $("txid").textContent = `payout ${msg.state} on Hedera: ${msg.transaction_id}`; refreshWallet(); break;
    case "error": $("error").textContent = `${msg.code}: ${msg.message}`; break;
  }
}

function setPlaying(on) {
  playing = on; $("start").disabled = on; $("stop").disabled = !on;
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
}

function currentSteer() {
  let steer = null, throttle = null;
  const k = input.keys;
  if (k.has("ArrowLeft") || k.has("a")) steer = 1;
  if (k.has("ArrowRight") || k.has("d")) steer = (steer ?? 0) - 1;
  if (k.has("ArrowUp") || k.has("w")) throttle = 1;
  if (k.has("ArrowDown") || k.has("s")) throttle = -1;
  if (input.pointer !== null) steer = input.pointer;
  for (const pad of navigator.getGamepads ? navigator.getGamepads() : []) {
    if (pad && Math.abs(pad.axes[0]) > 0.15) steer = -pad.axes[0];
    if (pad && pad.buttons[7] && pad.buttons[7].value > 0.1) throttle = pad.buttons[7].value;
    if (pad && pad.buttons[6] && pad.buttons[6].value > 0.1) throttle = -pad.buttons[6].value;
  }
  return { steer, throttle };
}

function sendInput(tick) {
  if (!playing || !ws || ws.readyState !== 1) return;
  const { steer, throttle } = currentSteer();
  $("you").textContent = steer === null ? "-" : steer.toFixed(2);
  if (steer === null && throttle === null) {
    if (input.sentNull) return;  // hands off: tell the server once
    input.sentNull = true;
  } else input.sentNull = false;
  ws.send(JSON.stringify({ type: "input", tick, steer, throttle,
                           intervene: $("mode").value === "takeover" && steer !== null }));
}

function showVerdict(v) {
  const el = $("verdict");
  const labels = { improved: "improved", no_effect: "no measurable effect", worse: "made it worse",
                   rejected: "rejected" };
  el.textContent = `${labels[v.decision]} ${v.effect_pct > 0 ? "+" : ""}${v.effect_pct}%`;
  el.className = "verdict " + (v.decision === "improved" ? "good" : v.decision === "worse" ? "bad" : "muted");
  $("money").innerHTML = v.reward_tinybar ? `<span class="good">earned ${CL.hbar(v.reward_tinybar)}</span>`
    : v.penalty_tinybar ? `<span class="bad">paid ${CL.hbar(v.penalty_tinybar)}</span>`
    : (v.paid_mode ? "no money moved" : "practice run: no money at stake") + (v.reason ? ` (${v.reason})` : "");
  $("txid").textContent = v.audit_transaction_id ? `verdict on Hedera: ${v.audit_transaction_id}` : "";
  if (v.payout_id) $("txid").textContent += " · payout pending…";
  refreshWallet();
}

async function refreshWallet() {
  try {
    const w = await CL.api("GET", "/api/wallet");
    $("balance").textContent = CL.hbar(w.available_tinybar); $("stake").textContent = CL.hbar(w.stake_tinybar);
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
  input.pointer = Math.max(-1, Math.min(1, -((e.clientX - r.left) / r.width * 2 - 1) * 1.5));
}
canvas.addEventListener("pointerdown", (e) => { canvas.setPointerCapture(e.pointerId); pointerSteer(e); });
canvas.addEventListener("pointermove", (e) => { if (input.pointer !== null) pointerSteer(e); });
canvas.addEventListener("pointerup", () => { input.pointer = null; });
canvas.addEventListener("pointercancel", () => { input.pointer = null; });

CL.nav("Play").then((user) => {
  const start = () => {
    $("game").hidden = false; connect(); refreshWallet(); refreshBacklog();
    setInterval(() => { if (!document.hidden) refreshBacklog(); }, 10000);
  };
  if (user) start(); else CL.authForm($("auth"), (u) => { $("who").textContent = u.username; start(); });
});
