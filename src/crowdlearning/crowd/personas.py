"""Scripted players: they play through the same ``Frame`` -> ``PlayerInputs`` interface as humans.

Each persona handles a set of sessions (rows of the batch) and returns, for those rows, its
input (steer, throttle), the tick the input answers, and whether it holds control (takeover mode).
A persona sees only the frame: pose, observation, the policy's proposal and the public track.
Its ``action`` is what it means to do; ``motor`` adds what its hands add (noise). In takeover
mode it steps in on its intent, not on its noise: a shaky hand does not make a player grab the
wheel more often (before 2026-11-29 it did, and noisy players labelled more, and earned more,
than the exact expert because their own tremor kept firing the gate).

==============  ======================================================================
expert          the scripted expert's action every tick; in takeover mode it steps in
                when the policy strays (disagrees, or the car drifts off line)
noisy-<s>       the expert plus Gaussian noise of std ``s`` on both controls
late-<d>        the expert reacting ``d`` ticks late: at tick t it answers with what the
                expert would have done at t - d (and reports t, as a browser would)
lazy            copies the policy's proposal (adds nothing)
copier-<s>      copies the policy's proposal plus Gaussian noise of std ``s``
human-<ms>-<s>  the expert seen ``ms`` milliseconds late, plus noise of std ``s``
oversteer-<f>   the expert's steering times ``f`` (turns in too hard)
gambler-<p>     each run, with probability ``p``, sabotages (as ``adversary``); else expert
random          uniform random controls
adversary       steers toward the nearest edge at full throttle
keyboard-...    players on a keyboard or gamepad: ``crowd.device_players``
==============  ======================================================================
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from crowdlearning.learning.session import Frame
from crowdlearning.sim.expert import ExpertDriver

__all__ = ["PERSONAS", "Persona", "make_persona"]

_EXPERT = ExpertDriver()


def _expert(frame: Frame, rows: np.ndarray) -> np.ndarray:
    return _EXPERT.act_on(frame.bank, frame.car, frame.pose[rows], frame.centre_index[rows],
                          frame.track_of[rows])


@dataclass
class Persona:
    """Base: answers every tick in label mode; ``wants_control`` gates takeover mode."""

    name: str
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    hold_ticks: int = 10  # once in control, keep it at least this long (0.5 s)
    _held: dict[int, int] = field(default_factory=dict)

    def action(self, frame: Frame, rows: np.ndarray) -> np.ndarray:
        """What the player means to do (their intent, as they perceive the frame)."""
        raise NotImplementedError

    def motor(self, intent: np.ndarray) -> np.ndarray:
        """What their hands make of ``intent`` (motor noise); by default exactly it."""
        return intent

    def wants_control(self, frame: Frame, rows: np.ndarray, action: np.ndarray) -> np.ndarray:
        """Takeover gate; by default a human steps in when the policy disagrees or drifts."""
        disagree = np.abs(action[:, 0] - frame.proposed[rows, 0]) > 0.3
        half = frame.bank.half_width[frame.track_of[rows]]
        drifting = np.abs(frame.lateral_m[rows]) > 0.5 * half
        return disagree | drifting

    def reset(self) -> None:
        """Forget per-session state: a new batch of sessions starts."""
        self._held.clear()

    def act(self, frame: Frame, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(player (k, 2), input_tick (k,), intervention (k,)) for ``rows``."""
        if frame.tick == 0:
            self.reset()
        intent = self.action(frame, rows)
        action = np.clip(self.motor(intent), -1.0, 1.0)
        # stepping in is a decision taken on what the player sees and means, not on the
        # tremor of their hands: motor noise does not make anyone grab the wheel
        gate = self.wants_control(frame, rows, np.clip(intent, -1.0, 1.0))
        hold = np.array([self._held.get(int(r), 0) for r in rows])
        hold = np.where(gate, self.hold_ticks, np.maximum(hold - 1, 0))
        self._held.update(zip(rows.tolist(), hold.tolist(), strict=True))
        return action, np.full(len(rows), frame.tick, np.int64), hold > 0


@dataclass
class ExpertPlayer(Persona):
    noise_std: float = 0.0

    def action(self, frame: Frame, rows: np.ndarray) -> np.ndarray:
        return _expert(frame, rows)

    def motor(self, intent: np.ndarray) -> np.ndarray:
        if self.noise_std > 0:
            return intent + self.rng.normal(0.0, self.noise_std, size=intent.shape)
        return intent


@dataclass
class LateReactor(Persona):
    delay_ticks: int = 6
    _past: deque = field(default_factory=deque)

    def reset(self) -> None:
        super().reset()
        self._past.clear()

    def action(self, frame: Frame, rows: np.ndarray) -> np.ndarray:
        now = _expert(frame, np.arange(len(frame.alive)))
        self._past.append(now)
        while len(self._past) > self.delay_ticks + 1:
            self._past.popleft()
        return self._past[0][rows]  # what the expert wanted delay_ticks ago


