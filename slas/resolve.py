"""Find an SLA by name or path and load it.

Every problem becomes an ``SLAError`` that names the file and the field.
"""

from __future__ import annotations

import difflib
import errno
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from core.errors import SLAError
from slas.model import ProjectSLA

MAX_SLA_BYTES = 64 * 1024


def bundled_dir() -> Path:
    """The folder of SLAs shipped with the package."""
    return Path(__file__).parent / "bundled"


def resolve_sla(name: str, user_dir: Path) -> Path:
    """Resolve an SLA name or path to a file.

    A bare name (with or without ``.json``) is looked up in ``user_dir``, then in the
    bundled SLAs; anything with a path separator, or an existing file, is a path. A name
    the file system refuses (too long, a file among its folders) is an ``SLAError`` too.
    """
    try:
        return _resolve(name, user_dir)
    except OSError as exc:
        shown = name if len(name) <= 80 else f"{name[:40]}…{name[-40:]}"
        reason = "a name in it is too long" if exc.errno == errno.ENAMETOOLONG else exc.strerror
        raise SLAError(f"SLA {shown!r} cannot be read: {reason}", source=name) from None


def _resolve(name: str, user_dir: Path) -> Path:
    candidate = Path(name).expanduser()
    if "/" in name or candidate.is_file():
        if candidate.is_file():
            return candidate.resolve()
        if candidate.is_dir():
            raise SLAError(f"{name} is a folder, not an SLA file", source=name)
        raise SLAError(f"SLA file {name} does not exist", source=name)
    filename = name if name.endswith(".json") else name + ".json"
    for folder in (user_dir, bundled_dir()):
        path = folder / filename
        if path.is_file():
            return path
    known = sorted(
        {p.name for d in (user_dir, bundled_dir()) if d.is_dir() for p in d.glob("*.json")}
    )
    raise SLAError(
        f"no SLA named {filename!r} in {user_dir} or the bundled SLAs; "
        f"known SLAs: {', '.join(known) or 'none'}",
        source=name,
    )


def load_sla(path: Path) -> ProjectSLA:
    """Read and validate an SLA file."""
    try:
        raw = path.read_bytes()[: MAX_SLA_BYTES + 1]
    except OSError as exc:
        raise SLAError(f"{path}: cannot read: {exc.strerror}", source=str(path)) from exc
    return parse_sla(raw, str(path))


def parse_sla(raw: bytes | str | dict[str, Any], source: str) -> ProjectSLA:
    """Validate SLA JSON text (or an already-decoded object) from ``source``."""
    if isinstance(raw, bytes | str) and len(raw) > MAX_SLA_BYTES:
        raise SLAError(f"{source}: larger than {MAX_SLA_BYTES} bytes", source=source)
    if isinstance(raw, bytes | str):
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SLAError(f"{source}: invalid JSON: {exc}", source=source) from exc
    else:
        data = raw
    if not isinstance(data, dict):
        raise SLAError(f"{source}: an SLA must be a JSON object", source=source)
    try:
        return ProjectSLA.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(err, data) for err in exc.errors()]
        raise SLAError(
            f"{source}: invalid SLA:\n  " + "\n  ".join(problems), source=source, problems=problems
        ) from exc
    except RecursionError as exc:
        raise SLAError(f"{source}: nested too deeply", source=source) from exc


def _describe(err: ErrorDetails, data: dict[str, Any]) -> str:
    """One readable line per validation error: ``field.path: what is wrong``."""
    loc = [str(p) for p in err["loc"]]
    field = ".".join(loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        parent: Any = data
        for part in loc[:-1]:
            parent = parent.get(part, {}) if isinstance(parent, dict) else {}
        model: Any = ProjectSLA
        for part in loc[:-1]:
            ann = model.model_fields.get(part)
            model = ann.annotation if ann is not None else None
        allowed = list(model.model_fields) if hasattr(model, "model_fields") else []
        hint = difflib.get_close_matches(loc[-1], allowed, n=1)
        suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
        return f"{field}: unknown field{suggestion}"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "missing":
        msg = "required field is missing"
    return f"{field}: {msg}"
