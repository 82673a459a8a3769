"""The one exception root of FLOps and its documented tree.

    FlopsError                  anything FLOps raises on purpose
    ├── ConfigError             a setting is missing, malformed or unusable
    ├── SLAError                a project SLA is missing or invalid (names file and field)
    ├── BrokerError             the MQTT broker cannot be reached or refused us
    ├── RequestTimeoutError     nobody answered a request in time
    ├── RemoteError             the peer answered with a structured error
    ├── StoreError              the state store failed
    ├── DeployError             the runtime could not deploy or undeploy a service
    ├── protocol.codec.MessageError      an inbound payload is not a valid message
    ├── protocol.topics.TopicError       a topic string or level is not one of ours
    ├── manager.deps.RefusedError        the manager will not carry out a request
    └── services.builder.service.BuildFailedError   the builder could not do its job

The last four live beside the code that raises them; they are ``FlopsError`` all the same,
so one ``except FlopsError`` at a boundary catches everything FLOps raises on purpose.

Third-party errors (paho/aiomqtt, sqlite, subprocess) are translated into these at the
boundary where they occur; only ``cli`` turns them into exit codes and text.
"""

from __future__ import annotations


class FlopsError(Exception):
    """Root of every error FLOps raises on purpose."""


class ConfigError(FlopsError):
    """A setting is missing, malformed or unusable."""


class SLAError(FlopsError):
    """A project SLA is missing or invalid; the message names the file and the field."""

    def __init__(
        self, message: str, *, source: str = "", problems: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.source = source
        self.problems = problems or []


class BrokerError(FlopsError):
    """The MQTT broker cannot be reached, or it refused the connection."""


class RequestTimeoutError(FlopsError):
    """A request got no answer within its timeout."""


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
