"""Each run's reaction delay, estimated from the run: right for late and prompt players, never
trusted from the contribution itself, applied to its labels."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from crowdlearning.crowd.personas import make_persona
from crowdlearning.evaluation.screening import Screener
from crowdlearning.evaluation.verdict import VerdictConfig
from crowdlearning.learning.bootstrap import (
    INITIAL_DEMO_TICKS,
    INITIAL_DEMO_TRACKS,
    expert_demonstrations,
    train_initial_model,
)
from crowdlearning.learning.dagger import DaggerTrainer
from crowdlearning.learning.dataset import AggregatedDataset
from crowdlearning.learning.finetune import FinetuneConfig
from crowdlearning.learning.labels import DELAY_META_KEY, LabelConfig, extract_labels
from crowdlearning.learning.reaction import (
    estimate_reaction_delay,
    expert_steer,
    with_estimated_delay,
)
from crowdlearning.learning.registry import ModelRegistry
from crowdlearning.learning.train import new_network
from crowdlearning.platform.service import VerdictService
from crowdlearning.policy.network import Policy
from crowdlearning.sim.expert import ExpertDriver
from crowdlearning.sim.track_gen import named_track
from tests.learning.factories import play

POLICY = Policy(new_network(0))
TRACK = "hairpin-valley"


@pytest.mark.parametrize(("persona", "delay"), [("expert", 0), ("late-3", 3), ("late-6", 6),
                                                ("late-10", 10)])
def test_the_delay_a_player_reacts_with_is_found(persona: str, delay: int) -> None:
    c = play(POLICY, make_persona(persona, np.random.default_rng(1)), ticks=300,
             track_name=TRACK)
    assert estimate_reaction_delay(c, named_track(TRACK)) == delay


def test_a_noisy_late_player_is_still_found() -> None:
    # a late player whose steering also carries noise (as a person's does)
    late = play(POLICY, make_persona("late-5", np.random.default_rng(2)), ticks=400,
                track_name=TRACK)
    rng = np.random.default_rng(3)
    noisy = late.player.copy()
    noisy[:, 0] = np.clip(noisy[:, 0] + rng.normal(0, 0.1, len(noisy)), -1, 1)
    c = dataclasses.replace(late, player=noisy)
    assert estimate_reaction_delay(c, named_track(TRACK)) == 5


def test_expert_steer_on_recorded_states_is_what_the_expert_wanted_live() -> None:
    wanted: list[float] = []
    driver = ExpertDriver()

    def log(frame) -> None:
        wanted.append(float(driver.act_on(frame.bank, frame.car, frame.pose,
                                          frame.centre_index, frame.track_of)[0, 0]))

    c = play(POLICY, make_persona("expert", np.random.default_rng(0)), ticks=120,
             track_name=TRACK, on_frame=log)
    np.testing.assert_allclose(expert_steer(named_track(TRACK), c.states), wanted, atol=1e-9)


def test_too_few_inputs_give_no_estimate_and_a_claimed_delay_is_dropped() -> None:
    c = play(POLICY, make_persona("late-6", np.random.default_rng(1)), ticks=30,
             track_name=TRACK)
    claimed = dataclasses.replace(c, meta={**c.meta, DELAY_META_KEY: 12})
    assert estimate_reaction_delay(claimed, named_track(TRACK)) is None
    assert DELAY_META_KEY not in with_estimated_delay(claimed, named_track(TRACK)).meta


def test_labels_use_the_runs_own_delay() -> None:
    # GIVEN a late player's run with its estimated delay
    c = play(POLICY, make_persona("late-6", np.random.default_rng(1)), ticks=200,
             track_name=TRACK)
    estimated = with_estimated_delay(c, named_track(TRACK))
    assert estimated.meta[DELAY_META_KEY] == 6
    # THEN its labels are those of a 6-tick correction; with estimation off, the configured one
    np.testing.assert_array_equal(
        extract_labels(estimated, LabelConfig()).targets,
        extract_labels(c, LabelConfig(reaction_delay_ticks=6, estimate_delay=False)).targets)
    np.testing.assert_array_equal(
        extract_labels(estimated, LabelConfig(estimate_delay=False)).targets,
        extract_labels(c, LabelConfig(reaction_delay_ticks=0)).targets)
    # AND an out-of-range delay in meta is ignored
    bogus = dataclasses.replace(c, meta={DELAY_META_KEY: 99})
    assert len(extract_labels(bogus, LabelConfig())) == len(extract_labels(c, LabelConfig()))


def test_the_platform_judges_a_run_with_its_own_delay(tmp_path: Path) -> None:
    # GIVEN a platform and a late player's run
    trainer = DaggerTrainer(ModelRegistry(tmp_path / "m"), AggregatedDataset(tmp_path / "d"))
    net, training = train_initial_model(0)
    trainer.start(net, expert_demonstrations(INITIAL_DEMO_TRACKS, INITIAL_DEMO_TICKS), training)
    track = named_track("chicane-park")  # where the late player corrects the car
    config = VerdictConfig(null_runs=4, null_ticks=300,
                           suite_size=4, tracks_per_look=4, starts_per_track=1,
                           window_ticks=200, finetune=FinetuneConfig(updates=50))
    service = VerdictService(trainer, Screener({track.digest: track}.__getitem__),
                             verdict_config=config)
    c = play(trainer.policy(), make_persona("late-6", np.random.default_rng(1)), ticks=400,
             track_name="chicane-park")
    # WHEN it is submitted
    verdict = service.submit(c, paid=False).verdict
    # THEN it was labelled with its own 6-tick delay, not the configured 0
    assert verdict.labels == len(extract_labels(c, LabelConfig(reaction_delay_ticks=6,
                                                               estimate_delay=False)))
    assert verdict.labels != len(extract_labels(c, LabelConfig(estimate_delay=False)))


def test_a_delay_is_estimated_only_from_enough_corrections() -> None:
    from crowdlearning.learning.labels import correction_ticks
    from crowdlearning.learning.reaction import MIN_INPUTS

    c = play(POLICY, make_persona("late-6", np.random.default_rng(1)), ticks=300,
             track_name=TRACK)
    corrections = np.flatnonzero(correction_ticks(c))
    assert len(corrections) > MIN_INPUTS + 20  # the whole run: enough, and found
    assert estimate_reaction_delay(c, named_track(TRACK)) == 6
    # the same run cut just before its MIN_INPUTS-th correction: no estimate
    n = int(corrections[MIN_INPUTS - 1])
    cut = dataclasses.replace(c, **{k: getattr(c, k)[:n] for k in (
        "ticks", "states", "observations", "proposed", "executed", "player", "input_tick",
        "intervention")})
    assert estimate_reaction_delay(cut, named_track(TRACK)) is None
