"""The one typed settings object: every knob of the platform, read from ``CROWDLEARNING_*``.

Secrets are ``SecretStr`` and never logged; outside development, defaults that are only safe on a
developer's machine are refused.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]


class Settings(BaseSettings):
    """Platform configuration; each field is ``CROWDLEARNING_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="CROWDLEARNING_", extra="ignore", frozen=True)

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Field(default=Path("var"), description="Where models, datasets, DBs live.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # --- simulator -------------------------------------------------------------------------
    sim_max_episode_steps: int = Field(default=2400, gt=0, description="Truncation [ticks].")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
