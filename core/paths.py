"""Per-user locations of FLOps state, configuration and SLAs (XDG base directories)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from core.errors import ConfigError


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var, "")
    return Path(value) if value else Path.home() / fallback


def data_dir() -> Path:
    """Where the embedded stack keeps its databases, broker state and logs."""
    return _xdg("XDG_DATA_HOME", ".local/share") / "flops"


def make_private(folder: Path) -> Path:
    """Create ``folder`` if need be, readable by this user only (0700), and return it.

    The stack's data dir holds every user's SLAs, logs and databases: a folder that others
    could enter is closed, so whatever is inside is private whatever its own mode.
    """
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if stat.S_IMODE(folder.stat().st_mode) & 0o077:
        folder.chmod(0o700)
    return folder


def config_file() -> Path:
    """The user's FLOps configuration file (TOML)."""
    return _xdg("XDG_CONFIG_HOME", ".config") / "flops" / "config.toml"


def user_sla_dir() -> Path:
    """The per-user SLA folder; the original oak-cli's location, so old SLAs keep working."""
    return Path.home() / "oak_cli" / "addons" / "flops" / "projects"


def shorten_home(path: Path) -> str:
    """Show ``path`` with the home directory written as ``~``, as the original CLI did."""
    home = str(Path.home())
    text = str(path)
    if home not in ("", "/") and (text == home or text.startswith(home + os.sep)):
        return "~" + text[len(home) :]
    return text


def check_dir(path: Path, what: str = "data dir", *, writable: bool = True) -> None:
    """Refuse, in one line that names it, a folder FLOps cannot use (or create).

    A file where the folder should be, a file among its parents, no permission, a
    read-only file system, a name over the system's limits: ``ConfigError``. Nothing is
    created here.
    """
    try:
        found = next(p for p in (path, *path.parents) if p.exists())
    except OSError as exc:
        raise ConfigError(f"{what} {_short(path)} is not usable: {_reason(exc)}") from None
    if not found.is_dir():
        where = "it" if found == path else str(found)
        raise ConfigError(f"{what} {_short(path)} is not usable: {where} is a file, not a folder")
    mode = os.R_OK | os.X_OK | (os.W_OK if writable else 0)
    if not os.access(found, mode):
        read_only = writable and os.access(found, os.R_OK | os.X_OK)
        reason = "it is read-only" if read_only else "permission denied"
        where = "" if found == path else f" ({found})"
        raise ConfigError(f"{what} {_short(path)} is not usable: {reason}{where}")


def _short(path: Path | str, limit: int = 80) -> str:
    """``path`` for one line of text: its start and end when it is long."""
    text = shorten_home(Path(path)) if isinstance(path, Path) else path
    return text if len(text) <= limit else f"{text[: limit // 2]}…{text[-limit // 2 :]}"


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENAMETOOLONG:
        return "a name in it is too long"
    return exc.strerror or str(exc)
