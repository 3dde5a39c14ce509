"""Gymnasium registration: ``crowdlearning/Race-v0`` (single ``Env`` and native ``VectorEnv``)."""

from __future__ import annotations

import gymnasium

__all__ = ["RACE_ENV_ID", "register_envs"]

RACE_ENV_ID = "crowdlearning/Race-v0"


def register_envs() -> None:
    """Register the project's environments once (idempotent)."""
    if RACE_ENV_ID in gymnasium.registry:
        return
    gymnasium.register(
        id=RACE_ENV_ID,
        entry_point="crowdlearning.sim.env:RaceEnv",
        vector_entry_point="crowdlearning.sim.vector_env:RaceVectorEnv",
        max_episode_steps=2400,  # 2 minutes at 20 Hz
    )
