"""MongoDB implementation of the manager ``Store``, on PyMongo's ``AsyncMongoClient``.

No multi-document transactions: unique indexes enforce the rules of
``manager.store.interface``, every write is one atomic single-document operation, and
``create_project`` writes in an order that a failure can undo. The observatory carries
``refs`` (how many services live in it), changed with ``$inc``, so a concurrent create and
delete cannot strand a service in a removed observatory. SLAs, configs and answers are
stored as JSON text, exactly as SQLite keeps them, so any key (``$``, ``.``) round-trips.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from contextlib import suppress
from typing import Any, ParamSpec, TypeVar

from bson.errors import BSONError
from pymongo import ASCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, PyMongoError

from core import ids
from core.errors import StoreError
from manager.store.interface import Entered, NewProject, NewService, Progress
from protocol.messages import AppView, ProjectView, ServiceView
from protocol.states import FINAL, RUNNABLE, TRANSITIONS, InstanceStatus, ProjectState
from services.kinds import OBSERVER
from services.spec import ServiceSpec

log = logging.getLogger(__name__)
Doc = dict[str, Any]
P = ParamSpec("P")
T = TypeVar("T")
_RUNNABLE = [s.value for s in RUNNABLE]
_SPEC_FIELDS = ("name", "kind", "user", "project_id", "app_id")
_PROJECT_FIELDS = ("name", "user", "state", "state_reason", "sla_name", "request_id")
_TIMES = ("created_at", "updated_at")
_OLDEST_FIRST = [("created_at", ASCENDING), ("_id", ASCENDING)]
_UPSERT_ATTEMPTS = 5
# collection -> unique keys (the rules of manager.store.interface), then plain lookup keys
_UNIQUE = {
    "applications": ("user", "name"),  # one observatory (and one proj<hash>) per user
    "projects": ("user", "request_id"),
    "services": ("app_id", "name"),
    "answers": ("user", "request_id"),
}
_LOOKUP = {"projects": ("state",), "services": ("project_id", "user", "status")}


def _translated(fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Turn every PyMongo (and BSON) error of ``fn`` into ``StoreError``, at this boundary."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except (PyMongoError, BSONError) as exc:
            raise StoreError(f"manager database: {exc}") from exc

    return wrapper


_UndoSteps = list[Callable[[], Awaitable[object]]]


def _state_change(state: ProjectState, reason: str) -> tuple[Doc, Doc]:
    """The condition that the project may enter ``state``, and the fields that say it did."""
    sources = [s.value for s, targets in TRANSITIONS.items() if state in targets]
    changes = {"state": state.value, "state_reason": reason, "updated_at": time.time()}
    return {"state": {"$in": sources}}, changes


async def _undo(steps: _UndoSteps) -> None:
    """Take back the writes of a half-done operation, newest first; failures are logged."""
    for step in reversed(steps):
        try:
            await step()
        except PyMongoError as exc:
            log.warning("could not undo a partial project creation: %s", exc)


class MongoStore:
    """Manager state in one MongoDB database: applications, projects, services, answers."""

    def __init__(self, client: AsyncMongoClient[Doc], database: str) -> None:
        self._client = client
        db = client[database]
        self._apps: AsyncCollection[Doc] = db["applications"]
        self._projects: AsyncCollection[Doc] = db["projects"]
        self._services: AsyncCollection[Doc] = db["services"]
        self._answers: AsyncCollection[Doc] = db["answers"]

    @classmethod
    async def open(cls, url: str, database: str = "flops") -> MongoStore:
        """Connect to ``url`` and make sure the indexes that enforce uniqueness exist."""
        client: AsyncMongoClient[Doc] | None = None
        try:
            client = AsyncMongoClient(url)
            db = client[database]
            for name, keys in _UNIQUE.items():
                await db[name].create_index([(k, ASCENDING) for k in keys], unique=True)
            for name, fields in _LOOKUP.items():
                await db[name].create_indexes([IndexModel(f) for f in fields])
        except PyMongoError as exc:
            if client is not None:
                await client.close()
            raise StoreError(f"cannot open the manager database {database!r}: {exc}") from exc
        return cls(client, database)

    async def maintain(self, stop: asyncio.Event) -> None:
        """Nothing to do: the server keeps its own files."""

    async def close(self) -> None:
        """Close the client."""
        await self._client.close()

    # ------------------------------------------------------------------ writes

    @_translated
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
        """See ``Store.create_project``: app, observatory, observer, then the project last.

        Without multi-document transactions, the project document is the commit point. A
        project app or observer already there for this request id, but no project, was left
        by a replica that died (or is still working) between these steps: it is taken over,
        and whichever replica inserts the project first wins; the other undoes only its own
        reference on the observatory.
        """
        now = time.time()
        candidate, project_id = ids.new_object_id(), ids.new_object_id()
        name = ids.project_app_name(request_id)
        fields = {"name": name, "sla": json.dumps(sla), "sla_name": sla_name, "host": host}
        undo: _UndoSteps = []
        try:
            try:
                await self._apps.insert_one(_app(project_id, name, user, project_id, now))
                undo.append(functools.partial(self._apps.delete_one, {"_id": project_id}))
            except DuplicateKeyError:
                project_id = await self._claimed_app(user, name)
            observatory = await self._acquire_observatory(user, candidate, now)
            undo.append(functools.partial(self._release_observatory, observatory))
            observer = _observer(user, project_id, observatory, observer_config)
            try:
                await self._services.insert_one(_service_doc(observer, now, observer_status))
                undo.append(functools.partial(self._services.delete_one, {"_id": observer.id}))
            except DuplicateKeyError:
                found = await self._services.find_one(
                    {"app_id": observatory, "name": observer.name}
                )
                if found is None:
                    raise
                observer = _spec(found)
            try:
                await self._projects.insert_one(
                    _project(project_id, user, request_id, now, **fields)
                )
            except DuplicateKeyError:
                if await self._projects.find_one({"_id": project_id}, {"_id": 1}) is not None:
                    # A replica that took over this creation committed it first: the app
                    # and the observer are its project's now; give back only our reference.
                    undo = [functools.partial(self._release_observatory, observatory)]
                raise
        except BaseException:
            await _undo(undo)
            raise
        return NewProject(await self._created(project_id), observer)

    async def _claimed_app(self, user: str, name: str) -> str:
        """The id of the project app ``name`` that another attempt inserted."""
        found = await self._apps.find_one({"user": user, "name": name}, {"project_id": 1})
        if found is None or not found.get("project_id"):
            raise StoreError(f"application {name} of {user} exists but is not a project's")
        log.warning("taking over the unfinished creation of %s of %s", name, user)
        return str(found["project_id"])

    async def _created(self, project_id: str) -> ProjectView:
        view = await self.project(project_id)
        if view is None:
            raise StoreError(f"project {project_id} vanished after creation")
        return view

    async def _acquire_observatory(self, user: str, candidate: str, now: float) -> str:
        """Take a reference on the user's observatory, creating it as ``candidate`` if absent.

        ``update_one`` with upsert, not ``find_one_and_update``: nx-27017 ignores
        ``$setOnInsert`` in the latter. A concurrent upsert may win the unique index: retry.
        """
        new = {"_id": candidate, "project_id": None, "created_at": now}
        for _ in range(_UPSERT_ATTEMPTS):
            with suppress(DuplicateKeyError):
                await self._apps.update_one(
                    _observatory(user), {"$inc": {"refs": 1}, "$setOnInsert": new}, upsert=True
                )
                return await self._observatory_id(user)
        raise StoreError(f"could not get or create the observatory of {user}")

    async def _take_observatory(self, user: str) -> str | None:
        """Take a reference on the user's observatory if it exists."""
        taken = await self._apps.update_one(_observatory(user), {"$inc": {"refs": 1}})
        return await self._observatory_id(user) if taken.matched_count else None

    async def _observatory_id(self, user: str) -> str:
        """The id of the user's observatory, which a reference we hold keeps in place."""
        doc = await self._apps.find_one(_observatory(user), {"_id": 1})
        if doc is None:
            raise StoreError(f"the observatory of {user} vanished while referenced")
        return str(doc["_id"])

    async def _release_observatory(self, observatory: str) -> None:
        """Drop one reference; remove the observatory when nothing refers to it any more."""
        await self._apps.update_one({"_id": observatory}, {"$inc": {"refs": -1}})
        await self._apps.delete_one({"_id": observatory, "refs": {"$lte": 0}})

    @_translated
    async def add_services(self, project_id: str, services: list[NewService]) -> list[ServiceSpec]:
        """See ``Store.add_services``: one after the other (no transactions)."""
        project = await self._projects.find_one({"_id": project_id}, {"user": 1})
        if project is None:
            raise StoreError(f"no project {project_id}")
        user = str(project["user"])
        made = []
        for new in services:
            existing = await self._services.find_one({"project_id": project_id, "name": new.name})
            if existing is not None:
                made.append(_spec(existing))
                continue
            observatory = await self._take_observatory(user) if new.in_observatory else None
            app_id = observatory or project_id
            spec = ServiceSpec(
                ids.new_object_id(), new.name, new.kind, user, project_id, app_id, new.config
            )
            made.append(await self._insert_service(spec, observatory))
        return made

    @_translated
    async def enter_stage(
        self,
        project_id: str,
        services: list[NewService],
        state: tuple[ProjectState, str] | None = None,
    ) -> Entered:
        """See ``Store.enter_stage``: the services first, then the state's conditional update.

        Without transactions, a crash between them leaves the services added and the state
        not entered: the stage is entered again (adding the services is idempotent).
        """
        made = await self.add_services(project_id, services)
        if state is None:
            return Entered(made, False)
        allowed, changes = _state_change(*state)
        result = await self._projects.update_one({"_id": project_id, **allowed}, {"$set": changes})
        if result.matched_count == 1:
            return Entered(made, True)
        now = await self._projects.find_one({"_id": project_id}, {"state": 1})
        return Entered(made, now is not None and now["state"] == state[0].value)

    async def _insert_service(self, spec: ServiceSpec, observatory: str | None) -> ServiceSpec:
        """Insert ``spec``; on a race for its name return the winner, releasing our reference."""
        try:
            await self._services.insert_one(_service_doc(spec, time.time()))
        except BaseException as exc:
            if observatory is not None:
                await self._release_observatory(observatory)
            if isinstance(exc, DuplicateKeyError):
                found = await self._services.find_one(
                    {"project_id": spec.project_id, "name": spec.name}
                )
                if found is not None:
                    return _spec(found)
            raise
        return spec

    @_translated
    async def delete_project(self, project_id: str) -> None:
        """See ``Store.delete_project``; services one by one, each releasing its app."""
        project = await self._projects.find_one({"_id": project_id}, {"user": 1})
        by_project = {"project_id": project_id}
        while (service := await self._services.find_one_and_delete(by_project)) is not None:
            if service["app_id"] != project_id:
                await self._apps.update_one({"_id": service["app_id"]}, {"$inc": {"refs": -1}})
        await self._projects.delete_one({"_id": project_id})
        await self._apps.delete_one({"_id": project_id})
        if project is not None:
            unused = {**_observatory(project["user"]), "refs": {"$lte": 0}}
            await self._apps.delete_many(unused)

    @_translated
    async def set_instance_status(self, service_id: str, status: InstanceStatus) -> None:
        """See ``Store.set_instance_status``."""
        await self._services.update_one({"_id": service_id}, {"$set": {"status": status.value}})

    @_translated
    async def stage_deployed(
        self,
        project_id: str,
        stage: str,
        statuses: dict[str, InstanceStatus],
        state: tuple[ProjectState, str] | None = None,
    ) -> bool:
        """See ``Store.stage_deployed``: the statuses first, then the stage (and state).

        A crash between them leaves the stage not ready; it is then deployed again, which
        is safe (deploys are idempotent). The state changes in the stage's own update, on
        the same condition as ``set_state``; if it may not, the stage is recorded alone.
        """
        for service_id, status in statuses.items():
            await self._services.update_one({"_id": service_id}, {"$set": {"status": status.value}})
        ready = {"stage": stage, "stage_ready": True}
        if state is not None:
            allowed, changes = _state_change(*state)
            result = await self._projects.update_one(
                {"_id": project_id, **allowed}, {"$set": {**ready, **changes}}
            )
            if result.matched_count == 1:
                return True
        await self._projects.update_one({"_id": project_id}, {"$set": ready})
        return False

    @_translated
    async def end_stage(
        self, project_id: str, stage: str, following: str, output: dict[str, Any]
    ) -> bool:
        """See ``Store.end_stage``; one conditional update, so a repeated event ends it once."""
        changes = {"stage": following, "stage_ready": not following}
        changes[f"outputs.{stage}"] = json.dumps(output)
        result = await self._projects.update_one(
            {"_id": project_id, "stage": stage, "stage_ready": True}, {"$set": changes}
        )
        return result.matched_count == 1

    @_translated
    async def refresh_output(self, project_id: str, stage: str, output: dict[str, Any]) -> bool:
        """See ``Store.refresh_output``; only where the stage has ended (it has an output)."""
        result = await self._projects.update_one(
            {"_id": project_id, f"outputs.{stage}": {"$exists": True}},
            {"$set": {f"outputs.{stage}": json.dumps(output)}},
        )
        return result.matched_count == 1

    @_translated
    async def set_state(self, project_id: str, state: ProjectState, reason: str) -> bool:
        """See ``Store.set_state``; one conditional update, so concurrent changes cannot race."""
        allowed, changes = _state_change(state, reason)
        result = await self._projects.update_one({"_id": project_id, **allowed}, {"$set": changes})
        return result.matched_count == 1

    @_translated
    async def remember_answer(self, user: str, request_id: str, answer: dict[str, Any]) -> None:
        """See ``Store.remember_answer``; the first answer stays (unique index)."""
        doc = {"user": user, "request_id": request_id, "answer": json.dumps(answer)}
        with suppress(DuplicateKeyError):
            await self._answers.insert_one({**doc, "created_at": time.time()})

    # ------------------------------------------------------------------ reads

    @_translated
    async def answer_for(self, user: str, request_id: str) -> dict[str, Any] | None:
        """See ``Store.answer_for``."""
        doc = await self._answers.find_one({"user": user, "request_id": request_id})
        answer: dict[str, Any] | None = None if doc is None else json.loads(doc["answer"])
        return answer

    @_translated
    async def progress(self, project_id: str) -> Progress | None:
        """See ``Store.progress``."""
        doc = await self._projects.find_one({"_id": project_id})
        if doc is None:
            return None
        outputs = {name: json.loads(text) for name, text in (doc.get("outputs") or {}).items()}
        return Progress(
            project_id,
            str(doc["user"]),
            ProjectState(doc["state"]),
            str(doc.get("host") or ""),
            json.loads(doc["sla"]),
            str(doc["sla_name"]),
            str(doc.get("stage", "")),
            bool(doc.get("stage_ready", doc.get("step", 0) >= 2)),
            outputs,
        )

    @_translated
    async def owner_and_state(self, project_id: str) -> tuple[str, ProjectState] | None:
        """See ``Store.owner_and_state``."""
        doc = await self._projects.find_one({"_id": project_id}, {"user": 1, "state": 1})
        return (str(doc["user"]), ProjectState(doc["state"])) if doc else None

    @_translated
    async def project_by_request(self, user: str, request_id: str) -> ProjectView | None:
        """See ``Store.project_by_request``."""
        doc = await self._projects.find_one({"user": user, "request_id": request_id}, {"_id": 1})
        return None if doc is None else await self.project(str(doc["_id"]))

    @_translated
    async def project(self, project_id: str) -> ProjectView | None:
        """See ``Store.project``."""
        doc = await self._projects.find_one({"_id": project_id})
        if doc is None:
            return None
        services = await self._service_views({"project_id": project_id}, _OLDEST_FIRST)
        app_ids = sorted({s.app_id for s in services} | {project_id})
        return _project_view(doc, await self._apps_of(doc["user"], app_ids), services)

    @_translated
    async def projects(self, user: str) -> list[ProjectView]:
        """See ``Store.projects``."""
        docs = await self._projects.find({"user": user}).sort("_id", ASCENDING).to_list()
        return [_project_view(d, [], []) for d in docs]

    @_translated
    async def live_projects(self, user: str) -> int:
        """See ``Store.live_projects``."""
        final = [s.value for s in FINAL]
        return await self._projects.count_documents({"user": user, "state": {"$nin": final}})

    @_translated
    async def apps(self, user: str) -> list[AppView]:
        """See ``Store.apps``: ordered by id, with how many services each holds."""
        return await self._apps_of(user, None)

    async def _apps_of(self, user: str, only: list[str] | None) -> list[AppView]:
        """The user's applications (only the ids in ``only``, if given) with service counts."""
        query: Doc = {"user": user} if only is None else {"user": user, "_id": {"$in": only}}
        docs = await self._apps.find(query).sort("_id", ASCENDING).to_list()
        pipeline: list[Doc] = [
            {"$match": {"app_id": {"$in": [d["_id"] for d in docs]}}},
            {"$group": {"_id": "$app_id", "n": {"$sum": 1}}},
        ]
        counts = {c["_id"]: c["n"] async for c in await self._services.aggregate(pipeline)}
        return [
            AppView(id=d["_id"], name=d["name"], user=d["user"], services=counts.get(d["_id"], 0))
            for d in docs
        ]

    @_translated
    async def services(self, user: str) -> list[ServiceView]:
        """See ``Store.services``."""
        return await self._service_views({"user": user}, [("_id", ASCENDING)])

    async def _service_views(self, query: Doc, order: list[tuple[str, int]]) -> list[ServiceView]:
        """Services matching ``query`` in ``order``, with their app's name (like a SQL join)."""
        docs = await self._services.find(query).sort(order).to_list()
        app_ids = list({d["app_id"] for d in docs})
        apps = self._apps.find({"_id": {"$in": app_ids}}, {"name": 1})
        names = {a["_id"]: a["name"] async for a in apps}
        return [_service_view(d, names[d["app_id"]]) for d in docs if d["app_id"] in names]

    @_translated
    async def project_services(self, project_id: str) -> list[ServiceSpec]:
        """See ``Store.project_services``."""
        docs = await self._services.find({"project_id": project_id}).sort(_OLDEST_FIRST).to_list()
        return [_spec(d) for d in docs]

    @_translated
    async def services_to_run(
        self, host: str | None = None, *, project_id: str | None = None
    ) -> list[ServiceSpec]:
        """See ``Store.services_to_run``."""
        query: Doc = {"status": {"$in": _RUNNABLE}}
        if host is not None:
            mine = self._projects.find({"host": {"$in": [host, "", None]}}, {"_id": 1})
            ids = [str(d["_id"]) for d in await mine.to_list()]
            query["project_id"] = {"$in": [i for i in ids if project_id in (None, i)]}
        elif project_id is not None:
            query["project_id"] = project_id
        return [_spec(d) for d in await self._services.find(query).sort("_id", ASCENDING).to_list()]

    @_translated
    async def unfinished_projects(self, host: str = "") -> list[str]:
        """See ``Store.unfinished_projects``."""
        query = {
            "state": {"$nin": [s.value for s in FINAL]},
            "stage_ready": {"$ne": True},
            "host": {"$in": [host, "", None]},
        }
        docs = await self._projects.find(query, {"_id": 1}).sort("_id", ASCENDING).to_list()
        return [str(d["_id"]) for d in docs]


