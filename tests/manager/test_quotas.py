"""Per-user quotas and the file:// repository policy, on the handlers with a real SQLite store."""

import asyncio
from pathlib import Path

import pytest

from manager import handlers
from manager.deps import QUOTA_WINDOW, Deps, Quotas, RefusedError
from slas import ProjectSLA, parse_sla
from tests.manager.test_handlers import SLA, deps, request

__all__ = ["deps"]  # the fixture: a real SQLite store and a recording runtime


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_burst_of_starts_cannot_slip_past_the_live_projects_limit(deps: Deps) -> None:
    deps.quotas = Quotas(max_live=5)
    results = await asyncio.gather(
        *(handlers.create_project("Admin", request(f"burst-{i:04d}"), deps) for i in range(20)),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, RefusedError)]
    assert len(refused) == 15
    assert {r.code for r in refused} == {"quota_exceeded"}
    assert "5 live projects" in str(refused[0]) and "max_live_projects = 5" in str(refused[0])
    assert len(await deps.store.projects("Admin")) == 5
    assert await deps.store.live_projects("Admin") == 5
    assert await deps.store.live_projects("someone-else") == 0


async def test_a_repeated_request_at_the_limit_gets_its_project_again(deps: Deps) -> None:
    deps.quotas = Quotas(max_live=1, max_per_minute=1)
    first = await handlers.create_project("Admin", request("only-0001"), deps)
    again = await handlers.create_project("Admin", request("only-0001"), deps)
    assert again.id == first.id
    with pytest.raises(RefusedError, match="max_starts_per_minute = 1"):
        await handlers.create_project("Admin", request("next-0001"), deps)


async def test_the_start_rate_counts_the_last_minute_per_user(deps: Deps) -> None:
    clock = Clock()
    deps.quotas = Quotas(max_per_minute=3, clock=clock)
    for i in range(3):
        await handlers.create_project("Admin", request(f"rate-{i:04d}"), deps)
    with pytest.raises(RefusedError, match=r"3 projects in the last minute.*try again in 60s"):
        await handlers.create_project("Admin", request("rate-0003"), deps)
    other = {**SLA, "customerID": "Other"}
    await handlers.create_project("Other", request("rate-0004", **other), deps)  # per user
    clock.now += QUOTA_WINDOW
    await handlers.create_project("Admin", request("rate-0005"), deps)
    assert len(await deps.store.projects("Admin")) == 4


def sla_for(url: str) -> ProjectSLA:
    return parse_sla({**SLA, "ml_repo_url": url}, "test")


def test_file_repositories_are_allowed_only_below_the_roots(tmp_path: Path) -> None:
    root, outside = tmp_path / "repos", tmp_path / "outside"
    (root / "o" / "r").mkdir(parents=True)
    (outside / "o" / "r").mkdir(parents=True)
    (root / "link").mkdir()
    (root / "link" / "r").symlink_to(outside / "o" / "r")
    allowed = f"file://{root}/o/r"
    handlers.check_repository(sla_for(allowed), (root,))
    handlers.check_repository(sla_for(allowed), None)  # None: anywhere
    handlers.check_repository(sla_for("https://github.com/o/r"), ())  # not a file:// URL
    refused = [
        (f"file://{outside}/o/r", (root,)),
        (f"file://{root}/../outside/o/r", (root,)),
        (f"file://{root}/%2e%2e/outside/o/r", (root,)),
        (f"file://{root}/link/r", (root,)),
        (allowed, ()),
    ]
    for url, roots in refused:
        with pytest.raises(RefusedError, match=r"local_repo_roots|in no folder") as caught:
            handlers.check_repository(sla_for(url), roots)
        assert caught.value.code == "forbidden"
