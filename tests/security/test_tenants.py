"""Tenants stay apart: a real mosquitto with the generated password, ACL and TLS files."""

from __future__ import annotations

import asyncio
import json

import aiomqtt
import pytest

from broker.security import ensure_certificates
from mqtt.link import Credentials, make_client
from protocol import codec, topics
from protocol.messages import CreateProject
from services.trmodel.artifact import (
    ArtifactMeta,
    Environment,
    Repository,
    models_dir,
    save_artifact,
)
from tests.conftest import run_cli
from tests.models import save_like_the_worker
from tests.security.conftest import PASSWORDS, Secure

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def alices_project(secure: Secure) -> str:
    started = secure.json("alice", "project", "--project-sla-file-name", str(secure.slas["alice"]))
    return str(started["project"]["id"])


def test_passwords_are_stored_only_as_hashes_and_never_printed(secure: Secure) -> None:
    passwd = (secure.root / "data" / "flops" / "broker" / "passwd").read_text()
    assert all(p not in passwd for p in PASSWORDS.values())
    assert passwd.count("$7$") == 2
    listed = secure.cli(None, "user", "list", "-o", "json")
    assert json.loads(listed.stdout) == {"users": ["alice", "bob"]}
    assert "$7$" not in listed.stdout
    log = (secure.root / "data" / "flops" / "stack.log").read_text()
    assert all(p not in log for p in PASSWORDS.values())


def test_bob_cannot_see_stop_or_delete_alices_project(secure: Secure, alices_project: str) -> None:
    for args in (
        ["status", alices_project],
        ["log", alices_project],
        ["stop", alices_project, "--yes"],
        ["delete", alices_project, "--yes"],
    ):
        done = secure.cli("bob", *args)
        assert done.returncode == 1, args
        assert "no project" in done.stderr or "no log" in done.stderr
    assert secure.json("bob", "projects")["projects"] == []
    shown = secure.json("alice", "status", alices_project)
    assert shown["state"] == "IMAGES_READY"


async def test_only_alice_sees_and_exports_her_projects_trained_model(
    secure: Secure, alices_project: str
) -> None:
    done = secure.cli("alice", "model", alices_project)  # not trained: said, nothing leaks
    assert done.returncode == 1 and "has no trained model on this node" in done.stderr
    meta = ArtifactMeta(
        project_id=alices_project, customer="alice",
        repository=Repository(url="file:///repo", commit="0" * 40), flavor="sklearn",
        round=1, rounds=1, metrics={"accuracy": 0.9}, data_tags=["mnist"],
        environment=Environment(image="i", digest="sha256:" + "0" * 64, python="3.11"),
    )  # fmt: skip
    await save_artifact(models_dir(secure.data_dir), meta, save_like_the_worker)
    shown = secure.json("alice", "model", alices_project)
    assert shown["manifest"]["project_id"] == alices_project
    for args in (["model", alices_project], ["model", alices_project, "--export", "out"]):
        done = secure.cli("bob", *args)  # as for a project that does not exist
        assert done.returncode == 1 and f"no project {alices_project}" in done.stderr, args
        assert "manifest" not in done.stdout + done.stderr
    exported = secure.cli("alice", "model", alices_project, "--export", str(secure.root / "copy"))
    assert exported.returncode == 0, exported.stderr  # here the CLI can read the data dir
    assert (secure.root / "copy" / "model" / "model.skops").is_file()


async def test_bob_receives_nothing_from_alices_topics(secure: Secure, alices_project: str) -> None:
    got: list[str] = []
    async with make_client(
        secure.address, "bob-spy", persistent=False, credentials=secure.creds("bob")
    ) as spy:
        await spy.subscribe("flops/v1/users/alice/#", qos=1)
        await spy.subscribe("flops/#", qos=1)

        async def listen() -> None:
            async for message in spy.messages:
                got.append(str(message.topic))

        listener = asyncio.create_task(listen())
        started = secure.json(
            "alice", "project", "--project-sla-file-name", str(secure.slas["alice"])
        )
        assert started["state"] == "IMAGES_READY"  # alice's events and log flowed meanwhile
        await asyncio.sleep(0.5)
        listener.cancel()
    assert [t for t in got if "/users/alice/" in t] == []


async def test_bob_cannot_publish_into_alices_request_topic(secure: Secure) -> None:
    before = len(secure.json("alice", "projects")["projects"])
    sla = json.loads(secure.slas["alice"].read_text())
    request = CreateProject(request_id="forged-0001", reply_to="bob-forger", sla=sla)
    async with make_client(
        secure.address, "bob-forger", persistent=False, credentials=secure.creds("bob")
    ) as forger:
        await forger.publish(
            str(topics.request("alice", topics.Op.CREATE_PROJECT)), codec.encode(request), qos=1
        )
    await asyncio.sleep(1.0)
    assert len(secure.json("alice", "projects")["projects"]) == before


def test_a_spoofed_customer_id_is_refused(secure: Secure) -> None:
    done = secure.cli("bob", "project", "--project-sla-file-name", str(secure.slas["alice"]))
    assert done.returncode == 1
    assert "customerID 'alice' is not the requesting user 'bob'" in done.stderr


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"FLOPS_USER": "bob"}, "refused this client: it needs a user name and password"),
        (
            {"FLOPS_USER": "bob", "FLOPS_PASSWORD": "wrong-password"},
            "refused user 'bob': wrong user name or password",
        ),
        (
            {"FLOPS_USER": "nobody", "FLOPS_PASSWORD": "whatever-123"},
            "refused user 'nobody': wrong user name or password",
        ),
    ],
)
def test_wrong_or_missing_credentials_cannot_connect(
    secure: Secure, env: dict[str, str], reason: str
) -> None:
    done = secure.cli(None, "projects", **env)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and reason in lines[0]


def test_a_client_that_does_not_trust_the_broker_cannot_connect(secure: Secure) -> None:
    other = ensure_certificates(secure.root / "other-ca")
    done = secure.cli("alice", "projects", FLOPS_CA_FILE=str(other.ca))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "is not trusted" in lines[0]


async def test_plain_mqtt_to_the_tls_listener_is_refused(secure: Secure) -> None:
    with pytest.raises(aiomqtt.MqttError):
        async with make_client(
            secure.address,
            "plain",
            persistent=False,
            timeout=3,
            credentials=Credentials("alice", PASSWORDS["alice"]),
        ):
            pass


def test_a_config_file_readable_by_others_with_a_password_is_warned_about(secure: Secure) -> None:
    config = secure.root / "config" / "flops" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f'user = "alice"\npassword = "{PASSWORDS["alice"]}"\n')
    config.chmod(0o644)
    warned = run_cli(["projects"], secure.env)
    assert warned.returncode == 0, warned.stderr
    assert f"{config} holds a password and is readable by others" in warned.stderr
    config.chmod(0o600)
    quiet = run_cli(["projects"], secure.env)
    assert quiet.returncode == 0 and "Warning" not in quiet.stderr
    # The word alone is no password (`flops secure init` writes such a comment).
    config.write_text('# set password = "..." in a file of your own\nuser = "alice"\n')
    config.chmod(0o644)
    env = {**secure.env, "FLOPS_PASSWORD": PASSWORDS["alice"]}
    unwarned = run_cli(["projects"], env)
    assert unwarned.returncode == 0 and "Warning" not in unwarned.stderr, unwarned.stderr
    config.unlink()
