"""The running stack's address card (``<data dir>/stack.json``), read by the CLI."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

CARD = "stack.json"


@dataclass(frozen=True)
class StackCard:
    """Where a running stack's broker listens, and which process runs it."""

    pid: int
    broker_host: str
    broker_port: int
    broker_kind: str
    started_at: float
    proc_start: str = ""  # the process's start time in /proc: a reused pid does not match
    ca_file: str = ""  # set when the broker speaks TLS: the CA that signed its certificate
    broker_pid: int = 0  # the embedded mosquitto, which SIGHUP makes re-read its user files


def write_card(data_dir: Path, card: StackCard) -> None:
    """Publish the card atomically."""
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / (CARD + ".tmp")
    tmp.write_text(json.dumps(asdict(card)))
    tmp.replace(data_dir / CARD)


def read_card(data_dir: Path) -> StackCard | None:
    """The card of a live stack, or ``None`` (a stale card of a dead process is ignored)."""
    try:
        card = StackCard(**json.loads((data_dir / CARD).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    alive = pid_alive(card.pid) and card.proc_start == process_start(card.pid)
    return card if alive else None


def process_start(pid: int) -> str:
    """When ``pid`` started (clock ticks since boot, from /proc), or "" where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def remove_card(data_dir: Path, pid: int) -> None:
    """Remove the card if it is this process's."""
    card_path = data_dir / CARD
    try:
        if json.loads(card_path.read_text()).get("pid") == pid:
            card_path.unlink()
    except (OSError, ValueError):
        pass


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not is_zombie(pid)


def is_zombie(pid: int) -> bool:
    """Whether ``pid`` has exited and waits for its parent to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return False
