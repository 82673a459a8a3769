"""The detached stack's data dir and log: private to its user, and a log that rotates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mqtt.link import BrokerAddress, make_client
from tests.conftest import cli_env, run_cli

pytestmark = pytest.mark.timeout(120)


async def test_the_stack_log_rotates_and_the_data_dir_is_made_private(tmp_path: Path) -> None:
    env = cli_env(tmp_path, FLOPS_LOG_MAX_BYTES="1024", FLOPS_LOG_BACKUPS="2")
    data = Path(env["XDG_DATA_HOME"]) / "flops"
    data.mkdir(parents=True, mode=0o755)  # made by an older version, readable by all
    data.chmod(0o755)
    up = run_cli(["up", "--detach"], env)
    assert up.returncode == 0, up.stderr + up.stdout
    try:
        card = json.loads((data / "stack.json").read_text())
        address = BrokerAddress("127.0.0.1", card["broker_port"])
        async with make_client(address, "noisy", persistent=False) as client:
            for i in range(30):  # a warning each, until the throttle counts them instead
                topic = f"flops/v1/users/u{i}/requests/{'x' * 100}"
                await client.publish(topic, b"not json", qos=1)
        listed = run_cli(["projects", "--output", "json"], env)  # answered after them
        assert listed.returncode == 0, listed.stderr
    finally:
        assert run_cli(["down"], env).returncode == 0
    logs = sorted(p.name for p in data.iterdir() if p.name.startswith("stack.log"))
    assert logs == ["stack.log", "stack.log.1", "stack.log.2"]
    for name in logs:
        # Rotated before a record once the file reached 1024 bytes: at most one record more.
        assert (data / name).stat().st_size < 1024 + 1024, name
        assert (data / name).stat().st_mode & 0o777 == 0o600, name
    # What the process prints besides its log records follows the rotation too.
    assert "FLOps stack stopped." in (data / "stack.log").read_text()
    assert data.stat().st_mode & 0o777 == 0o700
    for name in ("manager.db", "observer.db", "broker/mosquitto.db"):
        assert (data / name).stat().st_mode & 0o077 == 0, name
    assert (data / "broker").stat().st_mode & 0o077 == 0
