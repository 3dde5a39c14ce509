// Shared by every page: the nav bar, the JSON API helper, sign-in, money, ids, times and track
// drawing.
"use strict";
const HBAR = 100000000;
const CL = {};

CL.api = async function (method, path, body, headers) {
  const opts = { method, headers: { ...headers }, credentials: "same-origin" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  const data = r.status === 204 ? null : await r.json().catch(() => null);
  if (!r.ok) {
    const detail = data && (data.detail || data.code);
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return data;
};

// A fresh Idempotency-Key (32 hex digits; crypto.randomUUID needs https, this does not).
CL.newKey = function () {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)),
                    (b) => b.toString(16).padStart(2, "0")).join("");
};

// POST a change that must happen once: one Idempotency-Key per user action, the same on each
// retry of it. A request that got no answer (the connection dropped) is retried with the same
// key; the server acts once and answers every retry with its first answer.
CL.once = async function (path, body, key = CL.newKey(), tries = 3) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await CL.api("POST", path, body, { "Idempotency-Key": key });
    } catch (e) {
      if (!(e instanceof TypeError) || attempt >= tries) { e.idempotencyKey = key; throw e; }
      await new Promise((done) => setTimeout(done, 500 * attempt));
    }
  }
};

CL.esc = (text) => String(text ?? "").replace(/[&<>"']/g,
  (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

// Money in words: "1.5 HBAR" (the exact tinybar on hover, as CL.money's title).
CL.hbar = (tinybar) => (tinybar / HBAR).toLocaleString("en-US", { maximumFractionDigits: 8 }) + " HBAR";
CL.tinybar = (tinybar) => `${Number(tinybar).toLocaleString("en-US")} tinybar`;
// HTML: the amount in HBAR, tinybar on hover; `signed` puts + before gains.
CL.money = function (tinybar, signed) {
  const sign = signed && tinybar > 0 ? "+" : "";
  return `<span class="money" title="${CL.tinybar(tinybar)}">${sign}${CL.hbar(tinybar)}</span>`;
};

// HTML: a long id shortened to its start (`keep` characters), whole on hover, with a copy button.
CL.shortId = function (id, keep = 10) {
  if (!id) return "";
  const shown = id.length > keep + 1 ? id.slice(0, keep) + "…" : id;
  return `<span class="id"><code title="${CL.esc(id)}">${CL.esc(shown)}</code>` +
    `<button type="button" class="secondary small copy" data-copy="${CL.esc(id)}" ` +
    `aria-label="copy ${CL.esc(id)}">copy</button></span>`;
};

CL.copy = async function (text) {
  try { await navigator.clipboard.writeText(text); return true; } catch (e) { /* not allowed */ }
  const area = document.createElement("textarea");  // older browsers, plain-http hosts
  area.value = text; area.setAttribute("readonly", ""); area.style.position = "fixed"; area.style.opacity = "0";
  document.body.append(area); area.select();
  let ok = false;
  try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
  area.remove();
  return ok;
};

document.addEventListener("click", async (e) => {
  const button = e.target.closest && e.target.closest("button.copy");
  if (!button) return;
  const ok = await CL.copy(button.dataset.copy);
  const was = button.textContent;
  button.textContent = ok ? "copied" : "select + copy";
  setTimeout(() => { button.textContent = was; }, 1500);
});

// "2 min ago" for recent times, else the date and time in the reader's locale.
CL.when = function (ms) {
  const d = new Date(ms), ago = (Date.now() - ms) / 1000;
  if (ago >= 0 && ago < 60) return "just now";
  if (ago >= 0 && ago < 3600) return `${Math.floor(ago / 60)} min ago`;
  if (ago >= 0 && ago < 86400 && d.getDate() === new Date().getDate())
    return "today " + d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  return d.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric",
                                       hour: "2-digit", minute: "2-digit" });
};

// An API error's detail as a person reads it: "body.password: Password must…" -> "Password must…".
CL.plain = (message) => String(message).split("; ").map((part) =>
  part.replace(/^(body|query|path)(\.[\w-]+)*: /, "")).join(". ");

const LOGO = `<svg viewBox="0 0 32 32" aria-hidden="true"><rect width="32" height="32" rx="7" fill="#1f6feb"/>
  <path d="M7 22c3-9 8-13 18-13" stroke="#e6edf3" stroke-width="3" fill="none" stroke-linecap="round"/>
  <rect x="19" y="17" width="8" height="5" rx="1.5" fill="#f0c000"/></svg>`;

// The nav bar (wraps on narrow screens); resolves to the signed-in user or null. It asks
// /api/auth/session, which answers 200 signed in or not (no 401 in the console).
CL.nav = async function (here) {
  const pages = [["index.html", "Play"], ["wallet.html", "Wallet"], ["league.html", "League"],
                 ["watch.html", "Watch"], ["model.html", "Model"]];
  const nav = document.createElement("nav");
  nav.setAttribute("aria-label", "pages");
  nav.innerHTML = `<a class="brand" href="index.html">${LOGO}CrowdLearning</a><span class="links">` +
    pages.map(([href, name]) =>
      `<a href="${href}"${name === here ? ' class="here" aria-current="page"' : ""}>${name}</a>`).join("") +
    '</span><span class="who" id="who"></span>';
  document.body.prepend(nav);
  CL.user = null;
  try {
    const s = await CL.api("GET", "/api/auth/session");
    CL.user = s.signed_in ? s.user : null;
  } catch (e) { /* offline: shown as signed out */ }
  CL.showUser(CL.user);
  return CL.user;
};

CL.showUser = function (user) {
  const who = document.getElementById("who");
  if (!who) return;
  if (!user) { who.innerHTML = ""; return; }
  who.innerHTML = `<span>${CL.esc(user.username)}</span> <button class="secondary small" id="logout">Sign out</button>`;
  document.getElementById("logout").onclick = async () => {
    await CL.api("POST", "/api/auth/logout").catch(() => {}); location.reload();
  };
};

// What the server asks of names and passwords, checked before sending (the server checks again).
CL.credentialProblem = function (name, password) {
  if (name.length < 3 || name.length > 32) return "Name must be 3 to 32 characters long";
  if (!/^[A-Za-z0-9_.-]+$/.test(name))
    return "Name may use only letters A-Z and a-z, digits 0-9, underscore, dot and hyphen (no spaces)";
  if (password.length < 8) return "Password must be at least 8 characters";
  if (password.length > 256) return "Password must be at most 256 characters";
  return null;
};

// A sign-up / sign-in form inside `el`; calls `done(user)` once signed in. Errors are in plain
// words and never repeat what was typed.
CL.authForm = function (el, done, title = "Sign up or sign in") {
  el.innerHTML = `<div class="panel"><h2>${title}</h2>
    <form id="authform" novalidate>
    <p><label for="username">Name</label><br><input id="username" autocomplete="username"
       placeholder="3-32 letters, digits, _ . -" aria-describedby="autherror"></p>
    <p><label for="password">Password</label><br><input id="password" type="password"
       placeholder="8+ characters" autocomplete="current-password" aria-describedby="autherror"></p>
    <button id="signup" type="submit">Sign up</button> <button class="secondary" id="login" type="button">Sign in</button>
    <p class="error" id="autherror" role="alert"></p></form></div>`;
  const go = (path) => async () => {
    const name = el.querySelector("#username").value.trim(), password = el.querySelector("#password").value;
    const error = el.querySelector("#autherror");
    const problem = CL.credentialProblem(name, password);
    if (problem) { error.textContent = problem; return; }
    error.textContent = "";
    try {
      const s = await CL.api("POST", path, { username: name, password });
      CL.user = s.user; el.innerHTML = ""; CL.showUser(s.user); done(s.user);
    } catch (e) { error.textContent = CL.plain(e.message); }
  };
  el.querySelector("#authform").onsubmit = (e) => { e.preventDefault(); go("/api/auth/signup")(); };
  el.querySelector("#login").onclick = go("/api/auth/login");
};

// Track geometry in metres plus a world->canvas transform fitted to the canvas.
CL.trackView = function (track, canvas) {
  const pts = [];
  for (const [x, y] of track.centreline_mm) pts.push([x / 1000, y / 1000]);
  let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
  for (const [x, y] of pts) {
    minX = Math.min(minX, x); maxX = Math.max(maxX, x); minY = Math.min(minY, y); maxY = Math.max(maxY, y);
  }
  const pad = track.width_m + 4;
  const scale = Math.min(canvas.width / (maxX - minX + 2 * pad), canvas.height / (maxY - minY + 2 * pad));
  const tx = (x) => (x - minX + pad) * scale;
  const ty = (y) => canvas.height - (y - minY + pad) * scale;
  return { pts, scale, tx, ty, width: track.width_m };
};

CL.drawTrack = function (ctx, view) {
  ctx.clearRect(0, 0, ctx.canvas.width, ctx.canvas.height);
  ctx.lineJoin = "round";
  const path = () => {
    ctx.beginPath();
    view.pts.forEach(([x, y], i) => (i ? ctx.lineTo(view.tx(x), view.ty(y)) : ctx.moveTo(view.tx(x), view.ty(y))));
    ctx.closePath();
  };
  path(); ctx.strokeStyle = "#e6edf3"; ctx.lineWidth = view.width * view.scale + 4; ctx.stroke();
  path(); ctx.strokeStyle = "#3a3f47"; ctx.lineWidth = view.width * view.scale; ctx.stroke();
  path(); ctx.strokeStyle = "#6e7681"; ctx.setLineDash([6, 8]); ctx.lineWidth = 1; ctx.stroke();
  ctx.setLineDash([]);
  const [sx, sy] = view.pts[0];
  ctx.fillStyle = "#fff"; ctx.fillRect(view.tx(sx) - 3, view.ty(sy) - 3, 6, 6);
};

// A car at pose [x, y, yaw, speed, steer]; `policySteer` draws the policy's intended wheel angle.
CL.drawCar = function (ctx, view, pose, color, policySteer) {
  const [x, y, yaw] = pose;
  const s = Math.max(view.scale, 2);
  ctx.save();
  ctx.translate(view.tx(x), view.ty(y));
  ctx.rotate(-yaw);
  ctx.fillStyle = color; ctx.fillRect(-2.2 * s, -1 * s, 4.4 * s, 2 * s);
  if (policySteer !== undefined) {
    const a = policySteer * 0.6;
    ctx.strokeStyle = "#58a6ff"; ctx.lineWidth = 3; ctx.beginPath();
    ctx.moveTo(2.2 * s, 0); ctx.lineTo(2.2 * s + 8 * s * Math.cos(a), -8 * s * Math.sin(a)); ctx.stroke();
  }
  ctx.restore();
};

// A minimal line chart: `series` is [{name, color, values}] over `labels` (nulls are gaps).
CL.lineChart = function (canvas, labels, series) {
  const shown = canvas.clientWidth;  // draw at the size shown (a phone's screen): legible text
  if (shown >= 200 && shown < canvas.width) {
    canvas.height = Math.max(180, Math.round(canvas.height * shown / canvas.width)); canvas.width = shown;
  }
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height, P = 36;
  ctx.clearRect(0, 0, W, H);
  const all = series.flatMap((s) => s.values.filter((v) => v !== null && v !== undefined));
  if (!all.length) {
    ctx.fillStyle = "#9aa7b4"; ctx.font = "20px system-ui, sans-serif";
    ctx.fillText(CL.lineChart.empty || "no data yet", P, H / 2); return false;
  }
  let lo = Math.min(...all), hi = Math.max(...all);
  if (hi === lo) { hi += 1; lo -= 1; }
  const x = (i) => P + (labels.length > 1 ? i * (W - 2 * P) / (labels.length - 1) : (W - 2 * P) / 2);
  const y = (v) => H - P - (v - lo) / (hi - lo) * (H - 2 * P);
  ctx.strokeStyle = "#30363d"; ctx.strokeRect(P, P / 2, W - 2 * P, H - 1.5 * P);
  ctx.fillStyle = "#8b98a5"; ctx.font = "12px sans-serif";
  ctx.fillText(hi.toFixed(2), 2, y(hi) + 4); ctx.fillText(lo.toFixed(2), 2, y(lo));
  labels.forEach((l, i) => ctx.fillText(String(l), x(i) - 4, H - 8));
  series.forEach((s, k) => {
    ctx.strokeStyle = s.color; ctx.fillStyle = s.color; ctx.lineWidth = 2; ctx.beginPath();
    let open = false;
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) { open = false; return; }
      open ? ctx.lineTo(x(i), y(v)) : ctx.moveTo(x(i), y(v)); open = true;
      ctx.fillRect(x(i) - 2, y(v) - 2, 4, 4);
    });
    ctx.stroke(); ctx.fillText(s.name, W - P - 150, P + 14 * k + 4);
  });
  return true;
};
