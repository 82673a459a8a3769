"""The training actors' accounts: one per project while it trains, never a person's name."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from broker import accounts
from broker.accounts import ProjectAccounts
from broker.security import PasswordFile, check_user_name
from core.errors import ConfigError
from mqtt.link import BrokerAddress

A, B = "a" * 24, "0123456789abcdef01234567"


def _accounts(tmp_path: Path, reloads: list[int]) -> ProjectAccounts:
    return ProjectAccounts(
        PasswordFile(tmp_path / "broker" / "passwd"),
        tmp_path / "broker" / "actors",
        BrokerAddress("127.0.0.1", 1883),
        tmp_path / "ca.crt",
        lambda: reloads.append(1),
    )


@pytest.mark.parametrize("name", [A, B, B.upper(), "ABCDEF0123456789abcdef01"])
def test_a_person_cannot_take_a_project_id_as_user_name(name: str) -> None:
    with pytest.raises(ConfigError, match="project id"):
        check_user_name(name)


@pytest.mark.parametrize("name", ["alice", "a" * 23, "a" * 25, "g" * 24])
def test_other_names_stay_allowed(name: str) -> None:
    assert check_user_name(name) == name


def test_one_account_per_project_held_until_its_last_actor_ends(tmp_path: Path) -> None:
    reloads: list[int] = []
    issued = _accounts(tmp_path, reloads)
    first = issued.grant(A, "aggr")
    password = first.password_file.read_text()
    second = issued.grant(A, "learner-1")
    assert second.password_file.read_text() == password  # the project's one password
    assert len(password) >= 40
    assert stat.S_IMODE(first.password_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(first.password_file.parent.stat().st_mode) == 0o700
    hashes = issued.passwords.users()
    assert set(hashes) == {A}
    assert password not in hashes[A]
    assert hashes[A].startswith("$7$")
    assert len(reloads) == 1  # the broker re-read its file once, for the new account
    issued.release(A, "aggr")
    assert A in issued.passwords.users()
    issued.release(A, "learner-1")
    assert issued.passwords.users() == {}
    assert not first.password_file.exists()
    assert len(reloads) == 2
    assert issued.active() == []


def test_an_account_issued_again_has_a_new_password(tmp_path: Path) -> None:
    issued = _accounts(tmp_path, [])
    before = issued.grant(A, "aggr").password_file.read_text()
    issued.release(A, "aggr")
    assert issued.grant(A, "aggr").password_file.read_text() != before


def test_peoples_accounts_stay_when_actors_come_and_go(tmp_path: Path) -> None:
    issued = _accounts(tmp_path, [])
    issued.passwords.set("alice", "alice-secret-1")
    issued.grant(A, "aggr")
    issued.grant(B, "aggr2")
    issued.passwords.set("bob", "bob-secret-22")
    assert set(issued.passwords.users()) == {"alice", "bob", A, B}
    issued.release(A, "aggr")
    assert set(issued.passwords.users()) == {"alice", "bob", B}


def test_purge_removes_every_actor_account_and_password_only(tmp_path: Path) -> None:
    issued = _accounts(tmp_path, [])
    issued.passwords.set("alice", "alice-secret-1")
    issued.grant(A, "aggr")
    issued.grant(B, "aggr2")
    assert sorted(accounts.purge(issued.passwords, issued.folder)) == sorted([A, B])
    assert set(issued.passwords.users()) == {"alice"}
    assert not issued.folder.exists()


def test_only_a_project_id_gets_an_actor_account(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a project id"):
        _accounts(tmp_path, []).grant("alice", "aggr")
