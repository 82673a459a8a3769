"""Tables and log lines as the original oak-cli drew them (rounded borders)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from tabulate import tabulate

from protocol.events import Level, LogEntry
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
        f"SLA:     {p.sla_name}",
        f"Created: {when(p.created_at)}   Updated: {when(p.updated_at)}",
    ]
    if p.inference_url:
        lines.append(f"Inference: {p.inference_url}  (flops predict {p.id} --input FILE)")
    return "\n".join(lines)


def when(ts: float) -> str:
    """Local time of a timestamp, to the second."""
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def log_line(e: LogEntry) -> str:
    """``seq  time  source  [LEVEL] text``."""
    stamp = dt.datetime.fromtimestamp(e.ts).strftime("%H:%M:%S.%f")[:-3]
    level = "" if e.level is Level.INFO else f"{e.level.value.upper()}: "
    return f"{e.seq:>4}  {stamp}  {e.source:<20} {level}{e.text}"
