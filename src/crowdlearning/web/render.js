// The Play page's driving view: a heading-up chase camera that follows the car, a minimap of the
// whole track, rays and the "policy wants" path, drawn at the display's rate
// (requestAnimationFrame) between the server's 20 Hz frames (FrameBuffer: drawn one frame period
// behind the newest frame, interpolated between the two frames around that time).
//
// Why hand-written Canvas2D and not PixiJS (measured, issue 12): headless Debian Chromium 156
// (--headless --disable-gpu ...: no GPU, WebGL falls back to SwiftShader on the CPU), 1280x900
// viewport, the same chase scene (track, rays, car, minimap) fed fake 20 Hz frames,
// requestAnimationFrame counted over 5 s, on a 2-core machine shared with other jobs (load 4-6):
//   Canvas2D, this file ..................... 58.1-59.8 fps (view 704x528); 58.3 fps at 1280x960
//   PixiJS 8.22.0, WebGL (SwiftShader) ....... 14.6-16.4 fps (704x528);      5.1 fps at 1280x960
//   PixiJS 8.22.0, its Canvas2D renderer ..... 58.3-60.1 fps (704x528);     59.8 fps at 1280x960
// The real Play page during a run with the server at 20 Hz: 60.1-60.3 fps, 90 of 91 display
// frames a new picture (tests/server/test_play_render_browser.py prints both).
// PixiJS's default (WebGL) misses the display rate without a GPU; its Canvas2D renderer only
// matches this file; and both refuse to start under the
// pages' Content-Security-Policy ("Current environment does not allow unsafe-eval": its shader
// and uniform code generation needs 'unsafe-eval' or its extra unsafe-eval module). So this
// stays a plain 2D canvas: no 840 kB download, no CSP change, and the page's other drawing (the
// verdict's stretches on the track, tests reading pixels) keeps using the same canvas.
"use strict";
const Render = {};

Render.STEER_MAX_RAD = 0.6;  // CarParams.max_steer_rad: steer 1.0 turns the front wheels 0.6 rad
Render.WHEELBASE_M = 2.6;    // CarParams.wheelbase_m
Render.GRIP_MPS2 = 9.0;      // CarParams.grip_mps2: path curvature at most grip / v^2
Render.RAY_RAD = [-90, -60, -35, -15, 0, 15, 35, 60, 90].map((d) => d * Math.PI / 180);
Render.COLORS = { grass: "#0b1a0b", grid: "rgba(255,255,255,.05)", kerb: "#e6edf3",
  kerbRed: "#c9372c", asphalt: "#3a3f47", centre: "#6e7681", ray: "rgba(255,80,80,.55)",
  policy: "#58a6ff", player: "#f0c000", minimapCar: "#ffffff" };

// angle b - a wrapped into (-pi, pi]
const wrapAngle = (d) => d - 2 * Math.PI * Math.round(d / (2 * Math.PI));
const lerp = (a, b, t) => a + (b - a) * t;

// ---- the server's frames, and the pose between them at render time -------------------------
// Each frame is stamped on arrival. `offset` (arrival time minus tick x period) follows the
// least-delayed arrivals, drifting up slowly when every frame comes later (a slower network),
// so the render clock is the server's tick clock, one frame period behind the newest frame.
Render.FrameBuffer = class {
  constructor(periodMs) { this.period = periodMs; this.reset(); }
  reset() { this.frames = []; this.offset = null; }
  push(frame, nowMs) {
    const last = this.frames[this.frames.length - 1];
    if (last && frame.tick <= last.tick) return;
    const off = nowMs - frame.tick * this.period;
    this.offset = this.offset === null || off < this.offset ? off : this.offset + 0.05 * (off - this.offset);
    this.frames.push(frame);
    if (this.frames.length > 4) this.frames.shift();
  }
  get newest() { return this.frames[this.frames.length - 1] || null; }
  // the scene at `nowMs`: pose, rays and steering interpolated between the frames around
  // (now - offset) / period - 1 ticks; held on the newest frame when none is newer yet
  sample(nowMs) {
    const fs = this.frames;
    if (!fs.length) return null;
    const t = (nowMs - this.offset) / this.period - 1;
    let a = fs[0], b = fs[0];
    for (let i = 0; i < fs.length; i++) {
      if (fs[i].tick <= t) a = b = fs[i];
      else { b = fs[i]; break; }
    }
    if (t < fs[0].tick) a = b = fs[0];
    const k = b.tick > a.tick ? Math.min(1, Math.max(0, (t - a.tick) / (b.tick - a.tick))) : 0;
    const pa = a.pose, pb = b.pose;
    const pose = [lerp(pa[0], pb[0], k), lerp(pa[1], pb[1], k), pa[2] + wrapAngle(pb[2] - pa[2]) * k,
                  lerp(pa[3], pb[3], k), lerp(pa[4], pb[4], k)];
    const rays = a.rays.map((d, i) => lerp(d, b.rays[i], k));
    const steer = (x, y) => (x === null || y === null ? (k < 0.5 ? x : y) : lerp(x, y, k));
    return { pose, rays, tick: lerp(a.tick, b.tick, k), frame: k < 0.5 ? a : b,
             policy: lerp(a.policy[0], b.policy[0], k), player: steer(a.player[0], b.player[0]) };
  }
};

