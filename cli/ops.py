"""What the commands do, over a broker session.

Each returns an exit code; errors are raised as ``FlopsError`` and turned into text and
codes by ``cli.main``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import BaseModel

from cli import render
from cli.prog import prog
from cli.settings import CliSettings
from core.errors import BrokerError, RequestTimeoutError
from core.paths import shorten_home
from mqtt.follow import last_page, read_log
from mqtt.link import BrokerAddress, Credentials
from mqtt.requester import Session, session
from mqtt.tls import client_context
from protocol import topics
from protocol.events import LogEntry
from protocol.messages import (
    AppList,
    CreateProject,
    Deleted,
    DeleteProject,
    ListApps,
    ListProjects,
    ListServices,
    ProjectList,
    ProjectView,
    Request,
    ServiceList,
    ShowModel,
    ShowProject,
    StopProject,
    new_request_id,
)
from protocol.states import ProjectState
from slas import load_sla, resolve_sla
from stack.discovery import read_card

DEFAULT_USER = "Admin"
M = TypeVar("M", bound=BaseModel)
LOGIN_HINT = (
    "set your password as FLOPS_PASSWORD or `password` in ~/.config/flops/config.toml "
    "(chmod 600), and your user with --user or FLOPS_USER"
)
TLS_HINT = "set ca_file (FLOPS_CA_FILE) to the CA that signed the broker's certificate"


def credentials(settings: CliSettings, user: str) -> Credentials | None:
    """TLS (the configured CA, else the local stack's) and the user's password, if any."""
    ca = settings.ca_file
    if ca is None and not (settings.broker_host or settings.broker_port):
        card = read_card(settings.data_dir)
        ca = Path(card.ca_file) if card is not None and card.ca_file else None
    tls = client_context(ca, settings.cert_file, settings.key_file) if ca else None
    password = settings.password.get_secret_value() if settings.password else None
    if tls is None and password is None:
        return None
    return Credentials(username=user if password else None, password=password, tls=tls)


def broker_address(settings: CliSettings) -> BrokerAddress:
    """Explicit settings first, then the local stack's card, then 127.0.0.1:1883."""
    if settings.broker_host or settings.broker_port:
        return BrokerAddress(settings.broker_host or "127.0.0.1", settings.broker_port or 1883)
    card = read_card(settings.data_dir)
    if card is not None:
        return BrokerAddress(card.broker_host, card.broker_port)
    return BrokerAddress()


class Out:
    """Writes tables and lines, or one JSON document with ``--output json``."""

    def __init__(self, settings: CliSettings) -> None:
        self.json = settings.output == "json"
        self.terminal = not self.json and sys.stdout.isatty()  # round lines get a bar

    def line(self, text: str = "") -> None:
        """A line for people (not printed in JSON mode)."""
        if not self.json:
            click.echo(text)

    def doc(self, data: dict[str, Any]) -> None:
        """The JSON document (only in JSON mode)."""
        if self.json:
            click.echo(json.dumps(data, indent=2))


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")


async def _ask(
    sess: Session, op: topics.Op, message: Request, result: type[M], timeout: float
) -> M:
    try:
        return await sess.request(topics.request(sess.user, op), message, result, timeout)
    except RequestTimeoutError as exc:
        raise RequestTimeoutError(
            f"no answer from the FLOps manager within {timeout:g}s via the broker at "
            f"{sess.address}; is the stack running? {start_hint()}"
        ) from exc


@asynccontextmanager
async def _connect(settings: CliSettings, user: str) -> AsyncIterator[Session]:
    """A broker session; a connection failure says how to start the stack."""
    entered = False
    try:
        creds = credentials(settings, user)
        async with session(broker_address(settings), user, settings.timeout, creds) as sess:
            entered = True
            yield sess
    except BrokerError as exc:
        if entered:
            raise
        raise BrokerError(f"{exc}; {_hint(str(exc))}") from exc


def _hint(problem: str) -> str:
    if "refused user" in problem or "refused this client" in problem:
        return LOGIN_HINT
    if "not trusted" in problem or "TLS" in problem:
        return TLS_HINT
    if "timed out" in problem:
        return f"if the broker expects TLS, {TLS_HINT}; else {start_hint()}"
    return start_hint()


def start_hint() -> str:
    """How to start the stack, in the name the user calls FLOps by."""
    return f"start the stack with `{prog()} up`"


async def start_project(settings: CliSettings, sla_name: str, *, show: bool, follow: bool) -> int:
    """``flops project``: validate, send, print the answer, follow the log to a resting state."""
    out = Out(settings)
    path = resolve_sla(sla_name, settings.sla_dir)
    sla = load_sla(path)
    if show:
        raw = json.loads(path.read_text())
        if out.json:
            out.doc({"sla_file": str(path), "sla": raw})
        else:
            click.echo(f"# {shorten_home(path)}\n" + json.dumps(raw, indent=4))
        return 0
    user = settings.user or sla.customerID
    async with _connect(settings, user) as sess:
        if not out.json:
            sess.on_retry = _say_retrying
        request = CreateProject(
            request_id=new_request_id(),
            reply_to=sess.client_id,
            sla=sla.model_dump(mode="json"),
            sla_name=path.name,
        )
        if not out.json:
            click.echo(
                f"Requesting a new FLOps project from the manager via {sess.address} ...", err=True
            )
        project: ProjectView = await _ask(
            sess, topics.Op.CREATE_PROJECT, request, ProjectView, settings.timeout
        )
        out.line(f"Success: 'Init new FLOps project for SLA '{shorten_home(path)}'")
        out.line(render.apps_table(project.apps))
        out.line(render.services_table(project.services))
        entries: list[LogEntry] = []
        state: ProjectState | None = project.state
        if follow:
            # The service kinds table imports every service's code (numpy among them): only
            # a follower needs it, not `--no-follow`, which must stay quick.
            from services.kinds import OBSERVER  # noqa: PLC0415

            observer = next(
                (s.name for s in project.services if s.kind == OBSERVER.name), OBSERVER.name
            )
            out.line(
                f"\nLive log of {project.name} from its observer {observer} "
                "(Ctrl-C stops following; the project keeps running):"
            )
            state = await read_log(
                sess,
                project.id,
                _collect(out, entries),
                timeout=settings.timeout,
                follow=True,
                until_rest=True,
            )
            out.line(_rest_note(project, state))
    out.doc(
        {
            "success": True,
            "sla_file": str(path),
            "project": _dump(project),
            "state": state.value if state else None,
            "log": [_dump(e) for e in entries],
        }
    )
    return ended(state)


def ended(state: ProjectState | None) -> int:
    """Exit code for how a project rests: 0 running on or completed, 1 failed, 3 stopped."""
    if state is ProjectState.FAILED:
        return 1
    return 3 if state is ProjectState.STOPPED else 0


def _say_retrying(attempt: int) -> None:
    click.echo(
        f"No answer yet; asking again with the same request id (retry {attempt}) ...", err=True
    )


def _collect(out: Out, entries: list[LogEntry]) -> Callable[[LogEntry], None]:
    def emit(entry: LogEntry) -> None:
        entries.append(entry)
        out.line(render.log_line(entry, out.terminal))

    return emit


def _rest_note(project: ProjectView, state: ProjectState | None) -> str:
    if state is ProjectState.FAILED:
        return (
            f"\nProject {project.id} FAILED (see the log above). Details: {prog()} status "
            f"{project.id}"
        )
    if state is ProjectState.COMPLETED:
        return f"\nProject {project.id} COMPLETED: every stage is done."
    if state is ProjectState.IMAGES_READY:
        return (
            f"\nProject {project.id} is IMAGES_READY: its learner and aggregator images are "
            'built; this stack runs the build stage only ([stack] stages = "build"). '
            f"Images: flops images"
        )
    return (
        f"\nProject {project.id} is {state.value if state else 'starting'}: the image build is "
        f"the next stage. Follow it with: {prog()} log {project.id} --follow"
    )


async def _query(settings: CliSettings, op: topics.Op, result: type[M], **fields: str) -> M:
    """Ask the manager one read-only question as the configured user."""
    model = REQUEST_OF[op]
    async with _connect(settings, settings.user or DEFAULT_USER) as sess:
        request = model.model_validate(
            {"request_id": new_request_id(), "reply_to": sess.client_id, **fields}
        )
        return await _ask(sess, op, request, result, settings.timeout)


REQUEST_OF: dict[topics.Op, type[Request]] = {
    topics.Op.STOP_PROJECT: StopProject,
    topics.Op.DELETE_PROJECT: DeleteProject,
    topics.Op.LIST_PROJECTS: ListProjects,
    topics.Op.SHOW_PROJECT: ShowProject,
    topics.Op.LIST_APPS: ListApps,
    topics.Op.LIST_SERVICES: ListServices,
    topics.Op.SHOW_MODEL: ShowModel,
}


async def list_projects(settings: CliSettings) -> int:
    """``flops projects``."""
    out = Out(settings)
    result = await _query(settings, topics.Op.LIST_PROJECTS, ProjectList)
    out.line(render.projects_table(result.projects) if result.projects else "No projects.")
    if result.total > len(result.projects):
        out.line(f"(the newest {len(result.projects)} of {result.total} projects)")
    out.doc(_dump(result))
    return 0


async def show_project(settings: CliSettings, project_id: str) -> int:
    """``flops status ID``."""
    out = Out(settings)
    project = await _query(settings, topics.Op.SHOW_PROJECT, ProjectView, project_id=project_id)
    out.line(render.project_summary(project))
    training = await _training(settings, project)
    if training is not None:
        out.line(render.training_line(training))
    out.line(render.apps_table(project.apps))
    out.line(render.services_table(project.services))
    out.doc({**_dump(project), "training": training})
    return 0


async def _training(settings: CliSettings, project: ProjectView) -> dict[str, Any] | None:
    """The last round and the best metrics so far, as the project's observer keeps them.

    Only for a project that trains or trained: one query for the log's last entry, whose
    page carries the summary (``LogPage.training``), whatever the number of rounds.
    """
    if project.stage != "train" and project.state not in TRAINED:
        return None
    async with _connect(settings, settings.user or DEFAULT_USER) as sess:
        page = await last_page(sess, project.id, settings.timeout)
    return render.training_summary(page.training)


TRAINED = (ProjectState.TRAINING, ProjectState.COMPLETED)


async def list_apps(settings: CliSettings) -> int:
    """``flops apps`` / ``oak a s``."""
    out = Out(settings)
    result = await _query(settings, topics.Op.LIST_APPS, AppList)
    out.line(render.apps_table(result.apps))
    out.doc(_dump(result))
    return 0


async def list_services(settings: CliSettings) -> int:
    """``flops services`` / ``oak s s``."""
    out = Out(settings)
    result = await _query(settings, topics.Op.LIST_SERVICES, ServiceList)
    out.line(render.services_table(result.services))
    out.doc(_dump(result))
    return 0


async def stop_project(settings: CliSettings, project_id: str) -> int:
    """``flops stop ID``: undeploy the project's services; its log stays readable."""
    out = Out(settings)
    project = await _query(settings, topics.Op.STOP_PROJECT, ProjectView, project_id=project_id)
    out.line(
        f"Project {project.name} ({project.id}) is {project.state.value}: "
        "its project services are undeployed; its log stays readable."
    )
    out.line(render.services_table(project.services))
    out.doc(_dump(project))
    return 0


async def delete_project(settings: CliSettings, project_id: str) -> int:
    """``flops delete ID``: remove the project and everything it created."""
    out = Out(settings)
    deleted = await _query(settings, topics.Op.DELETE_PROJECT, Deleted, project_id=project_id)
    out.line(
        f"Deleted project {deleted.project_id}: {len(deleted.removed_apps)} application(s) "
        f"and {len(deleted.removed_services)} service(s) removed, its log included."
    )
    out.doc(_dump(deleted))
    return 0


async def show_log(
    settings: CliSettings,
    project_id: str,
    *,
    from_seq: int,
    last: int | None,
    follow: bool,
    until_rest: bool,
) -> int:
    """``flops log ID``."""
    out = Out(settings)
    entries: list[LogEntry] = []
    async with _connect(settings, settings.user or DEFAULT_USER) as sess:
        try:
            state = await read_log(
                sess,
                project_id,
                _collect(out, entries),
                timeout=settings.timeout,
                from_seq=from_seq,
                last=last,
                follow=follow,
                until_rest=until_rest,
            )
        except RequestTimeoutError as exc:
            raise RequestTimeoutError(f"{exc}; is the stack running? {start_hint()}") from exc
    out.doc(
        {
            "project_id": project_id,
            "state": state.value if state else None,
            "entries": [_dump(e) for e in entries],
        }
    )
    return ended(state) if until_rest else 0


def list_slas(settings: CliSettings) -> int:
    """``flops slas``: the SLAs a bare name can refer to."""
    from slas import bundled_dir  # noqa: PLC0415

    out = Out(settings)
    found: dict[str, Path] = {}
    for folder in (bundled_dir(), settings.sla_dir):
        if folder.is_dir():
            found.update({p.name: p for p in sorted(folder.glob("*.json"))})
    for name, path in sorted(found.items()):
        out.line(f"{name:<42} {shorten_home(path)}")
    out.doc({"slas": {name: str(path) for name, path in sorted(found.items())}})
    return 0
