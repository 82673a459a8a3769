"""The deploy mosquitto.conf in its secure mode, run by the real mosquitto on the files that
the real `flops secure init` wrote, with users added by the real `flops user add`.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from broker.security import ensure_certificates
from tests.deploy.conftest import (
    PASSWORDS,
    SERVICE_PORT,
    DeployBroker,
    login_error,
    transport_refusal,
    wait_login,
)
from tests.deploy.test_compose import healthcheck_argv
from tests.security.attacks import Door, offline_backlog, retained_after

pytestmark = pytest.mark.timeout(60)


async def topics_of(client: aiomqtt.Client, count: int) -> list[str]:
    """The topics of the next ``count`` messages."""
    got: list[str] = []
    async with asyncio.timeout(5):
        async for message in client.messages:
            got.append(str(message.topic))
            if len(got) == count:
                break
    return got


async def test_a_user_added_with_flops_user_add_logs_in_once_the_broker_got_sighup(
    deploy_broker: DeployBroker,
) -> None:
    assert deploy_broker.secrets is not None
    deploy_broker.secrets.add_user("carol", "carol-secret-3")
    tls = deploy_broker.tls()
    # mosquitto reads its password file at start and on SIGHUP only.
    assert await login_error(deploy_broker.people_port, tls, "carol", "carol-secret-3")
    deploy_broker.hup()
    await wait_login(deploy_broker, "carol", "carol-secret-3")


async def test_a_user_uses_their_own_subtree_and_not_another_users(
    deploy_broker: DeployBroker,
) -> None:
    """The ACL: alice's request into bob's subtree and bob's replies never pass."""
    port = deploy_broker.people_port
    service = aiomqtt.Client(
        "127.0.0.1", deploy_broker.service_port, tls_context=deploy_broker.tls(service=True)
    )
    alice = aiomqtt.Client(
        "127.0.0.1",
        port,
        username="alice",
        password=PASSWORDS["alice"],
        tls_context=deploy_broker.tls(),
    )
    async with service, alice:
        await service.subscribe("flops/v1/users/+/requests/+", qos=1)
        await alice.subscribe("flops/v1/users/alice/replies/+", qos=1)
        await alice.subscribe("flops/v1/users/bob/replies/+", qos=1)
        for owner, n in (("alice", 1), ("bob", 2), ("alice", 3)):
            await alice.publish(f"flops/v1/users/{owner}/requests/r{n}", b"{}", qos=1)
        for owner, n in (("bob", 1), ("alice", 2)):
            await service.publish(f"flops/v1/users/{owner}/replies/r{n}", b"{}", qos=1)
        # One publisher's messages arrive in order: a passed r2 would come before r3.
        assert await topics_of(service, 2) == [
            "flops/v1/users/alice/requests/r1",
            "flops/v1/users/alice/requests/r3",
        ]
        assert await topics_of(alice, 1) == ["flops/v1/users/alice/replies/r2"]


@pytest.mark.parametrize(
    ("user", "password"),
    [(None, None), ("alice", "not-her-password"), ("mallory", "whatever-123")],
    ids=["anonymous", "wrong-password", "unknown-user"],
)
async def test_clients_without_valid_credentials_are_refused(
    deploy_broker: DeployBroker, user: str | None, password: str | None
) -> None:
    assert await login_error(deploy_broker.people_port, deploy_broker.tls(), user, password)


def test_plain_mqtt_is_refused_on_both_listeners(deploy_broker: DeployBroker) -> None:
    for port in (deploy_broker.people_port, deploy_broker.service_port):
        assert transport_refusal(port, None)


async def test_the_services_listener_takes_the_client_certificate_and_nothing_else(
    deploy_broker: DeployBroker,
) -> None:
    port = deploy_broker.service_port
    assert await login_error(port, deploy_broker.tls(service=True)) is None
    assert transport_refusal(port, deploy_broker.tls(service=True)) is None  # the control
    # TLS, but no client certificate: an alert, a reset or an EOF, never a CONNACK.
    assert transport_refusal(port, deploy_broker.tls())


def mosquitto_healthcheck(compose: dict[str, Any], broker: DeployBroker) -> list[str]:
    """The compose healthcheck of mosquitto, aimed at this broker's files and port."""
    assert broker.secrets is not None
    argv = [broker.secrets.path(a) for a in healthcheck_argv(compose["services"]["mosquitto"])]
    binary = shutil.which(argv[0])
    if binary is None:
        pytest.fail("mosquitto_sub is missing; bin/setup --system installs mosquitto-clients")
    argv[0] = binary
    port_at = argv.index("-p") + 1
    assert argv[port_at] == str(SERVICE_PORT)
    argv[port_at] = str(broker.service_port)
    return argv


def test_the_mosquitto_healthcheck_passes_on_the_secure_broker(
    compose: dict[str, Any], deploy_broker: DeployBroker
) -> None:
    result = subprocess.run(
        mosquitto_healthcheck(compose, deploy_broker),
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_mosquitto_healthcheck_fails_with_certificates_of_another_ca(
    compose: dict[str, Any], deploy_broker: DeployBroker, tmp_path: Path
) -> None:
    """The control: the check really verifies TLS and the client certificate."""
    assert deploy_broker.secrets is not None
    other = ensure_certificates(tmp_path / "tls")
    argv = mosquitto_healthcheck(compose, deploy_broker)
    argv = [
        a.replace(str(deploy_broker.secrets.folder / "tls"), str(other.ca.parent)) for a in argv
    ]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    assert result.returncode != 0


async def test_a_user_can_make_the_broker_keep_little_and_nothing_for_ever(
    deploy_broker: DeployBroker,
) -> None:
    """The deploy config bounds a user's offline session and refuses retained messages, as
    the embedded one does (tests/security/test_hostile_tenant.py)."""
    alice = Door(deploy_broker.people_port, deploy_broker.tls(), "alice", PASSWORDS["alice"])
    service = Door(deploy_broker.service_port, deploy_broker.tls(service=True))
    size = 1024 * 1024 - 1024
    replies = "flops/v1/users/alice/replies/offline-alice"
    received = await offline_backlog(alice, service, replies, 48, size)
    assert 16 * 1024 * 1024 <= received <= 32 * 1024 * 1024 + size
    requests = "flops/v1/users/alice/requests/list_apps"
    assert await retained_after(alice, service, requests) == []
