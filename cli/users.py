"""``flops user``: manage the secure mode's users (password hashes only; never printed)."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import click

from broker.security import PasswordFile, check_user_name
from cli.prog import prog
from core.errors import ConfigError
from core.ids import is_object_id
from stack.discovery import read_card
from stack.secure import passwd_path


def read_password(from_stdin: bool) -> str:
    """The new password: one line of standard input, or asked twice without echo."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        raise ConfigError("no terminal to ask for the password; pass it with --password-stdin")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


def _reload(data_dir: Path) -> str:
    """Make a running embedded mosquitto re-read its password file (SIGHUP)."""
    card = read_card(data_dir)
    if card is None or not card.broker_pid:
        return (
            "A broker reads it when it starts, or at once on SIGHUP "
            "(compose: docker compose kill -s HUP mosquitto)."
        )
    os.kill(card.broker_pid, signal.SIGHUP)
    return "The running broker has re-read its users."


def set_password(data_dir: Path, name: str, password: str, *, new: bool) -> int:
    """Add a user (``new``) or change an existing user's password."""
    users = PasswordFile(passwd_path(data_dir))
    exists = check_user_name(name) in users.users()
    if new and exists:
        raise ConfigError(
            f"user {name!r} exists; change the password with `{prog()} user passwd {name}`"
        )
    if not new and not exists:
        raise ConfigError(f"no user {name!r}; add it with `{prog()} user add {name}`")
    users.set(name, password)
    click.echo(f"{'Added' if new else 'Changed the password of'} user {name}. {_reload(data_dir)}")
    return 0


def list_users(data_dir: Path, json_out: bool) -> int:
    """The user names (never their hashes)."""
    accounts = PasswordFile(passwd_path(data_dir)).users()
    names = sorted(name for name in accounts if not is_object_id(name))  # not actors' accounts
    click.echo(json.dumps({"users": names}) if json_out else "\n".join(names) or "No users.")
    return 0


def remove_user(data_dir: Path, name: str) -> int:
    """Remove a user; their open connections end when they reconnect."""
    if is_object_id(name):  # a training project's actors: the stack removes it itself
        raise ConfigError(f"no user {name!r}: a project id names its training actors' account")
    if not PasswordFile(passwd_path(data_dir)).remove(name):
        raise ConfigError(f"no user {name!r}")
    click.echo(f"Removed user {name}. {_reload(data_dir)}")
    return 0
