"""The market study plays personas through the server's verdict path and reports earnings."""

from __future__ import annotations

from pathlib import Path

import pytest

from crowdlearning.cli import main
from crowdlearning.crowd.study import StudyConfig, format_report, plot_report, run_study
from crowdlearning.evaluation.verdict import VerdictConfig
from crowdlearning.learning.finetune import FinetuneConfig

pytestmark = pytest.mark.timeout(900)
SMALL = VerdictConfig(null_runs=4, null_ticks=400, suite_size=8, tracks_per_look=4,
                      starts_per_track=2, finetune=FinetuneConfig(updates=200))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    cfg = StudyConfig(personas=("human-150-0.2", "copier-0.03", "adversary"), runs=2, ticks=600,
                      replays=2, honest="human-150-0.2", verdict=SMALL)
    return run_study(cfg, tmp_path_factory.mktemp("study"))


def test_saboteurs_pay_copiers_earn_nothing(report: dict) -> None:
    people = report["personas"]
    for mode in ("label", "takeover"):
        assert people[f"adversary|{mode}"]["hbar_per_run"] < 0
        copier = people[f"copier-0.03|{mode}"]
        assert copier["paid"] == 0 and copier["penalized"] == 0 and copier["runs"] == 2
    # the gambler's expectation falls as the sabotaged share grows
    for curve in report["gambler_curve"].values():
        values = list(curve.values())
        assert values == sorted(values, reverse=True)
    assert report["books"]  # the ledger's invariants were checked (it raises otherwise)


def test_attacks_on_paid_runs_are_tried_and_the_report_reads(report: dict, tmp_path: Path
                                                              ) -> None:
    paid = sum(s["paid"] for k, s in report["personas"].items()
               if not k.startswith(("replayer", "sybil")))
    attacks = [s for k, s in report["personas"].items() if k.startswith(("replayer", "sybil"))]
    assert paid > 0  # the honest player was paid: the attacks below were tried
    # every paid run (up to 2 a round) is replayed three ways and split once
    assert sum(s["runs"] for s in attacks) == 4 * min(paid, 2)
    for key, s in report["personas"].items():
        if key.startswith("sybil"):  # a part of a paid run: all of it was accepted already
            assert s["paid"] == 0 and s["rejected"] == s["runs"]
    text = format_report(report)
    assert "| persona | mode |" in text and "gambler" in text
    assert plot_report(report, tmp_path / "p.png").stat().st_size > 1000


def test_bad_arguments_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["market-study", "--personas", "expert,nobody"])
    assert exc.value.code == 2
    assert "unknown persona 'nobody'" in capsys.readouterr().err
