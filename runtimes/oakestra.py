"""The Oakestra runtime: FLOps services through Oakestra's system-manager REST API.

A configured account logs in; deploy creates what is missing (application, service with its
SLA, instance) and maps Oakestra's status word to ours. The service SLA's environment tells
the container which service it is and how to reach the broker, never a secret.
docs/oakestra.md lists the calls.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple, Self
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from core import ids
from core.errors import ConfigError, DeployError
from core.settings import load_settings
from mqtt.link import BrokerAddress
from protocol.states import InstanceStatus
from runtimes.oakestra_broker import broker_environment
from runtimes.oakestra_tokens import EXPIRY_LEEWAY, token_expiry, token_refused
from services.kinds import BUILDER, OBSERVER, Resources, ServiceKind, kind_of
from services.spec import SERVICE_COMMAND, ServiceSpec, placement, service_environment

SLA_VERSION = "v2.0"
NAME_MAX = 30  # sla/schema.py: names and namespaces match ^[a-zA-Z0-9]{1,30}$
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")
_PENDING = {"REQUESTED", "CLUSTER_SCHEDULED", "NODE_SCHEDULED"}
# Words oak-cli shows are ours too; the rest come from oakestra_utils' statuses.
_RUNNING = "ACTIVE MIGRATION_REQUESTED MIGRATION_ACCEPTED MIGRATION_IN_PROGRESS"
_RUNNING += " MIGRATION_DEBOUNCING"
_UNSCHEDULABLE = "NO_WORKER_CAPACITY NO_QUALIFIED_WORKER_FOUND NO_NODE_FOUND TargetClusterNotFound"
_UNSCHEDULABLE += " TargetClusterNotActive TargetClusterNoCapacity NoActiveClusterWithCapacity"
STATUS_WORDS: dict[str, InstanceStatus] = {
    **{status.value: status for status in InstanceStatus},
    **dict.fromkeys(_RUNNING.split(), InstanceStatus.RUNNING),
    **dict.fromkeys(_UNSCHEDULABLE.split(), InstanceStatus.FAILED),
    # The worker took the deploy; the container does not run yet (its image is pulled).
    "INSTANTIATION": InstanceStatus.CREATING,
    # LegacyStatus: what a cluster reports for an instance ("0") or a job ("1") that has
    # no status yet; they were numbers once, and may still come as 0 and 1.
    "0": InstanceStatus.REQUESTED,
    "1": InstanceStatus.REQUESTED,
}


class OakestraSettings(BaseModel):
    """Where Oakestra is, the account FLOps uses there, and what its services run."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(pattern=r"^https?://\S+$")  # the system manager, e.g. http://host:10000
    username: str = Field(min_length=1)
    password: SecretStr  # shown as '**********' in repr and errors
    organization: str = ""  # sent as organization_name at login when set
    request_timeout: float = Field(default=10.0, gt=0)
    observer_image: str = Field(min_length=1)
    builder_image: str = Field(min_length=1)
    observer_resources: Resources = OBSERVER.resources
    builder_resources: Resources = BUILDER.resources
    # Any kind of service (services.kinds) by its name; the four fields above fill them in.
    images: dict[str, str] = Field(default_factory=dict)
    resources: dict[str, Resources] = Field(default_factory=dict)
    name_max_length: int = Field(default=NAME_MAX, ge=10, le=NAME_MAX)
    # How the services' containers reach the broker, passed in their SLA's environment.
    # Defaults: the stack's own broker address and CA. Nothing secret goes there: the CA
    # certificate is public, the client certificate and key are paths *in the container*,
    # provided by the node (docs/oakestra.md, "What a service is told").
    broker_host: str = ""
    broker_port: int = Field(default=0, ge=0, le=65535)
    ca_file: Path | None = None  # on this host; its certificate text goes into the SLA
    cert_path: str = ""  # in the container: the client certificate, if the broker wants one
    key_path: str = ""  # in the container: its key (never its content)

    @model_validator(mode="after")
    def _by_kind(self) -> Self:
        """The observer's and builder's own fields as entries of ``images`` and ``resources``."""
        self.images = {OBSERVER.name: self.observer_image, BUILDER.name: self.builder_image} | (
            self.images
        )
        self.resources = {
            OBSERVER.name: self.observer_resources,
            BUILDER.name: self.builder_resources,
        } | self.resources
        return self


