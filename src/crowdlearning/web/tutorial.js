// The first run, guided (issue 12): a new player's first practice run on the Play page, with a
// hint at each moment that matters, read from what the page already receives (docs/protocol.md:
// the run's track in "start", each frame's pose, the policy's proposal and the executed action):
// - before the run: what the game is and that practice moves no money;
// - during the countdown: what the keys (or the on-screen buttons) do;
// - when the car, steering as it does now, would leave the track within the next second or so
//   (a kinematic bicycle arc like render.js's, checked against the track's edges): "the car will
//   miss this corner: steer right now";
// - when it drifts toward an edge (its offset from the centreline growing past half the way to
//   the edge);
// - the first time the player drives (what the yellow car and lines mean);
// - when the run ends (what the judge does now), and with the verdict, the invitation to stake
//   and play for money.
// Dismissible (Skip); finished or skipped is remembered in localStorage per player name; a
// player who already has judged runs is not guided. "Show the first-run guide again" restarts
// it. Every hint shown is listed in the box's data-seen (for tests and the screenshots).
"use strict";
const Tutorial = {};

Tutorial.HORIZON_S = 1.3;      // how far ahead the car's path is checked
Tutorial.CONFIRM_FRAMES = 3;   // frames in a row a danger must be seen before it is shown
Tutorial.HOLD_MS = 2500;       // a moment's hint stays at least this long
Tutorial.STEER_MAX_RAD = 0.6;  // as render.js (CarParams)
Tutorial.WHEELBASE_M = 2.6;
Tutorial.GRIP_MPS2 = 9.0;

// the track's centreline in metres, its tangents, and lookups near a last known index
Tutorial.geometry = function (track) {
  const pts = track.centreline_mm.map(([x, y]) => [x / 1000, y / 1000]), n = pts.length;
  const tan = pts.map((p, i) => {
    const q = pts[(i + 1) % n], r = pts[(i - 1 + n) % n];
    const dx = q[0] - r[0], dy = q[1] - r[1], len = Math.hypot(dx, dy) || 1;
    return [dx / len, dy / len];
  });
  // nearest centreline point to (x, y), looking `back` points behind and `ahead` points ahead of
  // index `from` (the whole loop when from is null); offset: left of the driving direction > 0
  const nearest = (x, y, from, back = 10, ahead = 60) => {
    let best = -1, bestD = Infinity;
    const lo = from === null ? 0 : from - back, hi = from === null ? n - 1 : from + ahead;
    for (let k = lo; k <= hi; k++) {
      const i = ((k % n) + n) % n, d = (pts[i][0] - x) ** 2 + (pts[i][1] - y) ** 2;
      if (d < bestD) { bestD = d; best = i; }
    }
    const [cx, cy] = pts[best], [tx, ty] = tan[best];
    return { index: best, offset: tx * (y - cy) - ty * (x - cx) };
  };
  // how much the track turns over the next `span` points (radians, left positive)
  const turn = (from, span) => {
    const a = tan[from], b = tan[(from + span) % n];
    return Math.atan2(a[0] * b[1] - a[1] * b[0], a[0] * b[0] + a[1] * b[1]);
  };
  return { n, half: track.width_m / 2, nearest, turn };
};

// where the car goes if its steering stays `steer` (a kinematic bicycle arc, as tight as the
// tyres allow at this speed): the first point off the track within the horizon, or null
Tutorial.predictExit = function (geo, pose, steer, index) {
  let [x, y, yaw] = pose;
  const v = Math.max(3, pose[3]), grip = Tutorial.GRIP_MPS2 / (v * v);
  const k = Math.max(-grip, Math.min(grip, Math.tan(steer * Tutorial.STEER_MAX_RAD) / Tutorial.WHEELBASE_M));
  const dt = 0.1;
  let at = index;
  for (let t = dt; t <= Tutorial.HORIZON_S + 1e-9; t += dt) {
    yaw += v * k * dt; x += v * dt * Math.cos(yaw); y += v * dt * Math.sin(yaw);
    const p = geo.nearest(x, y, at, 5, 40);
    at = p.index;
    if (Math.abs(p.offset) > geo.half) return { t, side: Math.sign(p.offset), index: p.index };
  }
  return null;
};

