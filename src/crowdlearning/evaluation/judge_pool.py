"""Where verdicts are computed: in this process, or on a Ray cluster when one machine is not enough.

Judging is the platform's heavy work (a paired fine-tune and closed-loop rollouts per
contribution, about half a second to a few seconds of CPU each) and every verdict of a round is
judged against the same champion, so verdicts are independent and can run in parallel. A pool
takes the champion's ``JudgeSpec`` (everything a ``Judge`` is built from) and a batch of
contributions, and returns their verdicts in order. ``Judge`` is deterministic, so where a
verdict was computed never changes it: the Ray pool's verdicts equal the inline pool's.

- ``InlineJudgePool`` (the default): one ``Judge`` in this process, verdicts one after another.
- ``RayJudgePool``: ``workers`` Ray actors, each holding a ``Judge`` for the current champion
  (built once per champion version from the spec, shipped through Ray's object store, so the
  actors may run on other machines); a batch is spread over them. Connects to the cluster at
  ``address`` (``"auto"``: the one ``ray start`` runs here), or starts a private local one.

Screening, money and the audit stay with the caller (``platform.service.VerdictService``): a pool
only decides.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from crowdlearning.errors import ConfigurationError
from crowdlearning.evaluation.verdict import Judge, PriceSchedule, Verdict, VerdictConfig
from crowdlearning.learning.contribution import Contribution
from crowdlearning.learning.labels import LabelConfig, LabelSet
from crowdlearning.policy.network import Architecture, PolicyNet

__all__ = ["InlineJudgePool", "JudgePool", "JudgeSpec", "RayJudgePool", "make_judge_pool"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JudgeSpec:
    """What a champion's ``Judge`` is built from; picklable (weights as a state dict)."""

    champion_version: int
    architecture: dict
    weights: dict[str, Any]  # the champion's state dict (CPU tensors)
    champion_data: LabelSet
    config: VerdictConfig
    prices: PriceSchedule
    labels: LabelConfig
    # the champion's training-noise null (``Judge.null_diffs_m``), measured once and shipped to
    # every worker; None: the judge built from this spec measures it
    null_diffs_m: np.ndarray | None = None

    @classmethod
    def of(cls, net: PolicyNet, version: int, data: LabelSet, *, config: VerdictConfig,
           prices: PriceSchedule, labels: LabelConfig) -> JudgeSpec:
        weights = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        return cls(version, net.arch.to_dict(), weights, data, config, prices, labels)

    def build(self) -> Judge:
        net = PolicyNet(Architecture.from_dict(self.architecture))
        net.load_state_dict(self.weights)
        return Judge(net, self.champion_version, self.champion_data, config=self.config,
                     prices=self.prices, labels=self.labels, null_diffs_m=self.null_diffs_m)

    def with_null(self) -> JudgeSpec:
        """This spec with its null measured (once, here), so workers never measure it again."""
        if self.null_diffs_m is not None:
            return self
        return replace(self, null_diffs_m=self.build().null_diffs_m)


class JudgePool(Protocol):
    """Judges batches of contributions against one champion (see the module docstring)."""

    def judge(self, spec: JudgeSpec, contributions: Sequence[Contribution]) -> list[Verdict]:
        """The verdicts of ``contributions``, in order."""
        ...

    def rejected(self, spec: JudgeSpec, contribution: Contribution, reason: str) -> Verdict:
        """The verdict of a contribution screening refused (nothing is judged)."""
        ...

    def close(self) -> None: ...


def judge_key(spec: JudgeSpec) -> tuple:
    """What a built ``Judge`` depends on besides the data: the champion and the verdict's
    configuration (its suite's families change when the curriculum unlocks one, with or
    without a new champion: ``Curriculum.stalled``)."""
    return (spec.champion_version, spec.config)


