"""Crowd play in a live race: spectators take the wheel of a car as labellers.

A signed-in spectator joins a car (``CrowdSeats.join``) and sends ``steer`` messages: the same
input forms as ``/ws/play`` (analog values, or a keyboard's held keys turned into a value by the
server's ``learning.device.KeyboardWheel`` stepped on the car's own proposal, as in play). Many
labellers label the very same live states at once; a labeller never moves an ordinary car
(label mode with ``beta`` 0: the labels are for the states the car visited).

Each labeller's input is logged per race tick (a seat's row: 32 bytes a tick; at most
``races_max_labellers`` seats: 200 x 6,000 ticks is about 38 MB at the very most). When the
car's segment ends (a reset, its DNF, the end of the race: ``runner.Segment``) or the labeller
leaves, ``labeller_contribution`` makes their ``Contribution`` of that segment: the car's
recorded states, observations, proposals and executed actions, and that labeller's own
inputs; the service hands it to the referee like a practice run.

The crowd car (``Entrant.role == "crowd"``) executes the crowd's aggregate (``crowd_input``):
per control, the **weighted median** of the values of the labellers on it who gave one this
tick (a resting keyboard wheel gives none), each weighted by their verdict record
(``verdict_weight``): ``(1 + improved) / (2 + judged)`` over their latest ``races_weight_runs``
verdicts (a newcomer 0.5; someone whose last 20 runs all improved the model 0.95; rejected or
worse runs count as judged, not improved). Nobody steering it: its policy drives.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from crowdlearning.learning.contribution import Contribution
from crowdlearning.learning.device import ANALOG, KeyboardWheel, WheelParams, device_meta
from crowdlearning.races.runner import RaceRunner, Segment

__all__ = ["CrowdSeats", "Seat", "crowd_input", "labeller_contribution", "verdict_weight",
           "weighted_median"]

MAX_CONTRIBUTION_TICKS = 20 * 60 * 30  # ``learning.contribution``'s bound


def weighted_median(values: Sequence[float] | np.ndarray,
                    weights: Sequence[float] | np.ndarray) -> float:
    """The weighted median of the finite ``values`` with positive weight (NaN if none): the
    value where the cumulative weight, in increasing order, reaches half the total; exactly half
    at a value: the midpoint between it and the next."""
    v, w = np.asarray(values, np.float64), np.asarray(weights, np.float64)
    ok = np.isfinite(v) & np.isfinite(w) & (w > 0)
    v, w = v[ok], w[ok]
    if not len(v):
        return float("nan")
    order = np.argsort(v, kind="stable")
    v, w = v[order], w[order]
    cum, half = np.cumsum(w), w.sum() / 2
    i = int(np.searchsorted(cum, half))
    i = min(i, len(v) - 1)
    if np.isclose(cum[i], half, rtol=1e-12, atol=0.0) and i + 1 < len(v):
        return float((v[i] + v[i + 1]) / 2)
    return float(v[i])


def crowd_input(player: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(steer, throttle): per control the weighted median of ``player`` (k, 2) rows giving one
    (NaN per control where none does)."""
    player = np.asarray(player, np.float64).reshape(-1, 2)
    return np.array([weighted_median(player[:, d], weights) for d in range(2)])


def verdict_weight(decisions: Iterable[str]) -> float:
    """A labeller's weight from their latest verdicts' decisions (module docstring)."""
    decisions = list(decisions)
    improved = sum(d == "improved" for d in decisions)
    return (1 + improved) / (2 + len(decisions))


@dataclass
class Seat:
    """A labeller on a car."""

    index: int  # row in ``CrowdSeats``' arrays
    user_id: int
    player_id: str
    username: str
    car: int
    weight: float
    joined_tick: int
    last_input_tick: int = -1
    devices: set[str] = field(default_factory=set)


