"""The worker in a real child process: the contract, user errors, crashes, big models."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from services.training.errors import ModelTooLargeError, UserCodeError, WorkerError
from services.training.settings import MiB, TrainingSettings
from services.training.worker import Worker, worker_env
from tests.mlrepo import BIG_REPO, Digits, data_spec, fault_line, worker_spec, write_digits

pytestmark = pytest.mark.timeout(60)
SETTINGS = TrainingSettings()


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Digits:
    return write_digits(tmp_path_factory.mktemp("digits"), 2)


async def test_the_contract_runs_in_the_child(digits: Digits) -> None:
    spec = worker_spec(data_spec(digits, 0).env())
    async with Worker.start(spec, SETTINGS) as worker:
        assert worker.ready is not None and worker.ready.import_seconds > 0
        initial = await worker.get_parameters()
        assert [a.shape for a in initial] == [(10, 784), (10,)]
        await worker.set_model_data()
        fitted, examples = await worker.fit(initial)  # prints to stdout meanwhile
        assert examples > 0 and np.any(fitted[0] != 0)
        evaluation = await worker.evaluate(fitted)
        assert 0 <= evaluation.accuracy <= 1 and evaluation.examples > 0


def test_a_worker_may_write_its_image_s_bytecode_and_keeps_its_thread_caps() -> None:
    base = {"PYTHONDONTWRITEBYTECODE": "1", "FLOPS_USER": "x", "PATH": "/usr/bin"}
    env = worker_env(worker_spec(), base)
    assert "PYTHONDONTWRITEBYTECODE" not in env and "FLOPS_USER" not in env
    assert env["PATH"] == "/usr/bin" and env["OMP_NUM_THREADS"] == "1"


async def test_prepare_imports_the_save_libraries_and_names_an_unknown_flavor() -> None:
    async with Worker.start(worker_spec(), SETTINGS) as worker:
        await worker.prepare("sklearn")
        with pytest.raises(UserCodeError, match=r"'nope' cannot be saved or served"):
            await worker.prepare("nope")
        assert len(await worker.get_parameters()) == 2  # it keeps serving


async def test_a_user_exception_names_its_file_and_line(digits: Digits) -> None:
    spec = worker_spec({"TEST_FAULT": "raise:fit:1", **data_spec(digits, 0).env()})
    async with Worker.start(spec, SETTINGS) as worker:
        await worker.set_model_data()
        with pytest.raises(UserCodeError) as caught:
            await worker.fit(await worker.get_parameters())
        where = caught.value.where
        assert (where.type, where.file) == ("RuntimeError", "model_manager.py")
        assert where.line == fault_line()
        assert "fit_model raised RuntimeError: injected failure in fit call 1" in str(caught.value)
        # the worker keeps serving after a user error
        assert len(await worker.get_parameters()) == 2


async def test_a_crash_is_reported_with_the_exit_code(digits: Digits) -> None:
    spec = worker_spec({"TEST_FAULT": "crash:fit:1", **data_spec(digits, 0).env()})
    async with Worker.start(spec, SETTINGS) as worker:
        await worker.set_model_data()
        with pytest.raises(WorkerError, match="exited with code -9 during fit_model"):
            await worker.fit(await worker.get_parameters())


async def test_a_worker_killed_between_calls_is_reported_with_its_exit_code(
    digits: Digits,
) -> None:
    async with Worker.start(worker_spec(data_spec(digits, 0).env()), SETTINGS) as worker:
        await worker.set_model_data()
        parameters = await worker.get_parameters()
        os.kill(worker.pid, signal.SIGKILL)
        await worker.proc.wait()
        await asyncio.sleep(0.05)  # the pipes' ends are seen closed: the quicker path
        with pytest.raises(WorkerError, match="exited with code -9 during evaluate_model"):
            await worker.evaluate(parameters)


async def test_a_worker_that_does_not_answer_is_stopped(tmp_path: Path, digits: Digits) -> None:
    fault = {"TEST_FAULT": "pause:fit:1", "TEST_MARKER": str(tmp_path)}
    spec = worker_spec({**fault, **data_spec(digits, 0).env()})
    settings = TrainingSettings(worker_call_timeout=1.0)
    async with Worker.start(spec, settings) as worker:
        await worker.set_model_data()
        with pytest.raises(WorkerError, match="did not answer 'fit' within 1 s"):
            await worker.fit(await worker.get_parameters())
        assert await worker.proc.wait() != 0


async def test_a_repository_that_fails_to_import_is_reported(tmp_path: Path) -> None:
    (tmp_path / "model_manager.py").write_text("import numpy\n\nraise ImportError('no torch')\n")
    with pytest.raises(UserCodeError, match=r"no torch \(at model_manager.py:3\)"):
        async with Worker.start(worker_spec(repo=tmp_path), SETTINGS):
            pass


async def test_a_missing_python_is_a_clear_error(tmp_path: Path) -> None:
    spec = worker_spec().model_copy(update={"python": str(tmp_path / "nope")})
    with pytest.raises(WorkerError, match="cannot start the worker"):
        async with Worker.start(spec, SETTINGS):
            pass


async def test_a_300_mb_model_is_refused_up_front_naming_the_limit() -> None:
    async with Worker.start(worker_spec({"BIG_MB": "300"}, BIG_REPO), SETTINGS) as worker:
        with pytest.raises(ModelTooLargeError) as caught:
            await worker.get_parameters()
    assert str(caught.value) == (
        "the model's parameters take 300.0 MB, over the limit of 268.4 MB "
        "(setting training.max_model_bytes, FLOPS_TRAINING_MAX_MODEL_BYTES)"
    )


@pytest.mark.timeout(120)
async def test_a_300_mb_model_passes_when_the_limit_allows_it() -> None:
    settings = TrainingSettings(max_model_bytes=512 * MiB)
    async with Worker.start(worker_spec({"BIG_MB": "300"}, BIG_REPO), settings) as worker:
        parameters = await worker.get_parameters()
        assert parameters[0].nbytes == 300_000_000 and float(parameters[0][-1]) == 1.0
        await worker.set_parameters(parameters)