def load_oakestra_settings(
    flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> OakestraSettings:
    """Settings from the ``[oakestra]`` file section and ``FLOPS_OAKESTRA_<NAME>`` variables."""
    env = os.environ if environ is None else environ
    prefix = "FLOPS_OAKESTRA_"
    mapped = {"FLOPS_" + k.removeprefix(prefix): v for k, v in env.items() if k.startswith(prefix)}
    if "FLOPS_CONFIG" in env:
        mapped["FLOPS_CONFIG"] = env["FLOPS_CONFIG"]
    # Only the section: a top-level `password` is the CLI user's, not the Oakestra account's.
    return load_settings(OakestraSettings, flags, mapped, section="oakestra", top_level=False)


def oakestra_name(text: str, max_length: int = NAME_MAX) -> str:
    """``text`` if Oakestra accepts it as a name, else a stable accepted name.

    Accepted: 1 to ``max_length`` ASCII letters and digits. Other text keeps its letters and
    digits, cut short, plus 8 hex characters of its MD5, so different texts stay apart.
    """
    if 0 < len(text) <= max_length and not _NOT_ALNUM.search(text):
        return text
    digest = hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()[:8]
    return _NOT_ALNUM.sub("", text)[: max_length - 8] + digest


class OakNames(NamedTuple):
    """The Oakestra names of one service and its application."""

    app: str
    app_ns: str
    service: str
    service_ns: str


def oakestra_names(spec: ServiceSpec, max_length: int = NAME_MAX) -> OakNames:
    """Observers go to the user's ``observatory``, other services to ``proj<12 hex>``.

    One account holds every user's apps, so the observatory's namespace is ``u<user hash>``.
    """
    kind = _kind(spec)
    if kind.in_observatory:
        app, app_ns, service_ns = ids.OBSERVATORY, "u" + ids.short_hash(spec.user), kind.prefix
    else:
        app, app_ns, service_ns = "proj" + ids.short_hash(spec.project_id), "proj", kind.prefix
    parts = (app, app_ns, spec.name, service_ns)
    return OakNames(*(oakestra_name(part, max_length) for part in parts))


def _kind(spec: ServiceSpec) -> ServiceKind[Any]:
    try:
        return kind_of(spec.kind)
    except ConfigError as exc:
        raise DeployError(f"{spec.name}: {exc}") from exc


def map_status(word: object) -> InstanceStatus:
    """Our status for an Oakestra status word; no word yet means REQUESTED."""
    if word is None or word == "":
        return InstanceStatus.REQUESTED
    key = str(word) if isinstance(word, int) else word
    if not isinstance(key, str) or key not in STATUS_WORDS:
        raise DeployError(f"Oakestra reported an unknown status {word!r}")
    return STATUS_WORDS[key]


def instance_status(service: Mapping[str, Any]) -> InstanceStatus:
    """Status of a service's first instance; before it has one, the service's status."""
    instances = service.get("instance_list") or []
    first = instances[0] if instances and isinstance(instances[0], dict) else {}
    word = first.get("status")
    return map_status(service.get("status") if word is None or word == "" else word)


def _sla(customer: str, names: OakNames, app_id: str, services: list[Any]) -> dict[str, Any]:
    app: dict[str, Any] = {"applicationID": app_id, "application_name": names.app}
    app |= {"application_namespace": names.app_ns, "application_desc": "FLOps " + names.app}
    app["microservices"] = services
    return {"sla_version": SLA_VERSION, "customerID": customer, "applications": [app]}


def service_sla(
    spec: ServiceSpec,
    names: OakNames,
    app_id: str,
    settings: OakestraSettings,
    broker_env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The SLA that appends ``spec`` to the application ``app_id``.

    Its environment names the service and, with ``broker_env``, how to reach the broker.
    """
    kind = _kind(spec)
    image = settings.images.get(kind.name) or kind.image
    if not image:
        raise DeployError(f"the Oakestra runtime has no image for services of kind {spec.kind!r}")
    res = settings.resources.get(kind.name, kind.resources)
    env = service_environment(spec) | dict(broker_env or {})
    service: dict[str, Any] = {"microserviceID": "", "microservice_name": names.service}
    service |= {"microservice_namespace": names.service_ns, "virtualization": "container"}
    service |= {"one_shot": kind.one_shot, "cmd": list(SERVICE_COMMAND)}
    service |= {"code": image}
    service |= {"environment": [f"{k}={v}" for k, v in env.items()]}
    service |= res.model_dump()
    cluster = placement(spec)
    if cluster is not None:
        # The root scheduler maps a `direct` constraint to the cluster of that name.
        service["constraints"] = [{"type": "direct", "cluster": cluster}]
    return _sla(spec.user, names, app_id, [service])


def _decode(call: str, response: httpx.Response) -> object:
    """The JSON of a successful answer; flask-smorest sends some lists JSON-encoded twice."""
    if not response.is_success:
        raise DeployError(f"Oakestra {call} failed: HTTP {response.status_code}{_detail(response)}")
    try:
        data = json.loads(response.text)
        return json.loads(data) if isinstance(data, str) else data
    except ValueError:
        raise DeployError(f"Oakestra {call}: HTTP {response.status_code}, malformed JSON") from None


def _detail(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return ""
    text = str(data.get("message") or data.get("msg") or "") if isinstance(data, dict) else ""
    return f" ({text[:200]})" if text else ""


def _as_object(call: str, data: object) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise DeployError(f"Oakestra {call}: expected an object, got {type(data).__name__}")
    return data


def _as_records(call: str, data: object) -> list[dict[str, Any]]:
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise DeployError(f"Oakestra {call}: expected a list of objects")
    return data


def _oid(call: str, doc: Mapping[str, Any], key: str) -> str:
    value = doc.get(key)
    value = value.get("$oid") if isinstance(value, dict) else value
    if not isinstance(value, str) or not value:
        raise DeployError(f"Oakestra {call}: the answer has no {key!r}")
    return value


def _named(docs: list[dict[str, Any]], key: str, name: str, ns: str) -> dict[str, Any] | None:
    found = [d for d in docs if (d.get(f"{key}_name"), d.get(f"{key}_namespace")) == (name, ns)]
    return found[0] if found else None


def _instance_numbers(service: Mapping[str, Any]) -> list[int]:
    instances = service.get("instance_list") or []
    return [i.get("instance_number", 0) for i in instances if isinstance(i, dict)]


class OakestraRuntime:
    """Implements ``runtimes.base.Runtime`` on an Oakestra cluster."""

    def __init__(
        self,
        settings: OakestraSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        broker: BrokerAddress | None = None,
        ca_file: Path | None = None,
    ) -> None:
        """``broker`` and ``ca_file``: the stack's, the defaults of what services are told."""
        self._settings = settings
        self._broker_env = broker_environment(settings, broker, ca_file)
        self._client = httpx.AsyncClient(
            base_url=settings.url, timeout=settings.request_timeout, transport=transport
        )
        self._token = ""
        self._user_id = ""

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.aclose()

    async def deploy(self, spec: ServiceSpec) -> InstanceStatus:
        """Create what is missing (application, service, instance); return the status."""
        names = oakestra_names(spec, self._settings.name_max_length)
        app_id = await self._ensure_app(names, spec.user)
        service = await self._ensure_service(spec, names, app_id)
        service_id = _oid("list services", service, "microserviceID")
        if not service.get("instance_list") and service.get("status") not in _PENDING:
            await self._call("deploy instance", "POST", f"/api/service/{service_id}/instance")
        answer = await self._call("read service", "GET", f"/api/service/{service_id}")
        return instance_status(_as_object("read service", answer))

    async def active_clusters(self) -> list[str]:
        """``cluster_name`` of each active cluster (``runtimes.base.Clusters``).

        ``DeployError`` naming Oakestra's answer when it lists none, or no usable name.
        """
        call = "list active clusters"
        records = _as_records(call, await self._call(call, "GET", "/api/clusters/active"))
        names = [r.get("cluster_name") for r in records]
        if not records or not all(isinstance(n, str) and n for n in names):
            shown = json.dumps(names if records else [])[:200]
            raise DeployError(
                f"Oakestra has no usable active cluster: GET /api/clusters/active answered "
                f"{len(records)} cluster(s), names {shown}"
            )
        return list(dict.fromkeys(str(n) for n in names))

    async def undeploy(self, spec: ServiceSpec, *, purge: bool = False) -> None:
        """Stop the instances; ``purge`` deletes the service and an emptied project app."""
        names = oakestra_names(spec, self._settings.name_max_length)
        app_id, service = await self._find(names)
        if service is None:
            return
        path = f"/api/service/{_oid('list services', service, 'microserviceID')}"
        if not purge:
            for number in _instance_numbers(service):
                await self._call("undeploy instance", "DELETE", f"{path}/instance/{number}")
            return
        await self._call("delete service", "DELETE", path)
        if names.app_ns == "proj" and not await self._services(app_id):
            await self._call("delete application", "DELETE", f"/api/application/{app_id}")

    async def status(self, spec: ServiceSpec) -> InstanceStatus:
        """The current status of the service's instance; UNDEPLOYED if Oakestra has no service."""
        _, service = await self._find(oakestra_names(spec, self._settings.name_max_length))
        return InstanceStatus.UNDEPLOYED if service is None else instance_status(service)

    async def _find(self, names: OakNames) -> tuple[str, dict[str, Any] | None]:
        app = _named(await self._apps(), "application", names.app, names.app_ns)
        if app is None:
            return "", None
        app_id = _oid("list applications", app, "applicationID")
        services = await self._services(app_id)
        return app_id, _named(services, "microservice", names.service, names.service_ns)

    async def _ensure_app(self, names: OakNames, user: str) -> str:
        app = _named(await self._apps(), "application", names.app, names.app_ns)
        if app is None:
            body = _sla(user, names, "", [])
            answer = await self._call("create application", "POST", "/api/application/", body)
            apps = _as_records("create application", answer)
            app = _named(apps, "application", names.app, names.app_ns)
        if app is None:
            raise DeployError(f"Oakestra create application: {names.app!r} is not in the answer")
        return _oid("create application", app, "applicationID")

    async def _ensure_service(
        self, spec: ServiceSpec, names: OakNames, app_id: str
    ) -> dict[str, Any]:
        services = await self._services(app_id)
        found = _named(services, "microservice", names.service, names.service_ns)
        if found is not None:
            return found
        body = service_sla(spec, names, app_id, self._settings, self._broker_env)
        answer = await self._call("append service", "POST", "/api/service/", body)
        created = _as_object("append service", answer)
        if created.get("failed_services"):
            raise DeployError(f"Oakestra append service failed: {created['failed_services']}")
        return {"microserviceID": _oid("append service", created, "job_id"), "instance_list": []}

    async def _apps(self) -> list[dict[str, Any]]:
        if not self._user_id:
            path = f"/api/user/{quote(self._settings.username, safe='')}"
            user = _as_object("read user", await self._call("read user", "GET", path))
            self._user_id = _oid("read user", user, "_id")
        path = f"/api/applications/{self._user_id}"
        try:
            answer = await self._call("list applications", "GET", path)
        except DeployError:
            self._user_id = ""  # a 401 here: not the token's user id; read it again next time
            raise
        return _as_records("list applications", answer)

    async def _services(self, app_id: str) -> list[dict[str, Any]]:
        path = f"/api/services/{app_id}"
        return _as_records("list services", await self._call("list services", "GET", path))

    async def _login(self) -> None:
        body = {"username": self._settings.username}
        body["password"] = self._settings.password.get_secret_value()
        if self._settings.organization:
            body["organization_name"] = self._settings.organization
        answer = _decode("login", await self._send("login", "POST", "/api/auth/login", body))
        token = answer.get("token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise DeployError("Oakestra login: the answer has no token")
        self._token = token

    async def _call(
        self, call: str, method: str, path: str, body: dict[str, Any] | None = None
    ) -> object:
        """One authenticated call; only an expired token logs in again (and retries once).

        A token whose ``exp`` has passed is renewed before the call; a 401 that says the
        token is the problem, after it. Any other 401 is an error at once.
        """
        expiry = token_expiry(self._token)
        if not self._token or (expiry is not None and expiry < time.time() + EXPIRY_LEEWAY):
            await self._login()
        response = await self._send(call, method, path, body, auth=True)
        if response.status_code == 401 and token_refused(response):
            await self._login()
            response = await self._send(call, method, path, body, auth=True)
        return _decode(call, response)

    async def _send(
        self, call: str, method: str, path: str, body: dict[str, Any] | None, *, auth: bool = False
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self._token}"} if auth else {}
        try:
            return await self._client.request(method, path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeployError(
                f"Oakestra {call} failed: {type(exc).__name__} ({method} {path})"
            ) from exc
