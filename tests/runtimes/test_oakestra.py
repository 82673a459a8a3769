"""The Oakestra backend against recorded system-manager calls, served by httpx.MockTransport.

Each file in oakestra_recordings/ is one call: the request the backend must send and the
answer Oakestra gives, derived from the sources it names. No network is used.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ConfigError, DeployError
from mqtt.link import BrokerAddress
from protocol.states import InstanceStatus
from runtimes.oakestra import (
    OakestraRuntime,
    OakestraSettings,
    OakNames,
    instance_status,
    load_oakestra_settings,
    map_status,
    oakestra_name,
    oakestra_names,
    service_sla,
)
from runtimes.oakestra_broker import broker_environment
from runtimes.oakestra_tokens import token_expiry
from services.spec import ServiceSpec, service_environment

RECORDINGS = Path(__file__).parent / "oakestra_recordings"
PROJECT = "6761bf5d59461659a24b1197"
SECRET = "s3cret-from-settings"  # noqa: S105  (a test value, also in the recordings)
OBSERVER = ServiceSpec(
    "6761bf5d59461659a24b1198", "observ8266202cd6db", "observer", "Admin", PROJECT, "a" * 24
)
BUILDER_CONFIG = {"repo_url": "https://github.com/Malyuk-A/flops_ml_repo_mnist_sklearn"}
BUILDER = ServiceSpec(
    "6761bf5d59461659a24b1199", "builder8266202cd6db", "builder", "Admin", PROJECT, PROJECT,
    BUILDER_CONFIG,
)  # fmt: skip
SETTINGS = OakestraSettings.model_validate(
    {
        "url": "http://oakestra.test:10000",
        "username": "flops",
        "password": SECRET,
        "observer_image": "registry.example.org/flops/observer:0.1.0",
        "builder_image": "registry.example.org/flops/builder:0.1.0",
    }
)
START = ["login", "read_user"]
NEW_OBSERVER = [*START, "list_applications_empty", "create_application", "list_services_empty"]
RUNNING_OBSERVER = [*START, "list_applications_observatory", "list_services_observer"]


def recording(name: str) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads((RECORDINGS / f"{name}.json").read_text()))


def contains(actual: Any, expected: Any) -> bool:
    """Whether ``actual`` has every field of ``expected`` with the same value."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and contains(actual[k], v) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(
            contains(a, e) for a, e in zip(actual, expected, strict=True)
        )  # fmt: skip
    return bool(actual == expected)


