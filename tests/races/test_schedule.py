from __future__ import annotations

from crowdlearning.evaluation.suite import PLAY_SEED_LIMIT
from crowdlearning.races.schedule import Timetable, choose_track, race_seed
from crowdlearning.sim.families import get_family


def test_races_start_every_interval_aligned_to_the_epoch() -> None:
    table = Timetable(300, base_seed=1)
    slots = table.upcoming(1_000_000_050.0, 3)
    assert [s.starts_at for s in slots] == [1_000_000_200.0, 1_000_000_500.0, 1_000_000_800.0]
    assert [s.race_id for s in slots] == ["r1000000200", "r1000000500", "r1000000800"]
    assert table.latest(1_000_000_050.0).starts_at == 999_999_900.0
    assert table.upcoming(1_000_000_200.0, 1)[0].starts_at == 1_000_000_500.0  # strictly after


def test_a_race_id_names_its_slot_and_seed() -> None:
    table = Timetable(300, base_seed=1)
    slot = table.upcoming(1e9, 1)[0]
    assert table.slot_of(slot.race_id) == slot
    assert table.slot_of("r1000000201") is None  # not a start of this timetable
    assert table.slot_of("x12") is None and table.slot_of("r") is None
    assert slot.seed == race_seed(1, slot.race_id) != race_seed(2, slot.race_id)
    assert Timetable(300, base_seed=1).slot_of(slot.race_id) == slot  # every server agrees


def test_the_track_is_drawn_from_the_seed_within_the_unlocked_families() -> None:
    families = ("easy", "tight")
    choices = [choose_track(seed, families) for seed in range(40)]
    assert choices == [choose_track(seed, families) for seed in range(40)]
    assert {c.family for c in choices} == set(families)
    for c in choices:
        assert 0 <= c.track_seed < PLAY_SEED_LIMIT  # a play seed: never a hidden track
        assert c.track_seed // 100_000_000 == get_family(c.family).rank
    c = choices[0]
    assert c.track().name == c.name
    assert {choose_track(s, ("easy",)).family for s in range(10)} == {"easy"}
    named = choose_track(3, families, named="oval")
    assert (named.family, named.track().name) == ("named", "oval")
