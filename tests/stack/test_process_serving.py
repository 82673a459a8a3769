"""The seed project served under the process runtime: each service a child of the stack.

The inference service is then a ``flops service run`` process whose child is the scoring
server. It answers ``flops predict``; a stack restart brings both back (same URL); ``flops
stop`` and ``flops delete`` leave neither process behind (checked by their pids).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nodedata.digits import load_digits
from tests.conftest import BrokerProcess
from tests.flops_env.test_serve import alive
from tests.stack.conftest import seed_stack
from tests.stack.test_post_training import answers, flops, wait_answering
from tests.stack.test_tracking import data_of, seed_project

pytestmark = pytest.mark.timeout(900)  # two trainings of the seed SLA, as processes


def parent_of(pid: int) -> int:
    """The parent process id of ``pid``."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


async def serving_pids(env: dict[str, str], project_id: str) -> tuple[str, int, int]:
    """The URL, the scoring server's pid and its supervisor's (the service process), as
    the last ``inference_ready`` of the project's log says."""
    _, log, err = await flops(env, "log", project_id)
    (*_, ready) = data_of(log["entries"], "inference_ready")
    server = int(ready["values"]["pid"])
    assert alive(server), err
    service = parent_of(server)
    assert service not in (os.getpid(), 1)  # a process of its own, not the stack's task
    return str(ready["values"]["url"]), server, service


async def predicts(env: dict[str, str], project_id: str, held: Path) -> list[Any]:
    code, predicted, err = await flops(env, "predict", project_id, "--input", str(held))
    assert code == 0, (predicted, err)
    predictions: list[Any] = predicted["predictions"]
    assert len(predictions) == len(np.load(held))
    return predictions


async def test_served_under_the_process_runtime_restored_and_undeployed_without_a_trace(
    tmp_path: Path, mosquitto: BrokerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixed = {"identifier": "procs", "runtime": "process"}
    held = tmp_path / "held.npy"
    images, _ = load_digits()
    np.save(held, images[-5:].reshape(5, -1))  # the mock data's digits, as the README's
    async with seed_stack(tmp_path, "first", mosquitto, monkeypatch, fixed) as env:
        code, _, err = await flops(env, "mock_data", "--mock-sla-file-name", "mnist_multi.json")
        assert code == 0, err
        project_id, _ = await seed_project(env)
        url, server, service = await serving_pids(env, project_id)
        _, shown, _ = await flops(env, "status", project_id)
        assert shown["inference_url"] == url
        before = await predicts(env, project_id, held)
    assert not alive(server) and not alive(service)  # the stack's stop ended both

    async with seed_stack(tmp_path, "second", mosquitto, monkeypatch, fixed) as env:
        await wait_answering(url)  # restored by the runtime, on its kept port
        again, server, service = await serving_pids(env, project_id)
        assert again == url and await predicts(env, project_id, held) == before
        code, _, err = await flops(env, "stop", project_id, "--yes")
        assert code == 0, err
        assert not alive(server) and not alive(service) and not await answers(url)

        other, _ = await seed_project(env)
        other_url, server, service = await serving_pids(env, other)
        await wait_answering(other_url)
        code, _, err = await flops(env, "delete", other, "--yes")
        assert code == 0, err
        assert not alive(server) and not alive(service) and not await answers(other_url)
