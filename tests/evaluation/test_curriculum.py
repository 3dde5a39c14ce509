"""The curriculum: families unlock on mastery, persist, and hidden suites stay today's on easy."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import crowdlearning.evaluation.curriculum as curriculum_module
import crowdlearning.evaluation.suite as suite_module
from crowdlearning.errors import ConfigurationError, SimulationError
from crowdlearning.evaluation.curriculum import (
    CURRICULUM_FILE,
    Curriculum,
    next_unlocked,
    play_seeds,
    play_tracks,
    unlocked_families,
)
from crowdlearning.evaluation.screening import Screener
from crowdlearning.evaluation.suite import EvalResult, EvalSuite, evaluate, is_play_seed
from crowdlearning.evaluation.verdict import VerdictConfig
from crowdlearning.learning.anchors import ANCHOR_TRACKS_PER_FAMILY
from crowdlearning.learning.bootstrap import expert_demonstrations
from crowdlearning.learning.dagger import DaggerTrainer
from crowdlearning.learning.dataset import AggregatedDataset
from crowdlearning.learning.registry import ModelRegistry
from crowdlearning.learning.train import new_network
from crowdlearning.platform.service import VerdictService
from crowdlearning.policy.network import Policy
from crowdlearning.sim.expert import ExpertDriver
from crowdlearning.sim.families import FAMILY_NAMES

# SHA-256 (first 16 hex) of [seeds, track digests] of today's suites, computed with the code of
# commit 5f8fed0 (before families reached the suites): "size/rotation" -> digest.
TODAYS_SUITES = {"24/0": "d034edff394d0d96", "24/5": "5f3b104b982d13de",
                 "8/0": "057c323980a52fcd", "6/3": "f856555093e1368b"}
TODAYS_VERDICT_SUITE_ROTATION_2 = "71b7eaef10160337"


def _fingerprint(suite: EvalSuite) -> str:
    body = json.dumps([list(suite.track_seeds), [t.digest for t in suite.tracks]])
    return hashlib.sha256(body.encode()).hexdigest()[:16]


class _ExpertPolicy:
    """The expert dressed as a policy (it reads the simulator ``evaluate`` builds)."""

    sim = None

    def act(self, observations: np.ndarray) -> np.ndarray:
        return ExpertDriver().act(self.sim)


@pytest.fixture
def expert(monkeypatch) -> _ExpertPolicy:
    policy, real = _ExpertPolicy(), suite_module.RaceSim

    def capture(*args, **kwargs):
        policy.sim = real(*args, **kwargs)
        return policy.sim

    monkeypatch.setattr(suite_module, "RaceSim", capture)
    return policy


def test_easy_only_suites_are_todays_suites_exactly() -> None:
    for key, digest in TODAYS_SUITES.items():
        size, rotation = (int(x) for x in key.split("/"))
        easy = EvalSuite.hidden(size, rotation=rotation, families=("easy",))
        assert _fingerprint(easy) == digest, key
        assert easy == EvalSuite.hidden(size, rotation=rotation) == EvalSuite(easy.track_seeds)
        assert easy.track_families == () and easy.family_names == ("easy",)
    assert _fingerprint(VerdictConfig(rotation=2).suite()) == TODAYS_VERDICT_SUITE_ROTATION_2


def test_a_suite_within_several_families_is_hidden_even_interleaved_and_rotates() -> None:
    # WHEN a suite is drawn within easy and tight
    suite = EvalSuite.hidden(24, rotation=1, families=("tight", "easy"))
    # THEN half its tracks are of each, alternating (each verdict look holds both), all hidden
    assert suite.families == ("easy", "tight") * 12
    assert not any(is_play_seed(s) for s in suite.track_seeds)
    assert [t.name.split("-")[0] for t in suite.tracks[:2]] == ["gen", "tight"]
    assert suite.part(0, 12).family_names == ("easy", "tight")
    assert suite.part(0, 12).tracks == suite.tracks[:12]
    # deterministic, and rotating changes every family's tracks
    assert EvalSuite.hidden(24, rotation=1, families=("easy", "tight")) == suite
    other = EvalSuite.hidden(24, rotation=2, families=("easy", "tight"))
    assert not set(suite.track_seeds) & set(other.track_seeds)
    # the remainder goes to the hardest families
    odd = EvalSuite.hidden(7, families=("easy", "tight", "fast-hairpin"))
    assert [odd.families.count(f) for f in ("easy", "tight", "fast-hairpin")] == [2, 2, 3]
    with pytest.raises(SimulationError):
        EvalSuite((1_500_000_001, 1_500_000_002), track_families=("easy",))


def test_a_mixed_suite_evaluates_in_one_batch_with_each_tracks_grip(expert) -> None:
    # GIVEN a suite of easy and low-grip tracks (the low-grip ones at 65% of the grip)
    mixed = EvalSuite.hidden(4, rotation=3, families=("easy", "low-grip"))
    # WHEN the expert drives it in one batch, and each family's tracks on their own
    together = evaluate(expert, mixed)
    assert set(expert.sim.bank.grip) == {1.0, 0.65}
    alone = [evaluate(expert, EvalSuite(mixed.track_seeds[i:i + 1],
                                        track_families=mixed.families[i:i + 1]))
             for i in range(4)]
    # THEN every run is the same as on its own (grip is per track, not per batch)
    for i, result in enumerate(alone):
        rows = slice(2 * i, 2 * i + 2)
        assert np.array_equal(together.lap_time_s[rows], result.lap_time_s)
    # and the expert finishes all, slower on the slippery tracks
    assert together.lap_completion == 1.0
    by_family = together.lap_completion_by_family()
    assert by_family == {"easy": 1.0, "low-grip": 1.0}
    speed = together.progress_m / together.lap_time_s
    low = together.track_family == "low-grip"
    assert speed[low].mean() < speed[~low].mean() - 2.0


def test_the_next_family_unlocks_only_at_mastery_one_at_a_time() -> None:
    assert next_unlocked(("easy",), 0.95, 0.95) == ("easy", "tight")
    assert next_unlocked(("easy",), 0.94, 0.95) == ("easy",)
    assert next_unlocked(("easy", "tight"), 1.0, 0.95) == ("easy", "tight", "fast-hairpin")
    assert next_unlocked(FAMILY_NAMES, 1.0, 0.95) == FAMILY_NAMES


def test_a_champion_that_masters_the_frontier_unlocks_and_a_restart_keeps_it(
        tmp_path: Path, expert, monkeypatch) -> None:
    # GIVEN a fresh curriculum beside a registry: only easy
    assert unlocked_families(tmp_path) == ("easy",)
    curriculum = Curriculum.in_registry(tmp_path, frontier_tracks=2)
    # WHEN an untrained champion (v1) is measured: it masters nothing, nothing unlocks
    weak = curriculum.observe(Policy(new_network(0)), 1)
    assert weak is not None and weak.lap_completion == 0.0 and weak.unlocked is None
    assert curriculum.unlocked == ("easy",)
    # WHEN the expert (v2) is measured on easy's mastery suite
    check = curriculum.observe(expert, 2)  # type: ignore[arg-type]
    # THEN it masters it and tight unlocks, measured on hidden tracks of the frontier
    assert check is not None and check.mastered and check.unlocked == "tight"
    assert check.frontier == "easy" and check.runs == 4
    assert not any(is_play_seed(s) for s in curriculum.mastery_suite(2).track_seeds)
    assert curriculum.unlocked == ("easy", "tight") and curriculum.frontier == "tight"
    # AND a restart reads it back (and any game server sharing the registry)
    again = Curriculum.in_registry(tmp_path, frontier_tracks=2)
    assert again.unlocked == ("easy", "tight") == unlocked_families(tmp_path)
    assert [c.version for c in again.checks] == [1, 2]
    # AND measuring a version again returns its record, without driving
    monkeypatch.setattr(curriculum_module, "evaluate", lambda *a: pytest.fail("re-measured"))
    assert again.observe(expert, 2) == check  # type: ignore[arg-type]


def test_a_curriculum_file_that_skips_a_family_is_refused(tmp_path: Path) -> None:
    (tmp_path / CURRICULUM_FILE).write_text(json.dumps(
        {"format": "crowdlearning.curriculum/1", "unlocked": ["easy", "technical"]}))
    with pytest.raises(ConfigurationError, match="prefix"):
        Curriculum.in_registry(tmp_path)
    off = Curriculum(None, frontier_tracks=0)
    assert off.observe(Policy(new_network(0)), 1) is None and off.unlocked == ("easy",)


def test_a_check_written_with_fields_this_version_lacks_or_has_since_still_loads(
        tmp_path: Path) -> None:
    # an older writer's check (no pooled_completion) and a newer one's (a field unknown here)
    old = {"version": 1, "frontier": "easy", "lap_completion": 1.0, "runs": 16,
           "mastery": 0.95, "unlocked": "tight", "at": "", "reason": "mastery"}
    new = {**old, "version": 2, "frontier": "tight", "unlocked": None, "reason": "stalled",
           "pooled_completion": 0.75, "added_later": [1, 2]}
    (tmp_path / CURRICULUM_FILE).write_text(json.dumps(
        {"format": "crowdlearning.curriculum/1", "unlocked": ["easy", "tight"],
         "checks": [old, new]}))
    checks = Curriculum.in_registry(tmp_path).checks
    assert [c.pooled_completion for c in checks] == [None, 0.75]
    assert checks[1].reason == "stalled" and checks[0].unlocked == "tight"


def test_play_seeds_of_families_never_collide_and_stay_play_seeds() -> None:
    assert play_seeds("easy", 8) == list(range(8))
    seeds = [s for f in FAMILY_NAMES for s in play_seeds(f, 8)]
    assert len(set(seeds)) == len(seeds) and all(is_play_seed(s) for s in seeds)


def _all_completed(policy, suite: EvalSuite) -> EvalResult:
    n = suite.num_runs
    return EvalResult(np.zeros(n), np.zeros(n), np.ones(n, bool), np.ones(n), np.ones(n),
                      np.zeros(n, bool), np.full(n, 50.0), np.ones(n, np.int64))


def test_close_round_measures_a_new_champion_unlocks_and_says_so(tmp_path: Path,
                                                                  monkeypatch) -> None:
    # GIVEN a registry whose champion v1 was promoted (from v0) but never measured
    registry = ModelRegistry(tmp_path / "models")
    trainer = DaggerTrainer(registry, AggregatedDataset(tmp_path / "data"))
    trainer.start(new_network(0), expert_demonstrations((100,), 20), {})
    registry.set_champion(registry.register(new_network(1), parent_version=0).version)
    service = VerdictService(trainer, Screener({}.__getitem__),
                             champion_suite=EvalSuite.hidden(2, max_steps=20))
    assert service.promotion_suite() is service.champion_suite
    # WHEN the round closes and v1 completes every lap of the frontier (easy)
    monkeypatch.setattr(curriculum_module, "evaluate", _all_completed)
    result = service.close_round()
    # THEN tight unlocks, the round says so, and the promotion suite spans both families
    assert result.unlocked_families == ("easy", "tight") and result.unlocked_now == "tight"
    assert result.mastery is not None and result.mastery["frontier"] == "easy"
    suite = service.promotion_suite()
    assert suite.family_names == ("easy", "tight") and suite.max_steps == 20
    assert len(suite.track_seeds) == 2
    # AND a restarted service keeps it, and does not measure v1 again
    restarted = VerdictService(trainer, Screener({}.__getitem__),
                               champion_suite=EvalSuite.hidden(2, max_steps=20))
    later = restarted.close_round()
    assert later.unlocked_families == ("easy", "tight") and later.unlocked_now is None
    assert later.mastery is None


def test_the_verdict_suite_is_drawn_within_the_unlocked_families() -> None:
    @dataclass(frozen=True)
    class _Config:  # a VerdictConfig with the ``families`` field (evaluation/verdict.py)
        rotation: int = 0
        families: tuple[str, ...] = ("easy",)

    config = VerdictConfig()
    assert VerdictService._verdict_config_within(config, ("easy",)) is config
    within = VerdictService._verdict_config_within(_Config(), ("easy", "tight"))  # type: ignore[arg-type]
    assert within.families == ("easy", "tight")


UP_TO_LOW_GRIP = FAMILY_NAMES[:FAMILY_NAMES.index("low-grip") + 1]


def test_a_cascade_unlocks_every_family_the_champion_already_masters(tmp_path: Path,
                                                                   monkeypatch) -> None:
    # GIVEN a cascading curriculum whose champion completes every lap but the low-grip ones
    def laps_but_low_grip(policy, suite: EvalSuite) -> EvalResult:
        result = _all_completed(policy, suite)
        assert suite.max_steps == 6000  # the mastery suite's own time limit
        if suite.family_names == ("low-grip",):
            result.completed[:] = False
        return result

    monkeypatch.setattr(curriculum_module, "evaluate", laps_but_low_grip)
    curriculum = Curriculum.in_registry(tmp_path, frontier_tracks=2, cascade=True,
                                        mastery_ticks=6000)
    # WHEN v1 is measured once
    check = curriculum.observe(Policy(new_network(0)), 1)
    # THEN every family it masters unlocks, up to the first it does not: the new frontier
    assert curriculum.unlocked == UP_TO_LOW_GRIP and curriculum.frontier == "low-grip"
    assert check is not None and check.frontier == "easy" and check.unlocked == "low-grip"
    assert [c.frontier for c in curriculum.checks] == list(UP_TO_LOW_GRIP)
    assert curriculum.checks[-1].unlocked is None  # low-grip not mastered: nothing after it
    assert len(FAMILY_NAMES) > len(UP_TO_LOW_GRIP)  # the families past it stay locked
    # AND the record is kept: a restart answers the same without driving
    again = Curriculum.in_registry(tmp_path, frontier_tracks=2, cascade=True)
    monkeypatch.setattr(curriculum_module, "evaluate", lambda *a: pytest.fail("re-measured"))
    assert again.observe(Policy(new_network(0)), 1) == check


def test_a_champion_the_crowd_no_longer_moves_unlocks_the_next_family(tmp_path: Path,
                                                                      monkeypatch) -> None:
    # GIVEN a champion (v3) that drives 15 of 16 frontier laps: not mastered (95%), above the
    # stall floor (80%)
    def fifteen_of_sixteen(policy, suite: EvalSuite) -> EvalResult:
        result = _all_completed(policy, suite)
        result.completed[0] = False
        return result

    monkeypatch.setattr(curriculum_module, "evaluate", fifteen_of_sixteen)
    curriculum = Curriculum.in_registry(tmp_path, frontier_tracks=8, stall_rounds=2)
    policy = Policy(new_network(0))
    assert curriculum.observe(policy, 3).unlocked is None  # type: ignore[union-attr]
    # WHEN it closes one round without being replaced: nothing yet
    assert curriculum.stalled(policy, 3) is None and curriculum.unlocked == ("easy",)
    # AND a restart keeps the count; the second round in a row drives fresh hidden tracks of
    # the frontier, pools them with the check it has, and unlocks tight
    again = Curriculum.in_registry(tmp_path, frontier_tracks=8, stall_rounds=2)
    check = again.stalled(policy, 3)
    assert check is not None and check.reason == "stalled" and check.unlocked == "tight"
    assert check.frontier == "easy" and check.lap_completion == 15 / 16
    assert check.pooled_completion == 30 / 32 and check.runs == 16
    assert again.unlocked == ("easy", "tight")
    # THEN the count starts again on the new frontier (and is measured there when due)
    monkeypatch.setattr(curriculum_module, "evaluate", fifteen_of_sixteen)
    assert again.stalled(policy, 3) is None and again.unlocked == ("easy", "tight")
    assert Curriculum.in_registry(tmp_path).to_dict()["stall"] == {
        "version": 3, "frontier": "tight", "rounds": 1}


def test_a_stalled_champion_is_judged_on_fresh_frontier_tracks_pooled(tmp_path: Path,
                                                                      monkeypatch) -> None:
    # GIVEN a champion that fails 4 of 16 laps on its mastery suite's tracks, and no others
    curriculum = Curriculum.in_registry(tmp_path, frontier_tracks=8, stall_rounds=2)
    first = set(curriculum.mastery_suite(5).track_seeds)

    def fails_its_first_suite(policy, suite: EvalSuite) -> EvalResult:
        result = _all_completed(policy, suite)
        if set(suite.track_seeds) == first:
            result.completed[:4] = False
        return result

    monkeypatch.setattr(curriculum_module, "evaluate", fails_its_first_suite)
    policy = Policy(new_network(0))
    assert curriculum.observe(policy, 5).lap_completion == 0.75  # type: ignore[union-attr]
    # WHEN it stalls: each stalled round drives hidden tracks it has not driven
    assert curriculum.stalled(policy, 5) is None
    check = curriculum.stalled(policy, 5)
    fresh = set(curriculum.recheck_suite(5, 1).track_seeds)
    assert not fresh & first and fresh != set(curriculum.recheck_suite(5, 2).track_seeds)
    # THEN 12 of 16 and 16 of 16 pool to 28 of 32, above the floor: the next family unlocks
    assert check is not None and check.unlocked == "tight"
    assert check.pooled_completion == 28 / 32 and check.lap_completion == 1.0

    # AND a champion that fails 4 of 16 laps on every suite stays below the floor, pooled
    def fails_everywhere(policy, suite: EvalSuite) -> EvalResult:
        result = _all_completed(policy, suite)
        result.completed[:4] = False
        return result

    monkeypatch.setattr(curriculum_module, "evaluate", fails_everywhere)
    other = Curriculum.in_registry(tmp_path / "other", frontier_tracks=8, stall_rounds=2)
    other.observe(policy, 5)
    assert all(other.stalled(policy, 5) is None for _ in range(5))
    stalled = [c for c in other.checks if c.reason == "stalled"]
    assert len(stalled) == 4 and stalled[-1].pooled_completion == 0.75
    assert other.unlocked == ("easy",)


def test_a_stalled_champion_below_the_floor_or_a_new_champion_unlocks_nothing(
        tmp_path: Path, monkeypatch) -> None:
    def half(policy, suite: EvalSuite) -> EvalResult:
        result = _all_completed(policy, suite)
        result.completed[::2] = False
        return result

    monkeypatch.setattr(curriculum_module, "evaluate", half)
    curriculum = Curriculum.in_registry(tmp_path, frontier_tracks=8, stall_rounds=2)
    policy = Policy(new_network(0))
    for _ in range(4):  # half the laps: the crowd still has failures to fix there
        assert curriculum.stalled(policy, 1) is None
    assert curriculum.unlocked == ("easy",)
    monkeypatch.setattr(curriculum_module, "evaluate", _all_completed)
    assert curriculum.stalled(policy, 2) is None  # another champion: its first round
    assert curriculum.stalled(policy, 2) is not None  # (all laps, measured now)
    off = Curriculum(None, frontier_tracks=8, stall_rounds=0)
    assert all(off.stalled(policy, 1) is None for _ in range(3))


def test_close_round_counts_only_rounds_the_crowd_played(tmp_path: Path, monkeypatch) -> None:
    # GIVEN a measured champion v0 with a stall rule of one round
    registry = ModelRegistry(tmp_path / "models")
    trainer = DaggerTrainer(registry, AggregatedDataset(tmp_path / "data"))
    trainer.start(new_network(0), expert_demonstrations((100,), 20), {})
    curriculum = Curriculum.in_registry(registry.root, frontier_tracks=2, stall_rounds=1)
    service = VerdictService(trainer, Screener({}.__getitem__),
                             champion_suite=EvalSuite.hidden(2, max_steps=20),
                             curriculum=curriculum)
    monkeypatch.setattr(curriculum_module, "evaluate", _all_completed)
    # WHEN a round closes with nothing judged: an idle round, nothing unlocks
    assert service.close_round().unlocked_now is None and curriculum.unlocked == ("easy",)
    # WHEN one closes after a contribution was judged (no effect) and nothing merged
    service._judged = 1
    result = service.close_round()
    # THEN the next family unlocks, and the round says so
    assert result.unlocked_now == "tight" and result.mastery is not None
    assert result.mastery["reason"] == "stalled"


def test_a_stall_unlock_cascades_through_families_the_champion_already_masters(
        tmp_path: Path, monkeypatch) -> None:
    def laps_but_low_grip(policy, suite: EvalSuite) -> EvalResult:
        result = _all_completed(policy, suite)
        if suite.family_names in (("easy",), ("low-grip",)):
            result.completed[0] = False  # 15 of 16: above the floor, not mastered
        return result

    monkeypatch.setattr(curriculum_module, "evaluate", laps_but_low_grip)
    curriculum = Curriculum.in_registry(tmp_path, frontier_tracks=8, stall_rounds=1,
                                        cascade=True)
    check = curriculum.stalled(Policy(new_network(0)), 4)
    # the stall unlocked tight; v4 masters tight, fast-hairpin and technical: on to low-grip
    assert curriculum.unlocked == UP_TO_LOW_GRIP and curriculum.frontier == "low-grip"
    assert check is not None and check.reason == "stalled" and check.unlocked == "low-grip"
    # (the last check: low-grip itself, 15 of 16, nothing after it)
    assert [c.reason for c in curriculum.checks] == ["stalled"] + ["mastery"] * 4
    assert curriculum.checks[-1].frontier == "low-grip" and curriculum.checks[-1].unlocked is None


def test_merges_are_anchored_on_the_mastered_families_play_tracks_only(tmp_path: Path,
                                                                        monkeypatch) -> None:
    # GIVEN a service with anchors on, and a champion that masters easy at the next close
    registry = ModelRegistry(tmp_path / "models")
    trainer = DaggerTrainer(registry, AggregatedDataset(tmp_path / "data"), anchor_share=1.0)
    trainer.start(new_network(0), expert_demonstrations((100,), 20), {})
    curriculum = Curriculum.in_registry(registry.root, frontier_tracks=2, cascade=False)
    service = VerdictService(trainer, Screener({}.__getitem__),
                             champion_suite=EvalSuite.hidden(2, max_steps=20),
                             curriculum=curriculum)
    # THEN while easy is the frontier nothing is mastered and a merge has no anchors
    assert service.anchor_tracks() == []
    monkeypatch.setattr(curriculum_module, "evaluate", _all_completed)
    curriculum.observe(trainer.policy(), 0)
    assert curriculum.unlocked == ("easy", "tight")
    # AND once tight is the frontier, the anchors are easy's play tracks, none of tight's
    tracks = service.anchor_tracks()
    assert [t.digest for t in tracks] == [
        t.digest for t in play_tracks(ANCHOR_TRACKS_PER_FAMILY, ("easy",)).values()]
    # AND a trainer without anchors asks for none
    plain = VerdictService(DaggerTrainer(registry, AggregatedDataset(tmp_path / "data")),
                           Screener({}.__getitem__), curriculum=curriculum,
                           champion_suite=EvalSuite.hidden(2, max_steps=20))
    assert plain.anchor_tracks() == []
