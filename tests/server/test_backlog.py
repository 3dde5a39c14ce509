"""The verdict backlog: order, survival across restarts, damaged entries set aside."""

from __future__ import annotations

from pathlib import Path

from crowdlearning.server.backlog import VerdictBacklog
from crowdlearning.server.game_loop import RunSpec


def spec(i: int, paid: bool = True) -> RunSpec:
    return RunSpec(f"run-{i}", f"p{i}", f"user{i}", 3, "takeover", paid, 0.5)


def test_runs_come_back_in_order_after_a_restart(tmp_path: Path) -> None:
    backlog = VerdictBacklog(tmp_path)
    places = [backlog.push(spec(i), f"data-{i}".encode()) for i in range(3)]
    backlog.remove(backlog.head(1)[0][0])
    reopened = VerdictBacklog(tmp_path)
    assert places == [1, 2, 3] and len(reopened) == 2
    assert [(s, d) for _, s, d in reopened.head(5)] == [(spec(1), b"data-1"),
                                                       (spec(2), b"data-2")]
    assert reopened.push(spec(3), b"data-3") == 3  # numbering goes on after the last kept


def test_paid_runs_are_judged_before_practice_runs_even_after_a_restart(tmp_path: Path) -> None:
    backlog = VerdictBacklog(tmp_path)
    places = [backlog.push(spec(0, paid=False), b"practice-0"),
              backlog.push(spec(1), b"paid-1"),
              backlog.push(spec(2, paid=False), b"practice-2"),
              backlog.push(spec(3), b"paid-3")]
    assert places == [1, 1, 3, 2]  # a paid run goes ahead of the practice runs waiting
    order = [d for _, _, d in VerdictBacklog(tmp_path).head(10)]
    assert order == [b"paid-1", b"paid-3", b"practice-0", b"practice-2"]
    reopened = VerdictBacklog(tmp_path)
    assert reopened.push(spec(4), b"paid-4") == 3  # numbering goes on after either kind
    assert [d for _, _, d in reopened.head(3)] == [b"paid-1", b"paid-3", b"paid-4"]
    assert {s.run_id for s in (spec(i) for i in range(5))} == reopened.run_ids()


def test_a_damaged_entry_is_set_aside_not_judged_nor_deleted(tmp_path: Path) -> None:
    backlog = VerdictBacklog(tmp_path)
    backlog.push(spec(0), b"data-0")
    backlog.push(spec(1), b"data-1")
    first = sorted(tmp_path.glob("*.run"))[0]
    first.write_bytes(b"\x00\x00\x00\xffnot json")
    reopened = VerdictBacklog(tmp_path)
    assert [s for _, s, _ in reopened.head(5)] == [spec(1)]
    assert first.with_suffix(".bad").is_file() and len(reopened) == 1


def test_run_ids_are_read_from_the_headers_and_damaged_entries_name_none(
        tmp_path: Path) -> None:
    backlog = VerdictBacklog(tmp_path)
    for i in range(3):
        backlog.push(spec(i), f"data-{i}".encode())
    sorted(tmp_path.glob("*.run"))[1].write_bytes(b"\x00\x00")
    assert VerdictBacklog(tmp_path).run_ids() == {"run-0", "run-2"}
