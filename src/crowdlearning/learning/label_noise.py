"""How precise a run's labels are: their steering jitter, estimated from the labels alone.

Why a price needs it (docs/verdict.md, "Label precision"): the verdict measures one run's labels
in a short fine-tune, where independent noise on each label averages out; measured on the same
states, exact labels beat the same labels plus noise 0.1 by about 2%, inside the verdict's own
noise. Yet in the aggregated dataset a noisy label is worth less than an exact one: a label with
noise variance ``s^2`` on a state where the model's own error is ``tau^2`` carries
``tau^2 / (tau^2 + s^2)`` of an exact label's information (weighted least squares; the effective
sample size of heteroscedastic labels). The price multiplies a reward by that factor, so a steady
hand is paid more than a shaky one for the same measured gain.

The estimate. The ideal steering is a smooth function of time (the car's state changes a little
per 50-ms tick); independent noise is not. For three labelled states ``t0 < t1 < t2`` no more than
``MAX_GAP_TICKS`` apart, the middle label minus the straight line through its neighbours,
``r = x1 - (w0 x0 + w2 x2)`` with ``w0 = (t2 - t1) / (t2 - t0)`` and ``w2 = (t1 - t0) / (t2 - t0)``,
has variance ``s^2 (1 + w0^2 + w2^2)`` under noise ``s`` (and close to 0 for a smooth hand). So
``s^2 = mean(r^2 / (1 + w0^2 + w2^2))`` over the run's triples, shrunk towards ``prior^2`` with
the weight of ``PRIOR_TRIPLES`` triples: a run with few neighbouring labels (short takeovers,
input on every few ticks only) is not taken as exact for lack of evidence. Measured on the
simulated crowd (one-minute runs against v0, default disturbance; ``tests/learning/
test_label_noise.py`` checks the same ordering): the scripted expert 0.011-0.018, a late
reactor 0.013-0.02 (lateness is not jitter: the reaction delay is corrected apart), a gamepad
with motor noise about 0.05, a noisy expert (0.1) about 0.1, a human-like hand (noise 0.2) about
0.2.

Steering only: it is what players correct; throttle labels of a keyboard are on/off by nature.
The labels are the ones the verdict trains on (``learning.labels.label_rows``: after the reaction
delay, the device model and this round's coverage), so re-judging derives the same figure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crowdlearning.learning.contribution import Contribution
from crowdlearning.learning.device import device_targets
from crowdlearning.learning.labels import LabelConfig, label_rows

__all__ = ["MAX_GAP_TICKS", "PRIOR_TRIPLES", "LabelNoise", "estimate_label_noise",
           "precision_factor"]

MAX_GAP_TICKS = 4  # neighbours further apart than 200 ms say little about jitter
PRIOR_TRIPLES = 10  # the prior's weight, in triples


@dataclass(frozen=True)
class LabelNoise:
    """A run's steering-label noise estimate [steering units, -1..1] and its evidence."""

    sigma: float
    triples: int


def estimate_label_noise(contribution: Contribution, prior: float,
                         config: LabelConfig | None = None) -> LabelNoise:
    """The steering jitter of ``contribution``'s labels (module docstring); ``prior`` is what
    a run without neighbouring labels is taken to have."""
    if prior < 0:
        raise ValueError(f"prior must be >= 0, got {prior}")
    rows, state_rows = label_rows(contribution, config or LabelConfig())
    steer = device_targets(contribution)[rows, 0]
    keep = np.isfinite(steer)
    t = state_rows[keep].astype(np.float64)
    x = steer[keep].astype(np.float64)
    order = np.argsort(t, kind="stable")
    t, x = t[order], x[order]
    total, n = 0.0, 0
    if len(t) >= 3:
        g1, g2 = t[1:-1] - t[:-2], t[2:] - t[1:-1]
        ok = (g1 >= 1) & (g2 >= 1) & (g1 <= MAX_GAP_TICKS) & (g2 <= MAX_GAP_TICKS)
        w0, w2 = g2 / (g1 + g2), g1 / (g1 + g2)
        r = x[1:-1] - (w0 * x[:-2] + w2 * x[2:])
        scaled = r[ok] ** 2 / (1.0 + w0[ok] ** 2 + w2[ok] ** 2)
        total, n = float(scaled.sum()), int(ok.sum())
    variance = (total + PRIOR_TRIPLES * prior**2) / (n + PRIOR_TRIPLES)
    return LabelNoise(sigma=round(float(np.sqrt(variance)), 6), triples=n)


def precision_factor(sigma: float, reference: float) -> float:
    """The share of an exact label's information a label of noise ``sigma`` carries where the
    model's own error is ``reference``: ``reference^2 / (reference^2 + sigma^2)``; 1 when
    ``reference`` is 0 (the factor is off)."""
    if reference <= 0:
        return 1.0
    return round(reference**2 / (reference**2 + sigma**2), 6)