Tutorial.create = function (els) {
  const box = els.box, hint = els.hint, keys = els.keys, next = els.next, skip = els.skip;
  const state = { active: false, user: null, geo: null, index: null, danger: 0, dangerSide: 0,
                  offsets: [], shownAt: 0, shown: null, drove: false, phase: "off", seen: new Set() };
  const storageKey = () => `crowdlearning.tutorial.${state.user ? state.user.username : "?"}`;
  const remembered = () => { try { return localStorage.getItem(storageKey()); } catch (e) { return null; } };
  const remember = (how) => { try { localStorage.setItem(storageKey(), how); } catch (e) { /* off */ } };
  const touch = () => els.touchpad && !els.touchpad.hidden;
  // a steering direction as the protocol counts it: left > 0
  const arrow = (side) => (side > 0 ? (touch() ? "◀" : "←") : (touch() ? "▶" : "→"));
  const word = (side) => (side > 0 ? "left" : "right");

  // one hint: its text (and an optional link), its kind for data-seen; `urgent` hints are styled
  function show(id, text, opts = {}) {
    state.seen.add(id); box.dataset.seen = [...state.seen].join(" ");
    state.shown = id; state.shownAt = performance.now();
    hint.replaceChildren(document.createTextNode(text));
    if (opts.link) {
      const a = document.createElement("a");
      a.href = opts.link.href; a.className = "cta"; a.textContent = opts.link.text;
      hint.append(document.createElement("br"), a);
    }
    box.classList.toggle("urgent", Boolean(opts.urgent));
    box.dataset.hint = id;
  }

  function setButtons(nextText) {
    next.hidden = !nextText; if (nextText) next.textContent = nextText;
    skip.hidden = state.phase === "verdict";  // "Got it" closes it then
    keys.hidden = state.phase === "judging" || state.phase === "verdict";
  }

  function keysText() {
    return touch()
      ? "Hold ◀ ▶ under the track to steer, ▲ ▼ for speed, or drag on the track. Let go: the car drives itself."
      : "← → (or A D) steer, ↑ ↓ (or W S) speed. Hold a key: the wheel turns gradually. Let go: the car drives itself.";
  }

  function open(phase) {
    state.active = true; state.phase = phase; box.hidden = false;
    keys.textContent = keysText();
  }

  function close(how) {
    state.active = false; state.phase = "off"; box.hidden = true;
    if (how) remember(how);
  }

  function welcome() {
    open("welcome");
    show("welcome", "Your first run, guided. It is a practice run: no money moves. The blue car " +
      "is the policy, a neural network driving alone. Watch it, and take the wheel when it is " +
      "about to go wrong: your steering becomes its training data. Hints appear here.");
    setButtons("Start the practice run");
  }

  next.addEventListener("click", () => {
    if (state.phase === "welcome") { els.startPractice(); return; }
    close("done");
  });
  skip.addEventListener("click", () => close("skipped"));

  return {
    get active() { return state.active; },
    seen: state.seen,
    // once signed in: guide a player who has never been judged and has not done or skipped it
    async begin(user, force) {
      state.user = user;
      if (!force && remembered()) return false;
      if (!force) {
        try {
          const runs = await CL.api("GET", "/api/wallet/runs?limit=1");
          if (runs.length) { remember("done"); return false; }
        } catch (e) { return false; }
      }
      state.seen.clear(); welcome();
      return true;
    },
    // 3, 2, 1: the keys
    countdown() {
      if (!state.active) return;
      state.phase = "run"; setButtons(null);
      show("keys", keysText());
    },
    runStarted(msg) {
      if (!state.active) return;
      state.phase = "run"; setButtons(null);
      state.geo = Tutorial.geometry(msg.track);
      Object.assign(state, { index: null, danger: 0, offsets: [], drove: false });
      if (state.shown !== "keys") show("keys", keysText());
    },
    frame(f) {
      if (!state.active || state.phase !== "run" || !state.geo) return;
      const geo = state.geo, [x, y] = f.pose, now = performance.now();
      const here = geo.nearest(x, y, state.index, 10, 30);
      if (state.index !== null && Math.abs(here.offset) > geo.half * 1.5)
        Object.assign(here, geo.nearest(x, y, null));  // lost (a restart, a jump): search all
      state.index = here.index;
      state.offsets.push(here.offset); if (state.offsets.length > 10) state.offsets.shift();
      const you = f.driver === "player";
      const held = now - state.shownAt < Tutorial.HOLD_MS;
      // 1. the car, steering as it does now, leaves the track within the horizon
      const exit = f.pose[3] > 2 ? Tutorial.predictExit(geo, f.pose, f.action[0], here.index) : null;
      state.danger = exit ? state.danger + 1 : 0;
      if (exit && state.danger >= Tutorial.CONFIRM_FRAMES) {
        const side = -exit.side;  // steer away from the edge it heads for
        const corner = Math.abs(geo.turn(here.index, 25)) > 0.35;
        if (you) {
          show("offtrack", `At this steering the car leaves the track in ${exit.t.toFixed(1)} s: ` +
            `steer ${word(side)} (hold ${arrow(side)}).`, { urgent: true });
        } else {
          show("miss", `${corner ? "The car will miss this corner" : "The car is heading off the track"}: ` +
            `steer ${word(side)} now (hold ${arrow(side)}).`, { urgent: true });
        }
        return;
      }
      if (held && (state.shown === "miss" || state.shown === "offtrack")) return;
      // 2. drifting toward an edge: past half the way there, and moving out
      const o = state.offsets, drift = o.length >= 10 ? o[o.length - 1] - o[0] : 0;
      const off = here.offset;
      if (Math.abs(off) > geo.half * 0.5 && Math.sign(drift) === Math.sign(off) && Math.abs(drift) > 0.4) {
        const side = -Math.sign(off);
        show("drift", `The car is drifting toward the ${off > 0 ? "left" : "right"} edge: steer ` +
          `${word(side)} (${arrow(side)}) to bring it back to the middle.`, { urgent: true });
        return;
      }
      if (held && state.shown === "drift") return;
      // 3. the first time the player drives: what the colours mean
      if (you && !state.drove) {
        state.drove = true;
        show("driving", "You are driving: the car turns yellow. The yellow line is where your " +
          "steering takes it, the dashed blue one where the policy wanted to go. Let go to hand back.");
        return;
      }
      if (held) return;
      if (state.shown !== "watch" && state.shown !== "keys") {
        show("watch", "Watch the car: when it is about to go wrong, a hint says which way to steer.");
      } else if (state.shown === "keys" && now - state.shownAt > 6000) {
        show("watch", "Watch the car: when it is about to go wrong, a hint says which way to steer.");
      }
    },
    ended(msg, why) {
      if (!state.active) return;
      state.phase = "judging"; setButtons(null);
      show("end", `${msg.reason === "left_track" ? "The car left the track. " : ""}Run over (${why}). ` +
        "Now a copy of the model learns from your steering and races, on hidden tracks, the " +
        "same model trained without it: the verdict comes in seconds, just below.");
    },
    verdict(v) {
      if (!state.active) return;
      state.phase = "verdict"; setButtons("Got it");
      const words = { improved: "your steering made the car drive better",
        no_effect: "your steering made no measurable difference", worse: "your steering made the car drive worse",
        rejected: "the run was not judged" }[v.decision] || v.decision;
      show("verdict", `Your verdict: ${words} (explained below). In a paid run, better earns HBAR ` +
        "and worse costs a penalty from the stake the run holds; practice runs never move money. " +
        "Ready to play for money? Deposit HBAR and lock some as stake on the Wallet page, then " +
        "choose paid and start a run.", { link: { href: "wallet.html", text: "Stake and play for money" } });
      remember("done");
    },
    restart() { return this.begin(state.user, true); },
  };
};
