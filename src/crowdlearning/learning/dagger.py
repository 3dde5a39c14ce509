"""DAgger dataset aggregation: contributions in, the next model version out.

``DaggerTrainer`` ties the aggregated dataset and the model registry together. ``merge`` appends
the labels of accepted contributions (label mode and takeover mode alike, see ``labels``) to the
dataset, fine-tunes the current model on *all* data aggregated so far (DAgger aggregates; it never
trains on the newest round alone), and registers the result as a new version whose metadata names
exactly the contributions merged into it and the dataset it saw.

With ``anchor_share`` and ``anchor_tracks`` a merge also trains on the parent's own driving on
those tracks (the mastered families' play tracks: ``learning.anchors``), so that what the crowd
teaches where the model fails does not undo what it already does well elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from crowdlearning.learning.anchors import anchor_sample, champion_anchors
from crowdlearning.learning.contribution import Contribution
from crowdlearning.learning.dataset import AggregatedDataset
from crowdlearning.learning.label_noise import estimate_label_noise, precision_factor
from crowdlearning.learning.labels import LabelConfig, LabelSet, extract_labels
from crowdlearning.learning.registry import ModelRegistry
from crowdlearning.learning.train import TrainConfig, fit
from crowdlearning.policy.checkpoint import ModelMeta
from crowdlearning.policy.network import Policy, PolicyNet
from crowdlearning.sim.track import Track

__all__ = ["DaggerTrainer"]

BASE_DATA_ID = "initial-demonstrations"


class DaggerTrainer:
    """Aggregate contributions and train model versions (see the module docstring)."""

    def __init__(self, registry: ModelRegistry, dataset: AggregatedDataset, *,
                 labels: LabelConfig | None = None, train: TrainConfig | None = None,
                 precision_ref: float = 0.0, anchor_share: float = 0.0) -> None:
        self.registry, self.dataset = registry, dataset
        self.label_config = labels or LabelConfig()
        self.train_config = train or TrainConfig()
        if not 0.0 <= precision_ref <= 2.0:
            raise ValueError(f"precision_ref must be in [0, 2], got {precision_ref}")
        # rows of a merged contribution weigh its labels' precision (``learning.label_noise``):
        # the aggregate learns from a shaky hand as much as the price pays it; 0 = unweighted
        self.precision_ref = precision_ref
        if not 0.0 <= anchor_share <= 10.0:
            raise ValueError(f"anchor_share must be in [0, 10], got {anchor_share}")
        # rows of the parent's own driving on mastered tracks per aggregate row (0: none)
        self.anchor_share = anchor_share
        self._rounds = 0

    def start(self, net: PolicyNet, demonstrations: LabelSet, training: dict) -> ModelMeta:
        """Register the initial model and seed the dataset with its demonstrations."""
        if self.registry.versions():
            raise ValueError("registry already has models: start() is for a fresh one")
        self.dataset.append(BASE_DATA_ID, "platform", demonstrations)
        meta = self.registry.register(net, parent_version=None, contributions=[BASE_DATA_ID],
                                      dataset_digest=self.dataset.digest(), training=training)
        self.registry.set_champion(meta.version)
        return meta

    @property
    def champion(self) -> tuple[PolicyNet, ModelMeta]:
        version = self.registry.champion
        if version is None:
            raise ValueError("no champion yet: call start() first")
        return self.registry.load(version)

    def labels_for(self, contributions: Sequence[Contribution]) -> list[LabelSet]:
        """Each contribution's labels as the aggregate stores them: weighted by their precision
        when ``precision_ref`` is set (weighted least squares: a label of noise ``s`` counts
        ``ref^2 / (ref^2 + s^2)`` of an exact one)."""
        return [self._weighted(c, extract_labels(c, self.label_config)) for c in contributions]

    def _weighted(self, contribution: Contribution, labels: LabelSet) -> LabelSet:
        if self.precision_ref <= 0 or not len(labels):
            return labels
        noise = estimate_label_noise(contribution, prior=self.precision_ref,
                                     config=self.label_config)
        factor = precision_factor(noise.sigma, self.precision_ref)
        return replace(labels, weights=(labels.weights * factor).astype(np.float32))

    def train_candidate(self, extra: Sequence[LabelSet], seed: int) -> PolicyNet:
        """The champion fine-tuned on the aggregate plus ``extra`` (nothing is stored)."""
        net, _ = self.champion
        data = LabelSet.concat([self.dataset.load(), *extra])
        return fit(net, data, replace(self.train_config, seed=seed))

    def merge(self, contributions: Sequence[Contribution], *, metrics: dict | None = None,
              promote: bool = True, anchor_tracks: Sequence[Track] = ()) -> ModelMeta:
        """Append the contributions' labels, train on everything, register the new version.

        ``anchor_tracks``: where the parent already drives well (the mastered families' play
        tracks); with ``anchor_share`` the parent's own driving there joins the training data
        (``learning.anchors``; not stored in the aggregate)."""
        parent, parent_meta = self.champion
        for c, labels in zip(contributions, self.labels_for(contributions), strict=True):
            self.dataset.append(c.contribution_id, c.contributor_id, labels)
        # everything in the dataset the parent has not seen: this round's contributions, and
        # those of a candidate that was not promoted (their data stays in the aggregate)
        seen = set(self.registry.contributions_in(parent_meta.version))
        new_ids = [i for i in self.dataset.contribution_ids if i not in seen]
        self._rounds += 1
        seed = self.train_config.seed + 1000 * (parent_meta.version + 1)
        data = self.dataset.load()
        anchors, anchored = self._anchors(parent, anchor_tracks, len(data), seed)
        net = fit(parent, LabelSet.concat([data, anchors]) if len(anchors) else data,
                  replace(self.train_config, seed=seed))
        meta = self.registry.register(
            net, parent_version=parent_meta.version,
            contributions=new_ids,
            dataset_digest=self.dataset.digest(), metrics=metrics,
            training={"kind": "dagger", "rows": len(self.dataset),
                      "label_precision_ref": self.precision_ref,
                      **({"anchors": anchored} if anchored else {}),
                      **replace(self.train_config, seed=seed).to_dict()})
        if promote:
            self.registry.set_champion(meta.version)
        return meta

    def _anchors(self, parent: PolicyNet, tracks: Sequence[Track], rows: int, seed: int
                 ) -> tuple[LabelSet, dict]:
        """The parent's own driving on ``tracks`` to train with, and what the version's
        metadata says of it (empty when there is none)."""
        if self.anchor_share <= 0 or not tracks:
            return LabelSet.empty(), {}
        driven = champion_anchors(parent, tracks)
        sample = anchor_sample(driven, round(self.anchor_share * rows), seed)
        return sample, {"share": self.anchor_share, "rows": len(sample),
                        "rows_driven": len(driven), "tracks": [t.digest for t in tracks]}

    def policy(self) -> Policy:
        return Policy(self.champion[0])
