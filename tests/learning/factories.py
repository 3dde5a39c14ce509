"""Factories for learning tests: short real sessions played by scripted personas."""

from __future__ import annotations

import numpy as np

from crowdlearning.crowd.personas import Persona
from crowdlearning.learning.contribution import Contribution
from crowdlearning.learning.session import Frame, PlayerInputs, SessionBatch, SessionSpec
from crowdlearning.policy.network import Policy
from crowdlearning.sim.track_gen import named_track


def play(policy: Policy, persona: Persona, *, mode: str = "label", beta: float = 0.5,
         ticks: int = 120, track_name: str = "kidney", start_s_m: float = 0.0,
         session_id: str = "s1", on_frame=None) -> Contribution:
    spec = SessionSpec("player-1", session_id, named_track(track_name), start_s_m=start_s_m,
                       mode=mode, beta=beta)
    batch = SessionBatch(policy, [spec], model_version=0, max_ticks=ticks)
    rows = np.array([0])
    while not batch.done:
        frame: Frame = batch.frame()
        if on_frame is not None:
            on_frame(frame)
        inputs = PlayerInputs.none(1)
        inputs.set_rows(rows, persona.act(frame, rows))  # keyboard personas answer with keys
        batch.advance(inputs)
    (contribution,) = batch.contributions()
    return contribution
