"""Server-chosen disturbances: a gusty road that nudges the executed steering every tick.

Why. Measured in the market study (`docs/verdict.md`): an exact player who drives the ideal line
teaches the model little, because every such run visits the same states (the second and later
runs on a track are near duplicates) and the model already drives them; a noisy player earned
more, because its noise pushed the car into states the model has never seen and its (noisy)
labels there taught recovery. That is noise injection during demonstration (DART, Laskey et al.
2017): the noise is useful, the label noise is not. So the *server* injects it, for everyone:
the executed steering gets independent Gaussian noise every tick, and the player's input, the
label, stays what the player meant. An exact player then labels varied states exactly.

Why white (independent per tick) noise and not gusts lasting a while: a player who feels a
lasting push counter-steers before the state shows it, and that counter-steer would be learnt as
the label of a state that, without the push, wants none. Independent noise cannot be
anticipated; only its effect on the state can be answered, and that answer is a correct label.

The noise is part of the run's secret start (``server.game_loop.RunStart``): its strength and
every value follow from the run's seed, drawn when the run begins, kept in the record and the
verdict; the executed actions the server records include it, so screening's re-simulation of
the recorded actions is unchanged, and nobody can re-create a run before it is played.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Disturbance", "apply_disturbance"]

_STREAM = 0xD157  # separates the noise's random stream from the start's, same seed


@dataclass(frozen=True)
class Disturbance:
    """Steering noise of standard deviation ``std`` for one run, from ``seed``."""

    seed: int
    std: float

    @classmethod
    def draw(cls, seed: int, low: float, high: float) -> Disturbance:
        """A run's disturbance: its strength uniform in [low, high], from the run's seed."""
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"disturbance strength needs 0 <= low <= high <= 1, "
                             f"got {low}, {high}")
        rng = np.random.default_rng([seed, _STREAM])
        return cls(seed, float(rng.uniform(low, high)) if high > 0 else 0.0)

    def steering(self, ticks: int) -> np.ndarray:
        """The steering offsets of ticks ``0 .. ticks-1`` (the same for any ``ticks``)."""
        if self.std == 0.0:
            return np.zeros(ticks)
        rng = np.random.default_rng([self.seed, _STREAM, 1])
        return self.std * rng.standard_normal(ticks)


def apply_disturbance(executed: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``executed`` (n, 2) with ``offsets`` (n,) added to its steering, clipped to [-1, 1]."""
    out = executed.copy()
    out[:, 0] = np.clip(out[:, 0] + offsets, -1.0, 1.0)
    return out
