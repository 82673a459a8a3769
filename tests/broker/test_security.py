"""The password file keeps its owner when root rewrites it (the broker re-reads it)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from broker.security import PasswordFile


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give files away")
def test_a_rewritten_password_file_keeps_its_owner_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    users = PasswordFile(path)
    users.set("alice", "alice-secret-1")
    os.chown(path, 1883, 1883)
    users.set("bob", "bob-secret-22")
    users.remove("alice")
    st = path.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1883, 1883, 0o600)
    assert set(users.users()) == {"bob"}


def test_a_new_password_file_belongs_to_its_writer_with_mode_600(tmp_path: Path) -> None:
    path = tmp_path / "broker" / "passwd"
    PasswordFile(path).set("alice", "alice-secret-1")
    st = path.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (os.geteuid(), 0o600)