class CrowdSeats:
    """The labellers of one race (module docstring); ``tick`` is the runner's ``crowd_input``."""

    def __init__(self, runner: RaceRunner, max_seats: int,
                 wheel: WheelParams | None = None) -> None:
        self.runner, self.max_seats = runner, max_seats
        self.seats: dict[int, Seat] = {}  # by user id
        self._free: list[int] = []
        self._rows = 0
        self.wheel = KeyboardWheel(0, wheel)
        self.car = np.zeros(0, np.int64)  # per row: the car, -1 free
        self.value = np.zeros((0, 2))  # the latest analog input (NaN: none)
        self.input_tick = np.zeros(0, np.int64)
        self.keys = np.zeros(0, np.int64)  # the held keys' code (ANALOG: an analog input)
        self.weight = np.zeros(0)
        self.log_player = np.zeros((0, 0, 2))
        self.log_tick = np.zeros((0, 0), np.int64)
        self.log_keys = np.zeros((0, 0), np.int64)
        self._cleared: set[int] = set()  # cars whose wheels rest at their next tick

    def __len__(self) -> int:
        return len(self.seats)

    def counts(self) -> list[int]:
        """Labellers per car."""
        cars = self.car[self.car >= 0]
        return np.bincount(cars, minlength=self.runner.n).tolist()

    # --- seats ---------------------------------------------------------------------------
    def join(self, user_id: int, player_id: str, username: str, car: int,
             weight: float) -> Seat:
        if user_id in self.seats:
            raise ValueError("already steering a car of this race")
        if len(self.seats) >= self.max_seats:
            raise OverflowError("every seat of this race is taken")
        index = self._free.pop() if self._free else self._grow_rows()
        self.car[index], self.weight[index] = car, weight
        self.value[index], self.input_tick[index], self.keys[index] = np.nan, -1, ANALOG
        self.wheel.reset([index])
        self.log_player[index], self.log_tick[index], self.log_keys[index] = np.nan, -1, ANALOG
        seat = Seat(index, user_id, player_id, username, car, weight, self.runner.tick)
        self.seats[user_id] = seat
        return seat

    def leave(self, user_id: int) -> Seat | None:
        seat = self.seats.pop(user_id, None)
        if seat is not None:
            self.car[seat.index] = -1
            self._free.append(seat.index)
        return seat

    def set_input(self, seat: Seat, tick: int, steer: float | None, throttle: float | None,
                  keys: int | None, device: str) -> None:
        """The labeller's latest input, answering frame ``tick`` (checked by the caller)."""
        i = seat.index
        seat.last_input_tick = tick
        seat.devices.add(device)
        if keys is not None:
            self.keys[i], self.value[i], self.input_tick[i] = keys, np.nan, tick
            return
        self.keys[i] = ANALOG
        self.value[i] = [np.nan if steer is None else steer,
                         np.nan if throttle is None else throttle]
        self.input_tick[i] = tick if steer is not None or throttle is not None else -1

    def rest_wheels(self, car: int) -> None:
        """A new segment of ``car`` begins: its labellers' wheels start at rest (as the replay
        of their keys does, from the segment's first tick)."""
        self._cleared.add(car)

    # --- every tick ------------------------------------------------------------------------
    def tick(self, tick: int, proposed: np.ndarray, alive: np.ndarray) -> np.ndarray | None:
        """Step the labellers' inputs for ``tick`` (the cars' proposals ``(n, 2)``), log them,
        and return the crowd car's aggregate (None when nobody steers it)."""
        rows = np.flatnonzero(self.car >= 0)
        if not len(rows):
            return None
        if self._cleared:
            rest = rows[np.isin(self.car[rows], list(self._cleared))]
            self.wheel.reset(rest)
            self._cleared.clear()
        rows = rows[alive[self.car[rows]]]
        if not len(rows):
            return None
        t = self._grow_ticks(tick)
        prop = proposed[self.car[rows]]
        keys = np.where(self.input_tick[rows] >= 0, self.keys[rows], ANALOG)
        player = self.value[rows].copy()
        in_tick = self.input_tick[rows].copy()
        step = self.wheel.step(rows, keys, prop)
        kb = keys >= 0
        player[kb] = step.player[kb]
        in_tick[kb] = np.where(step.active[kb].any(axis=1), in_tick[kb], -1)
        given = np.isfinite(player).any(axis=1)
        in_tick = np.where(given, in_tick, -1)
        self.log_player[rows, t] = player
        self.log_tick[rows, t] = in_tick
        self.log_keys[rows, t] = keys
        car = self.runner.crowd_car
        if car is None:
            return None
        on = self.car[rows] == car
        if not on.any():
            return None
        return crowd_input(player[on], self.weight[rows][on])

    # --- storage ---------------------------------------------------------------------------
    def _grow_rows(self) -> int:
        index = self._rows
        self._rows += 1
        if index >= len(self.car):
            cap = max(8, 2 * len(self.car))
            extra = cap - len(self.car)
            ticks = self.log_tick.shape[1]
            self.car = np.r_[self.car, np.full(extra, -1, np.int64)]
            self.value = np.r_[self.value, np.full((extra, 2), np.nan)]
            self.input_tick = np.r_[self.input_tick, np.full(extra, -1, np.int64)]
            self.keys = np.r_[self.keys, np.full(extra, ANALOG, np.int64)]
            self.weight = np.r_[self.weight, np.zeros(extra)]
            self.log_player = np.concatenate(
                [self.log_player, np.full((extra, ticks, 2), np.nan)])
            self.log_tick = np.concatenate([self.log_tick, np.full((extra, ticks), -1,
                                                                   np.int64)])
            self.log_keys = np.concatenate([self.log_keys, np.full((extra, ticks), ANALOG,
                                                                   np.int64)])
            wheel = KeyboardWheel(cap, self.wheel.params)
            wheel.value[:len(self.wheel.value)] = self.wheel.value
            wheel.holding[:len(self.wheel.holding)] = self.wheel.holding
            self.wheel = wheel
        return index

    def _grow_ticks(self, tick: int) -> int:
        ticks = self.log_tick.shape[1]
        if tick >= ticks:
            extra = max(64, ticks, tick + 1 - ticks)
            rows = len(self.car)
            self.log_player = np.concatenate(
                [self.log_player, np.full((rows, extra, 2), np.nan)], axis=1)
            self.log_tick = np.concatenate(
                [self.log_tick, np.full((rows, extra), -1, np.int64)], axis=1)
            self.log_keys = np.concatenate(
                [self.log_keys, np.full((rows, extra), ANALOG, np.int64)], axis=1)
        return tick

    def inputs(self, seat: Seat, segment: Segment) -> dict[str, np.ndarray]:
        """The seat's logged input over the segment's ticks (copies)."""
        a, b = segment.first, segment.end
        ticks = self.log_tick.shape[1]

        def cut(log: np.ndarray, fill: float | int) -> np.ndarray:
            out = np.full((b - a, *log.shape[2:]), fill, dtype=log.dtype)
            hi = min(b, ticks)
            if hi > a:
                out[:hi - a] = log[seat.index, a:hi]
            return out

        return {"player": cut(self.log_player, np.nan), "input_tick": cut(self.log_tick, -1),
                "keys": cut(self.log_keys, ANALOG)}


