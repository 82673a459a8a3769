"""Log lines that no sender can forge or multiply, and a stack log that rotates.

Anyone who can publish on a FLOps topic chooses the topic, the request id and the payload
that a malformed message is logged with. Untrusted text goes into a log line through
``shown`` (quoted, control characters escaped, cut short); malformed-message warnings go
through a ``Throttle`` (a few lines a minute, then a count); and the formatter escapes any
line break left in a message, so one record is always one line. The detached stack's
``stack.log`` rotates (``RotatingStderr``).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

SHOWN = 120  # characters of untrusted text in one log line
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_CONTROLS = {i: f"\\x{i:02x}" for i in (*range(32), 127)} | {10: "\\n", 13: "\\r", 9: "\\t"}


def shown(value: str | bytes, limit: int = SHOWN) -> str:
    """Untrusted text for a log line or an error: quoted, escaped, at most ``limit`` chars."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text)} characters)"


class OneLineFormatter(logging.Formatter):
    """Escapes line breaks and control characters in the message: one record, one line.

    A traceback, which follows the message, keeps its lines.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        """The formatted line with control characters written as escapes."""
        return super().formatMessage(record).translate(_CONTROLS)


class Throttle:
    """At most ``burst`` lines per ``window`` seconds; the others are counted, then summed up.

    For warnings about input anyone may send (malformed messages): a flood of them costs
    one line per window, not one per message.
    """

    def __init__(
        self,
        log: logging.Logger,
        burst: int = 10,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._burst = burst
        self._window = window
        self._clock = clock
        self._start = clock()
        self._count = 0
        self._dropped = 0

    def warning(self, msg: str, *args: object) -> None:
        """Log a warning unless this window had its ``burst`` already."""
        now = self._clock()
        if now - self._start >= self._window:
            if self._dropped:
                self._log.warning(
                    "%d more malformed messages in %.0fs were not logged",
                    self._dropped,
                    now - self._start,
                )
            self._start, self._count, self._dropped = now, 0, 0
        if self._count < self._burst:
            self._count += 1
            self._log.warning(msg, *args)
            if self._count == self._burst:
                self._log.warning(
                    "the next malformed messages are counted, not logged, for %.0fs", self._window
                )
        else:
            self._dropped += 1


class RotatingStderr(logging.StreamHandler[TextIO]):
    """Log to stderr, which is the log file ``path``; rotate it at ``max_bytes``.

    The detached stack's stdout and stderr are its ``stack.log``, a service process's
    stderr its ``service.log`` (so a crash's traceback lands there too). Rotating renames
    the file to ``.1`` (``.1`` to ``.2`` …, the oldest beyond ``backups`` removed) and opens
    a new one on the file descriptors that were the file: 2, and 1 if it was too.
    """

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        super().__init__(sys.stderr)
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._fds = [fd for fd in (1, 2) if _same_file(fd, path)]

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record, rotating first when the file has grown past ``max_bytes``."""
        try:
            if os.fstat(sys.stderr.fileno()).st_size >= self.max_bytes:
                self.rotate()
        except OSError:
            self.handleError(record)
        super().emit(record)

    def rotate(self) -> None:
        """Shift the backups, move the file to ``.1``, start a new file on fds 1 and 2."""
        sys.stdout.flush()
        sys.stderr.flush()
        for n in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
        if self.backups > 0:
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o600)
        try:
            for target in self._fds:
                os.dup2(fd, target)
        finally:
            os.close(fd)


def writes_to(path: Path) -> bool:
    """Whether this process's stderr is the file ``path`` (a detached process's log)."""
    return _same_file(2, path)


def _same_file(fd: int, path: Path) -> bool:
    try:
        ours, theirs = os.fstat(fd), path.stat()
    except OSError:
        return False
    return (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino)


QUIET_LIBRARIES = ("httpx", "httpcore")


def configure(level: str, handler: logging.Handler | None = None, fmt: str = FORMAT) -> None:
    """Root logging at ``level`` through ``handler`` (stderr by default), one line a record."""
    handler = handler or logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter(fmt))
    logging.basicConfig(level=level, handlers=[handler])
    if logging.getLogger().level > logging.DEBUG:  # a line per HTTP request (health checks)
        for chatty in QUIET_LIBRARIES:
            logging.getLogger(chatty).setLevel(logging.WARNING)
