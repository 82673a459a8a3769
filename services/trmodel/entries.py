"""The two post-training kinds' entries (``services.kinds``): their notices as project events.

- ``trbuilder`` (one-shot): builds or reuses the trained-model image of the project's
  artifact with the generic image builder, ends with ``model_image_ready`` data.
- ``trmodel`` (long-lived): runs ``run_inference_service``; its ready notice carries
  ``inference_ready`` data, which ends the ``serve`` stage the first time.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from core.errors import FlopsError
from core.progress import Notice
from images.build import BuildRequest, build_image
from images.store import ImageStore
from images.uses import record_use
from images.uvrun import UvOptions
from protocol.events import Event, Facts, Level, event_id
from protocol.states import ProjectState
from services.builder.service import beating
from services.context import ServiceContext
from services.spec import ServiceSpec
from services.trmodel.artifact import artifact_lock, open_artifact
from services.trmodel.errors import TrainedModelError
from services.trmodel.facts import INFERENCE_READY, MODEL_IMAGE_READY, ModelImageReady
from services.trmodel.image import DEPLOY_TEXT, START_TEXT, image_name, packages_for
from services.trmodel.service import InferenceConfig, run_inference_service
from services.trmodel.service import Notice as ServiceNotice

FAILED_TEXT = "{reason}. Trained model image build failed. Terminating this FLOps Project."


class TrBuilderConfig(BaseModel):
    """What the manager hands the trained-model image builder."""

    model_config = ConfigDict(extra="forbid")
    artifact: str = Field(min_length=1)  # the artifact folder the training stage reported
    registry: str
    data_dir: str = Field(min_length=1)  # the node's data dir: images/
    heartbeat_interval: float = 15.0
    progress_interval: float = 2.0
    build_timeout: float = 900.0


class TrModelConfig(BaseModel):
    """What the manager hands the inference service (``InferenceConfig``'s fields as JSON)."""

    model_config = ConfigDict(extra="forbid")
    python: str = Field(min_length=1)  # the trained-model image's interpreter
    model_dir: str = Field(min_length=1)
    state_dir: str = Field(min_length=1)  # keeps the port across restarts
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    heartbeat_interval: float = 15.0


def _event(spec: ServiceSpec, text: str, level: Level, **more: object) -> Event:
    return Event.model_validate(
        {"project_id": spec.project_id, "source": spec.name, "level": level,
         "text": text[:4096], **more}
    )  # fmt: skip


async def run_trbuilder_in(ctx: ServiceContext[TrBuilderConfig]) -> None:
    """Build or reuse the trained-model image; a failure is one ERROR event (FAILED)."""
    cfg, say = ctx.config, ctx.emit

    async def progress(notice: Notice) -> None:
        await say(_event(ctx.spec, notice.text, Level(notice.level)))

    await say(_event(ctx.spec, START_TEXT, Level.INFO))
    await ctx.beat()  # alive from its first report on (the stack's liveness deadline)
    try:
        async with beating(ctx.beat, cfg.heartbeat_interval):
            artifact = open_artifact(Path(cfg.artifact))
            packages = packages_for(artifact.manifest, artifact_lock(artifact))
            name = image_name(cfg.registry, artifact.manifest.customer, artifact.manifest.run_id)
            await progress(Notice(f"Start building {name} image (This can take a while)"))
            request = BuildRequest(
                name, [*packages.requirements, *packages.extra_packages],
                labels={"kind": "trained_model", "run_id": artifact.manifest.run_id},
                title="trained model image",
            )  # fmt: skip
            options = UvOptions(interval=cfg.progress_interval, timeout=cfg.build_timeout)
            built = await build_image(
                request, ImageStore(Path(cfg.data_dir)), options=options, progress=progress
            )
    except FlopsError as exc:
        reason = str(exc).rstrip().rstrip(".")
        failed = _event(ctx.spec, FAILED_TEXT.format(reason=reason), Level.ERROR)
        await say(failed.model_copy(update={"state": ProjectState.FAILED}))
        raise TrainedModelError(reason) from exc
    record_use(Path(cfg.data_dir), ctx.spec.project_id, ctx.spec.user, [name])
    ready = ModelImageReady(
        image=name, digest=built.image.digest, python=str(built.image.python),
        artifact=str(artifact.path), model_dir=str(artifact.model_dir),
        run_id=artifact.manifest.run_id, reused=built.reused,
    )  # fmt: skip
    how = "reused (it exists)" if built.reused else "built"
    data = Facts(type=MODEL_IMAGE_READY, values=ready.model_dump(mode="json"))
    await say(_event(ctx.spec, f"Trained model image {name} {how}", Level.INFO, data=data))


async def run_trmodel_in(ctx: ServiceContext[TrModelConfig]) -> None:
    """Serve the project's model until undeployed; its notices are the project's events."""
    cfg = ctx.config
    config = InferenceConfig(
        python=Path(cfg.python), model_dir=Path(cfg.model_dir), state_dir=Path(cfg.state_dir),
        host=cfg.host, port=cfg.port,
    )  # fmt: skip

    async def emit(notice: ServiceNotice) -> None:
        more: dict[str, object] = {}
        if notice.data.get("url") and notice.level == "info":
            more["data"] = Facts(type=INFERENCE_READY, values=dict(notice.data))
        await ctx.emit(_event(ctx.spec, notice.text, Level(notice.level), **more))

    # Once per service: a restored one's repeat has the same id, which the observer drops.
    deploy = _event(ctx.spec, DEPLOY_TEXT, Level.INFO, event_id=event_id(ctx.spec.id, "deploy"))
    await ctx.emit(deploy)
    async with beating(ctx.beat, cfg.heartbeat_interval):
        await run_inference_service(config, emit)
