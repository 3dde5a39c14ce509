// The Watch page: live runs and the champion (/ws/watch), or one race of the league
// (watch?race=<id>: /ws/races/<id> live, the replay from /api/races/<id>/replay once finished).
"use strict";
const $ = (id) => document.getElementById(id);
const wsUrl = (path) => `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;

// --- live runs ----------------------------------------------------------------------------------
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

// The next (or running) race, linked above the runs.
async function raceBanner() {
  try {
    const races = await CL.api("GET", "/api/races?recent=0");
    const next = races.timetable[0];
    if (!next) return;
    const banner = $("raceBanner");
    const when = next.status === "scheduled" ? `starts ${raceClock(next.starts_at)}` : next.status === "grid" ? "on the grid" : "racing now";
    banner.innerHTML = `<strong>Race league:</strong> ${CL.esc(next.track.name)}, ${next.laps} lap${next.laps > 1 ? "s" : ""}, ` +
      `${next.cars.length} cars · ${when} · <a href="${CL.esc(next.share_url)}">watch the race</a>`;
    banner.hidden = false;
  } catch (e) { /* races off on this server */ }
}

// --- a race -------------------------------------------------------------------------------------
const COLORS = ["#3fb950", "#58a6ff", "#f0c000", "#f85149", "#bc8cff", "#ff9e40", "#39d0d8", "#e6edf3"];
const race = { info: null, view: null, frame: null, clockSkew: 0, ws: null, replay: null,
  seat: null, keys: { left: false, right: false, up: false, down: false }, keysAt: 0 };
const rctx = $("raceCanvas").getContext("2d");

function raceClock(startsAt) {
  const s = Math.round(startsAt - Date.now() / 1000 - race.clockSkew);
  if (s <= 0) return "now";
  return s >= 60 ? `in ${Math.floor(s / 60)} min ${s % 60} s` : `in ${s} s`;
}

const seconds = (v) => (v === null || v === undefined ? "–" : `${v.toFixed(2)} s`);

function carName(n) {
  const c = race.info.cars[n];
  return c ? c.name : `car ${n}`;
}

function drawRace(frame) {
  if (!race.view) return;
  CL.drawTrack(rctx, race.view);
  const order = frame ? [...frame.order].reverse() : [];  // the leader drawn last, on top
  for (const n of order) {
    const c = frame.cars[n];
    if (c.state === "out") continue;
    CL.drawCar(rctx, race.view, c.pose, COLORS[n % COLORS.length]);
    rctx.fillStyle = "#fff"; rctx.font = "12px sans-serif";
    rctx.fillText(String(c.pos), race.view.tx(c.pose[0]) + 8, race.view.ty(c.pose[1]) - 8);
  }
  if (frame) {
    rctx.fillStyle = "#fff"; rctx.font = "16px sans-serif";
    const lead = frame.cars[frame.order[0]];
    rctx.fillText(`${frame.status === "finished" ? "finished" : `lap ${lead.lap}/${race.info.laps}`} · ${frame.t.toFixed(1)} s`, 12, 22);
  }
}

function steerCell(n, c) {  // how many label the car (crowd play), you among them
  const parts = [];
  if (c.steering) parts.push(`${c.steering} steering${race.seat === n ? " (you)" : ""}`);
  if (c.driver === "crowd") parts.push("crowd drives");
  return parts.length ? `<span class="steering">${parts.join(" · ")}</span>` : "";
}

function showStandings(frame) {
  const rows = frame.order.map((n) => {
    const c = frame.cars[n];
    const state = c.state === "out" ? `out: ${c.reason.replace("_", " ")}` : c.state === "finished" ? "finished" : `lap ${c.lap}/${race.info.laps}`;
    const gap = c.pos === 1 ? "leader" : c.gap_s === null ? "–" : `+${c.gap_s.toFixed(2)} s`;
    return `<tr><td data-label="#">${c.pos}</td>
      <td data-label="car"><span class="swatch c${n % COLORS.length}"></span>${CL.esc(carName(n))}${steerCell(n, c)}</td>
      <td data-label="gap">${gap}</td><td data-label="last lap">${seconds(c.last_lap_s)}</td>
      <td data-label="best lap">${seconds(c.best_lap_s)}</td><td data-label="lap">${state}${c.resets ? ` · ${c.resets} reset${c.resets > 1 ? "s" : ""}` : ""}</td></tr>`;
  }).join("");
  $("standings").innerHTML = "<thead><tr><th>#</th><th>car</th><th>gap</th><th>last</th><th>best</th><th>lap</th></tr></thead>" +
    `<tbody>${rows}</tbody>`;
  if (frame.spectators !== undefined) $("spectators").textContent = `(${frame.spectators} watching)`;
  if (frame.reactions) {
    $("reactionShow").textContent = Object.entries(frame.reactions).map(([e, n]) => `${e}×${n}`).join("  ");
    clearTimeout(showStandings.fade);
    showStandings.fade = setTimeout(() => { $("reactionShow").textContent = ""; }, 1500);
  }
}

function showResult(result) {
  $("raceStatus").innerHTML = `Finished. Winner: <strong>${CL.esc(result.cars[0].state === "finished" ? result.cars[0].name : "nobody finished")}</strong>` +
    ` · <a href="?race=${encodeURIComponent(race.info.race_id)}">watch the replay</a>`;
}

function gridStandings() {
  const frame = { order: race.info.cars.map((c) => c.car), cars: race.info.cars.map((c, i) => ({
    pos: i + 1, state: "racing", lap: 1, gap_s: null, last_lap_s: null, best_lap_s: null, resets: 0, steering: 0 })) };
  showStandings(frame);
}

// --- taking the wheel: join a car as a labeller, arrows while the race canvas has focus ---------
const ARROWS = { ArrowLeft: "left", ArrowRight: "right", ArrowUp: "up", ArrowDown: "down" };

function send(message) {
  if (race.ws && race.ws.readyState === 1) race.ws.send(JSON.stringify(message));
}

function sendKeys() {  // the keyboard device: the server's wheel ramps the held keys
  if (race.seat === null || !race.frame) return;
  send({ type: "steer", tick: race.frame.tick, device: "keyboard", ...race.keys });
}

function keyEvent(e, down) {
  const key = ARROWS[e.key];
  if (!key || race.seat === null) return;
  e.preventDefault();
  if (race.keys[key] === down) return;
  race.keys[key] = down; race.keysAt = performance.now();
  sendKeys();
}

function steering() {
  const canvas = $("raceCanvas");
  canvas.tabIndex = 0;
  canvas.addEventListener("keydown", (e) => keyEvent(e, true));
  canvas.addEventListener("keyup", (e) => keyEvent(e, false));
  canvas.addEventListener("blur", () => {
    for (const k of Object.keys(race.keys)) race.keys[k] = false;
    sendKeys();
  });
  $("steerControls").hidden = false;
  $("steerButton").addEventListener("click", () => {
    if (!CL.user) { $("steerNote").textContent = "Sign in (Play page) to take the wheel."; return; }
    if (race.seat !== null) send({ type: "leave" });
    else send({ type: "join", car: Number($("steerCar").value) });
  });
}

function steerChoices(info) {
  const select = $("steerCar"), keep = select.value;
  select.innerHTML = info.cars.map((c) => `<option value="${c.car}">${CL.esc(c.name)}</option>`).join("");
  const crowd = info.cars.find((c) => c.role === "crowd");
  select.value = keep !== "" && info.cars[Number(keep)] ? keep : crowd ? String(crowd.car) : "0";
}

function seatChanged() {
  $("steerButton").textContent = race.seat === null ? "Take the wheel" : "Let go";
  $("steerCar").disabled = race.seat !== null;
}

function crowdMessage(m) {
  const note = $("steerNote");
  if (m.type === "joined") {
    race.seat = m.car; seatChanged();
    note.textContent = `You label ${m.name}${m.crowd ? " (the crowd car: your input counts in the crowd's median)" : ""}: ` +
      "click the track, then steer with the arrow keys.";
    $("raceCanvas").focus();
  } else if (m.type === "left") {
    race.seat = null; seatChanged();
    note.textContent = m.submitted ? "Let go: your labels were sent to the judge." : "Let go.";
  } else if (m.type === "contribution" && m.submitted) {
    note.textContent = `Your ${m.labels} labels on ${carName(m.car)} went to the judge (${m.reason.replace("_", " ")}).`;
  } else if (m.type === "verdict") {
    note.textContent = `Verdict on your labels: ${m.decision.replace("_", " ")} (${m.effect_pct}%) · see your Wallet's run history.`;
  }
}