class Cluster:
    """Answers with recordings in order and keeps each request next to its recording."""

    def __init__(self, *names: str) -> None:
        self.script = [recording(name) for name in names]
        self.exchanges: list[tuple[httpx.Request, dict[str, Any]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert self.script, f"unexpected {request.method} {request.url.path}"
        rec = self.script.pop(0)
        self.exchanges.append((request, rec))
        assert (request.method, request.url.path) == (
            rec["request"]["method"],
            rec["request"]["path"],
        )
        answer = rec["response"]
        if "text" in answer:
            return httpx.Response(answer["status"], text=answer["text"])
        return httpx.Response(answer["status"], json=answer["json"])

    def runtime(self) -> OakestraRuntime:
        return OakestraRuntime(SETTINGS, transport=httpx.MockTransport(self))

    def check(self) -> None:
        """All recordings were used; each request carried the token and body recorded."""
        assert not self.script, [rec["call"] for rec in self.script]
        token = ""
        for request, rec in self.exchanges:
            want = rec["request"]
            if want["auth"]:
                assert request.headers["Authorization"] == f"Bearer {token}"
            else:
                assert "Authorization" not in request.headers
            if "json" in want:
                assert contains(json.loads(request.content), want["json"]), rec["call"]
            if rec["call"] != "login":
                assert SECRET.encode() not in request.content
            elif rec["response"]["status"] == 200:
                token = rec["response"]["json"]["token"]


def sent(cluster: Cluster, call: str) -> dict[str, Any]:
    body: dict[str, Any] = next(
        json.loads(r.content) for r, c in cluster.exchanges if c["call"] == call
    )
    return body


async def run_deploy(cluster: Cluster, spec: ServiceSpec = OBSERVER) -> InstanceStatus:
    runtime = cluster.runtime()
    try:
        return await runtime.deploy(spec)
    finally:
        await runtime.aclose()


@pytest.mark.parametrize(
    ("last", "status"),
    [
        ("read_service", InstanceStatus.RUNNING),
        ("read_service_requested", InstanceStatus.REQUESTED),
    ],
)
async def test_deploy_creates_observatory_service_and_instance(
    last: str, status: InstanceStatus
) -> None:
    cluster = Cluster(*NEW_OBSERVER, "append_service", "deploy_instance", last)
    assert await run_deploy(cluster) is status
    cluster.check()
    service = sent(cluster, "append service")["applications"][0]["microservices"][0]
    assert f"FLOPS_SERVICE_PROJECT_ID={PROJECT}" in service["environment"]
    assert "FLOPS_SERVICE_CONFIG={}" in service["environment"]


async def test_deploy_builder_goes_into_its_project_application() -> None:
    cluster = Cluster(
        *START, "list_applications_observatory", "create_project_application",
        "list_project_services_empty", "append_builder_service", "deploy_builder_instance",
        "read_builder_service",
    )  # fmt: skip
    assert await run_deploy(cluster, BUILDER) is InstanceStatus.CLUSTER_SCHEDULED
    cluster.check()
    service = sent(cluster, "append service")["applications"][0]["microservices"][0]
    assert f"FLOPS_SERVICE_CONFIG={json.dumps(BUILDER_CONFIG)}" in service["environment"]
    # The container runs the entry point with the variables every runtime passes.
    assert service["cmd"] == ["flops", "service", "run"]
    assert service["environment"] == [f"{k}={v}" for k, v in service_environment(BUILDER).items()]


async def test_deploy_leaves_a_running_service_alone_and_reads_the_user_once() -> None:
    cluster = Cluster(*RUNNING_OBSERVER, "read_service", *RUNNING_OBSERVER[2:], "read_service")
    runtime = cluster.runtime()
    assert await runtime.deploy(OBSERVER) is InstanceStatus.RUNNING
    assert await runtime.deploy(OBSERVER) is InstanceStatus.RUNNING
    await runtime.aclose()
    cluster.check()


@pytest.mark.parametrize(
    "script",
    [
        ["login", "read_user_expired", "login_again", "read_user", *RUNNING_OBSERVER[2:]],
        [*START, "list_applications_expired", "login_again", *RUNNING_OBSERVER[2:]],
    ],
)
async def test_a_401_logs_in_again_and_repeats_the_call_once(script: list[str]) -> None:
    cluster = Cluster(*script, "read_service")
    assert await run_deploy(cluster) is InstanceStatus.RUNNING
    cluster.check()


async def test_a_401_that_is_not_about_the_token_logs_in_no_more_and_reads_the_user_again() -> None:
    """GET /api/applications/<user id> says 401 for another user's id: no new login helps."""
    cluster = Cluster(
        *START, "list_applications_not_this_user",
        "read_user", *RUNNING_OBSERVER[2:], "read_service",
    )  # fmt: skip
    runtime = cluster.runtime()
    with pytest.raises(DeployError, match=r"list applications failed: HTTP 401"):
        await runtime.deploy(OBSERVER)
    assert await runtime.deploy(OBSERVER) is InstanceStatus.RUNNING  # the user id read again
    await runtime.aclose()
    cluster.check()


async def test_a_token_past_its_expiry_is_renewed_before_the_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The token's exp claim says when: no call is sent with a token known to be dead."""
    cluster = Cluster(
        "login_fresh_token", "read_user", *RUNNING_OBSERVER[2:], "read_service",
        "login_again", *RUNNING_OBSERVER[2:], "read_service",
    )  # fmt: skip
    runtime = cluster.runtime()
    assert await runtime.deploy(OBSERVER) is InstanceStatus.RUNNING  # the token is kept
    monkeypatch.setattr(time, "time", lambda: 4102444800.0)  # its exp has come
    assert await runtime.deploy(OBSERVER) is InstanceStatus.RUNNING
    await runtime.aclose()
    cluster.check()


def test_token_expiry_reads_the_exp_claim_of_a_jwt() -> None:
    assert token_expiry(recording("login_fresh_token")["response"]["json"]["token"]) == 4102444800
    for junk in ("", "recorded-access-token-1", "a.!!!.c", "a.bnVsbA.c"):
        assert token_expiry(junk) is None


@pytest.mark.parametrize(
    ("script", "words"),
    [
        (["login", "read_user_expired", "login_again", "read_user_expired"], ["read user", "401"]),
        (["login_rejected"], ["login", "401"]),
        (["login", "read_user_forbidden"], ["read user", "403", "not enough permissions"]),
        ([*NEW_OBSERVER[:3], "create_application_conflict"], ["create application", "409"]),
        ([*RUNNING_OBSERVER[:3], "list_services_empty", "append_service_rejected"], ["400"]),
        ([*RUNNING_OBSERVER[:3], "list_services_empty", "append_service_failed"], ["append"]),
        ([*NEW_OBSERVER, "append_service", "deploy_instance_error"], ["deploy instance", "500"]),
        ([*RUNNING_OBSERVER, "read_service_malformed"], ["read service", "malformed JSON"]),
    ],
)
async def test_errors_become_deploy_errors_naming_call_and_status(
    script: list[str], words: list[str]
) -> None:
    cluster = Cluster(*script)
    with pytest.raises(DeployError) as caught:
        await run_deploy(cluster)
    assert all(word in str(caught.value) for word in words), str(caught.value)
    assert SECRET not in str(caught.value)
    cluster.check()


@pytest.mark.parametrize(
    ("script", "status"),
    [
        (RUNNING_OBSERVER, InstanceStatus.RUNNING),
        ([*START, "list_applications_empty"], InstanceStatus.UNDEPLOYED),
    ],
)
async def test_status_reads_the_service(script: list[str], status: InstanceStatus) -> None:
    cluster = Cluster(*script)
    runtime = cluster.runtime()
    assert await runtime.status(OBSERVER) is status
    await runtime.aclose()
    cluster.check()


async def test_an_unreachable_cluster_is_a_deploy_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    runtime = OakestraRuntime(SETTINGS, transport=httpx.MockTransport(refuse))
    with pytest.raises(DeployError, match=r"login failed: ConnectError"):
        await runtime.deploy(OBSERVER)
    await runtime.aclose()


@pytest.mark.parametrize(
    ("spec", "purge", "script"),
    [
        (OBSERVER, False, [*RUNNING_OBSERVER, "undeploy_instance"]),
        (BUILDER, True, [*START, "list_applications_both", "list_project_services_builder",
                         "delete_service", "list_project_services_empty", "delete_application"]),
        (OBSERVER, True, [*START, "list_applications_empty"]),
    ],
)  # fmt: skip
async def test_undeploy(spec: ServiceSpec, purge: bool, script: list[str]) -> None:
    cluster = Cluster(*script)
    runtime = cluster.runtime()
    await runtime.undeploy(spec, purge=purge)
    await runtime.aclose()
    cluster.check()


@pytest.mark.parametrize(
    ("word", "status"),
    [
        *((status.value, status) for status in InstanceStatus),
        (None, InstanceStatus.REQUESTED),
        ("", InstanceStatus.REQUESTED),
        ("ACTIVE", InstanceStatus.RUNNING),
        ("MIGRATION_IN_PROGRESS", InstanceStatus.RUNNING),
        ("NO_WORKER_CAPACITY", InstanceStatus.FAILED),
        ("TargetClusterNoCapacity", InstanceStatus.FAILED),
        ("NoActiveClusterWithCapacity", InstanceStatus.FAILED),
        ("INSTANTIATION", InstanceStatus.CREATING),
        # LegacyStatus: no status reported yet, as text or as the numbers they once were
        ("0", InstanceStatus.REQUESTED),
        ("1", InstanceStatus.REQUESTED),
        (0, InstanceStatus.REQUESTED),
        (1, InstanceStatus.REQUESTED),
    ],
)
def test_oakestra_status_words(word: str | int | None, status: InstanceStatus) -> None:
    assert map_status(word) is status


def test_instance_status_prefers_the_instance_over_the_service() -> None:
    running = {"status": "CLUSTER_SCHEDULED", "instance_list": [{"status": "RUNNING"}]}
    assert instance_status(running) is InstanceStatus.RUNNING
    scheduled = {"status": "CLUSTER_SCHEDULED", "instance_list": [{"instance_number": 0}]}
    assert instance_status(scheduled) is InstanceStatus.CLUSTER_SCHEDULED
    assert instance_status({}) is InstanceStatus.REQUESTED
    with pytest.raises(DeployError, match="'SLEEPING'"):
        map_status("SLEEPING")
    legacy = {"status": "RUNNING", "instance_list": [{"status": 0}]}
    assert instance_status(legacy) is InstanceStatus.REQUESTED  # 0 is a status, not "none"


@pytest.mark.parametrize(
    "name", ["observatory", "observ8266202cd6db", "proj8266202cd6db", "a" * 30]
)
def test_valid_names_stay_as_they_are(name: str) -> None:
    assert oakestra_name(name) == name


@given(st.text(max_size=80), st.integers(min_value=10, max_value=30))
def test_every_name_follows_oakestras_rule(text: str, max_length: int) -> None:
    name = oakestra_name(text, max_length)
    assert re.fullmatch(rf"[a-zA-Z0-9]{{1,{max_length}}}", name)
    assert oakestra_name(text, max_length) == name


def test_different_texts_stay_apart_and_names_of_specs() -> None:
    assert oakestra_name("flops-user") != oakestra_name("flopsuser")
    assert oakestra_name("b" * 31) == "b" * 22 + oakestra_name("b" * 31)[-8:]
    assert oakestra_names(OBSERVER) == OakNames(
        "observatory", "ue3afed0047b0", OBSERVER.name, "observ"
    )
    assert oakestra_names(BUILDER) == OakNames("proj8266202cd6db", "proj", BUILDER.name, "builder")
    short = oakestra_names(BUILDER, max_length=10)
    assert all(0 < len(part) <= 10 for part in (short.app, short.app_ns, short.service))


async def test_active_clusters_are_the_cluster_names_oakestra_lists() -> None:
    cluster = Cluster("login", "list_active_clusters")
    runtime = cluster.runtime()
    try:
        assert await runtime.active_clusters() == ["edge1", "edge2"]
    finally:
        await runtime.aclose()
    cluster.check()


async def test_no_active_cluster_is_a_deploy_error_naming_oakestras_answer() -> None:
    runtime = Cluster("login", "list_active_clusters_empty").runtime()
    try:
        with pytest.raises(DeployError, match=r"GET /api/clusters/active answered 0 cluster"):
            await runtime.active_clusters()
    finally:
        await runtime.aclose()


def test_a_placed_service_carries_a_direct_cluster_constraint() -> None:
    settings = SETTINGS.model_copy(update={"images": {"cluster_aggregator": "r/flops:0.1.0"}})
    config = {"cluster": "edge2", "placement": "edge2"}
    placed = ServiceSpec(
        "d" * 24, "caggr1", "cluster_aggregator", "Admin", PROJECT, PROJECT, config
    )
    service = service_sla(placed, oakestra_names(placed), PROJECT, settings)
    (micro,) = service["applications"][0]["microservices"]
    # The root scheduler reads a `direct` constraint's `cluster` (docs/oakestra.md).
    assert micro["constraints"] == [{"type": "direct", "cluster": "edge2"}]
    free = ServiceSpec("d" * 24, "caggr1", "cluster_aggregator", "Admin", PROJECT, PROJECT)
    (micro,) = service_sla(free, oakestra_names(free), PROJECT, settings)["applications"][0][
        "microservices"
    ]
    assert "constraints" not in micro


def test_only_observers_and_builders_have_images() -> None:
    spec = ServiceSpec("c" * 24, "aggregator1", "aggregator", "Admin", PROJECT, PROJECT)
    with pytest.raises(DeployError, match="'aggregator'"):
        service_sla(spec, oakestra_names(spec), PROJECT, SETTINGS)


def test_the_sla_tells_the_service_the_broker_and_carries_no_secret(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    settings = SETTINGS.model_copy(
        update={"broker_host": "mqtt.example.org", "ca_file": ca, "cert_path": "/run/flops/c.crt"}
    )
    env = broker_environment(settings, BrokerAddress("127.0.0.1", 8884), None)
    assert env == {
        "FLOPS_BROKER_HOST": "mqtt.example.org",  # the setting wins over the stack's own
        "FLOPS_BROKER_PORT": "8884",
        "FLOPS_CA_PEM": ca.read_text(),  # public: the CA's certificate
        "FLOPS_CERT_FILE": "/run/flops/c.crt",  # a path in the container, not its content
    }
    sla = json.dumps(service_sla(OBSERVER, oakestra_names(OBSERVER), PROJECT, settings, env))
    assert "FLOPS_BROKER_PORT=8884" in sla and SECRET not in sla and "PRIVATE KEY" not in sla
    ca.write_text(ca.read_text() + "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError, match="certificates only"):
        broker_environment(settings, None, None)


def test_the_password_is_never_shown() -> None:
    assert SECRET not in repr(SETTINGS)
    assert SECRET not in str(SETTINGS.model_dump())


def test_settings_come_from_the_oakestra_section_and_environment(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[oakestra]\nurl = "http://oak:10000"\nobserver_image = "o:1"\n')
    env = {"FLOPS_CONFIG": str(config), "FLOPS_OAKESTRA_USERNAME": "flops"}
    env |= {"FLOPS_OAKESTRA_PASSWORD": SECRET, "FLOPS_OAKESTRA_BUILDER_IMAGE": "b:1"}
    settings = load_oakestra_settings(environ=env)
    assert (settings.url, settings.username, settings.builder_image) == (
        "http://oak:10000",
        "flops",
        "b:1",
    )
    assert settings.password.get_secret_value() == SECRET
    with pytest.raises(ConfigError, match="password"):
        load_oakestra_settings(environ={"FLOPS_CONFIG": str(config)})


DOC = Path(__file__).parents[2] / "docs" / "oakestra.md"


@pytest.mark.parametrize("path", sorted(RECORDINGS.glob("*.json")), ids=lambda p: p.stem)
def test_every_recording_names_its_sources(path: Path) -> None:
    """Each source is a full commit of a file that docs/oakestra.md lists as read there."""
    rec = recording(path.stem)
    assert rec["derived_from"] and rec["call"] and rec["request"]["path"].startswith("/api/")
    sources = DOC.read_text().split("## Sources", 1)[1]
    for source in rec["derived_from"]:
        assert source["repo"] and source["path"] and source["fact"]
        assert re.fullmatch(r"[0-9a-f]{40}", source["commit"])
        cited = f"`{source['path']}` @ `{source['commit']}`"
        assert f"`{source['repo']}`" in sources and cited in sources, cited


def test_the_docs_cite_every_source_at_a_full_commit() -> None:
    sources = DOC.read_text().split("## Sources", 1)[1]
    commits = re.findall(r"@ `([^`]+)`", sources)
    assert len(commits) >= 25
    assert all(re.fullmatch(r"[0-9a-f]{40}", commit) for commit in commits), commits
