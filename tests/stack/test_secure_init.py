"""`flops secure init`'s files: the layout, the modes, the owners, and a second run that
changes nothing.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from broker.certs import server_hosts
from broker.security import ACL, PasswordFile
from broker.tlsfiles import SERVICE_USER, TlsFiles
from cli.settings import CliSettings
from core.errors import ConfigError
from core.settings import load_settings
from stack.secure import acl_path, passwd_path
from stack.secure_init import CLI_CONFIG, Owner, Plan, init

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="only root can give files away")


def plan_in(tmp_path: Path, **changes: Any) -> Plan:
    plan = Plan(tmp_path / "secrets", ("mosquitto",), cli_dir=tmp_path / "cli", cli_port=18883)
    return dataclasses.replace(plan, **changes)


def state(*folders: Path) -> dict[Path, tuple[bytes, int, int, int, int]]:
    """Content, mode, owner, group and modification time of every file and folder."""
    out = {}
    for folder in folders:
        for path in [folder, *folder.rglob("*")]:
            st = path.stat()
            data = path.read_bytes() if path.is_file() else b""
            out[path] = (data, st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns)
    return out


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_run_writes_the_embedded_layout_with_modes_for_each_reader(tmp_path: Path) -> None:
    plan = plan_in(tmp_path)
    fates = init(plan)
    tls = TlsFiles.under(plan.folder / "tls")
    passwd, acl = passwd_path(plan.folder), acl_path(plan.folder)
    assert set(fates.values()) == {"created"}
    assert set(fates) == {
        tls.ca, tls.server_cert, tls.server_key, tls.service_cert, tls.service_key,
        passwd, acl, tmp_path / "cli" / "ca.crt", tmp_path / "cli" / CLI_CONFIG,
    }  # fmt: skip
    assert passwd.read_text() == ""
    assert acl.read_text() == ACL.format(service=SERVICE_USER)
    for path in (tls.server_key, passwd, acl):
        assert mode(path) == 0o600, path
    assert mode(tls.service_key) == 0o640  # the broker's group: its healthcheck
    for path in (tls.ca, tls.server_cert, tls.service_cert):
        assert mode(path) == 0o644, path
    assert server_hosts(tls.server_cert) == {"mosquitto", "localhost", "127.0.0.1"}


def test_a_second_run_changes_nothing_and_keeps_users_and_the_ca(tmp_path: Path) -> None:
    plan = plan_in(tmp_path)
    init(plan)
    PasswordFile(passwd_path(plan.folder)).set("alice", "alice-secret-1")
    before = state(plan.folder, tmp_path / "cli")
    fates = init(plan)
    assert set(fates.values()) == {"kept"}
    assert state(plan.folder, tmp_path / "cli") == before
    assert "alice" in PasswordFile(passwd_path(plan.folder)).users()


def test_a_rerun_restores_modes_and_the_cli_files_without_a_new_ca(tmp_path: Path) -> None:
    plan = plan_in(tmp_path)
    init(plan)
    ca = (plan.folder / "tls" / "ca.crt").read_bytes()
    (plan.folder / "tls" / "server.key").chmod(0o644)
    (tmp_path / "cli" / CLI_CONFIG).unlink()
    fates = init(plan)
    assert fates[plan.folder / "tls" / "server.key"] == "changed"
    assert fates[tmp_path / "cli" / CLI_CONFIG] == "created"
    assert mode(plan.folder / "tls" / "server.key") == 0o600
    assert (plan.folder / "tls" / "ca.crt").read_bytes() == ca
    assert (tmp_path / "cli" / "ca.crt").read_bytes() == ca


def test_a_host_the_existing_certificate_lacks_is_refused_and_nothing_changes(
    tmp_path: Path,
) -> None:
    plan = plan_in(tmp_path)
    init(plan)
    before = state(plan.folder)
    with pytest.raises(ConfigError, match=r"does not name broker\.example.*new CA"):
        init(plan_in(tmp_path, hosts=("mosquitto", "broker.example")))
    assert state(plan.folder) == before


def test_the_cli_config_names_the_broker_and_the_ca_beside_it(tmp_path: Path) -> None:
    plan = plan_in(tmp_path, cli_host="broker.local")
    init(plan)
    settings = load_settings(
        CliSettings, environ={"FLOPS_CONFIG": str(tmp_path / "cli" / CLI_CONFIG)}, section="cli"
    )
    assert (settings.broker_host, settings.broker_port) == ("broker.local", 18883)
    assert settings.ca_file == tmp_path / "cli" / "ca.crt"
    assert settings.password is None  # never written by init


@pytest.mark.parametrize("text", ["1883", "a:b", ":1", "1883:"])
def test_an_owner_is_uid_colon_gid(text: str) -> None:
    with pytest.raises(ConfigError, match="UID:GID"):
        Owner.parse(text)


@as_root
def test_each_file_goes_to_its_reader(tmp_path: Path) -> None:
    plan = plan_in(tmp_path, broker_owner=Owner(1883, 1883), service_owner=Owner(10001, 1883))
    init(plan)
    tls = TlsFiles.under(plan.folder / "tls")
    for path in (tls.server_key, passwd_path(plan.folder), acl_path(plan.folder)):
        assert (path.stat().st_uid, path.stat().st_gid) == (1883, 1883), path
    assert (tls.service_key.stat().st_uid, tls.service_key.stat().st_gid) == (10001, 1883)
    assert tls.ca.stat().st_uid == 0
    assert set(init(plan).values()) == {"kept"}
