"""Per-user locations of FLOps state, configuration and SLAs (XDG base directories)."""

from __future__ import annotations

import os
import stat
from pathlib import Path


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
