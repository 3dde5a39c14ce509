"""Team forks: a model version built only from one team's accepted data, raced beside the rest.

**What a team's data is.** A contribution is *accepted* when its verdict said it improved the
champion; the round then merges it (``platform/service.py`` ``close_round`` ->
``learning/dagger.py`` ``merge``): its labels are appended to the aggregated dataset under the
contributor's player id (``p<user id>``, ``server/store.py`` ``User.player_id``) and its id is
listed in the metadata of the version it was merged into. A team's data is every contribution
in the dataset whose contributor is a *current* member and which a mainline (non-fork) version
lists: accepted and merged, never a contribution still waiting for its round (its data is not
in the dataset yet). A member's whole history counts, from before they joined too; a member
who left no longer counts from the next build on.

**How a fork is built.** From the *base* the champion was built from (the first version of the
champion's lineage: the initial model, v0, trained on the expert demonstrations), fine-tuned on
the base's own data plus the team's contributions, with ``races_fork_updates`` gradient steps:
the champion's own recipe (``DaggerTrainer.merge``: base data plus the crowd's accepted data)
with only the team's players in it. Starting from the champion instead would carry every other
player's data in its weights. Deterministic: the training seed comes from ``races_seed``, the
team's id and the digest of exactly the shards trained on (``fork_seed``), and training is
single-threaded on the CPU (``learning/train.py``), so the same data gives the same weights.

The fork is registered with ``parent_version`` = the base and ``contributions`` = the team's
contributions (its lineage's data is exactly what it was trained on), and
``training["kind"] == FORK_KIND`` with the team's id and name and its members' player ids. The
registry never lets it be the champion (``ModelRegistry.set_champion``), so it never becomes a
merge's parent nor judges a verdict.

**When.** ``TeamForks.run_forever`` (an asyncio task of the game server) looks every
``races_fork_check_s`` for teams with at least ``races_fork_min_contributions`` contributions,
some of them not in the team's latest fork; such a team's fork is built from the builder's own
thread, never on the event loop, its fine-tune (``train_fork``, ~1 s of CPU at 500 updates) in
a child process at nice 19, started for the build (``races/offload.py``;
``races_offload=thread``: on the builder's thread at the lowest CPU priority, which still takes
the GIL from the game loop; docs/benchmarks.md, "Race jobs beside the game loop"). The server
keeps the claim and the registration. A team's fork is built at most once per
``races_fork_interval_s``: the build is claimed in the shared database first
(``TeamStore.claim_fork``), so of several game servers one builds it. A server without the
aggregated dataset (``data_dir/dataset``) builds none.

**Racing.** ``racing`` names the forks of the teams that have one, best placed first (their
points this season), then the most recent: ``races/field.py`` gives them up to
``races_fork_slots`` places, labelled with the team's name.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from crowdlearning.config import Settings
from crowdlearning.learning.dataset import AggregatedDataset
from crowdlearning.learning.registry import FORK_KIND, ModelRegistry, RegistryError, is_fork
from crowdlearning.learning.train import TrainConfig, fit
from crowdlearning.policy.checkpoint import ModelMeta
from crowdlearning.races.offload import Offload, OffloadMode, Weights, net_from_weights, weights_of
from crowdlearning.races.teams import Team, TeamStore

__all__ = ["ForkConfig", "TeamForks", "TrainedFork", "build_fork", "fork_seed",
           "merged_contributions", "player_id", "team_contributions", "train_fork"]

log = logging.getLogger(__name__)
RACING_TTL_S = 5.0  # ``racing`` is asked for every planned race: teams re-read at most this often
T = TypeVar("T")


def player_id(user_id: int) -> str:
    """A user's id in contributions and the dataset (``server.store.User.player_id``)."""
    return f"p{user_id}"


