"""The stage table drives a project: entry, skipping, the ending event, the next stage."""

from __future__ import annotations

from typing import Any

import pytest

from manager import events, handlers
from manager.deps import Deps
from manager.pipeline import PIPELINE, Pipeline, Stage, StageInput, Want
from protocol.events import Event, Facts
from protocol.states import ProjectState
from services.builder.service import BuilderConfig
from services.kinds import BUILDER
from tests.manager.test_handlers import RecordingRuntime, deps, request

__all__ = ["deps"]
pytestmark = pytest.mark.timeout(30)


def builders(count: int) -> Any:
    def services(given: StageInput) -> list[Want]:
        config = BuilderConfig(repo_url=given.sla.ml_repo_url, registry="r", data_dir=".")
        return [Want(BUILDER, config, index=i) for i in range(count)]

    return services


def two_stages(*, second_enters: bool = True) -> Pipeline:
    return Pipeline(
        "one",
        {
            "one": Stage(
                "one", builders(1), ends_on="one_done", next="two", undeploys=("builder",)
            ),
            "two": Stage("two", builders(2), ends_on="two_done", enters=lambda _: second_enters),
        },
    )


def done(project_id: str, tag: str, source: str = "builder") -> Event:
    return Event(project_id=project_id, source=source, text=tag, data=Facts(type=tag))


async def test_the_default_pipeline_starts_with_the_build() -> None:
    assert PIPELINE.stage("").name == "build"


def test_a_pipeline_with_an_unknown_next_stage_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown"):
        Pipeline("one", {"one": Stage("one", builders(1), ends_on=None, next="nowhere")})


async def test_the_ending_event_enters_the_next_stage_and_the_last_completes(deps: Deps) -> None:
    deps.pipeline = two_stages()
    view = await handlers.create_project("Admin", request(), deps)
    await handlers.advance(view.id, deps, view)
    runtime: Any = deps.runtime
    await events.on_event("Admin", view.id, done(view.id, "unrelated"), deps)
    assert len([s for s in runtime.deployed if s.kind == "builder"]) == 1
    await events.on_event("Admin", view.id, done(view.id, "one_done", source="manager"), deps)
    assert len([s for s in runtime.deployed if s.kind == "builder"]) == 1  # not the manager's
    await events.on_event("Admin", view.id, done(view.id, "one_done"), deps)
    await events.on_event("Admin", view.id, done(view.id, "one_done"), deps)  # once only
    names = [s.name for s in runtime.deployed if s.kind == "builder"]
    assert names[1:] == [BUILDER.name_for(view.id, 0), BUILDER.name_for(view.id, 1)]
    assert runtime.undeployed == [("builder", False)]  # stage one's builder
    await events.on_event("Admin", view.id, done(view.id, "two_done"), deps)
    now = await deps.store.progress(view.id)
    assert now is not None and now.state is ProjectState.COMPLETED
    assert now.outputs["one"] == {"v": 1, "type": "one_done", "values": {}}
    texts = [e.text for _, e in deps.events]  # type: ignore[attr-defined]
    # one per stage: several services of one kind are announced as one, with their names
    announced = [i for i, t in enumerate(texts) if t == "New Builder service created & deployed"]
    assert len(announced) == 2
    assert texts[announced[1] + 1] == f"Builder instances: {', '.join(names[1:])}"
    assert texts[-1] == "Project completed: every stage is done"


async def test_a_stage_whose_condition_fails_is_skipped(deps: Deps) -> None:
    deps.pipeline = two_stages(second_enters=False)
    view = await handlers.create_project("Admin", request(), deps)
    await handlers.advance(view.id, deps, view)
    await events.on_event("Admin", view.id, done(view.id, "one_done"), deps)
    runtime: Any = deps.runtime
    assert len([s for s in runtime.deployed if s.kind == "builder"]) == 1
    after = await deps.store.project(view.id)
    assert after is not None and after.state is ProjectState.COMPLETED


async def test_a_failed_deploy_fails_the_project_and_the_stage_stays_undeployed(
    deps: Deps,
) -> None:
    deps.pipeline = two_stages()
    deps.runtime = RecordingRuntime(fail_kind="builder")
    view = await handlers.create_project("Admin", request(), deps)
    await handlers.advance(view.id, deps, view)
    now = await deps.store.progress(view.id)
    assert now is not None and now.state is ProjectState.FAILED and not now.ready