@dataclass
class LazyPlayer(Persona):
    def action(self, frame: Frame, rows: np.ndarray) -> np.ndarray:
        return frame.proposed[rows].copy()

    def wants_control(self, frame: Frame, rows: np.ndarray, action: np.ndarray) -> np.ndarray:
        return self.rng.random(len(rows)) < 0.1  # "takes over" now and then, changing nothing


@dataclass
class RandomPlayer(Persona):
    def action(self, frame: Frame, rows: np.ndarray) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, size=(len(rows), 2))

    def wants_control(self, frame: Frame, rows: np.ndarray, action: np.ndarray) -> np.ndarray:
        return self.rng.random(len(rows)) < 0.2


@dataclass
class Adversary(Persona):
    def action(self, frame: Frame, rows: np.ndarray) -> np.ndarray:
        toward_edge = np.where(frame.lateral_m[rows] >= 0, 1.0, -1.0)
        return np.stack([toward_edge, np.ones(len(rows))], axis=1)

    def wants_control(self, frame: Frame, rows: np.ndarray, action: np.ndarray) -> np.ndarray:
        return self.rng.random(len(rows)) < 0.3


@dataclass
class Copier(Persona):
    """Copies the car's proposal with a little noise: the cheapest way to look busy."""

    noise_std: float = 0.03

    def action(self, frame: Frame, rows: np.ndarray) -> np.ndarray:
        return frame.proposed[rows] + self.rng.normal(0.0, self.noise_std, size=(len(rows), 2))

    def wants_control(self, frame: Frame, rows: np.ndarray, action: np.ndarray) -> np.ndarray:
        return self.rng.random(len(rows)) < 0.1


@dataclass
class HumanPlayer(LateReactor):
    """A decent person: the expert's intent, seen ``delay_ticks`` late, with motor noise."""

    noise_std: float = 0.2

    def motor(self, intent: np.ndarray) -> np.ndarray:
        return intent + self.rng.normal(0.0, self.noise_std, size=intent.shape)


@dataclass
class Oversteerer(Persona):
    factor: float = 1.6

    def action(self, frame: Frame, rows: np.ndarray) -> np.ndarray:
        act = _expert(frame, rows)
        act[:, 0] *= self.factor
        return act


@dataclass
class Gambler(Persona):
    """Plays honestly (the expert) or, each run with probability ``share``, sabotages."""

    share: float = 0.3
    _sabotage: dict[int, bool] = field(default_factory=dict)

    def reset(self) -> None:
        super().reset()
        self._sabotage.clear()

    def action(self, frame: Frame, rows: np.ndarray) -> np.ndarray:
        bad = np.array([self._sabotage.setdefault(int(r), bool(self.rng.random() < self.share))
                        for r in rows])
        honest = _expert(frame, rows)
        toward_edge = np.where(frame.lateral_m[rows] >= 0, 1.0, -1.0)
        sabotage = np.stack([toward_edge, np.ones(len(rows))], axis=1)
        return np.where(bad[:, None], sabotage, honest)


PERSONAS = ("expert", "noisy-0.1", "noisy-0.3", "late-6", "lazy", "random", "adversary")
_TICK_MS = 50  # one control tick at 20 Hz [ms]


def make_persona(name: str, rng: np.random.Generator) -> Persona:
    """A persona by name (see the module docstring's table)."""
    from crowdlearning.crowd.device_players import make_device_persona

    device = make_device_persona(name, rng)
    if device is not None:
        return device
    try:
        return _parametrized(name, rng) or _simple(name, rng)
    except ValueError as exc:
        raise ValueError(f"unknown persona {name!r} ({exc}); known: {PERSONAS}, copier-<s>, "
                         "human-<ms>-<s>, oversteer-<f>, gambler-<p>, keyboard-<ms>, "
                         "gamepad-<ms>") from None


def _parametrized(name: str, rng: np.random.Generator) -> Persona | None:
    kind, _, rest = name.partition("-")
    if kind == "copier" and rest:
        return Copier(name, rng, noise_std=float(rest))
    if kind == "human" and rest:
        ms, _, noise = rest.partition("-")
        return HumanPlayer(name, rng, delay_ticks=round(float(ms) / _TICK_MS),
                           noise_std=float(noise or 0.2))
    if kind == "oversteer" and rest:
        return Oversteerer(name, rng, factor=float(rest))
    if kind == "gambler" and rest:
        share = float(rest)
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"gambler share must be in [0, 1], got {share}")
        return Gambler(name, rng, share=share)
    return None


def _simple(name: str, rng: np.random.Generator) -> Persona:
    if name == "expert":
        return ExpertPlayer(name, rng)
    if name.startswith("noisy-"):
        return ExpertPlayer(name, rng, noise_std=float(name.split("-", 1)[1]))
    if name.startswith("late-"):
        return LateReactor(name, rng, delay_ticks=int(name.split("-", 1)[1]))
    simple = {"lazy": LazyPlayer, "random": RandomPlayer, "adversary": Adversary}
    if name in simple:
        return simple[name](name, rng)
    raise ValueError("no such persona")
