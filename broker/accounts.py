"""The training actors' broker accounts in the secure mode: one per project, while it trains.

The user name is the project's id, the password 256 random bits made when the project's
first actor is deployed. The broker's password file keeps only its hash; the password
itself is in ``<data>/broker/actors/<project id>`` (mode 0600, in a 0700 folder), where a
runtime reads it for the actors: in memory for the local runtime's tasks, as the file's
path (``FLOPS_TRAIN_PASSWORD_FILE``) for a process. ``broker.security.ACTOR_ACL`` confines
the account to its project's training topics. The account goes when the project's last
actor ends (training done, stopped, deleted, failed); ``purge`` at the stack's start
removes what a killed stack left, and actors deployed again get a new password.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from broker.security import PasswordFile
from core.errors import ConfigError
from core.ids import is_object_id
from mqtt.link import BrokerAddress, Credentials
from mqtt.tls import client_context
from mqtt.wiring import Wiring

log = logging.getLogger(__name__)
Reload = Callable[[], None]  # make the running broker re-read its password file


@dataclass(frozen=True)
class ActorAccount:
    """How a project's actors reach the broker: its password listener, TLS, their account."""

    address: BrokerAddress
    username: str  # the project id
    password_file: Path
    ca: Path

    def credentials(self) -> Credentials:
        """User name, password (read from its file) and TLS verified against the stack CA."""
        try:
            password = self.password_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the actors' password file: {exc}") from exc
        return Credentials(self.username, password, client_context(self.ca))

    def wiring(self) -> Wiring:
        """The wiring an actor's own MQTT client connects with (``ServiceContext.broker``)."""
        return Wiring(self.address, self.address, self.credentials(), self.ca)

    def environment(self) -> dict[str, str]:
        """What tells ``flops service run`` the account: its listener and password file."""
        return {
            "FLOPS_TRAIN_PORT": str(self.address.port),
            "FLOPS_TRAIN_PASSWORD_FILE": str(self.password_file),
        }


@dataclass
class ProjectAccounts:
    """Issues and removes the actors' accounts; see the module docstring."""

    passwords: PasswordFile
    folder: Path  # <data>/broker/actors
    address: BrokerAddress  # the broker's password listener
    ca: Path
    reload: Reload
    _holders: dict[str, set[str]] = field(default_factory=dict)  # project id -> service ids

    def grant(self, project_id: str, holder: str) -> ActorAccount:
        """The project's account for service ``holder``; made (and the broker told) if new."""
        if not is_object_id(project_id):
            raise ConfigError(f"{project_id!r} is not a project id")
        holders = self._holders.setdefault(project_id, set())
        path = self.folder / project_id
        if not holders or not path.exists():
            self._issue(project_id, path)
        holders.add(holder)
        return ActorAccount(self.address, project_id, path, self.ca)

    def release(self, project_id: str, holder: str) -> None:
        """``holder`` ended; the account goes with the project's last holder."""
        holders = self._holders.get(project_id)
        if holders is None:
            return
        holders.discard(holder)
        if holders:
            return
        del self._holders[project_id]
        self.passwords.remove(project_id)
        (self.folder / project_id).unlink(missing_ok=True)
        self._reload()
        log.info("removed the broker account of project %s's actors", project_id)

    def active(self) -> list[str]:
        """The projects whose actors hold an account now."""
        return sorted(self._holders)

    def _issue(self, project_id: str, path: Path) -> None:
        password = secrets.token_urlsafe(32)
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(password)
        tmp.replace(path)
        self.passwords.set_actor(project_id, password)
        self._reload()
        log.info("issued a broker account for project %s's actors", project_id)

    def _reload(self) -> None:
        with contextlib.suppress(ProcessLookupError):  # a broker restarting reads it anyway
            self.reload()


def purge(passwords: PasswordFile, folder: Path) -> list[str]:
    """Remove every actor account, before the broker starts; the projects removed.

    A stack killed while its projects trained left their accounts behind; the actors it
    deploys again get new ones.
    """
    gone = passwords.remove_where(is_object_id)
    shutil.rmtree(folder, ignore_errors=True)
    return gone


def signal_reload(pid: Callable[[], int | None]) -> Reload:
    """A ``Reload`` that sends SIGHUP to the broker process ``pid()`` names, if it runs."""

    def reload() -> None:
        current = pid()
        if current:
            os.kill(current, signal.SIGHUP)

    return reload
