"""Issue 13 on the real stack: the seed SLA trains on the bundled example, every round logged.

A real mosquitto, a real stack process (all stages), the CLI as a subprocess, the bundled
example built by uv, mock digits prepared on the node with ``flops mock_data``.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from flops_env.flavors import load_model
from nodedata.digits import load_digits
from slas import bundled_dir
from tests.conftest import BrokerProcess, cli_env, make_repo
from tests.integration.conftest import UNLIMITED, Stack, make_stack, start

pytestmark = pytest.mark.timeout(300)


def write_sla(
    folder: Path, name: str, source: str, repo: Path | None = None, **changes: Any
) -> None:
    """A bundled SLA without post-training steps, its training configuration changed.

    With ``repo``: the SLA trains that local repository (``file://``) instead.
    """
    sla = json.loads((bundled_dir() / source).read_text())
    sla["post_training_steps"] = []
    sla["training_configuration"].update(changes)
    if repo is not None:
        sla["ml_repo_url"] = f"file://{repo}"
    (folder / name).write_text(json.dumps(sla))


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ml_repos"
# The module's stack refuses models over 1 MiB: the digits model (63 KB) passes,
# the faulty fixture's big one (2 MB) does not.
MAX_MODEL = {"FLOPS_TRAINING_MAX_MODEL_BYTES": str(1 << 20)}


def faulty_repo(parent: Path, fault: str) -> Path:
    """A git repository of the ``faulty`` fixture (tests/fixtures/ml_repos) with ``fault``."""
    folder = FIXTURES / "faulty"
    files = {f.name: f.read_text() for f in folder.iterdir() if f.is_file()}
    return make_repo(parent, name=f"faulty_{fault}", files={**files, "fault.txt": fault})


def fault_line() -> int:
    """The line of the ``faulty`` fixture's ``# FAULT LINE``."""
    text = (FIXTURES / "faulty" / "model_manager.py").read_text().splitlines()
    return next(i for i, line in enumerate(text, 1) if "# FAULT LINE" in line)


@pytest.fixture(scope="module")
def stack(mosquitto: BrokerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("train")
    slas = root / "slas"
    slas.mkdir()
    write_sla(slas, "small.json", "mnist_sklearn_small.json")
    write_sla(slas, "hier.json", "hierarchical_mnist_sklearn_small.json", training_rounds=2)
    write_sla(slas, "nodata.json", "mnist_sklearn_small.json", data_tags=["absent"])
    write_sla(slas, "long.json", "mnist_sklearn_small.json", training_rounds=500)
    write_sla(slas, "mid.json", "mnist_sklearn_small.json", training_rounds=60)
    write_sla(
        slas,
        "three.json",
        "mnist_sklearn_small.json",
        training_rounds=150,  # ~0.05 s each: the kill comes well before the end
        min_available_clients=3,
        min_fit_clients=2,
        min_evaluate_clients=2,
    )
    for fault in ("raise", "big"):
        repo = faulty_repo(root / "repos", fault)
        write_sla(slas, f"{fault}.json", "mnist_sklearn_small.json", repo)
    env = cli_env(root, FLOPS_SLA_DIR=str(slas), FLOPS_STAGES="all", **UNLIMITED, **MAX_MODEL)
    s = Stack(root, env)
    s.start(
        "--broker", "external", "--broker-host", "127.0.0.1", "--broker-port", str(mosquitto.port)
    )
    done = s.cli("mock_data", "--mock-sla-file-name", "mnist_multi.json")
    assert done.returncode == 0, done.stdout + done.stderr
    yield s
    code = s.stop()
    assert code == 0, (root / "stack.out").read_text()


def run_project(stack: Stack, sla: str) -> dict[str, Any]:
    done = stack.cli("project", "--project-sla-file-name", sla, "--output", "json", timeout=240)
    assert done.stdout, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def data_of(doc: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["data"] for e in doc["log"] if e["data"] and e["data"]["type"] == kind]


def test_the_seed_sla_trains_three_rounds_on_disjoint_data_and_completes(stack: Stack) -> None:
    doc = run_project(stack, "small.json")
    texts = [e["text"] for e in doc["log"]]
    assert doc["state"] == "COMPLETED", texts
    assert "Start handling FL training processes" in texts
    for line in (
        "Preparing new FL Aggregator.",
        "New Aggregator service created & deployed",
        "Preparing new FL Learners.",
        "New FL Learners service created & deployed",
        "Aggregator tasks completed successfully.",
        "The best performing model:",
        "No further post training steps requested.",
    ):
        assert line in texts, line
    # the learners are one service in the log, as in the original, with their names
    assert texts.count("New FL Learners service created & deployed") == 1
    learners = [s["learner"] for s in (d["values"] for d in data_of(doc, "learner_data"))]
    assert f"FL Learners instances: {', '.join(sorted(learners))}" in texts
    rounds = data_of(doc, "round")
    assert [(r["round"], r["learners"]) for r in rounds] == [(1, 2), (2, 2), (3, 2)]
    (trained,) = data_of(doc, "trained")
    values = trained["values"]
    assert values["rounds"] == 3 and values["accuracy"] >= 0.8
    assert values["accuracy"] == max(r["accuracy"] for r in rounds)
    # the artifact: the best model, loadable with its checks, good on digits
    model = load_model(Path(values["artifact"]) / "model")
    images, labels = load_digits()
    score = float((model.model.predict(images.reshape(len(images), -1)) == labels).mean())
    assert score >= 0.8
    # learners on disjoint rows, together all of the tag's rows (as each learner reported)
    manifest = json.loads((stack.data_dir / "data" / "mnist" / "manifest.json").read_text())
    shares = data_of(doc, "learner_data")
    assert len(shares) == 2
    seen: set[tuple[str, int]] = set()
    for share in shares:
        slices = share["values"]["slices"]
        mine = {(s["file"], r) for s in slices for r in range(s["start"], s["stop"])}
        assert mine and not mine & seen
        seen |= mine
    assert len(seen) == sum(p["rows"] for p in manifest["partitions"])
    shown: Any = stack.cli_json("status", doc["project"]["id"])
    actors = [s for s in shown["services"] if not s["name"].startswith("observ")]
    assert {s["instances"][0]["status"] for s in actors} <= {"COMPLETED", "UNDEPLOYED"}
    assert shown["training"]["round"] == 3
    assert shown["training"]["best"]["accuracy"] == values["accuracy"]
    table = stack.cli("status", doc["project"]["id"]).stdout
    assert "Training: round 3, accuracy " in table and "best so far round " in table


def test_no_data_for_the_tags_fails_with_the_originals_text(stack: Stack) -> None:
    doc = run_project(stack, "nodata.json")
    assert doc["state"] == "FAILED"
    errors = [e["text"] for e in doc["log"] if e["level"] == "error"]
    assert "No matching data found for provided data tags '['absent']'" in errors


def test_hierarchical_runs_cycles_of_rounds_per_cluster(stack: Stack) -> None:
    doc = run_project(stack, "hier.json")
    texts = [e["text"] for e in doc["log"]]
    assert doc["state"] == "COMPLETED", texts
    cycles = data_of(doc, "root_round")
    assert [c["values"]["round"] for c in cycles] == [1, 2]
    clusters = data_of(doc, "cluster_round")
    assert len(clusters) == 2 * 2 * 2  # cycles x clusters x rounds
    (trained,) = data_of(doc, "trained")
    assert trained["values"]["rounds"] == 2


def test_stop_mid_training_undeploys_every_actor(stack: Stack) -> None:
    started = stack.cli("project", "--project-sla-file-name", "long.json", "--no-follow")
    if started.returncode != 0:
        pytest.fail(started.stdout + started.stderr)
    project: Any = stack.cli_json("projects")
    project_id = project["projects"][-1]["id"]
    deadline = time.monotonic() + 200
    while True:
        log: Any = stack.cli_json("log", project_id)
        if any(e["data"] and e["data"]["type"] == "round" for e in log["entries"]):
            break
        assert time.monotonic() < deadline, [e["text"] for e in log["entries"]]
        time.sleep(0.5)
    done = stack.cli("stop", project_id, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    shown: Any = stack.cli_json("status", project_id)
    assert shown["state"] == "STOPPED"
    actors = [s for s in shown["services"] if not s["name"].startswith("observ")]
    assert actors and all(s["instances"][0]["status"] == "UNDEPLOYED" for s in actors)


def first_round(stack: Stack, project_id: str) -> None:
    deadline = time.monotonic() + 200
    while True:
        log: Any = stack.cli_json("log", project_id)
        if any(e["data"] and e["data"]["type"] == "round" for e in log["entries"]):
            return
        assert time.monotonic() < deadline, [e["text"] for e in log["entries"]]
        time.sleep(0.5)


def start_long(stack: Stack, sla: str = "long.json") -> str:
    started = stack.cli("project", "--project-sla-file-name", sla, "--no-follow")
    assert started.returncode == 0, started.stdout + started.stderr
    project: Any = stack.cli_json("projects")
    project_id: str = project["projects"][-1]["id"]
    first_round(stack, project_id)
    return project_id


def learner_workers(stack_pid: int) -> dict[int, list[Any]]:
    """The user-code workers of learners under the stack process, with their data slices."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        slices = [v.split(b"=", 1)[1] for v in environ if v.startswith(b"FLOPS_DATA_SLICES=")]
        if parent == stack_pid and slices:
            found[int(proc.name)] = json.loads(slices[0])
    return found


def kill_a_learner(stack: Stack, project_id: str, learners: int) -> str:
    """SIGKILL one learner's user code mid-training; the learner's service name."""
    assert stack.proc is not None
    log: Any = stack.cli_json("log", project_id)  # first: the kill follows the workers' lookup
    shares = {
        json.dumps(e["data"]["values"]["slices"]): e["data"]["values"]["learner"]
        for e in log["entries"]
        if is_data(e, "learner_data")
    }
    workers = {  # this project's (another's may still be ending)
        pid: shares[key]
        for pid, slices in learner_workers(stack.proc.pid).items()
        if (key := json.dumps(slices)) in shares
    }
    assert len(workers) == learners, (workers, shares)
    pid, name = next(iter(workers.items()))
    os.kill(pid, signal.SIGKILL)
    return str(name)


def is_data(entry: dict[str, Any], kind: str) -> bool:
    """Whether a log entry carries data of type ``kind``."""
    return bool(entry["data"]) and entry["data"]["type"] == kind


def settled(stack: Stack, project_id: str, states: tuple[str, ...]) -> Any:
    """``flops status`` once the project is in one of ``states`` and no actor runs any more."""
    deadline = time.monotonic() + 120
    while True:
        shown: Any = stack.cli_json("status", project_id)
        actors = [s for s in shown["services"] if not s["name"].startswith("observ")]
        statuses = {s["instances"][0]["status"] for s in actors}
        if shown["state"] in states and statuses <= {"FAILED", "UNDEPLOYED", "COMPLETED"}:
            return shown
        assert time.monotonic() < deadline, shown
        time.sleep(0.5)


def test_a_crashed_learner_fails_the_project_naming_it_and_nothing_stays_deployed(
    stack: Stack,
) -> None:
    project_id = start_long(stack)
    kill_a_learner(stack, project_id, 2)  # one learner's user code dies mid-training
    deadline = time.monotonic() + 120
    while (shown := cast(Any, stack.cli_json("status", project_id)))["state"] != "FAILED":
        assert time.monotonic() < deadline, shown
        time.sleep(0.5)
    log: Any = stack.cli_json("log", project_id)
    errors = [e["text"] for e in log["entries"] if e["level"] == "error"]
    assert any("needs 2 learners" in t and "flearner" in t for t in errors), errors
    actors = [s for s in shown["services"] if not s["name"].startswith("observ")]
    assert all(s["instances"][0]["status"] in ("FAILED", "UNDEPLOYED") for s in actors), actors


def test_the_stack_killed_mid_training_resumes_from_the_checkpoint_counting_each_round_once(
    stack: Stack, mosquitto: BrokerProcess
) -> None:
    project_id = start_long(stack, "mid.json")
    stack.stop(signal.SIGKILL)
    stack.start(
        "--broker", "external", "--broker-host", "127.0.0.1", "--broker-port", str(mosquitto.port)
    )
    deadline = time.monotonic() + 200
    while (shown := cast(Any, stack.cli_json("status", project_id)))["state"] == "TRAINING":
        assert time.monotonic() < deadline, shown
        time.sleep(0.5)
    log: Any = stack.cli_json("log", project_id)
    texts = [e["text"] for e in log["entries"]]
    assert shown["state"] == "COMPLETED", texts
    assert any(t.startswith("Resuming from the checkpoint of round ") for t in texts)
    rounds = [
        e["data"]["round"] for e in log["entries"] if e["data"] and e["data"]["type"] == "round"
    ]
    assert rounds == list(range(1, 61))  # each round once in the log
    (trained,) = [e["data"] for e in log["entries"] if e["data"] and e["data"]["type"] == "trained"]
    assert trained["values"]["rounds"] == 60
    # status: the last round and the best the aggregator saved, kept across the restart
    assert shown["training"]["round"] == 60
    assert shown["training"]["best"]["round"] == trained["values"]["round"]


def test_the_process_runtime_trains_the_seed_sla_with_each_actor_a_process(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    env = {"FLOPS_STAGES": "all", "FLOPS_RUNTIME": "process"}
    s = make_stack(tmp_path, broker, **env)
    write_sla(Path(s.env["FLOPS_SLA_DIR"]), "small.json", "mnist_sklearn_small.json")
    start(s, broker)
    try:
        done = s.cli("mock_data", "--mock-sla-file-name", "mnist_multi.json")
        assert done.returncode == 0, done.stdout + done.stderr
        doc = run_project(s, "small.json")
        assert doc["state"] == "COMPLETED", [e["text"] for e in doc["log"]]
        assert [r["round"] for r in data_of(doc, "round")] == [1, 2, 3]
        (trained,) = data_of(doc, "trained")
        assert trained["values"]["accuracy"] >= 0.8
    finally:
        assert s.stop() == 0


def test_a_learner_killed_with_enough_left_is_named_in_a_warning_and_training_completes(
    stack: Stack,
) -> None:
    project_id = start_long(stack, "three.json")  # 3 learners, 2 needed to fit and evaluate
    killed = kill_a_learner(stack, project_id, 3)
    shown = settled(stack, project_id, ("COMPLETED", "FAILED"))
    log: Any = stack.cli_json("log", project_id)
    texts = [e["text"] for e in log["entries"]]
    assert shown["state"] == "COMPLETED", texts
    warnings = [e["text"] for e in log["entries"] if e["level"] == "warning"]
    assert any(
        t.startswith(f"Learner {killed} ") and "worker exited with code -9" in t for t in warnings
    ), warnings
    rounds = [e["data"] for e in log["entries"] if e["data"] and e["data"]["type"] == "round"]
    assert [r["round"] for r in rounds] == list(range(1, 151))
    assert rounds[-1]["learners"] == 2
    (trained,) = [e["data"] for e in log["entries"] if e["data"] and e["data"]["type"] == "trained"]
    assert trained["values"]["rounds"] == 150


def test_an_exception_in_user_code_fails_the_project_with_its_message_file_and_line(
    stack: Stack,
) -> None:
    doc = run_project(stack, "raise.json")
    texts = [e["text"] for e in doc["log"]]
    assert doc["state"] == "FAILED", texts
    errors = [e["text"] for e in doc["log"] if e["level"] == "error"]
    where = f"(at model_manager.py:{fault_line()})"
    assert any(
        "fit_model raised ValueError: learning rate must be positive, got -0.1" in t and where in t
        for t in errors
    ), errors
    assert any(t.startswith("Aggregator failed: 'round 1 needs 2 learners") for t in errors)
    settled(stack, doc["project"]["id"], ("FAILED",))


def test_a_model_over_the_size_limit_is_refused_before_the_first_round_naming_the_limit(
    stack: Stack,
) -> None:
    doc = run_project(stack, "big.json")
    texts = [e["text"] for e in doc["log"]]
    assert doc["state"] == "FAILED", texts
    errors = [e["text"] for e in doc["log"] if e["level"] == "error"]
    assert (
        "Aggregator failed: 'the model's parameters take 2.0 MB, over the limit of 1.0 MB "
        "(setting training.max_model_bytes, FLOPS_TRAINING_MAX_MODEL_BYTES)'. "
        "Terminating this FLOps Project."
    ) in errors, errors
    assert not data_of(doc, "round")
    assert not any(t.startswith("Start Aggregator activities") for t in texts)
    settled(stack, doc["project"]["id"], ("FAILED",))


def test_delete_removes_the_projects_checkpoints_and_trained_model_and_keeps_the_images(
    stack: Stack,
) -> None:
    doc = run_project(stack, "small.json")
    assert doc["state"] == "COMPLETED", [e["text"] for e in doc["log"]]
    project_id = doc["project"]["id"]
    checkpoints = stack.data_dir / "training" / project_id
    (trained,) = data_of(doc, "trained")
    artifact = Path(trained["values"]["artifact"])
    assert (checkpoints / "checkpoint.flf").is_file() and (artifact / "manifest.json").is_file()
    images: Any = stack.cli_json("images")
    kept = {(i["name"], i["digest"]) for i in images["images"]}
    done = stack.cli("delete", project_id, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert not checkpoints.exists() and not artifact.exists()
    images = stack.cli_json("images")  # shared by content; `flops images prune` removes them
    assert {(i["name"], i["digest"]) for i in images["images"]} == kept
    assert (stack.data_dir / "training").is_dir()  # other projects' checkpoints stay
