"""The stack with ``runtime = "oakestra"``: it deploys through the system-manager API (a fake
behind ``httpx.MockTransport``) and the poller turns Oakestra's statuses into project state.

A real mosquitto and the real CLI; only Oakestra is simulated.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.server import Mosquitto, Secure, free_port
from mqtt.link import BrokerAddress
from runtimes.oakestra import OakestraRuntime, OakestraSettings
from services.run import READY
from services.spec import ServiceSpec
from stack.secure import acl_path, ensure_files, passwd_path
from stack.settings import StackSettings
from tests.conftest import ROOT, BrokerProcess, mosquitto_binary
from tests.stack.conftest import stack_in_process

pytestmark = pytest.mark.timeout(60)


class FakeOakestra:
    """A system manager in memory: one user, applications, services, one instance each."""

    def __init__(self) -> None:
        self.apps: dict[str, dict[str, Any]] = {}
        self.services: dict[str, dict[str, Any]] = {}
        self.slas: list[dict[str, Any]] = []
        self.clusters: list[str] = []  # the names GET /api/clusters/active lists
        self.asked_clusters = 0
        self._ids = (f"{n:024x}" for n in itertools.count(1))

    def handle(self, request: httpx.Request) -> httpx.Response:  # noqa: PLR0911 - a route table
        method, path = request.method, request.url.path
        body: Any = json.loads(request.content) if request.content else {}
        if path == "/api/auth/login":
            return httpx.Response(200, json={"token": "t", "refresh_token": "r"})
        if request.headers.get("Authorization") != "Bearer t":
            return httpx.Response(401, json={"message": "no token"})
        match method, path.strip("/").split("/")[1:]:
            case "GET", ["clusters", "active"]:
                self.asked_clusters += 1
                active = [{"cluster_name": name, "active": True} for name in self.clusters]
                return httpx.Response(200, json=json.dumps(active))
            case "GET", ["user", _]:
                return httpx.Response(200, json={"_id": {"$oid": "u" * 24}})
            case "GET", ["applications", _]:
                return httpx.Response(200, json=json.dumps(list(self.apps.values())))
            case "POST", ["application"]:
                app = dict(body["applications"][0], applicationID=next(self._ids))
                self.apps[app["applicationID"]] = app
                return httpx.Response(200, json=list(self.apps.values()))
            case "GET", ["services", app_id]:
                found = [s for s in self.services.values() if s["applicationID"] == app_id]
                return httpx.Response(200, json=json.dumps(found))
            case "POST", ["service"]:
                self.slas.append(body)
                app = body["applications"][0]
                service = dict(app["microservices"][0], microserviceID=next(self._ids))
                service |= {"applicationID": app["applicationID"], "instance_list": []}
                self.services[service["microserviceID"]] = service
                return httpx.Response(
                    200, json={"job_id": service["microserviceID"], "failed_services": []}
                )
            case "POST", ["service", sid, "instance"]:
                self.services[sid]["instance_list"] = [{"instance_number": 0, "status": "RUNNING"}]
                return httpx.Response(200, json={"message": "ok"})
            case "GET", ["service", sid]:
                return httpx.Response(200, json=self.services[sid])
            case "DELETE", ["service", sid, "instance", _]:
                self.services[sid]["instance_list"] = []
                self.services[sid]["status"] = "UNDEPLOYED"
                return httpx.Response(200, json={"message": "ok"})
        return httpx.Response(404, json={"message": f"no route {method} {path}"})

    def service(self, prefix: str) -> dict[str, Any]:
        found = self.named(prefix)
        assert len(found) == 1, found
        return found[0]

    def named(self, prefix: str) -> list[dict[str, Any]]:
        return [s for s in self.services.values() if s["microservice_name"].startswith(prefix)]

    def set_status(self, prefix: str, status: str) -> None:
        self.service(prefix)["instance_list"][0]["status"] = status


@dataclass
class Running:
    oak: FakeOakestra
    settings: StackSettings
    env: dict[str, str]


@pytest.fixture
async def oakestra_stack(
    tmp_path: Path, mosquitto: BrokerProcess, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Running]:
    for name, value in {
        "URL": "http://oakestra.test:10000",
        "USERNAME": "flops",
        "PASSWORD": "secret",
        "OBSERVER_IMAGE": "registry.example.org/flops:0.1.0",
        "BUILDER_IMAGE": "registry.example.org/flops:0.1.0",
    }.items():
        monkeypatch.setenv(f"FLOPS_OAKESTRA_{name}", value)
    oak = FakeOakestra()
    transport = httpx.MockTransport(oak.handle)
    wanted = {"runtime": "oakestra", "status_poll_interval": 0.1}
    async with stack_in_process(
        tmp_path, mosquitto, monkeypatch, wanted, oakestra_transport=transport
    ) as running:
        yield Running(oak, running.settings, running.env)


async def flops(env: dict[str, str], *args: str) -> Any:
    code = "from cli.main import flops_entry; flops_entry()"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, *args, "-o", "json",
        env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode in (0, 1), err.decode()
    return json.loads(out)


async def start_project(env: dict[str, str]) -> str:
    started = await flops(
        env, "project", "--project-sla-file-name", "mnist_sklearn_small", "--no-follow"
    )
    return str(started["project"]["id"])


async def wait_for_status(
    env: dict[str, str], project_id: str, state: str, kind: str, status: str
) -> Any:
    for _ in range(100):
        shown = await flops(env, "status", project_id)
        service = next((s for s in shown["services"] if s["kind"] == kind), None)
        if shown["state"] == state and service and service["instances"][0]["status"] == status:
            return shown
        await asyncio.sleep(0.1)
    raise AssertionError(f"{project_id} never {state} with its {kind} {status}: {shown}")


async def test_the_stack_deploys_both_services_on_oakestra_with_the_entry_point(
    oakestra_stack: Running,
) -> None:
    oak, env = oakestra_stack.oak, oakestra_stack.env
    project_id = await start_project(env)
    await wait_for_status(env, project_id, "BUILDING", "builder", "RUNNING")
    observer, builder = oak.service("observ"), oak.service("builder")
    assert observer["cmd"] == builder["cmd"] == ["flops", "service", "run"]
    assert f"FLOPS_SERVICE_PROJECT_ID={project_id}" in observer["environment"]
    assert "FLOPS_SERVICE_KIND=builder" in builder["environment"]
    assert (builder["one_shot"], observer["one_shot"]) == (True, False)
    # The observer is Oakestra's: this process hosts no observer and keeps no log.
    assert not (oakestra_stack.settings.data_dir / "observer.db").exists()


async def test_an_oakestra_failed_builder_fails_the_project(oakestra_stack: Running) -> None:
    oak, env = oakestra_stack.oak, oakestra_stack.env
    project_id = await start_project(env)
    await wait_for_status(env, project_id, "BUILDING", "builder", "RUNNING")
    oak.set_status("builder", "FAILED")
    shown = await wait_for_status(env, project_id, "FAILED", "builder", "FAILED")
    assert shown["state_reason"].startswith("service builder")


async def test_an_oakestra_completed_builder_is_recorded(oakestra_stack: Running) -> None:
    oak, env = oakestra_stack.oak, oakestra_stack.env
    project_id = await start_project(env)
    await wait_for_status(env, project_id, "BUILDING", "builder", "RUNNING")
    oak.set_status("builder", "COMPLETED")
    await wait_for_status(env, project_id, "BUILDING", "builder", "COMPLETED")
    oak.set_status("observ", "DEAD")
    shown = await wait_for_status(env, project_id, "FAILED", "observer", "DEAD")
    assert shown["state_reason"].startswith("service observ")


async def test_a_container_reaches_the_broker_from_its_slas_environment_alone(
    tmp_path: Path,
) -> None:
    """Oakestra's node engine gives the container the SLA's environment and nothing else.

    Over TLS with a client certificate (the secure mode's services listener): the SLA names
    the broker, carries the CA's certificate and the paths of the node's certificate and
    key; the service connects and subscribes with nothing else.
    """
    folder = tmp_path / "secure"
    tls = ensure_files(folder)
    secure = Secure(tls, passwd_path(folder), acl_path(folder), free_port())
    broker = await Mosquitto.start(tmp_path / "broker", secure=secure, binary=mosquitto_binary())
    oak = FakeOakestra()
    settings = OakestraSettings.model_validate(
        {
            "url": "http://oakestra.test:10000",
            "username": "flops",
            "password": "secret",
            "observer_image": "o:1",
            "builder_image": "b:1",
            "broker_port": secure.service_port,
            "cert_path": str(tls.service_cert),  # where the node keeps them
            "key_path": str(tls.service_key),
        }
    )
    # the stack's own broker and CA are the defaults of what the services are told
    runtime = OakestraRuntime(
        settings,
        transport=httpx.MockTransport(oak.handle),
        broker=BrokerAddress("127.0.0.1", broker.address.port),
        ca_file=tls.ca,
    )
    spec = ServiceSpec("e" * 24, "observ0123456789ab", "observer", "Admin", "f" * 24, "a" * 24)
    try:
        await runtime.deploy(spec)
        service = oak.service("observ")
        told = dict(item.split("=", 1) for item in service["environment"])
        assert told["FLOPS_BROKER_HOST"] == "127.0.0.1"
        assert told["FLOPS_BROKER_PORT"] == str(secure.service_port)
        assert told["FLOPS_CA_PEM"] == tls.ca.read_text()
        assert "PRIVATE KEY" not in json.dumps(oak.slas) and "secret" not in json.dumps(oak.slas)
        node = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path)}
        node |= {"PYTHONPATH": str(ROOT), "FLOPS_DATA_DIR": str(tmp_path / "container")}
        container = await asyncio.create_subprocess_exec(
            *service["cmd"], env=node | told, cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert container.stdout is not None and container.stderr is not None
        try:
            line = await asyncio.wait_for(container.stdout.readline(), 30)
            # connected (over TLS, with the node's certificate, to the port it was told:
            # this broker's services listener) and subscribed
            assert line.decode().strip() == READY, (await container.stderr.read()).decode()
        finally:
            container.terminate()
            await container.wait()
    finally:
        await runtime.aclose()
        await broker.stop()
