// Shared by every page: the nav bar, the JSON API helper, sign-in, money and track drawing.
"use strict";
const HBAR = 100000000;
const CL = {};

CL.api = async function (method, path, body) {
  const opts = { method, headers: {}, credentials: "same-origin" };
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

CL.hbar = (tinybar) => (tinybar / HBAR).toLocaleString(undefined, { maximumFractionDigits: 8 }) + " HBAR";

CL.nav = async function (here) {
  const pages = [["index.html", "Play"], ["wallet.html", "Wallet"], ["league.html", "League"],
                 ["watch.html", "Watch"], ["model.html", "Model"]];
  const nav = document.createElement("nav");
  nav.innerHTML = "<strong>CrowdLearning</strong>" + pages.map(([href, name]) =>
    `<a href="${href}" class="${name === here ? "here" : ""}">${name}</a>`).join("") +
    '<span class="who" id="who"></span>';
  document.body.prepend(nav);
  try {
    CL.user = await CL.api("GET", "/api/auth/me");
    document.getElementById("who").innerHTML =
      `${CL.user.username} <button class="secondary" id="logout">Sign out</button>`;
    document.getElementById("logout").onclick = async () => {
      await CL.api("POST", "/api/auth/logout"); location.reload();
    };
  } catch (e) { CL.user = null; }
  return CL.user;
};

// A sign-up / sign-in form inside `el`; calls `done(user)` once signed in.
CL.authForm = function (el, done) {
  el.innerHTML = `<div class="panel"><h2>Sign up or sign in</h2>
    <input id="username" placeholder="name" autocomplete="username">
    <input id="password" type="password" placeholder="password (8+ characters)" autocomplete="current-password">
    <button id="signup">Sign up</button> <button class="secondary" id="login">Sign in</button>
    <p class="error" id="autherror"></p></div>`;
  const go = (path) => async () => {
    try {
      const s = await CL.api("POST", path, { username: el.querySelector("#username").value,
                                              password: el.querySelector("#password").value });
      CL.user = s.user; el.innerHTML = ""; done(s.user);
    } catch (e) { el.querySelector("#autherror").textContent = e.message; }
  };
  el.querySelector("#signup").onclick = go("/api/auth/signup");
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
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height, P = 36;
  ctx.clearRect(0, 0, W, H);
  const all = series.flatMap((s) => s.values.filter((v) => v !== null && v !== undefined));
  if (!all.length) { ctx.fillStyle = "#8b98a5"; ctx.fillText("no data yet", P, H / 2); return; }
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
};
