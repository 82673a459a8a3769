"""The process runtime: every observer and builder is a child process of the stack.

Each child runs ``flops service run`` with the environment an orchestrator would give its
container (``runtimes.base.service_environment``), the broker's address and a data dir of
its own, so this runtime exercises the container entry point on one machine. A child's end
is its instance status: exit code 0 is COMPLETED, anything else FAILED. An observer that
failed is started again (its project has failed by then), so its log stays readable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from broker.accounts import ProjectAccounts
from core.errors import ConfigError, DeployError, FlopsError
from mqtt.wiring import Wiring
from protocol.states import InstanceStatus
from runtimes.base import StatusSink
from services.kinds import KINDS, kind_of
from services.run import READY
from services.spec import ServiceSpec, service_environment

log = logging.getLogger(__name__)
TERMINATE_GRACE = 10.0  # seconds between SIGTERM and SIGKILL
RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)  # a failing observer is restarted this slowly


@dataclass
class _Child:
    spec: ServiceSpec
    proc: asyncio.subprocess.Process
    watcher: asyncio.Task[None] | None = None


class ProcessRuntime:
    """Implements ``runtimes.base.Runtime`` with one child process per service."""

    def __init__(
        self,
        data_dir: Path,
        wiring: Wiring,
        on_status: StatusSink,
        start_timeout: float = 30.0,
        python: str = sys.executable,
        accounts: ProjectAccounts | None = None,
    ) -> None:
        self._dir = data_dir / "services"
        self._wiring = wiring
        self._on_status = on_status
        self._start_timeout = start_timeout
        self._python = python
        self._children: dict[str, _Child] = {}
        self._watchers: set[asyncio.Task[None]] = set()
        self._restarts: dict[str, int] = {}
        self._restarting: dict[str, asyncio.Task[None]] = {}  # watchers about to restart
        self._stopping = False
        self._deploying: dict[str, asyncio.Lock] = {}
        self._accounts = accounts  # the secure mode: each project's actors have their own

    def pids(self) -> dict[str, int]:
        """The process id of each running service, by service name (for people and tests)."""
        return {c.spec.name: c.proc.pid for c in self._children.values()}

    async def deploy(self, spec: ServiceSpec) -> InstanceStatus:
        """Start the service's process and wait until it is subscribed; a running one stays.

        Two deploys of one service at once (a restart racing the manager) start one process.
        """
        lock = self._deploying.setdefault(spec.id, asyncio.Lock())
        try:
            async with lock:
                return await self._deploy(spec)
        finally:
            if not lock.locked():
                self._deploying.pop(spec.id, None)

    async def _deploy(self, spec: ServiceSpec) -> InstanceStatus:
        child = self._children.get(spec.id)
        if child is not None and child.proc.returncode is None:
            return InstanceStatus.RUNNING
        try:
            kind_of(spec.kind).validated(spec.config)
        except ConfigError as exc:
            raise DeployError(f"{spec.name}: {exc}") from exc
        try:
            child = _Child(spec, await self._spawn(spec, self._account_env(spec)))
        except BaseException:
            self._release(spec)
            raise
        try:
            await self._wait_ready(child)
        except BaseException:  # not ready, or cancelled meanwhile: no process is left behind
            await _end(child.proc)
            self._release(spec)
            raise
        self._children[spec.id] = child
        child.watcher = asyncio.create_task(self._watch(child), name=f"watch {spec.name}")
        self._watchers.add(child.watcher)
        child.watcher.add_done_callback(self._watchers.discard)
        log.info("service %s runs as process %d", spec.name, child.proc.pid)
        return InstanceStatus.RUNNING

    async def undeploy(self, spec: ServiceSpec, *, purge: bool = False) -> None:
        """Stop the service's process; its data dir (an observer's log) goes only with ``purge``."""
        restart = self._restarting.pop(spec.id, None)
        if restart is not None and restart is not asyncio.current_task():
            restart.cancel()
            await asyncio.gather(restart, return_exceptions=True)
        child = self._children.pop(spec.id, None)
        if child is not None:
            await _end(child.proc)
            if child.watcher is not None and child.watcher is not asyncio.current_task():
                child.watcher.cancel()
                await asyncio.gather(child.watcher, return_exceptions=True)
        self._release(spec)
        if purge:
            shutil.rmtree(self.service_dir(spec), ignore_errors=True)

    async def stop(self) -> None:
        """End every child (SIGTERM, then SIGKILL); they are restored at the next start."""
        self._stopping = True
        children = list(self._children.values())
        self._children.clear()
        await asyncio.gather(*(_end(c.proc) for c in children))
        for child in children:
            self._release(child.spec)
        for watcher in list(self._watchers):
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)

    def service_dir(self, spec: ServiceSpec) -> Path:
        """The data dir of one service: its log database and its output."""
        return self._dir / spec.name

    def _account_env(self, spec: ServiceSpec) -> dict[str, str]:
        """A training actor's project account (the secure mode), as its process is told it."""
        if self._accounts is None or not kind_of(spec.kind).trains:
            return {}
        try:
            return self._accounts.grant(spec.project_id, spec.id).environment()
        except (FlopsError, OSError) as exc:
            raise DeployError(f"{spec.name}: no broker account for its project: {exc}") from exc

    def _release(self, spec: ServiceSpec) -> None:
        """The actor's process ended: its hold on the project's account ends too."""
        kind = KINDS.get(spec.kind)
        if self._accounts is not None and kind is not None and kind.trains:
            self._accounts.release(spec.project_id, spec.id)

    async def _spawn(
        self, spec: ServiceSpec, account: dict[str, str]
    ) -> asyncio.subprocess.Process:
        folder = self.service_dir(spec)
        folder.mkdir(parents=True, exist_ok=True)
        # None of the stack's own settings, but the same config file ([service] section).
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOPS_")}
        if "FLOPS_CONFIG" in os.environ:
            env["FLOPS_CONFIG"] = os.environ["FLOPS_CONFIG"]
        env |= service_environment(spec) | self._broker_env() | account
        env |= {"FLOPS_DATA_DIR": str(folder), "FLOPS_EXIT_WITH_PARENT": "true"}
        env["PYTHONUNBUFFERED"] = "1"
        with (folder / "service.log").open("ab") as output:
            try:
                return await asyncio.create_subprocess_exec(
                    self._python,
                    "-m",
                    "cli",
                    "service",
                    "run",
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=output,
                    env=env,
                    start_new_session=True,  # a Ctrl-C meant for the stack does not reach it
                )
            except OSError as exc:
                raise DeployError(f"{spec.name}: cannot start a process: {exc}") from exc

    def _broker_env(self) -> dict[str, str]:
        address = self._wiring.link_address
        env = {"FLOPS_BROKER_HOST": address.host, "FLOPS_BROKER_PORT": str(address.port)}
        files = {
            "FLOPS_CA_FILE": self._wiring.ca_file,
            "FLOPS_CERT_FILE": self._wiring.cert_file,
            "FLOPS_KEY_FILE": self._wiring.key_file,
        }
        return env | {name: str(path) for name, path in files.items() if path is not None}

    async def _wait_ready(self, child: _Child) -> None:
        """Wait for the child's ready line: it is connected and subscribed."""
        assert child.proc.stdout is not None  # noqa: S101 - created with a pipe
        try:
            async with asyncio.timeout(self._start_timeout):
                while line := await child.proc.stdout.readline():
                    if line.decode(errors="replace").strip() == READY:
                        return
        except TimeoutError:
            raise DeployError(
                f"{child.spec.name} was not ready within {self._start_timeout:g}s"
                f" (see {self.service_dir(child.spec) / 'service.log'})"
            ) from None
        code = await child.proc.wait()
        raise DeployError(
            f"{child.spec.name} ended with exit code {code} before it was ready"
            f" (see {self.service_dir(child.spec) / 'service.log'})"
        )

    async def _watch(self, child: _Child) -> None:
        """Report the child's end as its status; start a failed observer again."""
        assert child.proc.stdout is not None  # noqa: S101 - created with a pipe
        while await child.proc.stdout.read(4096):  # keep the pipe from filling up
            pass
        code = await child.proc.wait()
        spec = child.spec
        if self._stopping or self._children.get(spec.id) is not child:
            return  # stopped on purpose: undeployed, or the stack stops
        del self._children[spec.id]
        self._release(spec)
        status = InstanceStatus.COMPLETED if code == 0 else InstanceStatus.FAILED
        log.log(
            logging.INFO if code == 0 else logging.WARNING,
            "service %s (process %d) ended with exit code %d: %s",
            spec.name,
            child.proc.pid,
            code,
            status,
        )
        await self._on_status(spec, status)
        restart = kind_of(spec.kind).restart_failed
        if restart and status is InstanceStatus.FAILED and not self._stopping:
            task = asyncio.current_task()
            assert task is not None  # noqa: S101 - a watcher is a task
            self._restarting[spec.id] = task  # undeploy cancels the restart
            try:
                await self._restart(spec)
            finally:
                if self._restarting.get(spec.id) is task:
                    del self._restarting[spec.id]

    async def _restart(self, spec: ServiceSpec) -> None:
        count = self._restarts.get(spec.id, 0)
        self._restarts[spec.id] = count + 1
        await asyncio.sleep(RESTART_DELAYS[min(count, len(RESTART_DELAYS) - 1)])
        try:
            status = await self.deploy(spec)
        except DeployError as exc:
            log.warning("observer %s not restarted: %s", spec.name, exc)
            return
        log.info("observer %s started again after its failure", spec.name)
        await self._on_status(spec, status)


async def _end(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM (the service drains), SIGKILL after a grace period; wait for the exit."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(TERMINATE_GRACE):
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    await proc.wait()
