import asyncio
from pathlib import Path

import pytest

from protocol.events import Event, Level
from protocol.states import ProjectState
from services.builder import service
from services.builder.service import BuilderConfig, BuildFailedError, image_name, run_builder
from tests.conftest import head_of

P = "c" * 24


async def nothing() -> None:
    pass


async def run(config: BuilderConfig) -> list[Event]:
    events: list[Event] = []

    async def emit(e: Event) -> None:
        events.append(e)

    task = asyncio.create_task(run_builder("s" * 24, "builderX", P, config, emit, nothing))
    try:
        await asyncio.wait_for(asyncio.shield(task), 5)
    except TimeoutError:
        pass
    except BuildFailedError:
        pass
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return events


@pytest.mark.timeout(20)
async def test_a_reachable_repo_starts_the_build_of_the_base_image(git_repo: Path) -> None:
    events: list[Event] = []
    done = asyncio.Event()

    async def emit(e: Event) -> None:
        events.append(e)
        done.set()

    cfg = BuilderConfig(repo_url=f"file://{git_repo}", registry="reg:5073")
    task = asyncio.create_task(run_builder("s" * 24, "builderX", P, cfg, emit, nothing))
    await asyncio.wait_for(done.wait(), 10)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    (event,) = events
    assert event.text == (
        f"Start building reg:5073/malyuk-a/flops_ml_repo_mnist_sklearn/base:"
        f"{head_of(git_repo)} image (This can take a while)"
    )
    assert event.state is ProjectState.BUILDING


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///nonexistent/user/repo", "cannot reach file:///nonexistent/user/repo"),
        ("https://gitlab.com/a/b", "is not a GitHub-style repository URL"),
    ],
)
async def test_a_bad_repo_fails_the_project_with_a_clear_event(url: str, reason: str) -> None:
    events = await run(BuilderConfig(repo_url=url, registry="r", git_timeout=5))
    (event,) = events
    assert event.level is Level.ERROR and event.state is ProjectState.FAILED
    assert reason in event.text and "Terminating this FLOps Project" in event.text


def test_image_names_lower_case_the_github_user() -> None:
    assert (
        image_name("r:1", "https://github.com/Malyuk-A/repo", "abc") == "r:1/malyuk-a/repo/base:abc"
    )


async def test_the_commit_cache_asks_git_once_per_repository(
    git_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = service.resolve_commit

    async def counting(url: str, timeout: float) -> str:
        calls.append(url)
        return await real(url, timeout)

    monkeypatch.setattr(service, "resolve_commit", counting)
    cache = service.CommitCache(ttl=60)
    shas = await asyncio.gather(*(cache.resolve(f"file://{git_repo}", 5) for _ in range(20)))
    assert set(shas) == {head_of(git_repo)} and len(calls) == 1
