"""The project's error tree: domain code raises these, only the HTTP layer maps them to statuses.

    CrowdLearningError
    ├── ConfigurationError      a setting is missing or invalid
    ├── TrackError              a track is malformed or cannot be generated
    ├── SimulationError         the simulator was driven outside its contract
    ├── ReplayMismatchError     a claimed trajectory does not replay from its action log
    └── HederaError             a Hedera network operation failed
        ├── HederaRequestError      what was asked cannot be sent (bad ids, sums, sizes)
        └── HederaUnavailableError  the network did not answer in time; retry later
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "CrowdLearningError",
    "HederaError",
    "HederaRequestError",
    "HederaUnavailableError",
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


class HederaError(CrowdLearningError):
    """A Hedera network operation failed."""


class HederaRequestError(HederaError, ValueError):
    """A Hedera request cannot be sent: malformed id, amounts not summing to zero, too many legs."""


class HederaUnavailableError(HederaError):
    """The Hedera network could not be reached or did not answer in time; retrying is safe."""
