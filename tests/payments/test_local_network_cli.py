"""``crowdlearning hedera-node`` prints how to connect, serves the SDK, and stops on Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hiero_sdk_python import AccountId, Client, CryptoGetAccountBalanceQuery, PrivateKey

pytestmark = pytest.mark.timeout(60)


def read_banner(process: subprocess.Popen[str], timeout_s: float = 30.0) -> dict[str, str]:
    """The ``name  value`` lines printed before "Ctrl-C to stop."."""
    fields: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line or line.startswith("Ctrl-C"):
            break
        if line.startswith("local Hedera network listening on "):
            fields["address"] = line.split()[-1]
        elif "  " in line.strip():
            name, _, value = line.strip().partition("  ")
            fields[name.strip()] = value.strip()
    return fields


def test_cli_starts_prints_credentials_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "crowdlearning.cli",
        "hedera-node",
        "--port",
        "0",
        "--no-mirror",
    ]
    command += ["--state", str(tmp_path / "state.json")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = read_banner(process)
        # the printed credentials let a plain SDK client connect and read the operator's balance
        client = Client.for_network(
            {banner["address"]: AccountId.from_string(banner["node account id"])}
        )
        key = PrivateKey.from_string_der(banner["operator key (DER)"])
        operator = AccountId.from_string(banner["operator account"])
        client.set_operator(operator, key)
        balance = CryptoGetAccountBalanceQuery().set_account_id(operator).execute(client)
        assert balance.hbars.to_tinybars() > 0
        client.close()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=5)