function showInfo(info) {
  race.info = info;
  steerChoices(info);
  $("raceTitle").textContent = `Race ${info.race_id} · ${info.track.name}`;
  $("raceInfo").textContent = `${info.laps} lap${info.laps > 1 ? "s" : ""} · ${info.cars.length} cars (ghosts: they never collide)` +
    ` · starts ${new Date(info.starts_at * 1000).toLocaleTimeString()}`;
  const link = new URL(info.share_url, location.href).href;
  $("shareLink").innerHTML = `<a href="${CL.esc(link)}">${CL.esc(link)}</a> <button type="button" class="secondary small copy" data-copy="${CL.esc(link)}">copy</button>`;
}

function countdown() {
  if (!race.info || race.frame || race.replay) return;
  const status = race.info.status;
  $("raceStatus").textContent = status === "grid" ? `On the grid: starts ${raceClock(race.info.starts_at)}` :
    `Scheduled: starts ${raceClock(race.info.starts_at)}`;
}

function reactions(info) {
  const box = $("reactions");
  box.innerHTML = info.reactions.map((e) => `<button type="button" class="secondary small" data-emoji="${e}" aria-label="react ${e}">${e}</button>`).join("");
  box.hidden = false;
  box.addEventListener("click", (e) => {
    const emoji = e.target.dataset && e.target.dataset.emoji;
    if (!emoji) return;
    if (!CL.user) { $("reactionNote").textContent = "Sign in (Play page) to react."; return; }
    if (race.ws && race.ws.readyState === 1) race.ws.send(JSON.stringify({ type: "react", emoji }));
  });
}

