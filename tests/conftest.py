"""Shared fixtures: service URLs for tests that need PostgreSQL or Redis.

Such tests skip with a stated reason when the URL is not set, and fail instead when
``CROWDLEARNING_REQUIRE_SERVICES=1`` (as ``.ci/run`` sets), so CI runs them rather than skip them.
"""

from __future__ import annotations

import os

import pytest


def _service_url(env_var: str, what: str) -> str:
    url = os.environ.get(env_var)
    if url:
        return url
    message = f"{what} not configured: set {env_var} (.ci/run does)"
    if os.environ.get("CROWDLEARNING_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """SQLAlchemy URL of a PostgreSQL database the tests may write to."""
    return _service_url("CROWDLEARNING_TEST_POSTGRES_URL", "PostgreSQL")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a Redis server the tests may write to."""
    return _service_url("CROWDLEARNING_TEST_REDIS_URL", "Redis")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Path of Debian's chromium for Playwright browser tests."""
    return _service_url("CROWDLEARNING_TEST_CHROMIUM", "Chromium")
