"""The post-training stages on the real stack: a trained artifact to a served model.

A toy ``train`` stage stands in for federated training: its service fits a
LogisticRegression on the digits, saves it through ``save_artifact`` and ends with the
``trained`` data, as the training stage does. The real ``model_image`` and ``serve``
stages follow: the trained-model image is built by uv, the inference service answers, and
the real CLI (subprocesses) predicts, restarts the stack, and stops the project.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict, JsonValue

from flops_env.flavors import load_model
from manager.pipeline import POST_TRAINING, Pipeline, Stage, StageInput, Want
from protocol.events import Event, Facts
from services.context import ServiceContext
from services.kinds import KINDS, ServiceKind
from services.trmodel.artifact import (
    ArtifactMeta,
    Environment,
    Repository,
    models_dir,
    save_artifact,
)
from services.trmodel.facts import TRAINED
from services.trmodel.image import DEPLOY_TEXT, START_TEXT
from tests.conftest import ROOT, BrokerProcess
from tests.models import digits, save_like_the_worker
from tests.stack.conftest import stack_in_process

# the first build of the trained-model image installs scikit-learn from uv's cache
pytestmark = pytest.mark.timeout(300)


class ToyTrainConfig(BaseModel):
    """Where the toy trainer saves its artifact."""

    model_config = ConfigDict(extra="forbid")
    data_dir: str


async def run_toy_train(ctx: ServiceContext[ToyTrainConfig]) -> None:
    """Save a fitted model as the project's artifact; end with the ``trained`` data."""
    await ctx.beat()
    meta = ArtifactMeta(
        project_id=ctx.spec.project_id,
        customer="Admin",
        repository=Repository(url="file:///toy", commit="0" * 40),
        flavor="sklearn",
        round=1,
        rounds=1,
        metrics={"accuracy": 0.9, "loss": 0.3},
        data_tags=["mnist"],
        environment=Environment(image="toy", digest="sha256:" + "0" * 64, python="3.11"),
    )
    root = models_dir(Path(ctx.config.data_dir))
    artifact = await save_artifact(root, meta, save_like_the_worker)
    values: dict[str, JsonValue] = {
        "artifact": str(artifact.path), "run_id": artifact.manifest.run_id, "round": 1
    }  # fmt: skip
    await ctx.emit(
        Event(
            project_id=ctx.spec.project_id,
            source=ctx.spec.name,
            text="Toy training done",
            data=Facts(type=TRAINED, values=values),
        )
    )


TOY_TRAIN: ServiceKind[ToyTrainConfig] = ServiceKind(
    "toytrain", "toytrain", ToyTrainConfig, run_toy_train, one_shot=True, label="Toy Trainer"
)


def toy_train(given: StageInput) -> list[Want]:
    return [Want(TOY_TRAIN, ToyTrainConfig(data_dir=given.settings.data_dir))]


PIPELINE = Pipeline(
    "train",
    {
        "train": Stage("train", toy_train, ends_on=TRAINED, next="model_image"),
        **POST_TRAINING,
    },
)


async def flops(env: dict[str, str], *args: str) -> tuple[int, Any, str]:
    code = "from cli.main import flops_entry; flops_entry()"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, *args, "-o", "json",
        env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, json.loads(out) if out.strip() else None, err.decode()


async def answers(url: str) -> bool:
    try:
        async with httpx.AsyncClient(trust_env=False, timeout=2.0) as client:
            return (await client.get(url + "/ping")).status_code == 200
    except httpx.TransportError:
        return False


async def wait_answering(url: str) -> None:
    for _ in range(300):  # the restored child loads the model, then answers
        if await answers(url):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"nothing answers at {url}")


async def served_project(env: dict[str, str]) -> tuple[str, str]:
    """Start a project, check its log and status; its id and inference URL."""
    code, started, err = await flops(
        env, "project", "--project-sla-file-name", "mnist_sklearn_small"
    )
    assert code == 0 and started["state"] == "COMPLETED", (started, err)
    texts = [e["text"] for e in started["log"]]
    assert START_TEXT in texts and DEPLOY_TEXT in texts, texts
    assert any(t.startswith("Trained model image localhost:5073/admin/trained_model:")
               for t in texts), texts  # fmt: skip
    ready = [t for t in texts if t.startswith("Inference service ready at http://127.0.0.1:")]
    assert len(ready) == 1, texts
    project_id = started["project"]["id"]
    _, shown, _ = await flops(env, "status", project_id)
    url: str = shown["inference_url"]
    assert ready[0].endswith(url) and shown["state"] == "COMPLETED"
    statuses = {s["kind"]: s["instances"][0]["status"] for s in shown["services"]}
    assert statuses["trmodel"] == "RUNNING", statuses
    assert statuses["trbuilder"] in ("COMPLETED", "UNDEPLOYED"), statuses
    return project_id, url


