"""The user-code worker: runs the repository's ModelManager for a parent over frames.

``python -m flops_env.worker --repo DIR [--max-model-bytes N]`` imports
``model_manager.ModelManager`` from DIR (DIR first on ``sys.path``, its parent last, the
working directory DIR), builds one instance and answers requests read from stdin with frames
(``flops_env.frames``) written to the original stdout. What user code prints goes to stderr,
and its stdin is ``/dev/null``, so nothing it does can corrupt the frames.

The first frame is ``{"ok": true, "op": "ready", ...}`` (or an error). Requests are
``{"op": ...}`` with optional arrays; answers are ``{"ok": true, ...}`` or
``{"ok": false, "error": {...}}``:

| op | arrays in | answer | arrays out |
|---|---|---|---|
| ``get_parameters`` | | | the parameters |
| ``set_parameters`` | parameters | ``seconds`` | |
| ``set_model_data`` | | ``seconds`` | |
| ``fit`` | parameters (optional, set first) | ``examples``, ``seconds`` | the parameters |
| ``evaluate`` | parameters (optional) | ``loss``, ``accuracy``, ``examples`` | |
| ``prepare`` (``flavor``) | | ``seconds`` (importing what saving needs) | |
| ``save_model`` (``path``, ``flavor``) | parameters (optional) | ``flavor.json``'s content | |
| ``shutdown`` | | | |

An exception in user code is answered with its type, message, and the innermost traceback
frame inside the repository (file relative to it, line); the worker keeps serving.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from flops_env import flavors, frames

DEFAULT_MAX_MODEL = 256 << 20
Arrays = list[np.ndarray[Any, Any]]
Answer = tuple[dict[str, Any], Arrays]


class ContractError(Exception):
    """User code broke the ModelManager contract (a wrong return value, a missing method)."""


class Worker:
    """One ModelManager and the operations a parent may ask of it."""

    def __init__(self, repo: Path, limit: int, manager: Any) -> None:
        self.repo = repo
        self.limit = limit
        self.manager = manager

    def parameters(self) -> Arrays:
        """The user's parameters as arrays, refused up front when over the frame limit."""
        values = self.manager.get_model_parameters()
        if not isinstance(values, list | tuple):
            raise ContractError(
                f"get_model_parameters must return a list of arrays, not {type(values).__name__}"
            )
        arrays = frames.as_arrays(values)
        size = frames.nbytes(arrays)
        if size > self.limit:
            raise frames.too_large(size, self.limit, "the model's parameters take")
        return arrays

    def set_parameters(self, arrays: Arrays) -> None:
        """Hand arrays to user code (which owns them from then on)."""
        if arrays:
            self.manager.set_model_parameters(arrays)

    def handle(self, op: str, header: dict[str, Any], arrays: Arrays) -> Answer:
        """Run one operation."""
        started = time.perf_counter()
        match op:
            case "get_parameters":
                return {}, self.parameters()
            case "fit":
                self.set_parameters(arrays)
                examples = _count(self.manager.fit_model(), "fit_model")
                return {"examples": examples, "seconds": time.perf_counter() - started}, (
                    self.parameters()
                )
            case "evaluate":
                self.set_parameters(arrays)
                return _evaluation(self.manager.evaluate_model()), []
            case "save_model":
                self.set_parameters(arrays)
                path, flavor = Path(str(header["path"])), str(header.get("flavor", "sklearn"))
                return flavors.save_model(self.manager.get_model(), path, flavor), []
            case "set_parameters":
                self.manager.set_model_parameters(arrays)
            case "set_model_data":
                self.manager.set_model_data()
            case "prepare":
                flavors.prepare(str(header.get("flavor", "sklearn")))
            case _:
                raise ContractError(f"unknown operation {op!r}")
        return {"seconds": time.perf_counter() - started}, []


