"""The runtime refuses unsafe configurations before starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from crowdlearning.errors import ConfigurationError
from crowdlearning.server.runtime import open_runtime
from tests.server.conftest import server_settings


def test_production_never_runs_on_the_embedded_hedera_network(tmp_path: Path) -> None:
    settings = server_settings(tmp_path).model_copy(update={"environment": "production"})
    with pytest.raises(ConfigurationError, match="for development"), open_runtime(settings):
        pass
