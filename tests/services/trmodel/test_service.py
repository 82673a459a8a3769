import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from services.trmodel.artifact import Artifact
from services.trmodel.errors import InferenceServiceError, ServiceUnavailableError
from services.trmodel.predict import payload_from_array, predict
from services.trmodel.service import (
    InferenceConfig,
    Notice,
    keep_port,
    kept_port,
    run_inference_service,
)
from tests.flops_env.test_serve import alive
from tests.models import digits, fitted_model

pytestmark = pytest.mark.timeout(90)


class Notices:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Notice] = asyncio.Queue()

    async def emit(self, notice: Notice) -> None:
        await self.queue.put(notice)

    async def next(self) -> Notice:
        return await asyncio.wait_for(self.queue.get(), 60)

    async def ready(self) -> Notice:
        notice = await self.next()
        assert notice.level == "info", notice
        assert notice.text == f"Inference service ready at {notice.data['url']}"
        return notice


def config(artifact: Artifact, state: Path, **changes: Any) -> InferenceConfig:
    return InferenceConfig(
        python=Path(sys.executable), model_dir=artifact.model_dir, state_dir=state, **changes
    )


@asynccontextmanager
async def serving(cfg: InferenceConfig, notices: Notices) -> AsyncIterator[asyncio.Task[Any]]:
    task = asyncio.create_task(run_inference_service(cfg, notices.emit))
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def held_out_predictions(url: str) -> list[Any]:
    return await predict(url, payload_from_array(digits().x_held, "held-out digits"))


async def test_ready_is_reported_and_predictions_match_the_model_s_own(
    shared_artifact: Artifact, tmp_path: Path
) -> None:
    notices = Notices()
    async with serving(config(shared_artifact, tmp_path), notices):
        ready = await notices.ready()
        url = ready.data["url"]
        assert url == f"http://127.0.0.1:{ready.data['port']}"
        got = await held_out_predictions(url)
        assert got == fitted_model().predict(digits().x_held).tolist()
        assert np.mean(np.array(got) == digits().y_held) > 0.8
        assert kept_port(tmp_path) == ready.data["port"]


async def test_a_killed_child_is_restarted_at_the_same_url(
    shared_artifact: Artifact, tmp_path: Path
) -> None:
    notices = Notices()
    async with serving(config(shared_artifact, tmp_path), notices):
        first = await notices.ready()
        os.kill(first.data["pid"], signal.SIGKILL)
        warning = await notices.next()
        assert warning.level == "warning"
        assert warning.text.startswith("Inference service exited with code -9; restarting (1/3)")
        again = await notices.ready()
        assert again.data["url"] == first.data["url"]
        assert again.data["pid"] != first.data["pid"]
        assert len(await held_out_predictions(again.data["url"])) == len(digits().x_held)


async def test_cancelling_the_service_stops_the_child(
    shared_artifact: Artifact, tmp_path: Path
) -> None:
    notices = Notices()
    async with serving(config(shared_artifact, tmp_path), notices):
        ready = await notices.ready()
    assert not alive(ready.data["pid"])
    with pytest.raises(ServiceUnavailableError, match="no inference service answers at"):
        await held_out_predictions(ready.data["url"])


async def test_a_new_run_of_the_service_keeps_its_url(
    shared_artifact: Artifact, tmp_path: Path
) -> None:
    notices = Notices()
    async with serving(config(shared_artifact, tmp_path), notices):
        first = await notices.ready()
    async with serving(config(shared_artifact, tmp_path), notices):
        second = await notices.ready()
        assert second.data["url"] == first.data["url"]
        assert len(await held_out_predictions(second.data["url"])) == len(digits().x_held)


async def test_a_model_that_does_not_load_fails_at_once_with_the_reason(tmp_path: Path) -> None:
    notices = Notices()
    cfg = InferenceConfig(python=Path(sys.executable), model_dir=tmp_path, state_dir=tmp_path)
    with pytest.raises(
        InferenceServiceError,
        match=r"exited with code 3 before answering: .*flavor\.json is missing",
    ):
        await run_inference_service(cfg, notices.emit)
    error = await notices.next()
    assert error.level == "error"
    assert error.text.startswith("Inference service failed: exited with code 3 before answering")


async def test_restarts_beyond_the_policy_fail_the_service(
    shared_artifact: Artifact, tmp_path: Path
) -> None:
    notices = Notices()
    cfg = config(shared_artifact, tmp_path, max_restarts=1)
    async with serving(cfg, notices) as task:
        first = await notices.ready()
        os.kill(first.data["pid"], signal.SIGKILL)
        assert (await notices.next()).text.startswith(
            "Inference service exited with code -9; restarting (1/1)"
        )
        second = await notices.ready()
        os.kill(second.data["pid"], signal.SIGKILL)
        error = await notices.next()
        assert error.level == "error"
        assert error.text.startswith(
            "Inference service failed: 1 restarts within 300 s; last: exited with code -9"
        )
        with pytest.raises(InferenceServiceError):
            await asyncio.wait_for(task, 30)


async def test_a_child_that_stops_answering_is_replaced(
    shared_artifact: Artifact, tmp_path: Path
) -> None:
    notices = Notices()
    cfg = config(
        shared_artifact,
        tmp_path,
        health_interval=0.2,
        health_misses=2,
        stop_timeout=0.5,
        ping_timeout=0.3,
    )
    async with serving(cfg, notices):
        first = await notices.ready()
        os.kill(first.data["pid"], signal.SIGSTOP)  # alive, but it answers nothing
        try:
            warning = await notices.next()
            assert warning.text.startswith(
                "Inference service stopped answering /ping (2 checks); restarting (1/3)"
            )
            again = await notices.ready()
        finally:
            if alive(first.data["pid"]):
                os.kill(first.data["pid"], signal.SIGKILL)
        assert not alive(first.data["pid"])  # SIGTERM could not reach it: SIGKILL did
        assert again.data["url"] == first.data["url"]


@contextlib.contextmanager
def taken_port() -> Iterator[int]:
    """A loopback port another socket listens on while the block runs."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


async def test_a_kept_port_held_by_another_process_moves_with_a_warning(
    shared_artifact: Artifact, tmp_path: Path
) -> None:
    notices = Notices()
    with taken_port() as port:
        keep_port(tmp_path, port)
        async with serving(config(shared_artifact, tmp_path, port_wait=0.5), notices):
            warning = await notices.next()
            assert warning.level == "warning"
            assert (
                warning.text
                == f"Port {port} of the inference service is taken; it moves to a free port"
            )
            ready = await notices.ready()
            assert ready.data["port"] != port
            assert kept_port(tmp_path) == ready.data["port"]


async def test_a_configured_port_that_is_taken_fails_at_once(
    shared_artifact: Artifact, tmp_path: Path
) -> None:
    notices = Notices()
    with taken_port() as port:
        cfg = config(shared_artifact, tmp_path, port=port)
        with pytest.raises(InferenceServiceError, match=f"cannot listen on 127.0.0.1:{port}"):
            await run_inference_service(cfg, notices.emit)


async def test_an_environment_without_python_fails_at_once_naming_it(
    shared_artifact: Artifact, tmp_path: Path
) -> None:
    notices = Notices()
    cfg = config(shared_artifact, tmp_path).model_copy(update={"python": tmp_path / "nope"})
    with pytest.raises(InferenceServiceError, match=r"cannot start .*nope: No such file"):
        await run_inference_service(cfg, notices.emit)
    assert (await notices.next()).level == "error"