def _count(value: object, method: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or int(value) < 0:
        raise ContractError(
            f"{method} must return the number of training examples (an int >= 0), "
            f"it returned {value!r}"
        )
    return int(value)


def _evaluation(value: object) -> dict[str, Any]:
    if not isinstance(value, tuple | list) or len(value) != 3:
        raise ContractError(
            f"evaluate_model must return (loss, accuracy, examples), it returned {value!r}"
        )
    loss, accuracy, examples = value
    try:
        return {
            "loss": float(loss),
            "accuracy": float(accuracy),
            "examples": _count(examples, "evaluate_model (third value)"),
        }
    except (TypeError, ValueError) as exc:
        raise ContractError(f"evaluate_model returned {value!r}: {exc}") from exc


def describe(exc: BaseException, repo: Path) -> dict[str, Any]:
    """An exception as an error header: type, message, and where in the repository."""
    where: tuple[str, int, str] | None = None
    for entry in traceback.extract_tb(exc.__traceback__):
        inside = _relative(entry.filename, repo)
        if inside is not None:
            where = (inside, entry.lineno or 0, entry.name)
    if where is None and isinstance(exc, SyntaxError) and exc.filename:
        inside = _relative(exc.filename, repo)
        if inside is not None:
            where = (inside, exc.lineno or 0, "<module>")
    lines = traceback.format_exception(exc)
    error: dict[str, Any] = {
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(lines)[-4000:],
    }
    if where is not None:
        error.update(file=where[0], line=where[1], function=where[2])
    return error


def _relative(filename: str, repo: Path) -> str | None:
    try:
        return Path(filename).resolve().relative_to(repo).as_posix()
    except ValueError:
        return None


def _channels() -> tuple[BinaryIO, BinaryIO]:
    """The frame channels: the original stdin/stdout; user code gets /dev/null and stderr."""
    frames_in = os.fdopen(os.dup(0), "rb", buffering=1 << 16)
    frames_out = os.fdopen(os.dup(1), "wb", buffering=1 << 16)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout.flush()
    os.dup2(2, 1)  # print() in user code now lands on stderr
    return frames_in, frames_out


def load(repo: Path) -> tuple[Any, dict[str, float]]:
    """Import the repository's ModelManager and build one; timings for the parent."""
    sys.path.insert(0, str(repo))
    sys.path.append(str(repo.parent))  # repositories that import "<repo name>.data_manager"
    os.chdir(repo)
    started = time.perf_counter()
    module = importlib.import_module("model_manager")
    imported = time.perf_counter()
    factory: Callable[[], Any] | None = getattr(module, "ModelManager", None)
    if factory is None:
        raise ContractError("model_manager.py defines no class ModelManager")
    manager = factory()
    return manager, {
        "import_seconds": imported - started,
        "init_seconds": time.perf_counter() - imported,
    }


def serve(stream_in: BinaryIO, stream_out: BinaryIO, repo: Path, limit: int) -> int:
    """Start, then answer requests until ``shutdown`` or the end of stdin.

    ``limit`` caps the parameters; a frame may be ``frames.SLACK`` larger.
    """
    try:
        manager, timings = load(repo)
    except Exception as exc:
        frames.write_frame(stream_out, {"ok": False, "op": "ready", "error": describe(exc, repo)})
        return 1
    ready = {"ok": True, "op": "ready", "python": sys.version.split()[0], **timings}
    frames.write_frame(stream_out, {**ready, "numpy": np.__version__})
    worker = Worker(repo, limit, manager)
    while (request := frames.read_frame(stream_in, limit + frames.SLACK)) is not None:
        op = str(request.header.get("op", ""))
        if op == "shutdown":
            frames.write_frame(stream_out, {"ok": True, "op": op})
            sys.stderr.flush()
            # Skip the interpreter's teardown (0.3 s and more with scikit-learn loaded): the
            # parent waits for this exit; user code had its say in its last operation.
            os._exit(0)
        try:
            answer, arrays = worker.handle(op, request.header, request.arrays)
        except Exception as exc:
            frames.write_frame(stream_out, {"ok": False, "op": op, "error": describe(exc, repo)})
        else:
            frames.write_frame(stream_out, {"ok": True, "op": op, **answer}, arrays)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m flops_env.worker``."""
    parser = argparse.ArgumentParser(prog="python -m flops_env.worker")
    parser.add_argument("--repo", type=Path, required=True, help="the ML repository")
    parser.add_argument(
        "--max-model-bytes", type=int, default=DEFAULT_MAX_MODEL, help="parameters' size limit"
    )
    args = parser.parse_args(argv)
    stream_in, stream_out = _channels()
    try:
        return serve(stream_in, stream_out, args.repo.resolve(), args.max_model_bytes)
    except (BrokenPipeError, frames.FrameError) as exc:
        print(f"flops worker: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