async def test_a_trained_model_is_served_survives_a_restart_and_stop_undeploys_it(
    tmp_path: Path, mosquitto: BrokerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(KINDS, TOY_TRAIN.name, TOY_TRAIN)
    data_dir = tmp_path / "data"
    fixed = {"data_dir": data_dir, "identifier": "post-training"}
    held = tmp_path / "held.npy"
    np.save(held, digits().x_held)
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    async with stack_in_process(first, mosquitto, monkeypatch, fixed, pipeline=PIPELINE) as run:
        env = {**run.env, "FLOPS_DATA_DIR": str(data_dir), "FLOPS_TIMEOUT": "60"}
        project_id, url = await served_project(env)
        _, model, err = await flops(env, "model", project_id)
        assert model["manifest"]["project_id"] == project_id, err
        local = load_model(Path(model["path"]) / "model").model.predict(digits().x_held).tolist()
        code, predicted, err = await flops(env, "predict", project_id, "--input", str(held))
        assert code == 0 and predicted["predictions"] == local, err

        bad = tmp_path / "bad.json"
        bad.write_text("[[1, 2, 3]]")  # 3 features, the model takes 64
        code, refused, err = await flops(env, "predict", project_id, "--input", str(bad))
        assert code == 1 and "refused the input (400)" in json.dumps(refused), (refused, err)

        # A served project is COMPLETED but still needs its images: prune keeps all of them.
        _, listed, _ = await flops(env, "images")
        served = {i["name"] for i in listed["images"] if project_id in i["projects"]}
        assert any("trained_model" in name for name in served), listed
        code, pruned, err = await flops(env, "images", "prune", "--yes")
        assert code == 0 and not served & set(pruned["removed"]), (pruned, err)

    assert not await answers(url)  # the stack's stop stopped the child
    async with stack_in_process(second, mosquitto, monkeypatch, fixed, pipeline=PIPELINE) as run:
        env = {**run.env, "FLOPS_DATA_DIR": str(data_dir), "FLOPS_TIMEOUT": "60"}
        _, shown, _ = await flops(env, "status", project_id)
        assert shown["inference_url"] == url  # the kept port
        await wait_answering(url)
        code, predicted, err = await flops(env, "predict", project_id, "--input", str(held))
        assert code == 0 and predicted["predictions"] == local, err

        code, stopped, err = await flops(env, "stop", project_id, "--yes")
        assert code == 0, err
        statuses = {s["kind"]: s["instances"][0]["status"] for s in stopped["services"]}
        assert statuses["trmodel"] == "UNDEPLOYED", statuses
        assert not await answers(url)  # connection refused: the service is gone
        code, refused, err = await flops(env, "predict", project_id, "--input", str(held))
        assert code != 0 and "no running inference service" in json.dumps(refused), refused

        other, other_url = await served_project(env)  # another project, left serving
        assert other_url != url
        await wait_answering(other_url)

    await moves_when_its_port_is_taken(tmp_path, mosquitto, monkeypatch, other, other_url)


async def moves_when_its_port_is_taken(
    tmp_path: Path, mosquitto: BrokerProcess, monkeypatch: pytest.MonkeyPatch, pid: str, url: str
) -> None:
    """Its port is taken while the stack is down: the restored service moves, status follows."""
    data_dir, third = tmp_path / "data", tmp_path / "third"
    third.mkdir()
    fixed = {"data_dir": data_dir, "identifier": "post-training"}
    port = urlsplit(url).port or 0
    with hold(port):
        async with stack_in_process(third, mosquitto, monkeypatch, fixed, pipeline=PIPELINE) as run:
            env = {**run.env, "FLOPS_DATA_DIR": str(data_dir), "FLOPS_TIMEOUT": "60"}
            moved = await moved_url(env, pid, url)
            await wait_answering(moved)
            _, log, _ = await flops(env, "log", pid)
            texts = [e["text"] for e in log["entries"]]
            assert (
                f"Port {port} of the inference service is taken; it moves to a free port" in texts
            )
            assert f"Inference service ready at {moved}" in texts
            code, predicted, err = await flops(
                env, "predict", pid, "--input", str(tmp_path / "held.npy")
            )
            assert code == 0 and predicted["url"] == moved, err
            code, _, err = await flops(env, "delete", pid, "--yes")
            assert code == 0, err
            assert not await answers(moved)


@contextmanager
def hold(port: int) -> Iterator[None]:
    """Listen on ``port`` of loopback while the block runs (another program took it)."""
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # its last ones in TIME_WAIT
        taken.bind(("127.0.0.1", port))
        taken.listen()
        yield


async def moved_url(env: dict[str, str], project_id: str, old: str) -> str:
    """The project's inference URL once status shows one other than ``old``."""
    for _ in range(150):
        _, shown, _ = await flops(env, "status", project_id)
        if shown["inference_url"] not in ("", old):
            return str(shown["inference_url"])
        await asyncio.sleep(0.2)
    raise AssertionError(f"status still shows {old} (or none)")
