"""A secure stack with users alice and bob, as real processes: `flops up --detach --secure`."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mqtt.link import BrokerAddress, Credentials
from mqtt.tls import client_context
from slas import bundled_dir
from tests.conftest import cli_env, make_repo, run_cli

PASSWORDS = {"alice": "alice-secret-1", "bob": "bob-secret-22"}


@dataclass
class Secure:
    """A secure stack with users alice and bob."""

    root: Path
    env: dict[str, str]
    address: BrokerAddress
    ca: Path
    slas: dict[str, Path]

    @property
    def data_dir(self) -> Path:
        return self.root / "data" / "flops"

    def cli(self, user: str | None, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        extra = {"FLOPS_USER": user, "FLOPS_PASSWORD": PASSWORDS[user]} if user else {}
        return run_cli(list(args), {**self.env, **extra, **env})

    def json(self, user: str, *args: str) -> Any:
        done = self.cli(user, *args, "--output", "json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def creds(self, user: str) -> Credentials:
        return Credentials(user, PASSWORDS[user], client_context(self.ca))


def sla_file(folder: Path, user: str, repo: Path) -> Path:
    sla = json.loads((bundled_dir() / "mnist_sklearn_small.json").read_text())
    sla.update(customerID=user, ml_repo_url=f"file://{repo}")
    path = folder / f"{user}.json"
    path.write_text(json.dumps(sla))
    return path


@contextmanager
def secure_stack(root: Path, **env: str) -> Iterator[Secure]:
    """`flops up --detach --secure` under ``root`` with users alice and bob, then down.

    Their SLAs name a repository below ``root/repos``, the stack's ``local_repo_roots``.
    """
    environ = cli_env(root, FLOPS_LOCAL_REPO_ROOTS=str(root / "repos"), **env)
    up = run_cli(["up", "--detach", "--secure"], environ)
    assert up.returncode == 0, up.stderr + up.stdout
    try:
        for user, password in PASSWORDS.items():
            added = run_cli(["user", "add", user, "--password-stdin"], environ, stdin=password)
            assert added.returncode == 0, added.stderr
        card = json.loads((root / "data" / "flops" / "stack.json").read_text())
        repo = make_repo(root / "repos")
        slas = {u: sla_file(root, u, repo) for u in ("alice", "bob")}
        address = BrokerAddress("127.0.0.1", card["broker_port"])
        yield Secure(root, environ, address, Path(card["ca_file"]), slas)
    finally:
        assert run_cli(["down"], environ).returncode == 0


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secure]:
    with secure_stack(tmp_path_factory.mktemp("secure")) as stack:
        yield stack