class InlineJudgePool:
    """Verdicts in this process, one after another; the champion's ``Judge`` is kept."""

    def __init__(self) -> None:
        self._judge: Judge | None = None
        self._key: tuple | None = None

    def judge_for(self, spec: JudgeSpec) -> Judge:
        key = judge_key(spec)
        if self._judge is None or self._key != key:
            self._judge, self._key = spec.build(), key
        return self._judge

    def judge(self, spec: JudgeSpec, contributions: Sequence[Contribution]) -> list[Verdict]:
        judge = self.judge_for(spec)
        return [judge.judge(c) for c in contributions]

    def rejected(self, spec: JudgeSpec, contribution: Contribution, reason: str) -> Verdict:
        return self.judge_for(spec).rejected(contribution, reason)

    def close(self) -> None:
        self._judge = None


class _JudgeActor:
    """One Ray worker: a ``Judge`` for the current champion (the class is wrapped by
    ``ray.remote`` at pool start, so that importing this module never needs Ray)."""

    def __init__(self) -> None:
        from crowdlearning.policy.network import single_threaded_torch

        single_threaded_torch()  # one actor per CPU: a thread pool inside each only fights
        self._judge: Judge | None = None
        self._key: tuple | None = None

    def load(self, spec: JudgeSpec) -> int:
        key = judge_key(spec)
        if self._judge is None or self._key != key:
            self._judge, self._key = spec.build(), key
        return spec.champion_version

    def judge(self, spec: JudgeSpec, contribution: Contribution) -> Verdict:
        self.load(spec)  # a restarted actor (state lost) builds its judge again
        assert self._judge is not None
        return self._judge.judge(contribution)

    def rejected(self, spec: JudgeSpec, contribution: Contribution, reason: str) -> Verdict:
        self.load(spec)
        assert self._judge is not None
        return self._judge.rejected(contribution, reason)


class RayJudgePool:
    """Verdicts spread over Ray actors (see the module docstring)."""

    def __init__(self, workers: int, address: str = "") -> None:
        if workers < 1:
            raise ConfigurationError(f"judge workers must be >= 1, got {workers}")
        try:
            import ray
        except ImportError as exc:  # pragma: no cover - ray is in the dev and scale extras
            raise ConfigurationError(
                "judge_backend=ray needs Ray: pip install 'crowdlearning[scale]'") from exc
        self._ray = ray
        self._started_here = not ray.is_initialized()
        if self._started_here:
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                       "configure_logging": False}
            if address:
                ray.init(address=address, **options)
            else:
                ray.init(num_cpus=workers, **options)
        # an actor that dies (its worker or node lost) is started again by Ray and its call
        # retried; each call carries the champion's spec (a reference into the object store,
        # no copy) so a restarted actor builds its judge again
        actor = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=3)(_JudgeActor)
        self._actors = [actor.remote() for _ in range(workers)]
        self._loaded: tuple | None = None
        self._spec_ref: Any = None

    @property
    def workers(self) -> int:
        return len(self._actors)

    def _load(self, spec: JudgeSpec) -> Any:
        key = judge_key(spec)
        if self._loaded != key:
            self._spec_ref = self._ray.put(spec)  # once into the object store, for every actor
            self._ray.get([a.load.remote(self._spec_ref) for a in self._actors])
            self._loaded = key
        return self._spec_ref

    def judge(self, spec: JudgeSpec, contributions: Sequence[Contribution]) -> list[Verdict]:
        from ray.util import ActorPool

        ref = self._load(spec)
        # an idle actor takes the next contribution (verdicts stop early at different looks,
        # so a fixed split would leave actors waiting); results come back in order
        pool = ActorPool(self._actors)
        return list(pool.map(lambda actor, c: actor.judge.remote(ref, c), list(contributions)))

    def rejected(self, spec: JudgeSpec, contribution: Contribution, reason: str) -> Verdict:
        ref = self._load(spec)
        return self._ray.get(self._actors[0].rejected.remote(ref, contribution, reason))

    def close(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        self._actors = []
        if self._started_here and self._ray.is_initialized():
            self._ray.shutdown()


def make_judge_pool(backend: str, workers: int, address: str = "") -> JudgePool:
    """The pool a setting names: ``inline`` or ``ray``."""
    if backend == "inline":
        return InlineJudgePool()
    if backend == "ray":
        return RayJudgePool(workers, address)
    raise ConfigurationError(f"judge backend {backend!r}: expected 'inline' or 'ray'")
