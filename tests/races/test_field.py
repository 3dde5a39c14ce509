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


def test_team_forks_take_their_slots_with_their_team_names() -> None:
    forks = [(20, "Night Owls"), (15, "larks"), (18, "r2 d2")]  # best placed first
    field = choose_field([*range(12), 15, 18, 20], 7, 8, seed=3, crowd=True, forks=forks,
                         fork_slots=2)
    by_version = {(e.version, e.role): e for e in field}
    assert len(field) == 8 and [e.car for e in field] == list(range(8))
    assert {(v, e.team) for (v, role), e in by_version.items() if role == "fork"} == {
        (20, "Night Owls"), (15, "larks")}
    assert by_version[(20, "fork")].name == "Night Owls (team fork v20)"
    assert (7, "champion") in by_version and (7, "crowd") in by_version
    # the 4 other places: the most recent versions, never a fork (18 waits for a slot)
    others = sorted(v for v, role in by_version if role in ("candidate", "previous"))
    assert others == [8, 9, 10, 11]
    assert all(e.team is None for e in field if e.role != "fork")
    assert choose_field(range(12), 7, 8, seed=3, forks=forks, fork_slots=0) == choose_field(
        range(12), 7, 8, seed=3)


def test_the_champion_comes_before_forks_in_a_small_field() -> None:
    field = choose_field(range(4), 3, 2, seed=0, forks=[(9, "owls"), (8, "larks")],
                         fork_slots=2)
    assert sorted((e.version, e.role) for e in field) == [(3, "champion"), (9, "fork")]
