"""The builder on its own: real git repositories, real uv builds (numpy only: quick)."""

import asyncio
import contextlib
import os
from pathlib import Path

import pytest

from protocol.events import Event, Facts, Level
from protocol.states import ProjectState
from services.builder import resolve
from services.builder.facts import IMAGES_READY, read_images_ready
from services.builder.resolve import SnapshotCache
from services.builder.service import BuilderConfig, BuildFailedError, failure_text, run_builder
from tests.conftest import head_of, make_repo

P = "c" * 24


async def nothing() -> None:
    pass


async def build(config: BuilderConfig, cache: SnapshotCache | None = None) -> list[Event]:
    events: list[Event] = []

    async def emit(e: Event) -> None:
        events.append(e)

    with contextlib.suppress(BuildFailedError):
        await run_builder("s" * 24, "builderX", P, config, emit, nothing, cache)
    return events


def config(url: str, data_dir: Path, **more: object) -> BuilderConfig:
    return BuilderConfig.model_validate(
        {"repo_url": url, "registry": "reg:5073", "data_dir": str(data_dir), **more}
    )


@pytest.mark.timeout(120)
async def test_a_repository_is_built_once_then_reused_and_ends_with_images_ready(
    git_repo: Path, tmp_path: Path
) -> None:
    cfg = config(f"file://{git_repo}", tmp_path / "node", user="Admin", data_tags=["mnist"])
    first = await build(cfg)
    texts = [e.text for e in first]
    head = head_of(git_repo)
    learner = f"reg:5073/malyuk-a/flops_ml_repo_mnist_sklearn/learner:{head}"
    assert f"Start building {learner} image (This can take a while)" in texts
    assert f"Successfully finished building new '{learner}' image" in texts
    assert any(t.startswith("Builder durations: full_builder_process") for t in texts)
    assert all(e.level is Level.INFO and e.state is None for e in first)
    last = first[-1]
    assert isinstance(last.data, Facts) and last.data.type == IMAGES_READY
    ready = read_images_ready(last.data.model_dump(mode="json"))
    assert ready.commit == head and ready.learner.name == learner and not ready.reused
    assert os.access(ready.learner.python, os.X_OK)
    assert os.access(Path(ready.repo_path) / "model_manager.py", os.R_OK)
    assert ready.data_tags == ["mnist"] and ready.data_dir == str(tmp_path / "node")

    again = await build(cfg)
    assert "Latest FLOps images already exists for the provided repo." in [e.text for e in again]
    assert not any("Resolving the packages" in e.text for e in again)
    assert isinstance(again[-1].data, Facts)
    assert read_images_ready(again[-1].data.model_dump(mode="json")).reused


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///nonexistent/user/repo", "cannot reach file:///nonexistent/user/repo"),
        ("https://gitlab.com/a/b", "is not a GitHub-style repository URL"),
    ],
)
async def test_a_bad_repo_fails_the_project_with_one_clear_event(
    url: str, reason: str, tmp_path: Path
) -> None:
    (event,) = await build(config(url, tmp_path, git_timeout=5))
    assert event.level is Level.ERROR and event.state is ProjectState.FAILED
    assert reason in event.text
    assert event.text.endswith("Builder failed. Terminating this FLOps Project.")


@pytest.mark.timeout(30)
async def test_a_missing_contract_file_is_one_error_event_with_the_originals_text(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repos", files={"requirements.txt": "numpy==1.26.4\n"})
    events = await build(config(f"file://{repo}", tmp_path / "node"))
    errors = [e for e in events if e.level is Level.ERROR]
    assert len(errors) == 1 and errors[0] is events[-1]
    assert errors[0].state is ProjectState.FAILED
    assert errors[0].text == (
        "model_manager.py not found in the cloned repository. "
        "Builder failed. Terminating this FLOps Project."
    )
    assert not (tmp_path / "node" / "images").exists() or not list(
        (tmp_path / "node" / "images").glob("sha256-*")
    )


def test_a_multi_line_reason_keeps_its_lines() -> None:
    text = failure_text(RuntimeError("Resolving failed:\nerror: no version of x"))
    assert text == (
        "Resolving failed:\nerror: no version of x\nBuilder failed. Terminating this FLOps Project."
    )


@pytest.mark.timeout(30)
async def test_the_snapshot_cache_resolves_once_and_tells_every_project(
    git_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = resolve.resolve_repo

    async def counting(url: str, *args: object, **kwargs: object) -> object:
        calls.append(url)
        return await real(url, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(resolve, "resolve_repo", counting)
    cache = SnapshotCache(ttl=60)
    cfg = config(
        "https://github.com/Malyuk-A/flops_ml_repo_mnist_sklearn",
        tmp_path,
        repo_sources={"https://github.com/Malyuk-A/flops_ml_repo_mnist_sklearn": str(git_repo)},
    )
    told: list[list[str]] = [[] for _ in range(10)]

    async def one(i: int) -> str:
        async def progress(notice: object) -> None:
            told[i].append(getattr(notice, "text", ""))

        return (await cache.resolve(cfg, progress)).commit

    commits = await asyncio.gather(*(one(i) for i in range(10)))
    assert set(commits) == {head_of(git_repo)} and len(calls) == 1
    assert all(any("setting repo_sources" in t for t in texts) for texts in told)
