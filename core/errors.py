"""The one exception root of FLOps and its documented tree.

    FlopsError                  anything FLOps raises on purpose           code
    ├── ConfigError             a setting is missing, malformed or unusable  bad_config
    ├── SLAError                a project SLA is missing or invalid          invalid_sla
    ├── BrokerError             the MQTT broker cannot be reached or refused  no_broker
    ├── RequestTimeoutError     nobody answered a request in time            timeout
    ├── RemoteError             the peer answered with a structured error    the peer's
    ├── StoreError              the state store failed                       internal
    ├── DeployError             the runtime could not deploy or undeploy     deploy_failed
    ├── protocol.codec.MessageError      an inbound payload is not a valid message (its own)
    ├── protocol.topics.TopicError       a topic string or level is not one of ours
    ├── manager.deps.RefusedError        the manager will not carry out a request (its own)
    └── services.builder.service.BuildFailedError   the builder could not do its job

The last four live beside the code that raises them; they are ``FlopsError`` all the same,
so one ``except FlopsError`` at a boundary catches everything FLOps raises on purpose.

Each has a ``code`` from the same vocabulary as the protocol's error codes
(docs/protocol.md), which ``--output json`` shows. Third-party errors (paho/aiomqtt,
sqlite, subprocess) are translated into these at the boundary where they occur; only
``cli`` turns them into exit codes and text.
"""

from __future__ import annotations


class FlopsError(Exception):
    """Root of every error FLOps raises on purpose; ``code`` names its kind on the wire."""

    code = "internal"


class ConfigError(FlopsError):
    """A setting is missing, malformed or unusable."""

    code = "bad_config"


class SLAError(FlopsError):
    """A project SLA is missing or invalid; the message names the file and the field."""

    code = "invalid_sla"

    def __init__(
        self, message: str, *, source: str = "", problems: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.source = source
        self.problems = problems or []


class BrokerError(FlopsError):
    """The MQTT broker cannot be reached, or it refused the connection."""

    code = "no_broker"


class RequestTimeoutError(FlopsError):
    """A request got no answer within its timeout."""

    code = "timeout"


class RemoteError(FlopsError):
    """A peer answered a request with a structured error."""

    def __init__(self, code: str, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.details = details or []


class StoreError(FlopsError):
    """The state store failed."""


class DeployError(FlopsError):
    """The runtime could not deploy or undeploy a service."""

    code = "deploy_failed"