@dataclass(frozen=True)
class ForkConfig:
    min_contributions: int = 5
    interval_s: float = 3600.0
    check_s: float = 60.0
    updates: int = 500
    slots: int = 2
    seed: int = 0
    offload: OffloadMode = "process"  # where the fine-tune runs (``races_offload``)

    @classmethod
    def from_settings(cls, settings: Settings) -> ForkConfig:
        return cls(settings.races_fork_min_contributions, settings.races_fork_interval_s,
                   settings.races_fork_check_s, settings.races_fork_updates,
                   settings.races_fork_slots, settings.races_seed, settings.races_offload)


def merged_contributions(registry: ModelRegistry) -> set[str]:
    """Every contribution a mainline version lists (merged after an *improved* verdict)."""
    out: set[str] = set()
    for v in registry.mainline_versions():
        out.update(registry.meta(v).contributions)
    return out


def team_contributions(entries: Iterable[Mapping], merged: set[str],
                       players: set[str]) -> list[str]:
    """The merged contributions of ``players`` among the dataset's ``entries``, in append
    order."""
    return [e["contribution_id"] for e in entries
            if e["contributor_id"] in players and e["contribution_id"] in merged]


def fork_seed(seed: int, team_id: int, digest: str) -> int:
    """The training seed of a fork: the league's seed, the team, exactly the data."""
    raw = hashlib.sha256(f"team-fork:{seed}:{team_id}:{digest}".encode()).digest()
    return int.from_bytes(raw[:4], "big")


def build_fork(registry: ModelRegistry, dataset: AggregatedDataset, team: Team,
               contributions: Sequence[str], *, updates: int, seed: int,
               offload: Offload | None = None) -> ModelMeta:
    """Train and register the team's fork (see the module docstring; blocking, CPU-bound).
    The fine-tune runs through ``offload`` (``races/offload.py``: in a child process, off the
    game server's GIL), or here without one; the weights are the same either way."""
    champion = registry.champion
    if champion is None:
        raise RegistryError("no champion yet: no base to fork from")
    base = registry.lineage(champion)[-1]
    run = offload.run if offload is not None else _here
    trained = run(train_fork, str(registry.root), str(dataset.root), team.id, base.version,
                  list(contributions), updates, seed)
    return registry.register(
        net_from_weights(trained.weights), parent_version=base.version,
        contributions=list(contributions), dataset_digest=trained.digest,
        training={"kind": FORK_KIND, "team_id": team.id, "team_name": team.name,
                  "members": [player_id(u) for u in team.members],
                  "base_version": base.version, "rows": trained.rows, **trained.config})


@dataclass(frozen=True)
class TrainedFork:
    """A fork's fine-tune as plain data (``train_fork``): weights, the digest of exactly the
    data trained on, its rows, the training config."""

    weights: Weights
    digest: str
    rows: int
    config: dict


def train_fork(registry_root: str, dataset_root: str, team_id: int, base_version: int,
               contributions: list[str], updates: int, seed: int) -> TrainedFork:
    """The fine-tune of a fork from ``base_version`` on the base's own data plus
    ``contributions`` (pure computation: runs in the offload's child; reads, never writes)."""
    registry, dataset = ModelRegistry(registry_root), AggregatedDataset(dataset_root)
    ids = [*registry.contributions_in(base_version), *contributions]
    digest = dataset.digest(ids)
    config = TrainConfig(updates=updates, seed=fork_seed(seed, team_id, digest))
    net, _ = registry.load(base_version)
    data = dataset.load(ids)
    trained = fit(net, data, config)
    return TrainedFork(weights_of(trained), digest, len(data), config.to_dict())


def _here(job: Callable[..., T], *args: Any) -> T:
    return job(*args)


