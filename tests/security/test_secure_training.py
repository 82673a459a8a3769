"""The secure mode trains too: TLS, passwords and ACLs on the embedded mosquitto."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker.security import PasswordFile
from core.ids import is_object_id
from slas import bundled_dir
from stack.secure import actors_path, passwd_path
from tests.conftest import wait_until
from tests.security.conftest import secure_stack

pytestmark = pytest.mark.timeout(240)


def test_a_secure_stack_trains_classic_and_hierarchical_slas_to_completed(tmp_path: Path) -> None:
    with secure_stack(tmp_path, FLOPS_STAGES="all") as secure:
        sla = json.loads((bundled_dir() / "mnist_sklearn_small.json").read_text())
        sla.update(customerID="alice", post_training_steps=[])
        path = tmp_path / "train.json"
        path.write_text(json.dumps(sla))
        done = secure.cli(None, "mock_data", "--mock-sla-file-name", "mnist_multi.json")
        assert done.returncode == 0, done.stdout + done.stderr
        doc = secure.json("alice", "project", "--project-sla-file-name", str(path))
        texts = [e["text"] for e in doc["log"]]
        assert doc["state"] == "COMPLETED", texts
        rounds = [e["data"] for e in doc["log"] if e["data"] and e["data"]["type"] == "round"]
        assert [r["round"] for r in rounds] == [1, 2, 3]
        # The training ended: its actors' broker account goes with them.
        passwords = PasswordFile(passwd_path(secure.data_dir))
        wait_until(lambda: not [name for name in passwords.users() if is_object_id(name)])
        assert list(actors_path(secure.data_dir).glob("*")) == []
        # Hierarchical: the cluster aggregators use the project's account on both levels.
        sla = json.loads((bundled_dir() / "hierarchical_mnist_sklearn_small.json").read_text())
        sla.update(customerID="bob", post_training_steps=[])
        sla["training_configuration"]["training_rounds"] = 2
        path.write_text(json.dumps(sla))
        doc = secure.json("bob", "project", "--project-sla-file-name", str(path))
        assert doc["state"] == "COMPLETED", [e["text"] for e in doc["log"]]
        types = {e["data"]["type"] for e in doc["log"] if e["data"]}
        assert {"root_round", "cluster_round"} <= types
        wait_until(lambda: not [name for name in passwords.users() if is_object_id(name)])
