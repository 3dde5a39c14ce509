"""What a game server is told when the judge cannot serve it.

Kept apart from the judges themselves so that a caller that only handles these (the referee)
imports nothing heavy.
"""

from __future__ import annotations

from crowdlearning.errors import CrowdLearningError

__all__ = ["JudgeUnavailableError", "RemoteJudgeError"]


class JudgeUnavailableError(CrowdLearningError, RuntimeError):
    """The judge could not be reached (its process died and is restarting, or it did not
    answer in time): try again later. ``during_request``: it died while serving this request,
    which may be the request's fault (e.g. out of memory on it)."""

    def __init__(self, message: str, *, during_request: bool = False) -> None:
        super().__init__(message)
        self.during_request = during_request


class RemoteJudgeError(CrowdLearningError, RuntimeError):
    """The shared judge answered with an error (no answer in time is
    ``JudgeUnavailableError``)."""
