"""Scripted players on real input devices: keyboards (held keys) and gamepads (analog, late).

They play through the same ``Frame`` -> ``PlayerInputs`` interface as the other personas
(``crowd.personas``); a keyboard persona answers with held keys (the 4th element of its ``act``
answer, ``learning.device.key_code``), which ``SessionBatch`` turns into the player's input with
the same ``KeyboardWheel`` the game server steps. They see what a browser sees: the frame,
including the wheel's value the server applied on the previous tick (``Frame.player``).

==================  ==================================================================
keyboard-<ms>       good intent: the target is the scripted expert's action on what it saw
                    <ms> ms ago (rounded to ticks); it holds left / right (up / down) while
                    the target is more than a dead band (0.1) beyond the wheel it sees, and
                    releases otherwise
keyboard-threshold  the careful player of issue 16: holds left / right while the expert
                    (200 ms ago) steers beyond +-0.25, up / down while its throttle is beyond
                    +-0.3, releases otherwise
keyboard-wrong      as keyboard-threshold, with left and right swapped
keyboard-random     random keys, each held for a random while
gamepad-<ms>        analog stick and triggers: the expert's action <ms> ms late plus noise
                    (std 0.05)
==================  ==================================================================

In takeover mode a keyboard persona asks for control while it holds a steering key, as the Play
page does (``intervene``); the server lets it keep control until the wheel has returned to the
policy's proposal. The gamepad persona asks as a person would (``Persona.wants_control``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from crowdlearning.crowd.personas import Persona
from crowdlearning.learning.device import KEY_DOWN, KEY_LEFT, KEY_RIGHT, KEY_UP
from crowdlearning.learning.session import Frame
from crowdlearning.sim.expert import ExpertDriver
from crowdlearning.sim.params import CONTROL_RATE_HZ

__all__ = ["DEVICE_PERSONAS", "GamepadPlayer", "KeyboardPlayer", "make_device_persona"]

DEVICE_PERSONAS = ("keyboard-200", "keyboard-threshold", "keyboard-wrong", "keyboard-random",
                   "gamepad-200")
_EXPERT = ExpertDriver()
_TICK_MS = 1000.0 / CONTROL_RATE_HZ


def _ticks(ms: float) -> int:
    return max(0, round(ms / _TICK_MS))


def _expert_all(frame: Frame) -> np.ndarray:
    """The expert's action for every session of the frame."""
    return _EXPERT.act_on(frame.bank, frame.car, frame.pose, frame.centre_index, frame.track_of)


@dataclass
class _Delayed(Persona):
    """A target computed on every frame and acted on ``delay_ticks`` later."""

    delay_ticks: int = 4
    _past: deque = field(default_factory=deque)

    def reset(self) -> None:
        super().reset()
        self._past.clear()

    def target(self, frame: Frame) -> np.ndarray:
        """What the player wants, for every session of the frame (n, 2)."""
        return _expert_all(frame)

    def action(self, frame: Frame, rows: np.ndarray) -> np.ndarray:
        self._past.append(self.target(frame))
        while len(self._past) > self.delay_ticks + 1:
            self._past.popleft()
        return self._past[0][rows]  # what it wanted delay_ticks ago


@dataclass
class KeyboardPlayer(_Delayed):
    """Held keys from a target (see the module docstring); ``style`` "track" (dead band around
    the wheel), "threshold", "wrong" or "random"."""

    style: str = "track"
    band: float = 0.1  # track: the least difference from the wheel worth a key press
    steer_threshold: float = 0.25
    throttle_threshold: float = 0.3
    _random_keys: np.ndarray | None = None

    def reset(self) -> None:
        super().reset()
        self._random_keys = None

    def act(self, frame: Frame, rows: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(player: NaN, the wheel makes it; input_tick; intervene: a steering key is held;
        key codes)."""
        target, tick, _ = super().act(frame, rows)
        seen = frame.player[rows] if frame.player is not None else np.full((len(rows), 2), np.nan)
        wheel = np.where(np.isnan(seen), frame.proposed[rows], seen)
        codes = self._keys(target, wheel, rows)
        steering = (codes & (KEY_LEFT | KEY_RIGHT)) > 0
        return np.full((len(rows), 2), np.nan), tick, steering, codes

    def _keys(self, target: np.ndarray, wheel: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if self.style == "random":
            return self._random(rows)
        if self.style == "track":
            more = target - wheel
            return _code(more[:, 0] > self.band, more[:, 0] < -self.band,
                         more[:, 1] > self.band, more[:, 1] < -self.band)
        left = target[:, 0] > self.steer_threshold
        right = target[:, 0] < -self.steer_threshold
        if self.style == "wrong":
            left, right = right, left
        return _code(left, right, target[:, 1] > self.throttle_threshold,
                     target[:, 1] < -self.throttle_threshold)

    def _random(self, rows: np.ndarray) -> np.ndarray:
        n = int(rows.max()) + 1 if len(rows) else 0
        if self._random_keys is None or len(self._random_keys) < n:
            grown = np.zeros((n, 2), np.int64)
            if self._random_keys is not None:
                grown[: len(self._random_keys)] = self._random_keys
            self._random_keys = grown
        state = self._random_keys
        change = self.rng.random((len(rows), 2)) < 0.15  # a key is held about 0.3 s
        # per control: 0 none, 1 one side, 2 the other
        state[rows] = np.where(change, self.rng.integers(0, 3, size=(len(rows), 2)), state[rows])
        s, t = state[rows, 0], state[rows, 1]
        return _code(s == 1, s == 2, t == 1, t == 2)


def _code(left: np.ndarray, right: np.ndarray, up: np.ndarray, down: np.ndarray) -> np.ndarray:
    return (KEY_LEFT * np.asarray(left, np.int64) | KEY_RIGHT * np.asarray(right, np.int64)
            | KEY_UP * np.asarray(up, np.int64) | KEY_DOWN * np.asarray(down, np.int64))


@dataclass
class GamepadPlayer(_Delayed):
    """The expert's action ``delay_ticks`` late plus Gaussian noise, as analog values."""

    noise_std: float = 0.05

    def motor(self, intent: np.ndarray) -> np.ndarray:
        return intent + self.rng.normal(0.0, self.noise_std, size=intent.shape)


def make_device_persona(name: str, rng: np.random.Generator) -> Persona | None:
    """A device persona by name (``DEVICE_PERSONAS``; ``keyboard-<ms>``, ``gamepad-<ms>`` for
    any reaction time), or None if ``name`` is not one."""
    kind, _, arg = name.partition("-")
    if kind == "keyboard":
        if arg in ("threshold", "wrong"):
            return KeyboardPlayer(name, rng, delay_ticks=_ticks(200), style=arg)
        if arg == "random":
            return KeyboardPlayer(name, rng, delay_ticks=0, style="random")
    if kind in ("keyboard", "gamepad") and arg.isdigit():
        if kind == "gamepad":
            return GamepadPlayer(name, rng, delay_ticks=_ticks(int(arg)))
        return KeyboardPlayer(name, rng, delay_ticks=_ticks(int(arg)), style="track")
    return None
