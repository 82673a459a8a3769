"""The post-training stages as data: entry by the SLA's steps, their inputs, their end."""

from __future__ import annotations

from typing import Any

import pytest

from manager import events, handlers
from manager.deps import Deps
from manager.pipeline import POST_TRAINING, Pipeline, Stage, StageInput, Want
from protocol.events import Event, Facts
from protocol.messages import ShowProject
from protocol.states import ProjectState
from services.builder.service import BuilderConfig
from services.kinds import BUILDER, TRMODEL
from services.trmodel.facts import INFERENCE_READY, MODEL_IMAGE_READY, TRAINED
from tests.manager.test_handlers import deps, request

__all__ = ["deps"]
pytestmark = pytest.mark.timeout(30)


def trainer(given: StageInput) -> list[Want]:
    config = BuilderConfig(repo_url=given.sla.ml_repo_url, registry="r", data_dir=".")
    return [Want(BUILDER, config)]  # stands in for the training stage's services


PIPELINE = Pipeline(
    "train",
    {"train": Stage("train", trainer, ends_on=TRAINED, next="model_image"), **POST_TRAINING},
)
IMAGE = {
    "image": "r/admin/trained_model:abc",
    "digest": "d",
    "python": "/img/venv/bin/python",
    "artifact": "/m/p",
    "model_dir": "/m/p/model",
    "run_id": "abc",
    "reused": False,
}


def said(project_id: str, data_type: str, **values: Any) -> Event:
    return Event(
        project_id=project_id,
        source="svc",
        text=data_type,
        data=Facts(type=data_type, values=values),
    )


async def started(deps: Deps, **sla: Any) -> str:
    deps.pipeline = PIPELINE
    view = await handlers.create_project("Admin", request(**sla), deps)
    await handlers.advance(view.id, deps, view)
    return view.id


async def state_of(deps: Deps, project_id: str) -> ProjectState:
    now = await deps.store.progress(project_id)
    assert now is not None
    return now.state


async def test_the_serve_stage_ends_completed_with_the_service_left_running(deps: Deps) -> None:
    project_id = await started(deps)
    runtime: Any = deps.runtime
    await events.on_event("Admin", project_id, said(project_id, TRAINED, artifact="/m/p"), deps)
    assert runtime.deployed[-1].kind == "trbuilder"
    assert runtime.deployed[-1].config["artifact"] == "/m/p"
    assert await state_of(deps, project_id) is ProjectState.BUILDING_MODEL_IMAGE
    await events.on_event("Admin", project_id, said(project_id, MODEL_IMAGE_READY, **IMAGE), deps)
    served = runtime.deployed[-1]
    assert served.kind == "trmodel" and served.config["python"] == IMAGE["python"]
    assert served.config["model_dir"] == "/m/p/model"
    assert served.config["state_dir"].endswith(f"services/{TRMODEL.name_for(project_id)}")
    assert await state_of(deps, project_id) is ProjectState.DEPLOYING_MODEL
    url = "http://127.0.0.1:4711"
    await events.on_event("Admin", project_id, said(project_id, INFERENCE_READY, url=url), deps)
    assert await state_of(deps, project_id) is ProjectState.COMPLETED
    assert "trmodel" not in [kind for kind, _ in runtime.undeployed]
    assert (await handlers.show_project("Admin", _show(project_id), deps)).inference_url == url
    # restarted on another port (its old one taken): status shows where it answers now
    moved = "http://127.0.0.1:4712"
    await events.on_event("Admin", project_id, said(project_id, INFERENCE_READY, url=moved), deps)
    assert (await handlers.show_project("Admin", _show(project_id), deps)).inference_url == moved
    assert await state_of(deps, project_id) is ProjectState.COMPLETED


def _show(project_id: str) -> ShowProject:
    return ShowProject(request_id="r-00000001", reply_to="cli-1", project_id=project_id)


async def test_without_post_training_steps_the_project_completes_after_training(
    deps: Deps,
) -> None:
    project_id = await started(deps, post_training_steps=[])
    runtime: Any = deps.runtime
    await events.on_event("Admin", project_id, said(project_id, TRAINED, artifact="/m/p"), deps)
    assert await state_of(deps, project_id) is ProjectState.COMPLETED
    assert [s.kind for s in runtime.deployed] == ["observer", "builder"]


async def test_a_trained_event_without_an_artifact_fails_the_project_with_the_reason(
    deps: Deps,
) -> None:
    project_id = await started(deps)
    await events.on_event("Admin", project_id, said(project_id, TRAINED), deps)
    view = await deps.store.project(project_id)
    assert view is not None and view.state is ProjectState.FAILED
    assert "stage model_image" in view.state_reason and "artifact" in view.state_reason
