"""SQLite implementation of the manager ``Store`` (the embedded default)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from core import ids
from core.aio import others_ready
from core.errors import StoreError
from core.sqlite import Database, open_db
from manager.store.interface import Entered, NewProject, NewService, Progress
from protocol.messages import AppView, Instance, ProjectView, ServiceView
from protocol.states import FINAL, RUNNABLE, TRANSITIONS, InstanceStatus, ProjectState
from services.kinds import OBSERVER
from services.spec import ServiceSpec

SCHEMA = """
CREATE TABLE IF NOT EXISTS applications (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, user TEXT NOT NULL,
    project_id TEXT, created_at REAL NOT NULL, services INTEGER NOT NULL DEFAULT 0,
    UNIQUE (user, name));
CREATE TABLE IF NOT EXISTS projects (
    id TEXT PRIMARY KEY REFERENCES applications(id), user TEXT NOT NULL, name TEXT NOT NULL,
    request_id TEXT NOT NULL, sla TEXT NOT NULL, sla_name TEXT NOT NULL,
    state TEXT NOT NULL, state_reason TEXT NOT NULL DEFAULT '',
    stage TEXT NOT NULL DEFAULT '', stage_ready INTEGER NOT NULL DEFAULT 0,
    outputs TEXT NOT NULL DEFAULT '{}', host TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL, updated_at REAL NOT NULL, UNIQUE (user, request_id));
CREATE TABLE IF NOT EXISTS services (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL,
    app_id TEXT NOT NULL REFERENCES applications(id), project_id TEXT NOT NULL,
    user TEXT NOT NULL, status TEXT NOT NULL, config TEXT NOT NULL, created_at REAL NOT NULL,
    UNIQUE (app_id, name));
