"""A contribution: one player's run, tick by tick, as the server recorded it.

Columnar and frozen: every array has one row per tick. For tick ``i``:

- ``ticks[i]``: the server tick (consecutive);
- ``states[i]``: the car's pose before the tick's action (x, y, yaw, speed, steer angle);
- ``observations[i]``: the observation the policy saw;
- ``proposed[i]``: the action the policy proposed; ``executed[i]``: the action the server applied;
- ``player[i]``: the player's latest input (steer, throttle), NaN where the player gave none (a
  player may steer without touching the throttle: NaN throttle);
- ``input_tick[i]``: the server tick the player's input answers (the newest frame the player had
  seen when pressing), -1 where none;
- ``intervention[i]``: the player held control (takeover mode) this tick.

Validation names the first bad value; a rejected record changes nothing anywhere.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from crowdlearning.errors import CrowdLearningError
from crowdlearning.sim.replay import EpisodeStart

__all__ = ["MODES", "Contribution", "ContributionError"]

MODES = ("label", "takeover")
Mode = Literal["label", "takeover"]
_MAX_TICKS = 20 * 60 * 30  # 30 minutes at 20 Hz


class ContributionError(CrowdLearningError, ValueError):
    """A contribution record is malformed."""


@dataclass(frozen=True, eq=False)
class Contribution:
    """One player's run (see the module docstring for the per-tick arrays)."""

    contribution_id: str
    contributor_id: str
    session_id: str
    mode: Mode
    model_version: int
    beta: float  # label mode: executed = beta * player + (1 - beta) * policy where input exists
    start: EpisodeStart
    ticks: np.ndarray
    states: np.ndarray
    observations: np.ndarray
    proposed: np.ndarray
    executed: np.ndarray
    player: np.ndarray
    input_tick: np.ndarray
    intervention: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_identity(self)
        arrays = {
            "ticks": (np.int64, 1), "states": (np.float64, 2), "observations": (np.float32, 2),
            "proposed": (np.float64, 2), "executed": (np.float64, 2), "player": (np.float64, 2),
            "input_tick": (np.int64, 1), "intervention": (np.bool_, 1),
        }
        for name, (dtype, ndim) in arrays.items():
            value = np.asarray(getattr(self, name))
            if value.ndim != ndim:
                raise ContributionError(f"{name} must have {ndim} dimension(s), got {value.ndim}")
            value = np.ascontiguousarray(value, dtype=dtype)
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        _check_rows(self)

    @property
    def num_ticks(self) -> int:
        return len(self.ticks)

    @property
    def has_input(self) -> np.ndarray:
        """Ticks at which the player had given any input."""
        return np.isfinite(self.player).any(axis=1)

    @property
    def label_ticks(self) -> np.ndarray:
        """Ticks whose input is a label under the run's mode: any input (label mode), held
        control (takeover mode)."""
        return self.intervention if self.mode == "takeover" else self.has_input

    # ------------------------------------------------------------------ serialization
    def header(self) -> dict[str, Any]:
        return {
            "format": "crowdlearning.contribution/1",
            "contribution_id": self.contribution_id, "contributor_id": self.contributor_id,
            "session_id": self.session_id, "mode": self.mode,
            "model_version": self.model_version, "beta": self.beta,
            "start": self.start.__dict__, "meta": self.meta,
        }

    def to_bytes(self) -> bytes:
        """An ``.npz`` archive (no pickles) holding the arrays and a JSON header."""
        buf = io.BytesIO()
        header = np.frombuffer(json.dumps(self.header(), sort_keys=True).encode(), dtype=np.uint8)
        np.savez(buf, header=header, **{k: getattr(self, k) for k in _ARRAYS})
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Contribution:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                header = json.loads(npz["header"].tobytes().decode())
                arrays = {k: npz[k] for k in _ARRAYS}
        except (OSError, ValueError, KeyError) as exc:
            raise ContributionError(f"not a contribution archive: {exc}") from exc
        if header.get("format") != "crowdlearning.contribution/1":
            raise ContributionError(f"unknown contribution format {header.get('format')!r}")
        start = EpisodeStart(**header["start"])
        fields_ = {k: header[k] for k in ("contribution_id", "contributor_id", "session_id",
                                           "mode", "model_version", "beta", "meta")}
        return cls(start=start, **fields_, **arrays)

    @property
    def digest(self) -> str:
        """SHA-256 over the per-tick data (not the ids): equal data, equal digest."""
        h = hashlib.sha256(self.start.track_digest.encode())
        for name in _ARRAYS:
            h.update(np.ascontiguousarray(getattr(self, name)).tobytes())
        return h.hexdigest()


