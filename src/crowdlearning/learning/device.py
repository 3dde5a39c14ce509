"""Input devices: what a player's device did, what the car does with it, and what it teaches.

A key is not a steering angle. Sent as steer -1/0/+1, a keyboard player's every tap was full lock,
and a careful keyboard player (keys pressed whenever the expert would steer beyond 0.25) was
judged *worse* in 11 of 12 runs: the labels said "full lock" where the player meant "a bit more
to the left than the car". So a client says what the device did and the server decides what it
means (``docs/protocol.md``, ``docs/learning.md`` "Input devices"):

- **analog** devices (mouse drag, touch, gamepad stick, any bot: ``device`` "mouse", "touch",
  "gamepad", "analog") send a value in [-1, 1] per control. It is the player's input and, as
  before, the label.
- **keyboard** clients send the held keys (left, right, up, down). ``KeyboardWheel`` turns them
  into a value per control, one row per run, every tick, as a racing game does: a held side moves
  the value toward that side's lock (+1 left / up, -1 right / down) at ``press_rate`` per second,
  starting from whichever is further to that side, the value or the policy's proposal (a held key
  always means "more to that side than the car"); no key (or both) returns it toward the policy's
  proposal at ``return_rate`` per second. While a key is held or the value has not returned
  (``|value - proposal| > eps``) the wheel is *active* and its value is the player's input for
  that control (the car executes it per the run's mode; it is recorded in the contribution's
  ``player`` column); once returned it rests on the proposal: no input (NaN), the policy drives.
  In takeover mode a keyboard player holds control while the steering wheel is active and the
  client said ``intervene`` (on the tick it started, or since): control is handed back once the
  wheel has returned, without a jump.

Labels (``device_targets``): on keyboard ticks the label is
``proposal + gain * (wheel - proposal)`` per control, with ``gain`` in ``[GAIN_MIN, 1]``: a key
says which side and roughly how much, the gain says how literally to take the wheel. It never
flips the player's direction and never silences the player. ``gain`` is estimated per run at
acceptance (``with_estimated_gain``, mirroring ``learning.reaction``'s delay estimate) by least
squares against the scripted expert's action on the states the labels land on; the estimate and
its inputs go into ``meta["device_gain"]``, so the labels follow from the contribution alone. Analog
ticks keep their value (gain 1).

Per-tick record (``meta["device"]``): the device names used, the wheel's parameters, and the key
code in force at each tick, run-length encoded (``[[code, ticks], ...]``; code = the bit mask
left 1, right 2, up 4, down 8, or -1 for a tick without keyboard input). ``replay_wheel``
recomputes the keyboard ticks of the ``player`` column from it and the recorded proposals, bit for
bit (``check_device`` says where they differ).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from crowdlearning.learning.contribution import Contribution
from crowdlearning.sim.expert import ExpertDriver
from crowdlearning.sim.params import CONTROL_RATE_HZ, CarParams
from crowdlearning.sim.track import Track
from crowdlearning.sim.track_bank import TrackBank

__all__ = ["ANALOG", "ANALOG_DEVICES", "DEFAULT_GAIN", "DEVICES", "DEVICE_META_KEY",
           "GAIN_META_KEY", "GAIN_MIN", "KEY_DOWN", "KEY_LEFT", "KEY_RIGHT", "KEY_UP",
           "KeyboardWheel", "WheelParams", "WheelStep", "check_device", "device_codes",
           "device_gain", "device_meta", "device_targets", "estimate_device_gain",
           "expert_actions", "key_code", "replay_wheel", "rle_decode", "rle_encode",
           "with_estimated_gain"]

KEY_LEFT, KEY_RIGHT, KEY_UP, KEY_DOWN = 1, 2, 4, 8
ANALOG = -1  # per-tick code: no keyboard input in force at that tick
ANALOG_DEVICES = ("analog", "mouse", "touch", "gamepad")
DEVICES = ("keyboard", *ANALOG_DEVICES)
DEVICE_META_KEY = "device"
GAIN_META_KEY = "device_gain"
GAIN_MIN = 0.2  # the least a keyboard player's wheel counts: never zero, never flipped
# the gain applied to a control with too little keyboard input to estimate one: the middle of
# [GAIN_MIN, 1] (without evidence, neither the literal wheel nor the least it may count)
DEFAULT_GAIN = 0.6


def key_code(left: bool, right: bool, up: bool, down: bool) -> int:
    """The bit mask of held keys (0 = a keyboard with no key held)."""
    return (KEY_LEFT * bool(left) | KEY_RIGHT * bool(right) | KEY_UP * bool(up)
            | KEY_DOWN * bool(down))


@dataclass(frozen=True)
class WheelParams:
    """How held keys move a control (per second at ``hz`` ticks a second)."""

    press_rate: float = 2.0  # toward the held side's lock [1/s]: 0 -> full lock in 0.5 s
    return_rate: float = 4.0  # back toward the policy's proposal [1/s]
    eps: float = 1e-3  # closer than this to the proposal, the wheel has returned
    hz: float = float(CONTROL_RATE_HZ)

    def __post_init__(self) -> None:
        for name in ("press_rate", "return_rate", "eps", "hz"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"WheelParams.{name} must be finite and > 0, got {value!r}")

    @property
    def press_step(self) -> float:
        return self.press_rate / self.hz

    @property
    def return_step(self) -> float:
        return self.return_rate / self.hz

    def to_meta(self) -> dict[str, float]:
        return {"press_rate": self.press_rate, "return_rate": self.return_rate,
                "eps": self.eps, "hz": self.hz}

    @classmethod
    def from_meta(cls, meta: Any) -> WheelParams:
        """The parameters recorded in ``meta`` (the defaults where missing or malformed)."""
        if not isinstance(meta, dict):
            return cls()
        try:
            return cls(**{k: float(meta[k]) for k in ("press_rate", "return_rate", "eps", "hz")
                          if k in meta})
        except (TypeError, ValueError):
            return cls()


@dataclass(frozen=True, eq=False)
class WheelStep:
    """One tick of the wheel for the rows stepped."""

    player: np.ndarray  # (k, 2) the player's input per control, NaN where the wheel rests
    active: np.ndarray  # (k, 2) bool: a key held or the wheel not yet returned
    intervention: np.ndarray  # (k,) bool: takeover mode, the player holds control


def _step(value: np.ndarray, holding: np.ndarray, codes: np.ndarray, proposed: np.ndarray,
          intervene: np.ndarray, params: WheelParams) -> tuple[np.ndarray, np.ndarray]:
    """The wheel's next value (NaN = resting on the proposal) and takeover hold, per row."""
    keyboard = codes >= 0
    c = np.where(keyboard, codes, 0)
    dirs = np.stack([((c & KEY_LEFT) > 0).astype(np.int8) - ((c & KEY_RIGHT) > 0),
                     ((c & KEY_UP) > 0).astype(np.int8) - ((c & KEY_DOWN) > 0)], axis=1)
    base = np.where(np.isnan(value), proposed, value)
    further = np.where(dirs > 0, np.maximum(base, proposed), np.minimum(base, proposed))
    pressed = np.clip(further + dirs * params.press_step, -1.0, 1.0)
    back = base + np.clip(proposed - base, -params.return_step, params.return_step)
    new = np.where(dirs != 0, pressed, back)
    active = keyboard[:, None] & ((dirs != 0) | (np.abs(new - proposed) > params.eps))
    held = active[:, 0] & (np.asarray(intervene, bool) | holding)
    return np.where(active, new, np.nan), held