CREATE TABLE IF NOT EXISTS answers (
    user TEXT NOT NULL, request_id TEXT NOT NULL, answer TEXT NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (user, request_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS services_by_user ON services(user);
CREATE INDEX IF NOT EXISTS services_by_project ON services(project_id);
"""
# Each application counts its services, so a view never counts a large observatory.
TRIGGERS = """
CREATE TRIGGER IF NOT EXISTS services_counted_in AFTER INSERT ON services BEGIN
    UPDATE applications SET services = services + 1 WHERE id = NEW.app_id; END;
CREATE TRIGGER IF NOT EXISTS services_counted_out AFTER DELETE ON services BEGIN
    UPDATE applications SET services = services - 1 WHERE id = OLD.app_id; END;
"""


class SqliteStore:
    """Manager state in one SQLite file (WAL); one connection, transactions serialised."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = asyncio.Lock()
        self._group: asyncio.Future[None] | None = None  # the open group's commit

    @classmethod
    async def open(cls, path: Path) -> SqliteStore:
        """Open (and create) the database at ``path``."""
        db = await open_db(path, SCHEMA, "manager")
        await _migrate(db)
        await db.executescript(TRIGGERS)
        return cls(db)

    async def maintain(self, stop: asyncio.Event) -> None:
        """Background upkeep until ``stop``: WAL checkpoints in quiet moments."""
        await self._db.checkpoint_when_idle(stop)

    async def close(self) -> None:
        """Commit what is open, then close the connection."""
        self._commit_now()
        await self._db.close()

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Database]:
        """One transaction, committed together with the others of this turn of the loop.

        Group commit: the first transaction opens an SQLite transaction; when it ends while
        other tasks are ready to run (a burst of concurrent starts), the commit is left to
        the loop's next turn and the transactions of those tasks join it, each as a
        savepoint (an error rolls back its own statements only; the first's, while it is
        alone, the whole transaction). Every one waits for that commit before it returns.
        With nothing else ready (one start at a time) it commits at once, as before. So a
        burst pays for one COMMIT (its WAL writes) instead of one each, and nothing is acted
        on before it is durable. Bodies must not suspend (only statements run in them).
        """
        async with self._lock:
            try:
                first = self._group is None
                if first:
                    await self._db.execute("BEGIN IMMEDIATE")
                    self._group = asyncio.get_running_loop().create_future()
                else:
                    await self._db.execute("SAVEPOINT tx")
                group = self._group
                assert group is not None  # noqa: S101 - set just above or before
                try:
                    yield self._db
                except BaseException:
                    if first:  # alone in its group: the whole transaction goes
                        self._group = None
                        await self._db.execute("ROLLBACK")
                    else:
                        await self._db.execute("ROLLBACK TO tx")
                        await self._db.execute("RELEASE tx")
                    raise
                if not first:
                    await self._db.execute("RELEASE tx")
                elif others_ready():  # without a way to ask: commit at once
                    asyncio.get_running_loop().call_soon(self._commit)
                else:
                    self._commit_now()
            except sqlite3.Error as exc:
                raise StoreError(f"manager database: {exc}") from exc
        if not group.done():
            await asyncio.shield(group)
        elif group.exception() is not None:
            raise group.exception()  # type: ignore[misc]  # the StoreError of the commit

    def _commit(self) -> None:
        """Commit the open group, from the loop (once no transaction body runs)."""
        if self._group is None:
            return
        if self._lock.locked():  # a body suspended after all: commit after it
            asyncio.get_running_loop().call_soon(self._commit)
            return
        self._commit_now()

    def _commit_now(self) -> None:
        """Commit the open group; every transaction in it learns how that went."""
        group, self._group = self._group, None
        if group is None:
            return
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            group.set_exception(StoreError(f"manager database: {exc}"))
            group.exception()  # retrieved: the waiters raise it; none may be left to
        else:
            group.set_result(None)

    async def _rows(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        try:
            async with self._db.execute(sql, tuple(args)) as cur:
                return list(await cur.fetchall())
        except sqlite3.Error as exc:
            raise StoreError(f"manager database: {exc}") from exc

    # ------------------------------------------------------------------ writes

    async def create_project(
        self,
        user: str,
        request_id: str,
        sla: dict[str, Any],
        sla_name: str,
        observer_config: dict[str, Any],
        host: str = "",
        observer_status: InstanceStatus = InstanceStatus.REQUESTED,
    ) -> NewProject:
        """See ``Store.create_project``."""
        now = time.time()
        async with self._tx() as db:
            await db.execute(
                "INSERT OR IGNORE INTO applications (id, name, user, created_at) VALUES (?,?,?,?)",
                (ids.new_object_id(), ids.OBSERVATORY, user, now),
            )
            async with db.execute(
                "SELECT id, services FROM applications WHERE user=? AND name=?",
                (user, ids.OBSERVATORY),
            ) as cur:
                row = await cur.fetchone()
            observatory_id, observed = (str(row[0]), int(row[1])) if row else ("", 0)
            project_id = ids.new_object_id()
            name = ids.project_app_name(request_id)
            await db.execute(
                "INSERT INTO applications (id, name, user, project_id, created_at)"
                " VALUES (?,?,?,?,?)",
                (project_id, name, user, project_id, now),
            )
            await db.execute(
                "INSERT INTO projects (id, user, name, request_id, sla, sla_name, state,"
                " created_at, updated_at, host) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    project_id,
                    user,
                    name,
                    request_id,
                    json.dumps(sla),
                    sla_name,
                    ProjectState.STARTING.value,
                    now,
                    now,
                    host,
                ),
            )
            observer = await self._insert_service(
                db,
                project_id,
                user,
                observatory_id,
                OBSERVER.name,
                OBSERVER.name_for(project_id),
                observer_config,
                now,
                observer_status,
            )
        # What `project` would read back now, built from what was just written.
        apps = [
            AppView(id=observatory_id, name=ids.OBSERVATORY, user=user, services=observed + 1),
            AppView(id=project_id, name=name, user=user, services=0),
        ]
        view = ProjectView(
            id=project_id,
            name=name,
            user=user,
            state=ProjectState.STARTING,
            sla_name=sla_name,
            request_id=request_id,
            host=host,
            created_at=now,
            updated_at=now,
            apps=sorted(apps, key=lambda a: a.id),
            services=[
                ServiceView(
                    id=observer.id,
                    name=observer.name,
                    kind=observer.kind,
                    app_id=observatory_id,
                    app_name=ids.OBSERVATORY,
                    project_id=project_id,
                    instances=[Instance(index=0, status=observer_status)],
                )
            ],
        )
        return NewProject(view, observer)

    async def _insert_service(
        self,
        db: Database,
        project_id: str,
        user: str,
        app_id: str,
        kind: str,
        name: str,
        config: dict[str, Any],
        now: float,
        status: InstanceStatus = InstanceStatus.REQUESTED,
    ) -> ServiceSpec:
        spec = ServiceSpec(ids.new_object_id(), name, kind, user, project_id, app_id, config)
        await db.execute(
            "INSERT INTO services (id, name, kind, app_id, project_id, user, status, config,"
            " created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                spec.id,
                name,
                kind,
                app_id,
                project_id,
                user,
                status.value,
                json.dumps(config),
                now,
            ),
        )
        return spec

    async def add_services(self, project_id: str, services: list[NewService]) -> list[ServiceSpec]:
        """See ``Store.add_services``."""
        return (await self.enter_stage(project_id, services)).services

    async def enter_stage(
        self,
        project_id: str,
        services: list[NewService],
        state: tuple[ProjectState, str] | None = None,
    ) -> Entered:
        """See ``Store.enter_stage``: one transaction, the project and its observatory read once."""
        async with self._tx() as db:
            async with db.execute(
                "SELECT p.user, p.state, a.id FROM projects p LEFT JOIN applications a"
                " ON a.user = p.user AND a.name = ? WHERE p.id = ?",
                (ids.OBSERVATORY, project_id),
            ) as cur:
                row = await cur.fetchone()
            if row is None:
                raise StoreError(f"no project {project_id}")
            user, current = str(row[0]), ProjectState(row[1])
            observatory = str(row[2]) if row[2] else project_id
            made = await self._services_in(db, project_id, user, observatory, services)
            if state is None or current is state[0]:
                return Entered(made, state is not None)
            if state[0] not in TRANSITIONS[current]:
                return Entered(made, False)
            await db.execute(
                "UPDATE projects SET state=?, state_reason=?, updated_at=? WHERE id=?",
                (state[0].value, state[1], time.time(), project_id),
            )
            return Entered(made, True)

    async def _services_in(
        self,
        db: Database,
        project_id: str,
        user: str,
        observatory: str,
        services: list[NewService],
    ) -> list[ServiceSpec]:
        """In a transaction: ``services`` of the project, those missing (by name) inserted."""
        if not services:
            return []
        marks = ",".join("?" * len(services))
        async with db.execute(
            f"SELECT * FROM services WHERE project_id=? AND name IN ({marks})",  # noqa: S608 - only placeholders
            (project_id, *(new.name for new in services)),
        ) as cur:
            found = {str(r["name"]): _spec(r) for r in await cur.fetchall()}
        made = []
        for new in services:
            if new.name not in found:
                app_id = observatory if new.in_observatory else project_id
                found[new.name] = await self._insert_service(
                    db, project_id, user, app_id, new.kind, new.name, new.config, time.time()
                )
            made.append(found[new.name])
        return made

    async def delete_project(self, project_id: str) -> None:
        """See ``Store.delete_project``."""
        async with self._tx() as db:
            async with db.execute("SELECT user FROM projects WHERE id=?", (project_id,)) as cur:
                row = await cur.fetchone()
            await db.execute("DELETE FROM services WHERE project_id=?", (project_id,))
            await db.execute("DELETE FROM projects WHERE id=?", (project_id,))
            await db.execute("DELETE FROM applications WHERE id=?", (project_id,))
            if row is not None:
                await db.execute(
                    "DELETE FROM applications WHERE user=? AND name=? AND services=0",
                    (row[0], ids.OBSERVATORY),
                )

    async def set_instance_status(self, service_id: str, status: InstanceStatus) -> None:
        """See ``Store.set_instance_status``."""
        async with self._tx() as db:
            await db.execute("UPDATE services SET status=? WHERE id=?", (status.value, service_id))

    async def stage_deployed(
        self,
        project_id: str,
        stage: str,
        statuses: dict[str, InstanceStatus],
        state: tuple[ProjectState, str] | None = None,
    ) -> bool:
        """See ``Store.stage_deployed``: one transaction, the state change included."""
        async with self._tx() as db:
            await db.executemany(
                "UPDATE services SET status=? WHERE id=?",
                [(status.value, sid) for sid, status in statuses.items()],
            )
            changes = await self._state_changed(db, project_id, state)
            await db.execute(
                "UPDATE projects SET stage=?, stage_ready=1 WHERE id=?", (stage, project_id)
            )
            return changes

    async def _state_changed(
        self, db: Database, project_id: str, state: tuple[ProjectState, str] | None
    ) -> bool:
        """In a transaction: put the project in ``state`` if allowed; whether it changed."""
        if state is None:
            return False
        async with db.execute("SELECT state FROM projects WHERE id=?", (project_id,)) as cur:
            row = await cur.fetchone()
        if row is None or state[0] not in TRANSITIONS[ProjectState(row[0])]:
            return False
        await db.execute(
            "UPDATE projects SET state=?, state_reason=?, updated_at=? WHERE id=?",
            (state[0].value, state[1], time.time(), project_id),
        )
        return True

    async def end_stage(
        self, project_id: str, stage: str, following: str, output: dict[str, Any]
    ) -> bool:
        """See ``Store.end_stage``."""
        async with self._tx() as db:
            async with db.execute(
                "SELECT outputs FROM projects WHERE id=? AND stage=? AND stage_ready=1",
                (project_id, stage),
            ) as cur:
                row = await cur.fetchone()
            if row is None:
                return False
            outputs = {**json.loads(row[0]), stage: output}
            await db.execute(
                "UPDATE projects SET stage=?, stage_ready=?, outputs=? WHERE id=?",
                (following, int(not following), json.dumps(outputs), project_id),
            )
            return True

    async def refresh_output(self, project_id: str, stage: str, output: dict[str, Any]) -> bool:
        """See ``Store.refresh_output``."""
        async with self._tx() as db:
            async with db.execute("SELECT outputs FROM projects WHERE id=?", (project_id,)) as cur:
                row = await cur.fetchone()
            outputs = json.loads(row[0]) if row is not None else {}
            if stage not in outputs:
                return False
            outputs[stage] = output
            await db.execute(
                "UPDATE projects SET outputs=? WHERE id=?", (json.dumps(outputs), project_id)
            )
            return True

    async def set_state(self, project_id: str, state: ProjectState, reason: str) -> bool:
        """See ``Store.set_state``."""
        async with self._tx() as db:
            return await self._state_changed(db, project_id, (state, reason))

    async def remember_answer(self, user: str, request_id: str, answer: dict[str, Any]) -> None:
        """See ``Store.remember_answer``."""
        async with self._tx() as db:
            await db.execute(
                "INSERT OR IGNORE INTO answers VALUES (?,?,?,?)",
                (user, request_id, json.dumps(answer), time.time()),
            )

    async def answer_for(self, user: str, request_id: str) -> dict[str, Any] | None:
        """See ``Store.answer_for``."""
        rows = await self._rows(
            "SELECT answer FROM answers WHERE user=? AND request_id=?", (user, request_id)
        )
        answer: dict[str, Any] | None = json.loads(rows[0][0]) if rows else None
        return answer

    # ------------------------------------------------------------------ reads

    async def progress(self, project_id: str) -> Progress | None:
        """See ``Store.progress``."""
        rows = await self._rows(
            "SELECT user, state, host, sla, sla_name, stage, stage_ready, outputs"
            " FROM projects WHERE id=?",
            (project_id,),
        )
        if not rows:
            return None
        r = rows[0]
        return Progress(
            project_id,
            str(r["user"]),
            ProjectState(r["state"]),
            str(r["host"]),
            json.loads(r["sla"]),
            str(r["sla_name"]),
            str(r["stage"]),
            bool(r["stage_ready"]),
            json.loads(r["outputs"]),
        )

    async def owner_and_state(self, project_id: str) -> tuple[str, ProjectState] | None:
        """See ``Store.owner_and_state``."""
        rows = await self._rows("SELECT user, state FROM projects WHERE id=?", (project_id,))
        return (str(rows[0][0]), ProjectState(rows[0][1])) if rows else None

    async def project_by_request(self, user: str, request_id: str) -> ProjectView | None:
        """See ``Store.project_by_request``."""
        rows = await self._rows(
            "SELECT id FROM projects WHERE user=? AND request_id=?", (user, request_id)
        )
        return await self.project(str(rows[0][0])) if rows else None

    async def project(self, project_id: str) -> ProjectView | None:
        """See ``Store.project``."""
        rows = await self._rows("SELECT * FROM projects WHERE id=?", (project_id,))
        if not rows:
            return None
        services = [
            _service_view(r)
            for r in await self._rows(
                "SELECT s.*, a.name AS app_name FROM services s JOIN applications a"
                " ON a.id = s.app_id WHERE s.project_id=? ORDER BY s.created_at, s.id",
                (project_id,),
            )
        ]
        app_ids = sorted({s.app_id for s in services} | {project_id})
        return _project_view(rows[0], await self._apps(rows[0]["user"], app_ids), services)

    async def projects(self, user: str) -> list[ProjectView]:
        """See ``Store.projects``."""
        rows = await self._rows("SELECT * FROM projects WHERE user=? ORDER BY id", (user,))
        return [_project_view(r, [], []) for r in rows]

    async def live_projects(self, user: str) -> int:
        """See ``Store.live_projects``."""
        marks = ",".join("?" * len(FINAL))
        rows = await self._rows(
            f"SELECT COUNT(*) FROM projects WHERE user=? AND state NOT IN ({marks})",  # noqa: S608 - only placeholders
            (user, *(s.value for s in FINAL)),
        )
        return int(rows[0][0])

    async def apps(self, user: str) -> list[AppView]:
        """See ``Store.apps``."""
        return await self._apps(user, None)

    async def _apps(self, user: str, only: list[str] | None) -> list[AppView]:
        """The user's applications (only the ids in ``only``, if given) with service counts."""
        which = f" AND id IN ({','.join('?' * len(only))})" if only is not None else ""
        sql = (  # only placeholders are formatted in
            "SELECT id, name, user, services AS n FROM applications"  # noqa: S608
            f" WHERE user=?{which} ORDER BY id"
        )
        rows = await self._rows(sql, (user, *(only or [])))
        return [AppView(id=r["id"], name=r["name"], user=r["user"], services=r["n"]) for r in rows]

    async def services(self, user: str) -> list[ServiceView]:
        """See ``Store.services``."""
        rows = await self._rows(
            "SELECT s.*, a.name AS app_name FROM services s JOIN applications a"
            " ON a.id = s.app_id WHERE s.user=? ORDER BY s.id",
            (user,),
        )
        return [_service_view(r) for r in rows]

    async def project_services(self, project_id: str) -> list[ServiceSpec]:
        """See ``Store.project_services``."""
        rows = await self._rows(
            "SELECT * FROM services WHERE project_id=? ORDER BY created_at, id", (project_id,)
        )
        return [_spec(r) for r in rows]

    async def services_to_run(
        self, host: str | None = None, *, project_id: str | None = None
    ) -> list[ServiceSpec]:
        """See ``Store.services_to_run``."""
        marks = ",".join("?" * len(RUNNABLE))
        args: list[str] = [s.value for s in RUNNABLE]
        of_host = ""
        if host is not None:
            of_host = " AND project_id IN (SELECT id FROM projects WHERE host IN (?, ''))"
            args.append(host)
        if project_id is not None:
            of_host += " AND project_id=?"
            args.append(project_id)
        rows = await self._rows(
            f"SELECT * FROM services WHERE status IN ({marks}){of_host} ORDER BY id",  # noqa: S608
            args,
        )
        return [_spec(r) for r in rows]

    async def unfinished_projects(self, host: str = "") -> list[str]:
        """See ``Store.unfinished_projects``."""
        marks = ",".join("?" * len(FINAL))
        rows = await self._rows(
            f"SELECT id FROM projects WHERE stage_ready=0 AND state NOT IN ({marks})"  # noqa: S608
            " AND host IN (?, '') ORDER BY id",
            (*(s.value for s in FINAL), host),
        )
        return [str(r[0]) for r in rows]


