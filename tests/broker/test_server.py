"""The embedded mosquitto: the same port after a crash, a leftover ended, a dead one restarted."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from broker.server import Mosquitto, _remembered_port
from tests.conftest import mosquitto_binary

pytestmark = pytest.mark.timeout(60)


def _time_wait_on(port: int) -> None:
    """Leave a connection in TIME-WAIT on ``port``: the listening side closes first."""
    with socket.create_server(("127.0.0.1", port)) as server:
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server's end closes first: its port sits in TIME-WAIT
        client.recv(1)
        client.close()


def test_a_port_in_time_wait_is_remembered(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _time_wait_on(port)
    (tmp_path / "port").write_text(str(port))
    assert _remembered_port(tmp_path / "port") == port


def test_a_port_someone_listens_on_is_not_remembered(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        (tmp_path / "port").write_text(str(server.getsockname()[1]))
        assert _remembered_port(tmp_path / "port") == 0


async def test_a_crashed_broker_comes_back_on_its_port_despite_time_wait(tmp_path: Path) -> None:
    """kill -9 closes the broker's end of every connection first: they sit in TIME-WAIT."""
    first = await Mosquitto.start(tmp_path, binary=mosquitto_binary())
    port = first.address.port
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    first.proc.kill()
    await first.proc.wait()
    writer.close()
    second = await Mosquitto.start(tmp_path, binary=mosquitto_binary())
    try:
        assert second.address.port == port
    finally:
        await second.stop()


async def test_a_broker_left_running_by_a_killed_stack_is_ended_first(tmp_path: Path) -> None:
    leftover = await Mosquitto.start(tmp_path, binary=mosquitto_binary())
    # its stack is gone without stopping it; the next start takes the state dir over
    second = await Mosquitto.start(tmp_path, binary=mosquitto_binary())
    try:
        assert leftover.proc.returncode is not None  # ended (and its persistence saved)
        assert second.address.port == leftover.address.port
    finally:
        await second.stop()


async def test_a_broker_that_dies_is_started_again_on_its_port(tmp_path: Path) -> None:
    broker = await Mosquitto.start(tmp_path, binary=mosquitto_binary())
    stop, restarted = asyncio.Event(), asyncio.Event()
    supervisor = asyncio.create_task(broker.supervise(stop, restarted.set))
    dead = broker.proc
    try:
        dead.kill()
        await asyncio.wait_for(restarted.wait(), 20)
        assert broker.proc is not dead and broker.proc.returncode is None
        _, writer = await asyncio.open_connection("127.0.0.1", broker.address.port)
        writer.close()
    finally:
        stop.set()
        await supervisor
        await broker.stop()
