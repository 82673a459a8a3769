"""Run one training actor as a process: ``python -m services.{aggregator,learner} FILE``.

FILE is a JSON ``ActorFile``: the role, the broker, and the role's config. Events are
printed to stdout as JSON lines (``{"event": ..., "data": ...}``) for whoever started the
process (the process runtime forwards them to the project's events topic). SIGTERM and
SIGINT stop the actor, which stops its worker. Exit codes: 0 done, 1 failed, 2 bad file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from core.errors import FlopsError
from mqtt.link import BrokerAddress, Credentials
from protocol.events import Event
from services.aggregator.cluster import ClusterConfig, run_cluster_aggregator
from services.aggregator.service import AggregatorConfig, run_aggregator
from services.learner.service import LearnerConfig, run_learner
from services.training.bus import BrokerTarget
from services.training.messages import EventData


class BrokerFile(BaseModel):
    """Where the broker is and, in the secure mode, the actor's user name and password."""

    model_config = ConfigDict(extra="forbid")
    host: str = "127.0.0.1"
    port: int
    username: str | None = None
    password: str | None = None

    def target(self) -> BrokerTarget:
        """The bus's broker target."""
        creds = Credentials(self.username, self.password) if self.username else None
        return BrokerTarget(BrokerAddress(self.host, self.port), creds)


class ActorFile(BaseModel):
    """One actor to run."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["aggregator", "cluster", "learner"]
    broker: BrokerFile
    aggregator: AggregatorConfig | None = None
    cluster: ClusterConfig | None = None
    learner: LearnerConfig | None = None


async def print_event(event: Event, data: EventData | None = None) -> None:
    """Emit to stdout as one JSON line."""
    line = {"event": event.model_dump(mode="json"), "data": data and data.model_dump(mode="json")}
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


async def _run(actor: ActorFile) -> None:
    target = actor.broker.target()
    if actor.role == "aggregator" and actor.aggregator is not None:
        await run_aggregator(actor.aggregator, target, print_event)
    elif actor.role == "cluster" and actor.cluster is not None:
        await run_cluster_aggregator(actor.cluster, target, print_event)
    elif actor.role == "learner" and actor.learner is not None:
        await run_learner(actor.learner, target, print_event)
    else:
        raise FlopsError(f"the file has no {actor.role!r} section")


async def _main(actor: ActorFile) -> int:
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        if task is not None:
            loop.add_signal_handler(sig, task.cancel)
    try:
        await _run(actor)
    except FlopsError as exc:
        print(f"{actor.role} failed: {exc}", file=sys.stderr)
        return 1
    except asyncio.CancelledError:
        return 1
    return 0


def main(role: str, argv: list[str] | None = None) -> int:
    """Parse the actor file named in ``argv`` and run it."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(f"usage: python -m services.{role} ACTOR.json", file=sys.stderr)
        return 2
    try:
        actor = ActorFile.model_validate_json(Path(args[0]).read_bytes())
    except (OSError, ValidationError) as exc:
        print(f"{args[0]}: {exc}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_main(actor))
    return 1