class KeyboardWheel:
    """The keyboard wheel of ``n`` runs (see the module docstring); a row rests on the proposal
    until its keys move it, and again after any tick without keyboard input (code ``ANALOG``)."""

    def __init__(self, n: int, params: WheelParams | None = None) -> None:
        self.params = params or WheelParams()
        self.value = np.full((n, 2), np.nan)
        self.holding = np.zeros(n, bool)

    def reset(self, rows: np.ndarray | list[int]) -> None:
        """These rows start again at rest (a new run)."""
        self.value[rows] = np.nan
        self.holding[rows] = False

    def step(self, rows: np.ndarray, codes: np.ndarray, proposed: np.ndarray,
             intervene: np.ndarray | None = None) -> WheelStep:
        """One tick for ``rows`` with their key codes (``ANALOG`` where the run's input is not a
        keyboard: such a row is reset and its output is NaN), the policy's proposals ``(k, 2)``
        and, in takeover mode, the client's ``intervene`` flags."""
        rows = np.asarray(rows, np.int64)
        codes = np.asarray(codes, np.int64)
        flags = np.zeros(len(rows), bool) if intervene is None else np.asarray(intervene, bool)
        value, held = _step(self.value[rows], self.holding[rows], codes,
                            np.asarray(proposed, np.float64), flags, self.params)
        self.value[rows], self.holding[rows] = value, held
        return WheelStep(value, np.isfinite(value), held)