def _observatory(user: str) -> Doc:
    return {"user": user, "name": ids.OBSERVATORY}


def _app(app_id: str, name: str, user: str, project_id: str | None, now: float) -> Doc:
    return {"_id": app_id, "name": name, "user": user, "project_id": project_id, "created_at": now}


def _project(project_id: str, user: str, request_id: str, now: float, **fields: str) -> Doc:
    start: Doc = {"state": ProjectState.STARTING.value, "state_reason": "", "stage": ""}
    start |= {"stage_ready": False, "outputs": {}}
    times = {"created_at": now, "updated_at": now}
    return {"_id": project_id, "user": user, "request_id": request_id, **start, **times, **fields}


def _observer(user: str, project_id: str, app_id: str, config: dict[str, Any]) -> ServiceSpec:
    name = OBSERVER.name_for(project_id)
    return ServiceSpec(ids.new_object_id(), name, OBSERVER.name, user, project_id, app_id, config)


def _service_doc(
    spec: ServiceSpec, now: float, status: InstanceStatus = InstanceStatus.REQUESTED
) -> Doc:
    fields = {f: getattr(spec, f) for f in _SPEC_FIELDS}
    extra = {"status": status.value, "created_at": now}
    return {"_id": spec.id, **fields, "config": json.dumps(spec.config), **extra}


def _spec(doc: Mapping[str, Any]) -> ServiceSpec:
    fields = {f: doc[f] for f in _SPEC_FIELDS}
    return ServiceSpec(id=doc["_id"], config=json.loads(doc["config"]), **fields)


def _service_view(doc: Mapping[str, Any], app_name: str) -> ServiceView:
    fields = {f: doc[f] for f in ("name", "kind", "app_id", "project_id")}
    instance = {"index": 0, "status": doc["status"]}
    return ServiceView.model_validate(
        {"id": doc["_id"], "app_name": app_name, "instances": [instance], **fields}
    )


def _project_view(doc: Doc, apps: list[AppView], services: list[ServiceView]) -> ProjectView:
    fields = {f: doc[f] for f in (*_PROJECT_FIELDS, *_TIMES)}
    return ProjectView(
        id=doc["_id"],
        host=doc.get("host") or "",
        stage=doc.get("stage") or "",
        apps=apps,
        services=services,
        **fields,
    )
