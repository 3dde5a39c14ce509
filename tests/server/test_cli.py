"""`crowdlearning serve` says clearly which port is taken, before starting anything."""

from __future__ import annotations

import socket
from pathlib import Path

from crowdlearning.server.cli import busy_ports
from tests.server.conftest import server_settings


def test_a_taken_port_is_named_with_the_setting_that_moves_it(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        settings = server_settings(tmp_path).model_copy(update={
            "server_port": 0, "hedera_local_port": 0, "hedera_local_mirror_port": taken})
        [message] = busy_ports(settings)
        assert str(taken) in message and "CROWDLEARNING_HEDERA_LOCAL_MIRROR_PORT" in message
    assert busy_ports(settings) == []  # once the other program is gone
