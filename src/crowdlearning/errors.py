"""The project's error tree: domain code raises these, only the HTTP layer maps them to statuses.

    CrowdLearningError
    ├── ConfigurationError      a setting is missing or invalid
    ├── TrackError              a track is malformed or cannot be generated
    ├── SimulationError         the simulator was driven outside its contract
    └── ReplayMismatchError     a claimed trajectory does not replay from its action log
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "CrowdLearningError",
    "ReplayMismatchError",
    "SimulationError",
    "TrackError",
]


class CrowdLearningError(Exception):
    """Base class of every error the project raises on purpose."""


class ConfigurationError(CrowdLearningError, ValueError):
    """A setting is missing or has a value the project cannot use."""


class TrackError(CrowdLearningError, ValueError):
    """A track is malformed (bad geometry, bad JSON) or could not be generated."""


class SimulationError(CrowdLearningError, ValueError):
    """The simulator was called with arguments outside its contract (shapes, ranges, NaNs)."""


class ReplayMismatchError(CrowdLearningError):
    """A claimed trajectory differs from the one its action log re-simulates to."""