// ---- the track: geometry in metres, prepared once per run -------------------------------------
Render.track = function (track) {
  const n = track.centreline_mm.length, xs = new Float64Array(n), ys = new Float64Array(n);
  let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity, length = 0;
  track.centreline_mm.forEach(([x, y], i) => {
    xs[i] = x / 1000; ys[i] = y / 1000;
    minX = Math.min(minX, xs[i]); maxX = Math.max(maxX, xs[i]);
    minY = Math.min(minY, ys[i]); maxY = Math.max(maxY, ys[i]);
    if (i) length += Math.hypot(xs[i] - xs[i - 1], ys[i] - ys[i - 1]);
  });
  length += Math.hypot(xs[0] - xs[n - 1], ys[0] - ys[n - 1]);
  return { n, xs, ys, width: track.width_m, length, minX, minY, maxX, maxY,
           name: track.name, seed: track.seed };
};

// ---- the renderer ------------------------------------------------------------------------------
Render.ChaseView = class {
  constructor(canvas) {
    this.canvas = canvas; this.ctx = canvas.getContext("2d");
    this.track = null; this.camYaw = null; this.span = 50; this.minimap = null;
    this.carScreen = [0, 0];  // where the car was last drawn, in canvas pixels
  }
  // the canvas at its shown size (device pixels, at most 2 per CSS pixel)
  fit() {
    const dpr = Math.min(2, window.devicePixelRatio || 1);
    const w = Math.max(200, Math.round(this.canvas.clientWidth * dpr));
    const h = Math.round(w * 0.75);
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w; this.canvas.height = h; this.minimap = null;
    }
  }
  setTrack(track) { this.track = track; this.camYaw = null; this.minimap = null; }

  draw(scene, dtMs) {
    const ctx = this.ctx, W = this.canvas.width, H = this.canvas.height, C = Render.COLORS;
    const [x, y, yaw, speed] = scene.pose;
    // the camera: on the car, looking along its heading; it turns after the car with a short lag
    // (the car visibly turns on screen) and widens the view with speed (more road ahead)
    const follow = 1 - Math.exp(-dtMs / 140);
    this.camYaw = this.camYaw === null ? yaw : this.camYaw + wrapAngle(yaw - this.camYaw) * follow;
    this.span += ((45 + speed * 1.0) - this.span) * (1 - Math.exp(-dtMs / 600));
    const scale = H / this.span, ax = W / 2, ay = H * 0.66;
    this.carScreen = [ax, ay];
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = C.grass; ctx.fillRect(0, 0, W, H);
    ctx.setTransform(scale, 0, 0, -scale, ax, ay);  // world metres, y up, car at the anchor
    ctx.rotate(Math.PI / 2 - this.camYaw);
    ctx.translate(-x, -y);
    const reach = Math.hypot(W, H) / scale;  // metres from the car to the farthest corner
    this.drawGrid(x, y, reach);
    this.drawTrack(x, y, reach);
    this.drawRays(scene);
    if (scene.player !== null) this.drawPath(scene.pose, scene.player, speed, C.player, []);
    this.drawPath(scene.pose, scene.policy, speed, C.policy, [1.2, 0.8]);
    this.drawCar(scene.pose, scene.frame.driver === "player" ? C.player : C.policy);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    this.drawMinimap(scene.pose);
    this.drawGauge(scene.policy, scene.player);
  }

  // grass lines every 10 m: the ground moves under the car
  drawGrid(x, y, reach) {
    const ctx = this.ctx, step = 10;
    ctx.strokeStyle = Render.COLORS.grid; ctx.lineWidth = 0.15; ctx.beginPath();
    const x0 = Math.floor((x - reach) / step) * step, y0 = Math.floor((y - reach) / step) * step;
    for (let gx = x0; gx <= x + reach; gx += step) { ctx.moveTo(gx, y - reach); ctx.lineTo(gx, y + reach); }
    for (let gy = y0; gy <= y + reach; gy += step) { ctx.moveTo(x - reach, gy); ctx.lineTo(x + reach, gy); }
    ctx.stroke();
  }

  // the parts of the track within `reach` of the car: red and white kerbs, asphalt, centre
  // dashes, the start line
  drawTrack(x, y, reach) {
    const ctx = this.ctx, t = this.track, C = Render.COLORS, r2 = (reach + t.width) ** 2;
    ctx.beginPath();
    let open = false;
    for (let i = 0; i <= t.n; i++) {
      const j = i % t.n, near = (t.xs[j] - x) ** 2 + (t.ys[j] - y) ** 2 < r2;
      if (near) { open ? ctx.lineTo(t.xs[j], t.ys[j]) : ctx.moveTo(t.xs[j], t.ys[j]); open = true; }
      else open = false;
    }
    ctx.lineJoin = "round"; ctx.lineCap = "butt";
    ctx.strokeStyle = C.kerb; ctx.lineWidth = t.width + 1.6; ctx.stroke();
    ctx.setLineDash([2, 2]); ctx.strokeStyle = C.kerbRed; ctx.stroke();
    ctx.setLineDash([]); ctx.strokeStyle = C.asphalt; ctx.lineWidth = t.width; ctx.stroke();
    ctx.setLineDash([3, 4]); ctx.strokeStyle = C.centre; ctx.lineWidth = 0.25; ctx.stroke();
    ctx.setLineDash([]);
    // the start / finish line: a chequered band across the track at its first point
    const dx = t.xs[1] - t.xs[0], dy = t.ys[1] - t.ys[0], a = Math.atan2(dy, dx);
    ctx.save(); ctx.translate(t.xs[0], t.ys[0]); ctx.rotate(a);
    const cells = 8, cell = t.width / cells;
    for (let r = 0; r < 2; r++) {
      for (let c = 0; c < cells; c++) {
        ctx.fillStyle = (r + c) % 2 ? "#111" : "#eee";
        ctx.fillRect(r * cell - cell, -t.width / 2 + c * cell, cell, cell);
      }
    }
    ctx.restore();
  }

  drawRays(scene) {
    const ctx = this.ctx, [x, y, yaw] = scene.pose;
    ctx.strokeStyle = Render.COLORS.ray; ctx.lineWidth = 0.18; ctx.beginPath();
    scene.rays.forEach((d, i) => {
      const a = yaw + Render.RAY_RAD[i];
      ctx.moveTo(x, y); ctx.lineTo(x + d * Math.cos(a), y + d * Math.sin(a));
    });
    ctx.stroke();
    ctx.fillStyle = Render.COLORS.ray;
    scene.rays.forEach((d, i) => {
      if (d >= 49.5) return;  // no wall within the ray's 50 m
      const a = yaw + Render.RAY_RAD[i];
      ctx.fillRect(x + d * Math.cos(a) - 0.35, y + d * Math.sin(a) - 0.35, 0.7, 0.7);
    });
  }

  // where a steering command would take the car over the next ~1.5 s (a kinematic bicycle arc
  // from the front axle, as tight as the tyres' grip allows at this speed): the policy's wish
  // (dashed blue) and yours (yellow)
  drawPath(pose, steer, speed, color, dash) {
    const ctx = this.ctx, [x, y, yaw] = pose;
    const grip = Render.GRIP_MPS2 / Math.max(1, speed * speed);
    const k = Math.max(-grip, Math.min(grip, Math.tan(steer * Render.STEER_MAX_RAD) / Render.WHEELBASE_M));
    const len = 10 + Math.max(0, speed) * 1.2, steps = 16;
    const fx = x + 1.6 * Math.cos(yaw), fy = y + 1.6 * Math.sin(yaw);
    ctx.globalAlpha = 0.85;  // never the car's exact colour (a test finds the car by it)
    ctx.strokeStyle = color; ctx.lineWidth = 0.45; ctx.setLineDash(dash); ctx.lineCap = "round";
    ctx.beginPath(); ctx.moveTo(fx, fy);
    for (let i = 1; i <= steps; i++) {
      const s = len * i / steps, h = yaw + k * s;
      const px = Math.abs(k) < 1e-6 ? fx + s * Math.cos(yaw) : fx + (Math.sin(h) - Math.sin(yaw)) / k;
      const py = Math.abs(k) < 1e-6 ? fy + s * Math.sin(yaw) : fy - (Math.cos(h) - Math.cos(yaw)) / k;
      ctx.lineTo(px, py);
    }
    ctx.stroke(); ctx.setLineDash([]); ctx.lineCap = "butt"; ctx.globalAlpha = 1;
  }

  // the car, 4.4 m x 2 m, in its driver's colour, front wheels at the steering angle
  drawCar(pose, color) {
    const ctx = this.ctx, [x, y, yaw, , steer] = pose;
    ctx.save(); ctx.translate(x, y); ctx.rotate(yaw);
    ctx.fillStyle = "#111";
    for (const [wx, wy, a] of [[-1.3, 0.95, 0], [-1.3, -0.95, 0], [1.3, 0.95, steer], [1.3, -0.95, steer]]) {
      ctx.save(); ctx.translate(wx, wy); ctx.rotate(a); ctx.fillRect(-0.38, -0.16, 0.76, 0.32); ctx.restore();
    }
    ctx.fillStyle = "#0f1419"; ctx.fillRect(-2.35, -1.1, 4.7, 2.2);  // outline
    ctx.fillStyle = color; ctx.fillRect(-2.2, -0.95, 4.4, 1.9);
    ctx.fillStyle = "#0f1419"; ctx.fillRect(0.35, -0.75, 0.7, 1.5);  // windscreen: the front
    ctx.restore();
  }

  // the whole track, north up, top right; drawn once per run and size, then copied each frame
  drawMinimap(pose) {
    const W = this.canvas.width, t = this.track;
    const size = Math.round(Math.min(W * 0.26, this.canvas.height * 0.3)), pad = 8;
    const left = W - size - pad, top = pad;
    const s = (size - 12) / Math.max(t.maxX - t.minX, t.maxY - t.minY);
    const ox = (size - (t.maxX - t.minX) * s) / 2, oy = (size - (t.maxY - t.minY) * s) / 2;
    const mx = (x) => ox + (x - t.minX) * s, my = (y) => size - oy - (y - t.minY) * s;
    if (!this.minimap || this.minimap.width !== size) {
      const mm = document.createElement("canvas"); mm.width = mm.height = size;
      const m = mm.getContext("2d");
      m.fillStyle = "rgba(15,20,25,.72)"; m.fillRect(0, 0, size, size);
      m.strokeStyle = "#8b98a5"; m.lineWidth = Math.max(2, t.width * s); m.lineJoin = "round";
      m.beginPath();
      for (let i = 0; i < t.n; i++) i ? m.lineTo(mx(t.xs[i]), my(t.ys[i])) : m.moveTo(mx(t.xs[i]), my(t.ys[i]));
      m.closePath(); m.stroke();
      m.fillStyle = "#fff"; m.fillRect(mx(t.xs[0]) - 2, my(t.ys[0]) - 2, 4, 4);
      this.minimap = mm;
    }
    const ctx = this.ctx;
    ctx.drawImage(this.minimap, left, top);
    const cx = left + mx(pose[0]), cy = top + my(pose[1]);
    ctx.fillStyle = Render.COLORS.minimapCar; ctx.strokeStyle = "#000"; ctx.lineWidth = 1.5;
    ctx.beginPath(); ctx.arc(cx, cy, 4.5, 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
    ctx.strokeStyle = Render.COLORS.minimapCar; ctx.lineWidth = 2; ctx.beginPath(); ctx.moveTo(cx, cy);
    ctx.lineTo(cx + 10 * Math.cos(pose[2]), cy - 10 * Math.sin(pose[2])); ctx.stroke();
  }

  // a steering gauge along the bottom: the policy's wish (blue) and yours (yellow); left is left
  drawGauge(policy, player) {
    const ctx = this.ctx, W = this.canvas.width, H = this.canvas.height;
    const w = W * 0.3, x0 = W / 2, y = H - 16;
    ctx.fillStyle = "rgba(0,0,0,.5)"; ctx.fillRect(x0 - w - 6, y - 8, 2 * w + 12, 16);
    ctx.fillStyle = "#888"; ctx.fillRect(x0 - 1, y - 8, 2, 16);
    const mark = (steer, color) => { ctx.fillStyle = color; ctx.fillRect(x0 - steer * w - 3, y - 7, 6, 14); };
    ctx.globalAlpha = 0.9;
    mark(policy, Render.COLORS.policy);
    if (player !== null) mark(player, Render.COLORS.player);
    ctx.globalAlpha = 1;
  }
};