# --------------------------------------------------------------------------- the per-run record
def rle_encode(codes: np.ndarray) -> list[list[int]]:
    """``[[code, run length], ...]`` of a per-tick code array."""
    codes = np.asarray(codes, np.int64)
    if not len(codes):
        return []
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    lengths = np.diff(np.r_[starts, len(codes)])
    return [[int(codes[s]), int(n)] for s, n in zip(starts, lengths, strict=True)]


def rle_decode(runs: Any) -> np.ndarray:
    """The per-tick codes of ``rle_encode`` output (raises ``ValueError`` when malformed)."""
    if not isinstance(runs, list):
        raise ValueError("keys must be a list of [code, ticks] pairs")
    try:
        pairs = np.array(runs, dtype=np.int64).reshape(-1, 2)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"keys must be [code, ticks] pairs: {exc}") from exc
    if len(pairs) != len(runs) or (pairs[:, 1] < 1).any() or (pairs[:, 0] < ANALOG).any() or (
            pairs[:, 0] > 15).any():
        raise ValueError("keys must be [code in -1..15, ticks >= 1] pairs")
    return np.repeat(pairs[:, 0], pairs[:, 1])


def device_meta(codes: np.ndarray, devices: set[str] | list[str],
                params: WheelParams) -> dict[str, Any]:
    """The ``meta["device"]`` record of a run (see the module docstring)."""
    names = sorted(set(devices))
    return {"name": "+".join(names) if names else "none", "wheel": params.to_meta(),
            "keys": rle_encode(codes)}


def device_codes(contribution: Contribution) -> np.ndarray:
    """The key code in force at each tick (``ANALOG`` everywhere for a run without a keyboard
    record, or with one that does not fit the run)."""
    n = contribution.num_ticks
    record = contribution.meta.get(DEVICE_META_KEY)
    if isinstance(record, dict) and "keys" in record:
        try:
            codes = rle_decode(record["keys"])
        except ValueError:
            codes = None
        if codes is not None and len(codes) == n:
            return codes
    return np.full(n, ANALOG, np.int64)


def device_gain(contribution: Contribution) -> np.ndarray:
    """(steer, throttle) gains applied to the run's keyboard ticks: the estimate recorded in
    ``meta["device_gain"]``, else ``DEFAULT_GAIN``, always within ``[GAIN_MIN, 1]``."""
    gains = np.full(2, DEFAULT_GAIN)
    record = contribution.meta.get(GAIN_META_KEY)
    if isinstance(record, dict):
        for d, name in enumerate(("steer", "throttle")):
            value = record.get(name)
            if isinstance(value, int | float) and np.isfinite(value):
                gains[d] = value
    return np.clip(gains, GAIN_MIN, 1.0)


def device_targets(contribution: Contribution) -> np.ndarray:
    """The player column with each device's meaning: on keyboard ticks
    ``proposed + gain * (player - proposed)`` (``device_gain``), elsewhere the player's value.
    (n, 2), NaN where the player gave no input."""
    c = contribution
    keyboard = device_codes(c) >= 0
    if not keyboard.any():
        return c.player
    gain = device_gain(c)
    out = c.player.copy()
    out[keyboard] = c.proposed[keyboard] + gain * (c.player[keyboard] - c.proposed[keyboard])
    return out


def replay_wheel(contribution: Contribution) -> np.ndarray:
    """The keyboard ticks of the player column recomputed from the recorded keys, wheel
    parameters and proposals (NaN on ticks without keyboard input)."""
    c = contribution
    codes = device_codes(c)
    record = c.meta.get(DEVICE_META_KEY)
    params = WheelParams.from_meta(record.get("wheel") if isinstance(record, dict) else None)
    value, holding = np.full((1, 2), np.nan), np.zeros(1, bool)
    out = np.full((c.num_ticks, 2), np.nan)
    no = np.zeros(1, bool)
    for t in range(c.num_ticks):
        value, holding = _step(value, holding, codes[t:t + 1], c.proposed[t:t + 1], no, params)
        out[t] = value[0]
    return out


def check_device(contribution: Contribution) -> str:
    """Why the keyboard ticks of the player column do not follow from the record ("" if they
    do, or if the run has no keyboard input)."""
    c = contribution
    keyboard = device_codes(c) >= 0
    if not keyboard.any():
        return ""
    wheel = replay_wheel(c)[keyboard]
    player = c.player[keyboard]
    same = (wheel == player) | (np.isnan(wheel) & np.isnan(player))
    if same.all():
        return ""
    row = int(np.flatnonzero(keyboard)[np.argmax(~same.all(axis=1))])
    return (f"keyboard input at tick {c.ticks[row]} is {c.player[row].tolist()}, the recorded "
            f"keys give {replay_wheel(c)[row].tolist()}")


