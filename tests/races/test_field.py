from __future__ import annotations

from crowdlearning.races.field import choose_field, grid_slots


def test_the_champion_and_the_most_recent_other_versions_race() -> None:
    field = choose_field(range(12), 7, 8, seed=3)
    versions = sorted(e.version for e in field)
    assert versions == [4, 5, 6, 7, 8, 9, 10, 11]
    assert [e.car for e in field] == list(range(8))
    roles = {e.version: e.role for e in field}
    assert roles[7] == "champion" and roles[11] == "candidate" and roles[4] == "previous"
    assert next(e for e in field if e.version == 7).name == "v7 (champion)"


def test_the_grid_order_comes_from_the_seed() -> None:
    a = choose_field(range(8), 0, 8, seed=1)
    assert a == choose_field(range(8), 0, 8, seed=1)
    assert any(choose_field(range(8), 0, 8, seed=s) != a for s in range(2, 6))


def test_small_fields_and_the_staggered_grid() -> None:
    assert [e.version for e in choose_field([3], 3, 8, seed=0)] == [3]
    assert choose_field([], None, 8, seed=0) == []
    assert len(choose_field(range(20), 19, 2, seed=0)) == 2
    slots = grid_slots(4, 10.0, 12.0)
    assert [s.behind_m for s in slots] == [0.0, 10.0, 20.0, 30.0]
    assert [s.lateral_m for s in slots] == [2.0, -2.0, 2.0, -2.0]