// --- chat: beside the race; text always goes in with textContent (never innerHTML) -------------
const chat = { on: false, canWrite: false, moderator: false, seen: new Set(), maxMuteS: 0 };
const CHAT_KEEP = 150;  // lines kept on the page
const MUTE_S = 600;  // a moderator's mute button: 10 minutes

function chatNote(text) { $("chatNote").textContent = text; }

function chatSetup(hello) {
  if (!hello) { $("chatPanel").hidden = true; return; }
  chat.on = true; chat.canWrite = hello.can_write; chat.moderator = hello.moderator;
  chat.maxMuteS = hello.max_mute_s || MUTE_S;
  $("chatPanel").hidden = false;
  $("chatInput").maxLength = hello.max_chars;
  $("chatForm").hidden = !chat.canWrite;
  if (!chat.canWrite) chatNote("Sign in (Play page) to chat.");
  else if (hello.muted_until) chatNote(`A moderator muted you until ${new Date(hello.muted_until * 1000).toLocaleTimeString()}.`);
  chatAdd(hello.history);
}

function chatButton(label, title, onClick) {
  const b = document.createElement("button");
  b.type = "button"; b.className = "secondary small"; b.textContent = label;
  b.title = title; b.setAttribute("aria-label", title);
  b.addEventListener("click", onClick);
  return b;
}

function chatLine(m) {
  const line = document.createElement("div");
  line.className = "chat-line"; line.dataset.id = String(m.id);
  const name = document.createElement("span");
  name.className = m.mod ? "chat-name mod" : "chat-name"; name.textContent = m.name;
  const text = document.createElement("span");
  text.className = "chat-text"; text.textContent = m.text;
  line.title = new Date(m.at * 1000).toLocaleTimeString();
  line.append(name);
  if (m.mod) {
    const badge = document.createElement("span");
    badge.className = "chat-mod"; badge.textContent = " (mod)";
    line.append(badge);
  }
  line.append(" ", text);
  const tools = document.createElement("span");
  tools.className = "chat-tools";
  const own = CL.user && CL.user.username === m.name;
  if (chat.canWrite && !own) {
    tools.append(chatButton("⚑", `report ${m.name}'s message`, () => send({ type: "chat_report", id: m.id })));
  }
  if (chat.moderator) {
    tools.append(chatButton("✕", `delete ${m.name}'s message`, () => send({ type: "chat_delete", id: m.id })));
    if (!own) tools.append(chatButton("mute", `mute ${m.name} for ${MUTE_S / 60} minutes`,
      () => send({ type: "chat_mute", id: m.id, seconds: Math.min(MUTE_S, chat.maxMuteS) })));
  }
  if (tools.childNodes.length) line.append(tools);
  return line;
}

function chatAdd(lines) {
  if (!chat.on || !lines || !lines.length) return;
  const box = $("chatLines");
  const atEnd = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  for (const m of lines) {
    if (chat.seen.has(m.id)) continue;  // a joiner may get a line twice (history, then a frame)
    chat.seen.add(m.id);
    box.append(chatLine(m));
  }
  while (box.childNodes.length > CHAT_KEEP) box.firstChild.remove();
  if (atEnd) box.scrollTop = box.scrollHeight;
}

function chatRemoved(id) {
  const line = $("chatLines").querySelector(`[data-id="${Number(id)}"]`);
  if (line) line.remove();
}

function chatAnswer(m) {
  if (m.type === "chat_sent") { $("chatInput").value = ""; chatNote(""); }
  else if (m.type === "chat_reported") chatNote("Reported: thank you, the moderators will look.");
  else if (m.type === "chat_muted") chatNote(`Muted until ${new Date(m.until * 1000).toLocaleTimeString()}.`);
  else if (m.type === "error") {
    const why = {
      rate_limited: "Slow down: too many messages, wait a little.",
      muted: `A moderator muted you until ${new Date(m.until * 1000).toLocaleTimeString()}.`,
      blocked_word: "Not sent: that message holds a word this chat does not allow.",
      not_signed_in: "Sign in (Play page) to chat.",
    }[m.code];
    chatNote(why || m.message);
  }
}