# --------------------------------------------------------------------------- the gain estimate
def expert_actions(track: Track, states: np.ndarray, car: CarParams | None = None) -> np.ndarray:
    """What the expert would do (steer, throttle) on each recorded state (as
    ``learning.reaction.expert_steer``, both controls)."""
    bank = TrackBank.build([track])
    pose = np.asarray(states, np.float64)
    _, idx = cKDTree(bank.centre).query(pose[:, :2])
    return ExpertDriver().act_on(bank, car or CarParams(), pose, np.asarray(idx, np.int64),
                                 np.zeros(len(pose), np.int64))


@dataclass
class _Fit:
    gains: list[float | None] = field(default_factory=lambda: [None, None])
    rows: list[int] = field(default_factory=lambda: [0, 0])


def _labelled(c: Contribution, delay: int) -> tuple[np.ndarray, np.ndarray]:
    """(recorded rows, labelled state rows) of the run's keyboard labels, as ``extract_labels``
    picks them (the latest input per labelled state)."""
    keyboard = device_codes(c) >= 0
    rows = np.flatnonzero(c.label_ticks & keyboard)
    state_rows = c.input_tick[rows] - delay - c.ticks[0]
    keep = state_rows >= 0
    rows, state_rows = rows[keep], state_rows[keep]
    _, last = np.unique(state_rows[::-1], return_index=True)
    pick = len(rows) - 1 - last
    return rows[pick], state_rows[pick]


def _fit(c: Contribution, track: Track, delay: int, gain_min: float, min_inputs: int) -> _Fit:
    rows, state_rows = _labelled(c, delay)
    if not len(rows):
        return _Fit()
    wanted = expert_actions(track, c.states)[state_rows]
    x = c.player[rows] - c.proposed[rows]  # what the wheel says beyond the car
    y = wanted - c.proposed[rows]  # what the expert wanted beyond the car
    fit = _Fit()
    for d in range(2):
        ok = np.isfinite(x[:, d]) & (np.abs(np.nan_to_num(x[:, d])) > 1e-9)
        fit.rows[d] = int(ok.sum())
        if fit.rows[d] >= min_inputs:
            g = float(np.dot(x[ok, d], y[ok, d]) / np.dot(x[ok, d], x[ok, d]))
            fit.gains[d] = float(np.clip(g, gain_min, 1.0))
    return fit


def estimate_device_gain(contribution: Contribution, track: Track, *, delay: int = 0,
                         gain_min: float = GAIN_MIN, min_inputs: int = 20
                         ) -> tuple[float | None, float | None]:
    """The run's keyboard (steer, throttle) gains: per control, the ``g`` minimizing
    ``sum((proposed + g * (wheel - proposed) - expert)^2)`` over the run's keyboard labels (each
    on the state ``delay`` ticks before the frame its input answered), clipped to
    ``[gain_min, 1]``; None for a control with fewer than ``min_inputs`` such labels."""
    fit = _fit(contribution, track, delay, gain_min, min_inputs)
    return fit.gains[0], fit.gains[1]


def with_estimated_gain(contribution: Contribution, track: Track, *, delay: int | None = None,
                        min_inputs: int = 20) -> Contribution:
    """The contribution with its keyboard gains in ``meta["device_gain"]`` (a gain the
    contribution came with is never trusted); a run without keyboard input gets none.

    ``delay``: the reaction delay its labels use (``LabelConfig.delay_of(contribution)``); by
    default the run's own estimate in meta (``learning.reaction``), else 0. Call it after
    ``with_estimated_delay``. Recorded: ``{"steer", "throttle"}`` (the gains applied: the
    estimate, or ``DEFAULT_GAIN`` where there was too little input), ``"estimated"`` (per control),
    ``"rows"`` (labels fitted), ``"delay_ticks"``, ``"gain_min"``.
    """
    meta = {k: v for k, v in contribution.meta.items() if k != GAIN_META_KEY}
    if not (device_codes(contribution) >= 0).any():
        return replace(contribution, meta=meta)
    if delay is None:
        from crowdlearning.learning.labels import LabelConfig  # labels imports this module

        delay = LabelConfig().delay_of(contribution)
    fit = _fit(contribution, track, delay, GAIN_MIN, min_inputs)
    meta[GAIN_META_KEY] = {
        "steer": DEFAULT_GAIN if fit.gains[0] is None else fit.gains[0],
        "throttle": DEFAULT_GAIN if fit.gains[1] is None else fit.gains[1],
        "estimated": [g is not None for g in fit.gains], "rows": fit.rows,
        "delay_ticks": int(delay), "gain_min": GAIN_MIN}
    return replace(contribution, meta=meta)
