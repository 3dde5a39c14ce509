"""``fixed_text`` writes numbers exactly as ``%.3f`` / ``%.2f`` do (frames stay byte for byte
what they were, docs/protocol.md), including the values where a shortcut would differ."""

from __future__ import annotations

import numpy as np
import pytest

from crowdlearning.server.game_loop import fixed_text

EDGES = [0.0, -0.0, 0.0005, -0.0005, 0.0015, 0.0025, 0.005, -0.005, 0.0625, -0.0625, 0.125, 1e-9,
         -1e-9, -0.0004, -0.004, 9999.9994, 9999.9996, 9999.995, 10_000.0, -10_000.0, 1e12, -1e300,
         float("nan"), float("inf"), float("-inf"), 2.675, 1.005, 0.045, 123.4565, -123.4565]


def _values() -> np.ndarray:
    rng = np.random.default_rng(7)
    return np.concatenate([
        np.array(EDGES),
        rng.uniform(-500, 500, 20_000), rng.uniform(-1, 1, 20_000), rng.normal(0, 1e-3, 5_000),
        np.round(rng.uniform(-100, 100, 5_000), 3) + 0.0005,  # near-halves at 3 decimals
        np.round(rng.uniform(-100, 100, 5_000), 2) + 0.005,  # and at 2
        rng.uniform(0, 30, 5_000).astype(np.float32).astype(np.float64),  # rays
    ])


@pytest.mark.parametrize("decimals", [2, 3])
def test_fixed_text_is_percent_formatting(decimals: int) -> None:
    values = _values()
    form = f"%.{decimals}f"
    assert fixed_text(values, decimals).tolist() == [form % v for v in values.tolist()]


def test_fixed_text_keeps_the_shape() -> None:
    values = np.arange(12.0).reshape(3, 4) / 7 - 0.5
    text = fixed_text(values, 3)
    assert text.shape == (3, 4)
    form = "%.3f"  # what frames were formatted with
    assert text[2, 3] == form % values[2, 3]