function chatForm() {
  $("chatForm").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("chatInput").value.trim();
    if (!text) { chatNote("Write something first."); return; }
    if (!race.ws || race.ws.readyState !== 1) { chatNote("Not connected: the race is over."); return; }
    send({ type: "chat", text });
  });
}

function chatClosed() {
  if (!chat.on) return;
  $("chatForm").hidden = true;
  chatNote("The race is over: the chat is closed.");
}

function live(info) {
  reactions(info);
  chatForm();
  steering();
  const ws = new WebSocket(wsUrl(`/ws/races/${encodeURIComponent(info.race_id)}`));
  race.ws = ws;
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.type === "hello") { race.clockSkew = Date.now() / 1000 - m.now; showInfo(m.race); chatSetup(m.chat); }
    else if (m.type === "chat") { chatAdd(m.chat); }
    else if (m.type === "chat_removed") { chatRemoved(m.id); }
    else if (["chat_sent", "chat_reported", "chat_muted"].includes(m.type) || (m.type === "error" && m.about === "chat")) {
      chatAnswer(m);
    }
    else if (m.type === "grid") { showInfo(m.race); }
    else if (m.type === "frame") {
      race.frame = m; $("raceStatus").textContent = m.status === "racing" ? "Racing" : "Finished";
      showStandings(m); drawRace(m); chatAdd(m.chat);
      const held = Object.values(race.keys).some(Boolean);
      if (race.seat !== null && (held || performance.now() - race.keysAt < 1500)) sendKeys();
    } else if (m.type === "result") {
      race.info = m.race; race.seat = null; seatChanged(); $("steerControls").hidden = true; showResult(m.result);
    }
    else if (["joined", "left", "contribution", "verdict"].includes(m.type)) crowdMessage(m);
    else if (m.type === "error" && !["rate_limited", "reactions_off"].includes(m.code) && m.code !== "bad_message") {
      $("steerNote").textContent = m.message;
    } else if (m.type === "error") {
      $("reactionNote").textContent = m.code === "rate_limited" ? "Easy: too many reactions, wait a little." : m.message;
    }
  };
  ws.onclose = () => { race.ws = null; chatClosed(); };
}

async function playReplay(info) {
  $("raceStatus").textContent = "Loading the replay (re-simulated from the race's seed)…";
  const replay = await CL.api("GET", `/api/races/${encodeURIComponent(info.race_id)}/replay`);
  race.replay = replay;
  const frames = replay.frames, seek = $("replaySeek");
  seek.max = String(frames.length - 1);
  $("replayControls").hidden = false;
  $("raceStatus").innerHTML = `Replay${replay.verified ? " (same poses as the live race, verified)" : ""} · ` +
    `winner: <strong>${CL.esc(info.result.cars[0].state === "finished" ? info.result.cars[0].name : "nobody finished")}</strong>`;
  let at = 0, playing = true, last = performance.now();
  const period = 1000 / replay.frame_hz;
  const paint = () => {
    const f = frames[Math.min(at, frames.length - 1)];
    drawRace(f); showStandings(f);
    seek.value = String(at); $("replayTime").textContent = `${f.t.toFixed(1)} s`;
  };
  const tick = (now) => {
    if (playing && now - last >= period) {
      last = now; at = Math.min(at + 1, frames.length - 1);
      if (at === frames.length - 1) { playing = false; $("replayPlay").textContent = "Play"; }
      paint();
    }
    requestAnimationFrame(tick);
  };
  $("replayPlay").onclick = () => {
    if (!playing && at >= frames.length - 1) at = 0;
    playing = !playing; $("replayPlay").textContent = playing ? "Pause" : "Play";
  };
  seek.oninput = () => { at = Number(seek.value); paint(); };
  paint();
  requestAnimationFrame(tick);
}

async function watchRace(id) {
  $("runsView").hidden = true; $("raceView").hidden = false;
  let info;
  try { info = await CL.api("GET", `/api/races/${encodeURIComponent(id)}`); } catch (e) {
    $("raceTitle").textContent = "No such race";
    $("raceStatus").innerHTML = `${CL.esc(CL.plain(e.message))} · <a href="league.html">the timetable</a>`;
    return;
  }
  showInfo(info);
  race.view = CL.trackView(await CL.api("GET", `/api/races/${encodeURIComponent(id)}/track`), $("raceCanvas"));
  drawRace(null);
  if (info.status === "finished") { await playReplay(info); return; }
  gridStandings();
  countdown(); setInterval(countdown, 500);
  live(info);
}

CL.nav("Watch").then(() => {
  const id = new URLSearchParams(location.search).get("race");
  if (id) { watchRace(id); return; }
  raceBanner();
  const ws = new WebSocket(wsUrl("/ws/watch"));
  ws.onmessage = (ev) => show(JSON.parse(ev.data));
});
