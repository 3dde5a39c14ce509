"""A candidate replaces the champion only if it is not less safe and not slower."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from crowdlearning.evaluation.promotion import promotion
from crowdlearning.evaluation.suite import EvalResult


def _result(completed: list[bool], lap_s: list[float], exited: list[bool] | None = None
            ) -> EvalResult:
    n = len(completed)
    done = np.asarray(completed)
    out = np.asarray(exited if exited is not None else [not c for c in completed])
    progress = np.where(done, 1.0, 0.5)
    return EvalResult(track_seed=np.arange(n), start_s_m=np.zeros(n), completed=done,
                      progress_frac=progress, progress_m=progress * 500.0, exited=out,
                      lap_time_s=np.where(done, np.asarray(lap_s, float), np.nan),
                      laps=done.astype(np.int64))


def test_a_safer_but_crawling_candidate_is_refused_with_the_reason() -> None:
    champion = _result([True, True, False], [36.0, 40.0, np.nan])
    crawler = _result([True, True, True], [67.0, 70.0, 90.0])
    decision = promotion(crawler, champion)
    assert not decision.promoted
    assert "slower" in decision.reason
    assert decision.champion_lap_s == pytest.approx(38.0)
    assert decision.candidate_lap_s == pytest.approx(68.5)


def test_a_candidate_finishing_a_new_slow_track_is_not_called_slower() -> None:
    champion = _result([True, True, False], [36.0, 40.0, np.nan])
    better = _result([True, True, True], [36.0, 39.5, 120.0])  # the hard track is slow
    decision = promotion(better, champion)
    assert decision.promoted and decision.reason == ""


def test_less_safe_is_refused_even_when_faster() -> None:
    champion = _result([True, True, True], [40.0, 40.0, 40.0])
    reckless = _result([True, True, False], [30.0, 30.0, np.nan])
    decision = promotion(reckless, champion)
    assert not decision.promoted
    assert "fewer laps" in decision.reason and "leaves the track" in decision.reason


def test_within_the_pace_tolerance_counts_as_not_slower() -> None:
    champion = _result([True, True], [40.0, 40.0])
    assert promotion(_result([True, True], [40.6, 40.6]), champion).promoted  # +1.5%
    assert not promotion(_result([True, True], [41.2, 41.2]), champion).promoted  # +3%


def test_different_runs_are_refused() -> None:
    with pytest.raises(ValueError):
        promotion(_result([True], [1.0]), _result([True, True], [1.0, 1.0]))


def test_a_mastered_family_may_not_lose_a_lap_to_gains_on_the_frontier() -> None:
    families = np.array(["easy", "easy", "tight", "tight", "low-grip", "low-grip"])
    champion = dataclasses.replace(
        _result([True, True, True, True, False, False], [50.0] * 6), track_family=families)
    # one easy lap lost, both low-grip laps gained: more laps in all, as fast
    candidate = dataclasses.replace(
        _result([True, False, True, True, True, True], [50.0] * 6), track_family=families)
    assert promotion(candidate, champion).promoted  # over the whole suite: safer
    decision = promotion(candidate, champion, protected=("easy", "tight"))
    assert not decision.promoted and decision.reason.endswith("completes fewer laps on easy "
                                                              "tracks")
    # the frontier itself may trade, and a family absent from the suite is no reason
    assert promotion(candidate, champion, protected=("tight", "technical")).promoted


def _w5_like(n: int = 32) -> tuple[EvalResult, EvalResult]:
    """A champion that crawls (few exits, many laps run out of time) and a candidate that
    finishes far more laps for two exits more, on the same ``n`` runs."""
    champ_done = np.arange(n) % 4 != 0  # a quarter of its laps not finished in time
    champ_exit = np.zeros(n, bool)
    cand_done = np.ones(n, bool)
    cand_exit = np.zeros(n, bool)
    cand_exit[[1, 2]] = True  # it left the track twice (an exit ends the run)
    cand_done[[1, 2]] = False  # and still finishes 30 laps against 24
    return (_result(list(cand_done), [40.0] * n, list(cand_exit)),
            _result(list(champ_done), [40.0] * n, list(champ_exit)))


def test_strict_exits_refuse_a_candidate_that_finishes_far_more_laps() -> None:
    candidate, champion = _w5_like()
    decision = promotion(candidate, champion, exit_confidence=0.0)
    assert not decision.promoted
    assert decision.reason == "leaves the track more often (2 vs 0 runs)"


def test_exits_weighed_against_laps_at_a_stated_confidence() -> None:
    from crowdlearning.evaluation.promotion import exits_more_p

    candidate, champion = _w5_like()
    assert exits_more_p(candidate, champion) == pytest.approx(0.25)  # 2 of 2 discordant
    passed = promotion(candidate, champion, exit_confidence=0.9)
    assert passed.promoted and passed.to_dict()["exits_more_p"] == pytest.approx(0.25)
    assert "exits_more_p" not in promotion(candidate, champion, exit_confidence=0.0).to_dict()
    for bad in (-0.1, 1.0):  # 1 would never refuse a candidate for its exits
        with pytest.raises(ValueError, match="exit_confidence"):
            promotion(candidate, champion, exit_confidence=bad)
    # four exits more than a champion that never left: p = 1/16 < 0.1, refused
    exited = candidate.exited.copy()
    exited[[3, 4]] = True
    worse = dataclasses.replace(candidate, exited=exited)
    assert exits_more_p(worse, champion) == pytest.approx(1 / 16)
    decision = promotion(worse, champion, exit_confidence=0.9)
    assert not decision.promoted and "p = 0.062 < 0.10" in decision.reason
    # asking for 95% confidence before calling it less safe lets it pass; 50% refuses it
    assert promotion(worse, champion, exit_confidence=0.95).promoted
    assert not promotion(worse, champion, exit_confidence=0.5).promoted
    # runs where both left the track tell nothing
    both = dataclasses.replace(champion, exited=exited.copy())
    assert exits_more_p(worse, both) == 1.0


def test_more_exits_without_more_laps_are_refused_whatever_the_confidence() -> None:
    champion = _result([True, True, False, False], [40.0] * 4, [False, False, False, False])
    candidate = _result([True, True, False, False], [39.0] * 4, [False, False, True, False])
    decision = promotion(candidate, champion, exit_confidence=0.9)
    assert not decision.promoted and decision.reason.endswith("without finishing more laps")


def test_exit_confidence_comes_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from crowdlearning.config import get_settings

    candidate, champion = _w5_like()
    monkeypatch.setenv("CROWDLEARNING_PROMOTION_EXIT_CONFIDENCE", "0.9")
    get_settings.cache_clear()
    try:
        assert promotion(candidate, champion).promoted
    finally:
        monkeypatch.delenv("CROWDLEARNING_PROMOTION_EXIT_CONFIDENCE")
        get_settings.cache_clear()
    assert not promotion(candidate, champion).promoted  # default: strict