async def _migrate(db: Database) -> None:
    """Bring a database made by an earlier version up to this schema."""
    async with db.execute("PRAGMA table_info(projects)") as cur:
        if "stage" not in {row[1] for row in await cur.fetchall()}:
            # Numbered start steps before: 2 and more meant the (one) stage was deployed.
            for column in (
                "stage TEXT NOT NULL DEFAULT ''",
                "stage_ready INTEGER NOT NULL DEFAULT 0",
                "outputs TEXT NOT NULL DEFAULT '{}'",
            ):
                await db.execute(f"ALTER TABLE projects ADD COLUMN {column}")
            await db.execute("UPDATE projects SET stage_ready = (step >= 2)")
    async with db.execute("PRAGMA table_info(projects)") as cur:
        if "host" not in {row[1] for row in await cur.fetchall()}:
            await db.execute("ALTER TABLE projects ADD COLUMN host TEXT NOT NULL DEFAULT ''")
    async with db.execute("PRAGMA table_info(applications)") as cur:
        if "services" not in {row[1] for row in await cur.fetchall()}:
            await db.execute(
                "ALTER TABLE applications ADD COLUMN services INTEGER NOT NULL DEFAULT 0"
            )
            await db.execute(
                "UPDATE applications SET services ="
                " (SELECT COUNT(*) FROM services s WHERE s.app_id = applications.id)"
            )


def _spec(row: sqlite3.Row) -> ServiceSpec:
    return ServiceSpec(
        row["id"],
        row["name"],
        row["kind"],
        row["user"],
        row["project_id"],
        row["app_id"],
        json.loads(row["config"]),
    )


def _service_view(row: sqlite3.Row) -> ServiceView:
    return ServiceView(
        id=row["id"],
        name=row["name"],
        kind=row["kind"],
        app_id=row["app_id"],
        app_name=row["app_name"],
        project_id=row["project_id"],
        instances=[Instance(index=0, status=InstanceStatus(row["status"]))],
    )


def _project_view(
    row: sqlite3.Row, apps: list[AppView], services: list[ServiceView]
) -> ProjectView:
    return ProjectView(
        id=row["id"],
        name=row["name"],
        user=row["user"],
        state=ProjectState(row["state"]),
        state_reason=row["state_reason"],
        sla_name=row["sla_name"],
        request_id=row["request_id"],
        host=row["host"],
        stage=row["stage"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        apps=apps,
        services=services,
    )