def labeller_contribution(run_id: str, seat: Seat, segment: Segment,
                          car: dict[str, np.ndarray], inputs: dict[str, np.ndarray], *,
                          model_version: int, race_id: str,
                          wheel: WheelParams | None = None) -> Contribution | None:
    """The labeller's contribution of ``segment`` (``car``: ``RaceRunner.recorded``; ``inputs``:
    ``CrowdSeats.inputs``), or None when they gave no input in it. Ticks are the race's; labels
    where the labeller gave input (label mode: for the states the car visited)."""
    n = min(segment.end - segment.first, MAX_CONTRIBUTION_TICKS)
    player = inputs["player"][:n]
    if n < 1 or not np.isfinite(player).any():
        return None
    keys = inputs["keys"][:n]
    meta: dict = {"race_id": race_id, "car": segment.car, "segment": segment.reason,
                  "crowd": True}
    if (keys >= 0).any():
        meta["device"] = device_meta(keys, seat.devices & {"keyboard"} or {"keyboard"},
                                     wheel or WheelParams())
    return Contribution(
        contribution_id=run_id, contributor_id=seat.player_id, session_id=run_id,
        mode="label", model_version=model_version, beta=0.0, start=segment.start,
        ticks=np.arange(segment.first, segment.first + n), states=car["states"][:n],
        observations=car["observations"][:n], proposed=car["proposed"][:n],
        executed=car["executed"][:n], player=player, input_tick=inputs["input_tick"][:n],
        intervention=np.zeros(n, bool), meta=meta)
