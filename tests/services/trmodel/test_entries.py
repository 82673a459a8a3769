"""The post-training kinds' entries: the libraries' notices as project events, failures told."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TypeVar

import pytest
from pydantic import BaseModel

from protocol.events import Event, Level
from protocol.states import ProjectState
from services.context import ServiceContext, Shared
from services.spec import ServiceSpec
from services.trmodel.entries import (
    TrBuilderConfig,
    TrModelConfig,
    run_trbuilder_in,
    run_trmodel_in,
)
from services.trmodel.errors import InferenceServiceError, TrainedModelError
from services.trmodel.image import DEPLOY_TEXT, START_TEXT

pytestmark = pytest.mark.timeout(60)
PROJECT = "0123456789abcdef01234567"
C = TypeVar("C", bound=BaseModel)


class Recorded:
    """A service context's reporting, kept."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.beats = 0

    async def emit(self, event: Event) -> None:
        self.events.append(event)

    async def beat(self) -> None:
        self.beats += 1


def context(kind: str, config: C, seen: Recorded) -> ServiceContext[C]:
    spec = ServiceSpec("s" * 24, f"{kind}0123456789ab", kind, "Admin", PROJECT, "a" * 24)
    return ServiceContext(spec, config, seen.emit, seen.beat, Shared())


async def test_a_builder_without_an_artifact_fails_its_project_with_the_reason(
    tmp_path: Path,
) -> None:
    seen = Recorded()
    config = TrBuilderConfig(artifact=str(tmp_path / "none"), registry="r", data_dir=str(tmp_path))
    with pytest.raises(TrainedModelError, match="holds no trained-model artifact"):
        await run_trbuilder_in(context("trbuilder", config, seen))
    first, last = seen.events[0], seen.events[-1]
    assert first.text == START_TEXT
    assert last.level is Level.ERROR and last.state is ProjectState.FAILED
    assert last.text.endswith("Trained model image build failed. Terminating this FLOps Project.")
    assert seen.beats >= 1


async def test_a_model_that_does_not_load_fails_the_service_with_the_server_s_reason(
    tmp_path: Path,
) -> None:
    seen = Recorded()
    config = TrModelConfig(
        python=sys.executable, model_dir=str(tmp_path / "nothing"), state_dir=str(tmp_path / "s")
    )
    with pytest.raises(InferenceServiceError):
        await run_trmodel_in(context("trmodel", config, seen))
    assert seen.events[0].text == DEPLOY_TEXT
    last = seen.events[-1]
    assert last.level is Level.ERROR and last.text.startswith("Inference service failed:")
    assert last.data is None  # only the ready notice carries inference_ready data