def _lower_priority() -> None:
    """The builder's thread at the lowest CPU priority (Linux: per thread; else best effort)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class TeamForks:
    """Builds the teams' forks and says which race (see the module docstring)."""

    def __init__(self, config: ForkConfig, registry: ModelRegistry, dataset_root: Path,
                 teams: TeamStore) -> None:
        self.config, self.registry, self.teams = config, registry, teams
        self.dataset_root = Path(dataset_root)
        self._teams_of: dict[int, tuple[int, str] | None] = {}  # version -> (team id, name)
        self._racing: tuple[float, list[Team]] | None = None
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="team-forks",
                                         initializer=_lower_priority)
        # the fine-tune itself: in a child process of its own (not the races' one: a build
        # must not hold up a race's preparation), started per build (``build_due``)
        self.offload = Offload(config.offload, name="team-forks")

    def close(self) -> None:
        self.worker.shutdown(wait=False, cancel_futures=True)
        self.offload.close()

    # --- building -----------------------------------------------------------------------------
    async def run_forever(self) -> None:
        """Every ``check_s``: build the forks that are due, on the builder's thread."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                await asyncio.sleep(self.config.check_s)
                try:
                    await loop.run_in_executor(self.worker, self.build_due)
                except Exception:  # the next check tries again; races go on meanwhile
                    log.exception("building team forks failed")
        finally:
            self.close()

    def due(self) -> list[tuple[Team, list[str]]]:
        """The teams whose fork should be built now, each with its contributions."""
        if not (self.dataset_root / "index.jsonl").is_file():
            return []
        entries = AggregatedDataset(self.dataset_root).entries()  # as the judge left it
        merged = merged_contributions(self.registry)
        out = []
        for team in self.teams.teams():
            ids = team_contributions(entries, merged, {player_id(u) for u in team.members})
            if len(ids) < self.config.min_contributions:
                continue
            if not set(ids) - self.contributions_of(team.fork_version):
                continue  # nothing new since the team's latest fork
            out.append((team, ids))
        return out

    def build_due(self) -> list[ModelMeta]:
        """Build the forks that are due and claimed by this server (blocking)."""
        built = []
        interval_ns = int(self.config.interval_s * 1e9)
        try:
            for team, ids in self.due():
                if not self.teams.claim_fork(team.id, interval_ns):
                    continue  # built less than an interval ago (here or by another server)
                meta = build_fork(self.registry, AggregatedDataset(self.dataset_root), team,
                                  ids, updates=self.config.updates, seed=self.config.seed,
                                  offload=self.offload)
                if self.teams.set_fork(team.id, meta.version):
                    log.info("team %s: fork v%d from %d contributions", team.name,
                             meta.version, len(ids))
                built.append(meta)
        finally:  # builds are rare (an interval apart per team): no idle child meanwhile
            self.offload.stop()
        self._racing = None
        return built

    def contributions_of(self, version: int | None) -> set[str]:
        """The contributions a fork was trained on (none: unknown here)."""
        if version is None:
            return set()
        try:
            return set(self.registry.meta(version).contributions)
        except RegistryError:  # recorded by a server whose registry this one does not see
            return set()

    # --- racing and credit --------------------------------------------------------------------
    def team_of(self, version: int) -> tuple[int, str] | None:
        """(team id, team name) if ``version`` is a team fork, else None."""
        if version not in self._teams_of:
            try:
                meta = self.registry.meta(version)
            except RegistryError:
                return None
            self._teams_of[version] = ((int(meta.training["team_id"]),
                                        str(meta.training["team_name"]))
                                       if is_fork(meta) else None)
        return self._teams_of[version]

    def forks_by_team(self) -> dict[int, list[int]]:
        """Every fork in the registry by team id, oldest first."""
        out: dict[int, list[int]] = {}
        for v in self.registry.versions():
            team = self.team_of(v)
            if team is not None:
                out.setdefault(team[0], []).append(v)
        return out

    def racing(self, points: Mapping[int, int]) -> list[tuple[int, str]]:
        """(version, team name) of the teams' latest forks, best placed (``points``: this
        season's per version) then most recent first, at most ``slots``."""
        now, cached = time.monotonic(), self._racing  # (the builder's thread may reset it)
        if cached is None or now - cached[0] > RACING_TTL_S:
            cached = self._racing = (now, self.teams.teams())
        versions = set(self.registry.versions())
        forks = [(t.fork_version, t.name) for t in cached[1]
                 if t.fork_version is not None and t.fork_version in versions and t.members]
        forks.sort(key=lambda f: (-points.get(f[0], 0), -f[0]))
        return forks[:self.config.slots]
