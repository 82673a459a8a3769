"""A mosquitto process with the production configuration, for the tests and the benchmark.

Started synchronously (they are not asyncio programs at that point) and restartable on the
same port, so a test can stop the broker under a running stack and start it again.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from broker.server import find_mosquitto, free_port, mosquitto_config
from core.errors import BrokerError
from mqtt.link import BrokerAddress


def mosquitto_binary() -> str:
    """The mosquitto binary, or an error that says how to install it."""
    found = find_mosquitto()
    if found is None:
        raise BrokerError("mosquitto is not installed (apt-get install mosquitto)")
    return found


def wait_port(port: int, timeout: float = 10.0) -> None:
    """Wait until something accepts connections on ``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            time.sleep(0.02)
        else:
            return
    raise BrokerError(f"nothing listens on {port}")


@dataclass
class MosquittoProcess:
    """A mosquitto process with the production configuration; restartable on its port.

    The tests (``tests.conftest.BrokerProcess``) and the benchmark (``bench.harness.Broker``)
    start theirs with this class.
    """

    state_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    extra: tuple[str, ...] = ()  # config lines after the production ones (a test's own)

    @property
    def address(self) -> BrokerAddress:
        """Where it listens."""
        return BrokerAddress("127.0.0.1", self.port)

    @property
    def pid(self) -> int:
        """The process id."""
        if self.proc is None:
            raise BrokerError("mosquitto is not started")
        return self.proc.pid

    def start(self) -> MosquittoProcess:
        """Start mosquitto and wait until it listens."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        conf = self.state_dir / "mosquitto.conf"
        conf.write_text(
            mosquitto_config(self.port, self.state_dir)
            + "".join(line + "\n" for line in self.extra)
        )
        self.proc = subprocess.Popen(
            [mosquitto_binary(), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port)
        return self

    def stop(self) -> None:
        """Terminate mosquitto and wait for it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
