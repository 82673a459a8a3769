"""THE event path: every lifecycle event of a project, whoever emitted it, goes through here.

Events arrive over MQTT (``manager.service``) or, when the project's observer runs in the
stack, straight from the stack's ``emit`` (``stack.app``); both call ``on_event`` once per
event. It notes that the source is alive, applies the project state the event reports
(along ``protocol.states.TRANSITIONS`` only), and ends the project's stage when the event's
data is what the stage waits for (``manager.pipeline``), then enters the next stage.

The manager's own events never end a stage: it emits them while holding a project's lock,
which ending a stage takes.
"""

from __future__ import annotations

import logging
from typing import Any

from manager import handlers, lifecycle
from manager.deps import MANAGER, Deps
from protocol.events import Event
from protocol.states import ProjectState

log = logging.getLogger(__name__)


async def on_event(user: str, project_id: str, event: Event, deps: Deps) -> None:
    """Apply one event of ``user``'s project ``project_id``; see the module docstring."""
    deps.liveness.heard(event.source)
    if event.project_id != project_id or (event.state is None and event.data is None):
        return
    head = await deps.store.owner_and_state(project_id)
    if head is None or head[0] != user:
        log.warning("event for unknown project %s of %s dropped", project_id, user)
        return
    changes = event.state is not None and head[1] is not event.state
    if (
        changes
        and event.state
        and not await deps.store.set_state(project_id, event.state, event.text)
    ):
        log.warning("project %s: %s -> %s refused", project_id, head[1], event.state)
    elif changes and event.state is ProjectState.FAILED:
        # A service failed the project: the others stop now (its own run ends by itself).
        await lifecycle.undeploy_others(project_id, event.source, deps)
    if event.data is not None and event.source != MANAGER and await _ends_stage(event, deps):
        await handlers.advance(project_id, deps)


async def _apply_state(
    project_id: str, was: ProjectState, state: ProjectState, reason: str, deps: Deps
) -> None:
    if not await deps.store.set_state(project_id, state, reason):
        log.warning("project %s: %s -> %s refused", project_id, was, state)


async def _refresh(
    project_id: str, event: Event, output: dict[str, Any], outputs: dict[str, Any], deps: Deps
) -> None:
    """A refreshed stage that ended earlier gets the data its service reports again."""
    for stage in deps.pipeline.stages.values():
        ended = outputs.get(stage.name)
        if stage.refreshed and ended not in (None, output) and stage.ends_on == event.data_type:
            log.info("project %s: %s output refreshed by %s", project_id, stage.name, event.source)
            await deps.store.refresh_output(project_id, stage.name, output)


async def _ends_stage(event: Event, deps: Deps) -> bool:
    """End the project's stage if ``event`` is what it waits for; whether one follows."""
    async with deps.locks.hold(event.project_id):
        now = await deps.store.progress(event.project_id)
        if now is not None and event.data is not None:
            output = event.data.model_dump(mode="json")
            await _refresh(now.project_id, event, output, now.outputs, deps)
        if now is None or now.state.final or not now.ready or not now.stage:
            return False
        stage = deps.pipeline.stage(now.stage)
        if stage.ends_on is None or stage.ends_on != event.data_type or event.data is None:
            return False
        log.info("project %s: stage %s ended by %s", now.project_id, stage.name, event.source)
        output = event.data.model_dump(mode="json")
        return await handlers.end_stage(now, stage, output, deps)
