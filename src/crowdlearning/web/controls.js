// The Play page's input devices, read once per server frame (docs/protocol.md "/ws/play"):
// - keyboard (← → ↑ ↓ or A D W S) and the on-screen buttons of touch screens: the keys held,
//   sent as the protocol's keyboard device. The server turns its steering wheel toward the held
//   side 0.1 a tick (full lock in about half a second) and back toward the policy's steering when
//   let go: analog steering from keys, the same ramp whatever the client, recorded as such.
// - a drag on the track (mouse, pen or touch): the horizontal position is the steering, analog.
// - a gamepad (Gamepad API): left stick steers, right trigger accelerates, left trigger brakes.
"use strict";
const Controls = {};

Controls.KEY_NAMES = { left: ["ArrowLeft", "a"], right: ["ArrowRight", "d"], up: ["ArrowUp", "w"],
                       down: ["ArrowDown", "s"] };
Controls.STICK_DEADZONE = 0.12;

Controls.create = function (canvas, touchpad) {
  const held = new Set();        // keys held on the keyboard (names as in KEY_NAMES)
  const buttons = new Set();     // on-screen buttons held: "left", "right", "up", "down"
  const state = { pointer: null, pointerType: "mouse", gamepad: false };
  const norm = (key) => (key.length === 1 ? key.toLowerCase() : key);
  const editable = (el) => el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" ||
                                  el.tagName === "SELECT" || el.isContentEditable);

  addEventListener("keydown", (e) => {
    if (editable(e.target)) return;
    if (["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", " "].includes(e.key)) e.preventDefault();
    held.add(norm(e.key));
  });
  addEventListener("keyup", (e) => held.delete(norm(e.key)));
  addEventListener("blur", () => { held.clear(); buttons.clear(); state.pointer = null; });

  // drag on the track: left of the centre steers left; the outer sixths are full lock
  const pointerSteer = (e) => {
    const r = canvas.getBoundingClientRect();
    state.pointerType = e.pointerType === "mouse" ? "mouse" : e.pointerType === "touch" ? "touch" : "analog";
    state.pointer = Math.max(-1, Math.min(1, -((e.clientX - r.left) / r.width * 2 - 1) * 1.5));
  };
  canvas.addEventListener("pointerdown", (e) => { canvas.setPointerCapture(e.pointerId); pointerSteer(e); });
  canvas.addEventListener("pointermove", (e) => { if (state.pointer !== null) pointerSteer(e); });
  canvas.addEventListener("pointerup", () => { state.pointer = null; });
  canvas.addEventListener("pointercancel", () => { state.pointer = null; });

  // on-screen buttons (shown on touch screens): held like keys
  if (touchpad) {
    const touch = matchMedia("(pointer: coarse)").matches || navigator.maxTouchPoints > 0;
    touchpad.hidden = !touch;
    for (const b of touchpad.querySelectorAll("button[data-key]")) {
      const key = b.dataset.key;
      const press = (e) => {
        e.preventDefault(); buttons.add(key); b.classList.add("held");
        try { b.setPointerCapture(e.pointerId); } catch (err) { /* released already */ }
      };
      const release = () => { buttons.delete(key); b.classList.remove("held"); };
      b.addEventListener("pointerdown", press);
      b.addEventListener("pointerup", release);
      b.addEventListener("pointercancel", release);
      b.addEventListener("lostpointercapture", release);
      b.addEventListener("contextmenu", (e) => e.preventDefault());
    }
  }
  addEventListener("gamepadconnected", () => { state.gamepad = true; });

  // the left stick, past its dead zone, rescaled so that steering starts at 0; triggers
  const gamepad = () => {
    let steer = null, throttle = null;
    for (const pad of navigator.getGamepads ? navigator.getGamepads() : []) {
      if (!pad) continue;
      const ax = pad.axes[0] || 0;
      if (Math.abs(ax) > Controls.STICK_DEADZONE)
        steer = -Math.sign(ax) * (Math.abs(ax) - Controls.STICK_DEADZONE) / (1 - Controls.STICK_DEADZONE);
      const gas = pad.buttons[7] ? pad.buttons[7].value : 0, brake = pad.buttons[6] ? pad.buttons[6].value : 0;
      if (gas > 0.05 || brake > 0.05) throttle = gas >= brake ? gas : -brake;
    }
    return steer === null && throttle === null ? null : { device: "gamepad", steer, throttle };
  };

  const keys = () => {
    const out = {};
    for (const [name, names] of Object.entries(Controls.KEY_NAMES))
      out[name] = buttons.has(name) || names.some((k) => held.has(k));
    return out;
  };

  return {
    state,
    // this tick's input as its device gives it, or null (no device in use); `wheelOff`: the
    // server's keyboard wheel has not returned to the policy's steering yet, and `lastDevice`
    // the device of the previous input (keys are then sent, none held, until the wheel rests)
    read(wheelOff, lastDevice) {
      if (state.pointer !== null) return { device: state.pointerType, steer: state.pointer, throttle: null };
      const pad = gamepad();
      if (pad) return pad;
      const k = keys();
      if (k.left || k.right || k.up || k.down || (lastDevice === "keyboard" && wheelOff))
        return { device: "keyboard", ...k };
      return null;
    },
    keys,
    clear() { held.clear(); buttons.clear(); state.pointer = null; },
  };
};
