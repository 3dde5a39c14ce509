"""Label mode, takeover mode, and the reaction-delay correction."""

from __future__ import annotations

import numpy as np
import pytest

from crowdlearning.crowd.personas import make_persona
from crowdlearning.learning.labels import LabelConfig, extract_labels, mix_actions
from crowdlearning.learning.train import new_network
from crowdlearning.policy.network import Policy
from crowdlearning.sim.expert import ExpertDriver
from tests.learning.factories import play

POLICY = Policy(new_network(0))


def test_mix_actions_follows_each_sessions_mode() -> None:
    proposed = np.array([[0.2, 0.2], [0.2, 0.2], [0.2, 0.2], [0.2, 0.2]])
    player = np.array([[1.0, np.nan], [1.0, 1.0], [1.0, 1.0], [np.nan, np.nan]])
    takeover = np.array([False, False, True, True])
    held = np.array([False, False, True, False])
    out = mix_actions(takeover, proposed, player, held, np.array([0.5, 0.25, 1.0, 1.0]))
    np.testing.assert_allclose(out, [[0.6, 0.2],  # label: steer mixed, throttle = policy
                                     [0.4, 0.4],  # label, beta 0.25
                                     [1.0, 1.0],  # takeover, held: the player drives
                                     [0.2, 0.2]])  # takeover, not held: the policy drives


def test_label_mode_labels_every_input_with_weight_one() -> None:
    c = play(POLICY, make_persona("expert", np.random.default_rng(0)), mode="label", ticks=80)
    labels = extract_labels(c)
    assert len(labels) == c.has_input.sum()
    assert np.all(labels.weights == 1.0) and labels.mask.all()
    np.testing.assert_array_equal(labels.targets, c.player.astype(np.float32))
    # executed = beta * player + (1 - beta) * policy
    np.testing.assert_allclose(c.executed, 0.5 * c.player + 0.5 * c.proposed)


def test_takeover_mode_labels_only_interventions_weighted_higher() -> None:
    c = play(POLICY, make_persona("expert", np.random.default_rng(0)), mode="takeover",
             ticks=200)
    assert 0 < c.intervention.sum() < c.num_ticks  # it stepped in, not always
    labels = extract_labels(c, LabelConfig(intervention_weight=4.0))
    assert len(labels) == c.intervention.sum()
    assert np.all(labels.weights == 4.0)
    np.testing.assert_array_equal(c.executed[c.intervention], c.player[c.intervention])
    np.testing.assert_array_equal(c.executed[~c.intervention], c.proposed[~c.intervention])


def test_reaction_delay_correction_puts_late_labels_on_the_states_they_answer() -> None:
    # GIVEN a player reacting 6 ticks late, and the expert's action at every state
    expert_at: list[np.ndarray] = []
    driver = ExpertDriver()

    def log(frame) -> None:
        expert_at.append(driver.act_on(frame.bank, frame.car, frame.pose, frame.centre_index,
                                       frame.track_of)[0])

    c = play(POLICY, make_persona("late-6", np.random.default_rng(0)), ticks=150,
             track_name="hairpin-valley", on_frame=log)
    truth = np.array(expert_at)
    # WHEN labels are extracted with and without the 6-tick correction
    corrected = extract_labels(c, LabelConfig(reaction_delay_ticks=6))
    naive = extract_labels(c, LabelConfig(reaction_delay_ticks=0))
    # THEN corrected labels equal what the expert wanted in the labelled state; naive ones lag
    rows = np.flatnonzero(c.has_input)[6:]
    assert len(corrected) == len(rows)
    np.testing.assert_allclose(corrected.targets, truth[rows - 6].astype(np.float32), atol=1e-6)
    naive_error = np.abs(naive.targets - truth[: len(naive)].astype(np.float32)).mean()
    assert naive_error > 0.005


def test_negative_delay_is_refused() -> None:
    with pytest.raises(ValueError, match="reaction_delay_ticks"):
        LabelConfig(reaction_delay_ticks=-1)


def test_a_keyboard_run_without_an_estimate_gets_a_persons_delay() -> None:
    from crowdlearning.learning.labels import LabelConfig

    class _Run:  # only what ``delay_of`` reads
        def __init__(self, meta: dict, num_ticks: int = 5) -> None:
            self.meta, self.num_ticks = meta, num_ticks

    from crowdlearning.learning.device import DEVICE_META_KEY, WheelParams, device_meta

    keys = np.array([0, 1, 1, 0, -1])
    keyboard = _Run({DEVICE_META_KEY: device_meta(keys, ["keyboard"], WheelParams())})
    cfg = LabelConfig(reaction_delay_ticks=0, keyboard_delay_ticks=4)
    assert cfg.delay_of(keyboard) == 4  # type: ignore[arg-type]
    assert cfg.delay_of(_Run({})) == 0  # type: ignore[arg-type]
    assert cfg.delay_of(_Run({**keyboard.meta, "reaction_delay_ticks": 2})) == 2  # type: ignore[arg-type]


def test_corrections_of_runs_shorter_than_the_average_have_one_value_per_tick() -> None:
    import dataclasses

    from crowdlearning.learning.labels import correction_ticks
    from crowdlearning.learning.reaction import estimate_reaction_delay
    from crowdlearning.sim.track_gen import named_track

    long = play(Policy(new_network(0)), make_persona("human-150-0.2", np.random.default_rng(0)),
                ticks=60, track_name="kidney")
    # the 5-tick average is the same as before on a long run
    gap = np.where(np.isfinite(long.player[:, 0]), long.player[:, 0] - long.proposed[:, 0], 0.0)
    same = np.convolve(gap, np.ones(5) / 5, mode="same")
    assert np.array_equal(correction_ticks(long),
                          np.isfinite(long.player[:, 0]) & (np.abs(same) >= 0.05))
    for n in (1, 2, 4):  # and a run of 1-4 ticks gets 1-4 values, not 5
        short = dataclasses.replace(long, **{k: getattr(long, k)[:n] for k in (
            "ticks", "states", "observations", "proposed", "executed", "player", "input_tick",
            "intervention")})
        steer = short.player.copy()
        steer[:, 0] = np.clip(short.proposed[:, 0] + 0.6, -1, 1)  # a clear correction
        short = dataclasses.replace(short, player=steer)
        assert correction_ticks(short).shape == (n,) and correction_ticks(short).any()
        assert estimate_reaction_delay(short, named_track("kidney"), min_inputs=1) is None