_ARRAYS = ("ticks", "states", "observations", "proposed", "executed", "player", "input_tick",
           "intervention")


def _check_identity(c: Contribution) -> None:
    for name in ("contribution_id", "contributor_id", "session_id"):
        value = getattr(c, name)
        if not isinstance(value, str) or not 1 <= len(value) <= 128:
            raise ContributionError(f"{name} must be a string of 1..128 characters, got {value!r}")
    if c.mode not in MODES:
        raise ContributionError(f"mode must be one of {MODES}, got {c.mode!r}")
    if not isinstance(c.model_version, int) or c.model_version < 0:
        raise ContributionError(f"model_version must be an int >= 0, got {c.model_version!r}")
    if not (isinstance(c.beta, float | int) and 0.0 <= c.beta <= 1.0):
        raise ContributionError(f"beta must be in [0, 1], got {c.beta!r}")


def _check_rows(c: Contribution) -> None:
    n = len(c.ticks)
    if not 1 <= n <= _MAX_TICKS:
        raise ContributionError(f"a contribution needs 1..{_MAX_TICKS} ticks, got {n}")
    expected = {"states": (n, 5), "proposed": (n, 2), "executed": (n, 2), "player": (n, 2),
                "input_tick": (n,), "intervention": (n,)}
    for name, shape in expected.items():
        if getattr(c, name).shape != shape:
            raise ContributionError(f"{name} must have shape {shape}, got "
                                    f"{getattr(c, name).shape}")
    if c.observations.shape[0] != n:
        raise ContributionError(f"observations has {c.observations.shape[0]} rows, ticks has {n}")
    if np.any(np.diff(c.ticks) != 1):
        bad = int(np.argmax(np.diff(c.ticks) != 1))
        raise ContributionError(f"ticks must be consecutive: tick {c.ticks[bad]} is followed by "
                                f"{c.ticks[bad + 1]}")
    for name in ("states", "observations", "proposed", "executed"):
        if not np.all(np.isfinite(getattr(c, name))):
            raise ContributionError(f"{name} contains NaN or infinity")
    for name in ("proposed", "executed", "player"):
        values = getattr(c, name)
        outside = np.isfinite(values) & (np.abs(values) > 1.0)
        if outside.any():
            row = int(np.argwhere(outside)[0, 0])
            raise ContributionError(f"{name} at tick {c.ticks[row]} is {values[row].tolist()}, "
                                    f"outside [-1, 1]")
    if np.isinf(c.player).any():
        raise ContributionError("player input contains infinity")
    _check_inputs(c)


def _check_inputs(c: Contribution) -> None:
    has = c.has_input
    if np.any(has & ((c.input_tick < 0) | (c.input_tick > c.ticks))):
        row = int(np.argmax(has & ((c.input_tick < 0) | (c.input_tick > c.ticks))))
        raise ContributionError(f"input at tick {c.ticks[row]} answers tick {c.input_tick[row]}: "
                                "an input answers a tick already shown, never a future one")
    if np.any(~has & (c.input_tick != -1)):
        raise ContributionError("input_tick must be -1 where the player gave no input")
    if np.any(c.intervention & ~np.isfinite(c.player[:, 0])):
        row = int(np.argmax(c.intervention & ~np.isfinite(c.player[:, 0])))
        raise ContributionError(f"intervention at tick {c.ticks[row]} without a steering input")
    if c.mode == "label" and c.intervention.any():
        raise ContributionError("label mode has no interventions; use takeover mode")
