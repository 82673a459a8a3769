"""The long-lived inference service of a project: the scoring server, supervised.

``run_inference_service`` starts ``python -m flops_env.serve`` with the trained-model
image's Python, reports ``Inference service ready at http://127.0.0.1:PORT`` once it answers
``/ping``, and then watches it: a child that exits or stops answering is restarted (with a
WARNING that quotes its last output) until ``max_restarts`` happen within
``restart_window`` seconds, then the service fails with an ERROR. A child that cannot
start the first time (a model that does not load, a port that is taken) fails at once.
Cancelling the task stops the child: SIGTERM, then SIGKILL after ``stop_timeout``.

The port it got is kept in ``state_dir/port`` and asked for again at the next start, so
the URL stays the same across restarts of the child and of the stack.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field

from flops_env.serve import EXIT_NO_PORT
from services.trmodel.child import Ended, Timing, child_environment, run_child
from services.trmodel.errors import InferenceServiceError

PORT_FILE = "port"
READY_TEXT = "Inference service ready at {url}"


class InferenceConfig(BaseModel):
    """How to run one project's inference service."""

    model_config = ConfigDict(extra="forbid")

    python: Path  # the trained-model image's Python
    model_dir: Path  # the artifact's model folder (Artifact.model_dir)
    state_dir: Path  # the service's own folder: the port it keeps
    host: str = "127.0.0.1"  # setting inference_host: another interface on purpose only
    port: int = Field(default=0, ge=0, le=65535)  # 0: the kept port, else a free one
    ready_timeout: float = Field(default=30.0, gt=0)
    health_interval: float = Field(default=5.0, gt=0)
    health_misses: int = Field(default=3, ge=1)
    ping_timeout: float = Field(default=2.0, gt=0)
    stop_timeout: float = Field(default=5.0, gt=0)
    max_restarts: int = Field(default=3, ge=0)
    restart_window: float = Field(default=300.0, gt=0)
    port_wait: float = Field(default=3.0, ge=0)  # a kept port still held by an old child


@dataclass(frozen=True)
class Notice:
    """What the service reports: a log line and its typed data (for the project's Event)."""

    level: Literal["info", "warning", "error"]
    text: str
    data: dict[str, Any] = field(default_factory=dict)


Emit = Callable[[Notice], Awaitable[None]]


def kept_port(state_dir: Path) -> int:
    """The port a previous run got, or 0."""
    try:
        port = int((state_dir / PORT_FILE).read_text().strip())
    except (OSError, ValueError):
        return 0
    return port if 0 < port < 65536 else 0


def keep_port(state_dir: Path, port: int) -> None:
    """Remember the port for the next start."""
    tmp = state_dir / (PORT_FILE + ".tmp")
    tmp.write_text(f"{port}\n")
    tmp.replace(state_dir / PORT_FILE)


def serve_command(config: InferenceConfig, port: int) -> list[str]:
    """The child's command line."""
    return [
        str(config.python), "-m", "flops_env.serve",
        "--model-dir", str(config.model_dir),
        "--host", config.host,
        "--port", str(port),
        "--parent-pid", str(os.getpid()),
    ]  # fmt: skip


def _quote(ended: Ended, lines: int = 6) -> str:
    tail = " | ".join(ended.tail[-lines:])
    return f"{ended.reason}: {tail[-1500:]}" if tail else ended.reason


class _Supervisor:
    def __init__(self, config: InferenceConfig, emit: Emit) -> None:
        self.config = config
        self.emit = emit
        self.answered = False
        self.recent: deque[float] = deque()
        self.timing = Timing(
            config.ready_timeout, config.health_interval, config.health_misses, config.stop_timeout
        )

    async def on_ready(self, url: str, pid: int) -> None:
        port = urlsplit(url).port or 0
        keep_port(self.config.state_dir, port)
        self.answered = True
        data = {"url": url, "port": port, "pid": pid, "restarts": len(self.recent)}
        await self.emit(Notice("info", READY_TEXT.format(url=url), data))

    async def life(self, client: httpx.AsyncClient) -> Ended:
        """One life of the child, retrying a kept port an old child still holds."""
        port = self.config.port or kept_port(self.config.state_dir)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.port_wait
        while True:
            ended = await run_child(
                serve_command(self.config, port), self.config.state_dir, child_environment(),
                client, self.timing, self.on_ready,
            )  # fmt: skip
            if ended.code != EXIT_NO_PORT or self.config.port or not port:
                return ended
            if loop.time() >= deadline:
                text = f"Port {port} of the inference service is taken; it moves to a free port"
                await self.emit(Notice("warning", text, {"port": port}))
                port = 0
            else:
                await asyncio.sleep(0.25)

    async def fail(self, ended: Ended, why: str) -> NoReturn:
        text = f"Inference service failed: {why}{_quote(ended)}"
        await self.emit(Notice("error", text, {"reason": ended.reason, "code": ended.code}))
        raise InferenceServiceError(text)

    async def after(self, ended: Ended) -> None:
        """Apply the restart policy to a life that ended."""
        if not self.answered:
            await self.fail(ended, "")
        now = asyncio.get_running_loop().time()
        self.recent.append(now)
        while self.recent and now - self.recent[0] > self.config.restart_window:
            self.recent.popleft()
        count, limit = len(self.recent), self.config.max_restarts
        if count > limit:
            window = f"{limit} restarts within {self.config.restart_window:g} s; last: "
            await self.fail(ended, window)
        text = f"Inference service {_quote(ended)}; restarting ({count}/{limit})"
        await self.emit(Notice("warning", text, {"reason": ended.reason, "restart": count}))
        await asyncio.sleep(min(0.5 * 2 ** (count - 1), 5.0))


async def run_inference_service(config: InferenceConfig, emit: Emit) -> NoReturn:
    """Serve the model until cancelled; raise ``InferenceServiceError`` when it cannot."""
    config.state_dir.mkdir(parents=True, exist_ok=True)
    supervisor = _Supervisor(config, emit)
    timeout = httpx.Timeout(config.ping_timeout)
    async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
        while True:
            await supervisor.after(await supervisor.life(client))
