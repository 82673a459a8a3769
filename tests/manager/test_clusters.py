"""Hierarchical training on a runtime with clusters: the manager asks the runtime which are
active when it enters the training stage, and each cluster gets its aggregator and learners.

The real handlers, SQLite store and Oakestra runtime; only the system manager is simulated
(``FakeOakestra`` behind ``httpx.MockTransport``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from manager import events, handlers
from manager.deps import Deps
from manager.store.sqlite import SqliteStore
from protocol.events import Event, Facts
from protocol.states import ProjectState
from runtimes.oakestra import OakestraRuntime, OakestraSettings
from services.builder.facts import IMAGES_READY
from slas import bundled_dir
from tests.manager.test_handlers import RecordingRuntime, request
from tests.services.training.test_plan import ready
from tests.stack.test_app_oakestra import FakeOakestra

pytestmark = pytest.mark.timeout(30)
HIERARCHICAL = json.loads((bundled_dir() / "hierarchical_mnist_sklearn_small.json").read_text())
IMAGE = "registry.example.org/flops:0.1.0"
KINDS = ("observer", "builder", "aggregator", "cluster_aggregator", "learner")


class Emitted(list[Event]):
    async def __call__(self, _user: str, event: Event) -> None:
        self.append(event)


async def deps_on(tmp_path: Path, runtime: Any) -> AsyncIterator[Deps]:
    store = await SqliteStore.open(tmp_path / "m.db")
    try:
        yield Deps(store, runtime, Emitted())
    finally:
        await store.close()


@pytest.fixture
def oak() -> FakeOakestra:
    return FakeOakestra()


@pytest.fixture
async def on_oakestra(tmp_path: Path, oak: FakeOakestra) -> AsyncIterator[Deps]:
    settings = OakestraSettings.model_validate(
        {
            "url": "http://oakestra.test:10000",
            "username": "flops",
            "password": "secret",
            "observer_image": IMAGE,
            "builder_image": IMAGE,
            "images": dict.fromkeys(KINDS, IMAGE),
        }
    )
    runtime = OakestraRuntime(settings, transport=httpx.MockTransport(oak.handle))
    try:
        async for deps in deps_on(tmp_path, runtime):
            yield deps
    finally:
        await runtime.aclose()


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[Deps]:
    async for deps in deps_on(tmp_path, RecordingRuntime()):
        yield deps


async def built(deps: Deps, tmp_path: Path, sla: dict[str, Any] = HIERARCHICAL) -> str:
    """A project past its build stage: the builder's images_ready entered the train stage."""
    view = await handlers.create_project("Admin", request(**sla), deps)
    await handlers.advance(view.id, deps, view)
    facts = Facts(type=IMAGES_READY, values=ready(tmp_path).model_dump(mode="json"))
    event = Event(project_id=view.id, source="builder", text="ready", data=facts)
    await events.on_event("Admin", view.id, event, deps)
    return view.id


def constraint(service: dict[str, Any]) -> str | None:
    found = service.get("constraints")
    if found is None:
        return None
    assert [c["type"] for c in found] == ["direct"], found
    return str(found[0]["cluster"])


async def test_one_cluster_aggregator_per_active_oakestra_cluster_placed_there(
    on_oakestra: Deps, oak: FakeOakestra, tmp_path: Path
) -> None:
    oak.clusters = ["edge1", "edge2", "cloud"]
    project_id = await built(on_oakestra, tmp_path)
    view = await on_oakestra.store.project(project_id)
    assert view is not None
    assert view.state is ProjectState.TRAINING, view.state_reason
    assert oak.asked_clusters == 1
    caggrs = oak.named("caggr")
    assert sorted(constraint(s) or "" for s in caggrs) == ["cloud", "edge1", "edge2"]
    for service in caggrs:
        config = next(e for e in service["environment"] if e.startswith("FLOPS_SERVICE_CONFIG="))
        parsed = json.loads(config.split("=", 1)[1])
        assert parsed["cluster"] == parsed["placement"] == constraint(service)
    learners = oak.named("flearner")
    per_cluster = HIERARCHICAL["training_configuration"]["min_available_clients"]
    assert len(learners) == 3 * per_cluster
    assert sorted(constraint(s) or "" for s in learners) == sorted(
        name for name in oak.clusters for _ in range(per_cluster)
    )
    # The root aggregator, observer and builder go wherever Oakestra schedules them.
    for prefix in ("aggr", "observ", "builder"):
        assert [constraint(s) for s in oak.named(prefix)] == [None], prefix


async def test_no_active_oakestra_cluster_fails_the_project_before_deploying(
    on_oakestra: Deps, oak: FakeOakestra, tmp_path: Path
) -> None:
    project_id = await built(on_oakestra, tmp_path)
    view = await on_oakestra.store.project(project_id)
    assert view is not None and view.state is ProjectState.FAILED
    assert view.state_reason.startswith("stage train: Oakestra has no usable active cluster")
    assert "GET /api/clusters/active answered 0 cluster(s)" in view.state_reason
    assert not oak.named("aggr") and not oak.named("caggr") and not oak.named("flearner")


async def test_classic_training_on_oakestra_does_not_ask_for_clusters(
    on_oakestra: Deps, oak: FakeOakestra, tmp_path: Path
) -> None:
    sla = {**HIERARCHICAL, "training_configuration": {"data_tags": ["mnist"]}}
    project_id = await built(on_oakestra, tmp_path, sla)
    view = await on_oakestra.store.project(project_id)
    assert view is not None
    assert view.state is ProjectState.TRAINING, view.state_reason
    assert oak.asked_clusters == 0
    assert all(constraint(s) is None for s in oak.services.values())


async def test_the_embedded_runtime_makes_the_settings_clusters_placed_nowhere(
    embedded: Deps, tmp_path: Path
) -> None:
    await built(embedded, tmp_path)
    runtime: Any = embedded.runtime
    caggrs = [s.config for s in runtime.deployed if s.kind == "cluster_aggregator"]
    assert [(c["cluster"], c["placement"]) for c in caggrs] == [("c0", None), ("c1", None)]
    learners = [s.config for s in runtime.deployed if s.kind == "learner"]
    assert {c["placement"] for c in learners} == {None} and len(learners) == 4
