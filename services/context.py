"""What a running service gets from whoever runs it: who it is, its config, how to report.

The same ``ServiceContext`` is built by the local runtime (a task in the stack: events go
to the stack's one event path) and by ``flops service run`` (a process: events go over
MQTT), so a service's coroutine does not know where it runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from mqtt.wiring import Wiring
from protocol.events import Event
from services.spec import ServiceSpec

C = TypeVar("C", bound=BaseModel)
T = TypeVar("T")
Emit = Callable[[Event], Awaitable[None]]  # report an event of the service's project
Beat = Callable[[], Awaitable[None]]  # say the service is alive


@dataclass
class Shared:
    """Helpers that the services of one process share, one instance per factory.

    The builders of a stack share one cache of repository HEADs, for example.
    """

    _made: dict[Callable[[], Any], Any] = field(default_factory=dict)

    def get(self, factory: Callable[[], T]) -> T:
        """The one instance ``factory`` made in this process (made now on first use)."""
        if factory not in self._made:
            self._made[factory] = factory()
        made: T = self._made[factory]
        return made


@dataclass(frozen=True)
class ServiceContext(Generic[C]):
    """One running service: its spec, its validated config, and how it reports."""

    spec: ServiceSpec
    config: C
    emit: Emit
    beat: Beat
    shared: Shared
    data_dir: Path | None = None  # where it may keep files (a process's own folder)
    broker: Wiring | None = None  # how its own MQTT clients reach the broker (training actors)
