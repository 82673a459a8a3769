"""Issue 12 on the real stack: the seed SLA builds its images, failures fail clearly.

A real mosquitto, a real stack process, the CLI as a subprocess, real uv builds from the
package index (uv's cache makes them quick after the first).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_repo, run_cli
from tests.integration.conftest import Stack
from tests.integration.test_project_start import SEED, log_texts

pytestmark = pytest.mark.timeout(180)
REUSED = "Latest FLOps images already exists for the provided repo."
SEED_URL = "https://github.com/Malyuk-A/flops_ml_repo_mnist_sklearn"


def sla_for(stack: Stack, tmp_path: Path, repo: Path, name: str) -> Path:
    sla = json.loads(Path(stack.env["FLOPS_SLA_DIR"], "mnist_sklearn_small.json").read_text())
    sla["ml_repo_url"] = f"file://{repo}"
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(sla))
    return path


def log_of(stack: Stack, project_id: str) -> list[dict[str, Any]]:
    log: Any = stack.cli_json("log", project_id)
    return list(log["entries"])


def ready_values(entries: list[dict[str, Any]]) -> dict[str, Any]:
    (data,) = [e["data"] for e in entries if e["data"] and e["data"]["type"] == "images_ready"]
    return dict(data["values"])


def test_the_seed_sla_typed_verbatim_builds_the_bundled_example_then_reuses_it(
    stack: Stack, tmp_path: Path
) -> None:
    empty = tmp_path / "no-slas"
    empty.mkdir()
    env = {**stack.env, "FLOPS_SLA_DIR": str(empty)}  # the bundled SLA, with its GitHub URL
    started = time.monotonic()
    first = run_cli(SEED, env, prog="oak", timeout=150)
    assert first.returncode == 0, first.stdout + first.stderr
    assert time.monotonic() - started < 150  # GitHub fails fast here: no wait for git_timeout
    texts = log_texts(first.stdout)
    warning = next(t for t in texts if t.startswith("WARNING: cannot reach"))
    assert SEED_URL in warning and "using the example repository bundled with FLOps" in warning
    assert any(t.startswith("Start building localhost:5073/malyuk-a/") for t in texts)
    assert any(t.startswith("Builder durations: full_builder_process") for t in texts)
    assert texts[-1] == "Project is IMAGES_READY: stage images_ready"

    again = run_cli([*SEED, "--output", "json"], env, prog="oak", timeout=60)
    assert again.returncode == 0, again.stderr
    doc = json.loads(again.stdout)
    assert doc["state"] == "IMAGES_READY"
    texts = [e["text"] for e in doc["log"]]
    assert REUSED in texts and not any(t.startswith("Start building") for t in texts)
    values = ready_values(doc["log"])
    assert values["fallback"] is True and values["source"] == "bundled:flops_ml_repo_mnist_sklearn"
    assert values["learner"]["name"].endswith(f"/learner:{values['commit']}")
    assert Path(values["learner"]["python"]).is_file()
    assert Path(values["repo_path"], "model_manager.py").is_file()
    assert values["data_tags"] == ["mnist"]


def test_a_repository_without_model_manager_fails_with_the_originals_text(
    stack: Stack, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "r", user="someone", files={"requirements.txt": "numpy\n"})
    done = stack.cli("project", "--project-sla-file-name", str(sla_for(stack, tmp_path, repo, "x")))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "model_manager.py not found in the cloned repository." in done.stdout
    listed: Any = stack.cli_json("projects")
    project = listed["projects"][-1]
    assert project["state"] == "FAILED"
    errors = [e for e in log_of(stack, project["id"]) if e["level"] == "error"]
    assert len(errors) == 1 and errors[0]["text"].startswith(
        "model_manager.py not found in the cloned repository. Builder failed."
    )


def test_an_unresolvable_dependency_fails_with_uvs_message(stack: Stack, tmp_path: Path) -> None:
    files = {"model_manager.py": "class ModelManager: ...\n"}
    files["requirements.txt"] = "flops-no-such-package-7c1e==1.0\n"
    repo = make_repo(tmp_path / "r", user="someone", name="unresolvable", files=files)
    done = stack.cli("project", "--project-sla-file-name", str(sla_for(stack, tmp_path, repo, "u")))
    assert done.returncode == 1, done.stdout + done.stderr
    project = stack.cli_json("projects")["projects"][-1]  # type: ignore[index]
    (error,) = [e for e in log_of(stack, project["id"]) if e["level"] == "error"]
    assert "Resolving the packages of the learner image failed" in error["text"]
    assert "flops-no-such-package-7c1e" in error["text"]
    assert "error:" in error["text"] and "Terminating this FLOps Project." in error["text"]


def test_two_projects_of_one_repository_started_together_build_once(
    stack: Stack, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "r", user="someone", name="shared")
    sla = sla_for(stack, tmp_path, repo, "shared")
    code = "from cli.main import flops_entry; flops_entry()"
    args = [sys.executable, "-c", code, "project", "--project-sla-file-name", str(sla)]
    procs = [
        subprocess.Popen([*args, "--output", "json"], env=stack.env, stdout=subprocess.PIPE)
        for _ in range(2)
    ]
    docs = [json.loads(p.communicate(timeout=150)[0]) for p in procs]
    assert [d["state"] for d in docs] == ["IMAGES_READY", "IMAGES_READY"]
    values = [ready_values(d["log"]) for d in docs]
    assert values[0]["commit"] == values[1]["commit"]
    assert values[0]["learner"]["digest"] == values[1]["learner"]["digest"]
    resolved = [
        any(e["text"].startswith("Resolving the packages of the learner") for e in d["log"])
        for d in docs
    ]
    assert sorted(resolved) == [False, True]  # one build; the other waited, then reused it


def test_mock_data_on_both_bundled_slas_and_bad_ones_refused(stack: Stack, tmp_path: Path) -> None:
    multi = run_cli(["m", "--mock-sla-file-name", "mnist_multi.json"], stack.env, prog="flops")
    assert multi.returncode == 0, multi.stderr
    assert "Stored 3 partition(s) of tag 'mnist'" in multi.stdout
    assert "not MNIST" in multi.stdout
    simple = stack.cli("mock-data", "--mock-sla-file-name", "mnist_simple.json", "--output", "json")
    assert simple.returncode == 0, simple.stderr
    doc = json.loads(simple.stdout)
    assert doc["data"]["partitions"] == 1 and doc["data"]["rows"] == 1797
    oak = stack.cli(
        "addon", "flops", "mock_data", "--mock-sla-file-name", "mnist_multi", prog="oak"
    )
    assert oak.returncode == 0, oak.stderr
    listed = json.loads(stack.cli("data", "--output", "json").stdout)
    assert [(t["tag"], t["partitions"], t["rows"]) for t in listed["tags"]] == [("mnist", 3, 1797)]

    bads: list[tuple[dict[str, Any], str]] = [
        ({"number_of_partitions": 0}, "number_of_partitions"),
        ({"dataset_name": "cifar"}, "dataset_name"),
        ({"data_tag": "../x"}, "data_tag"),
    ]
    for bad, field in bads:
        config = {"dataset_name": "mnist", "number_of_partitions": 2, "data_tag": "fresh"} | bad
        path = tmp_path / "bad.json"
        path.write_text(json.dumps({"customerID": "Admin", "mock_data_configuration": config}))
        done = stack.cli("mock_data", "--mock-sla-file-name", str(path))
        assert done.returncode == 2 and field in done.stderr and str(path) in done.stderr
    assert not (stack.data_dir / "data" / "fresh").exists()
    assert not list((stack.data_dir / "data").glob(".tmp-*"))


def test_flops_images_lists_and_prune_keeps_what_live_projects_use(stack: Stack) -> None:
    listed: Any = stack.cli_json("images")
    assert listed["images"], "the tests before built images"
    projects: Any = stack.cli_json("projects")
    live = {p["id"] for p in projects["projects"] if p["state"] == "IMAGES_READY"}
    used = {i["name"] for i in listed["images"] if set(i["projects"]) & live}
    assert used and all(i["size_bytes"] > 0 and len(i["digest"]) == 64 for i in listed["images"])
    for project in live:
        assert stack.cli("stop", project, "--yes").returncode == 0
    pruned: Any = stack.cli_json("images", "prune", "--yes")
    assert used <= set(pruned["removed"]) and pruned["kept"] == []
    assert stack.cli_json("images")["images"] == []
