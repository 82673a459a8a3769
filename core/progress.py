"""What a long-running library step tells its caller while it works: notices.

Data preparation, repository resolution and image builds report through an async
``Progress`` callback handed to them. A notice has a level named like ``Level`` of the
events (``info``, ``warning``, ``error``), a readable text and typed data beside it; the
caller turns it into a project event or a CLI line. Libraries never print.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

NoticeLevel = Literal["info", "warning", "error"]


@dataclass(frozen=True)
class Notice:
    """One thing worth telling the user: a level, a text and structured data."""

    text: str
    level: NoticeLevel = "info"
    data: Mapping[str, object] = field(default_factory=dict)


Progress = Callable[[Notice], Awaitable[None]]


async def no_progress(notice: Notice) -> None:
    """A ``Progress`` that drops every notice (tests, callers that do not listen)."""
    del notice


class Recorder:
    """A ``Progress`` that keeps every notice, in order (tests and the CLI's JSON output)."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []

    async def __call__(self, notice: Notice) -> None:
        """Keep ``notice``."""
        self.notices.append(notice)

    def texts(self, level: NoticeLevel | None = None) -> list[str]:
        """The texts of the notices so far, optionally of one level only."""
        return [n.text for n in self.notices if level is None or n.level == level]
