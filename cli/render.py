"""Tables and log lines as the original oak-cli drew them (rounded borders)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

from tabulate import tabulate

from protocol.events import BestRound, Level, LogEntry, RoundMetrics
from protocol.messages import AppView, ProjectView, ServiceView

FORMAT = "rounded_grid"


def _table(rows: list[list[str]], headers: list[str]) -> str:
    return str(tabulate(rows, headers=headers, tablefmt=FORMAT))


def apps_table(apps: Sequence[AppView]) -> str:
    """Name | Services | Application ID."""
    rows = [[a.name, f"({a.services})", a.id] for a in apps]
    return _table(rows, ["Name", "Services", "Application ID"])


def services_table(services: Sequence[ServiceView]) -> str:
    """Service Name | Service ID | Instances | App Name | App ID."""
    rows = [
        [
            s.name,
            s.id,
            "\n".join(f"{i.index} {i.status.value}" for i in s.instances) or "-",
            s.app_name,
            s.app_id,
        ]
        for s in services
    ]
    return _table(rows, ["Service Name", "Service ID", "Instances", "App Name", "App ID"])


def projects_table(projects: Sequence[ProjectView]) -> str:
    """Project ID | Name | State | SLA | Created."""
    rows = [[p.id, p.name, p.state.value, p.sla_name, when(p.created_at)] for p in projects]
    return _table(rows, ["Project ID", "Name", "State", "SLA", "Created"])


def project_summary(p: ProjectView) -> str:
    """A few lines on one project."""
    lines = [
        f"Project {p.name} ({p.id}) of {p.user}",
        f"State:   {p.state.value}" + (f" - {p.state_reason}" if p.state_reason else ""),
        f"Stage:   {p.stage or '-'}",
        f"SLA:     {p.sla_name}",
        f"Created: {when(p.created_at)}   Updated: {when(p.updated_at)}",
    ]
    if p.inference_url:
        lines.append(f"Inference: {p.inference_url}  (flops predict {p.id} --input FILE)")
    return "\n".join(lines)


def training_summary(last: RoundMetrics | None) -> dict[str, Any] | None:
    """The last classic round and the aggregator's best so far; None before any round.

    A round reported without its best (an older aggregator) counts as its own best.
    """
    if last is None:
        return None
    best = last.best or BestRound(round=last.round, loss=last.loss, accuracy=last.accuracy)
    return {
        "round": last.round,
        "accuracy": last.accuracy,
        "loss": last.loss,
        "best": {"round": best.round, "accuracy": best.accuracy, "loss": best.loss},
    }


def training_line(summary: dict[str, Any]) -> str:
    """``Training: round 2, accuracy 0.851, loss 0.612; best round 2 (accuracy 0.851)``."""
    best = summary["best"]
    return (
        f"Training: round {summary['round']}, accuracy {summary['accuracy']:.3f}, "
        f"loss {summary['loss']:.3f}; best so far round {best['round']} "
        f"(accuracy {best['accuracy']:.3f}, loss {best['loss']:.3f})"
    )


def when(ts: float) -> str:
    """Local time of a timestamp, to the second."""
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def log_line(e: LogEntry, terminal: bool = False) -> str:
    """``seq  time  source  [LEVEL] text``; on a terminal a round also gets a progress bar."""
    stamp = dt.datetime.fromtimestamp(e.ts).strftime("%H:%M:%S.%f")[:-3]
    level = "" if e.level is Level.INFO else f"{e.level.value.upper()}: "
    line = f"{e.seq:>4}  {stamp}  {e.source:<20} {level}{e.text}"
    return f"{line}  {progress_bar(e)}" if terminal and isinstance(e.data, RoundMetrics) else line


ROUND_OF = re.compile(r"^Round (\d+)/(\d+):")


def progress_bar(e: LogEntry, width: int = 20) -> str:
    """``[########------------] 2/3`` for a round entry (its text says the total)."""
    found = ROUND_OF.match(e.text)
    if found is None:
        return ""
    done, total = int(found.group(1)), int(found.group(2))
    filled = width * min(done, total) // max(total, 1)
    return f"[{'#' * filled}{'-' * (width - filled)}] {done}/{total}"
