"""Build one typed settings object from defaults, a TOML file, the environment and flags.

Precedence, lowest first: field defaults, the config file (``FLOPS_CONFIG`` or the per-user
``config.toml``), ``FLOPS_<FIELD>`` environment variables, explicit command-line flags.
A field that is itself a settings model (a group, e.g. the stack's ``training``) is a table
of the section in the file (``[stack.training]``) and ``FLOPS_<FIELD>_<NAME>`` variables;
its own model lists its names, nowhere else.
A relative path in the file is relative to the file's folder, so a generated config file
can name the CA file beside it. Nothing is read at import time; a bad value fails at start
with a message naming it.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar, get_args

from pydantic import BaseModel, ValidationError

from core import paths
from core.errors import ConfigError

ENV_PREFIX = "FLOPS_"
S = TypeVar("S", bound=BaseModel)


def config_path(environ: Mapping[str, str]) -> Path:
    """The config file in force: ``FLOPS_CONFIG`` if set, else the per-user default."""
    explicit = environ.get(ENV_PREFIX + "CONFIG", "")
    return Path(explicit) if explicit else paths.config_file()


def read_config_file(path: Path, *, required: bool) -> dict[str, Any]:
    """Read a TOML config file; a missing optional file is an empty config."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        if required:
            raise ConfigError(f"config file {path} (from FLOPS_CONFIG) does not exist") from None
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from exc


def _anchored(value: Any, annotation: Any, folder: Path) -> Any:  # noqa: ANN401 - any TOML value
    """A relative path from the config file, made relative to the file's folder."""
    if isinstance(value, str) and Path in (annotation, *get_args(annotation)):
        given = Path(value).expanduser()
        return given if given.is_absolute() else folder / given
    return value


def groups(model: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """The fields of ``model`` that are settings models themselves (groups of settings)."""
    found = {}
    for name, info in model.model_fields.items():
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            found[name] = kind
    return found


def load_settings(
    model: type[S],
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    section: str = "",
    *,
    top_level: bool = True,
) -> S:
    """Merge defaults < file < environment < flags into ``model`` and validate once.

    The file's top-level keys apply to every process that knows them (``top_level``); a key
    in the model's own ``[section]`` that the model does not know is a typo: an error.
    """
    env = os.environ if environ is None else environ
    path = config_path(env)
    file_data = read_config_file(path, required=bool(env.get(ENV_PREFIX + "CONFIG")))
    merged: dict[str, Any] = {}
    if top_level:
        merged = {k: v for k, v in file_data.items() if not isinstance(v, dict)}
    fields = model.model_fields
    if section and isinstance(file_data.get(section), dict):
        unknown = sorted(set(file_data[section]) - set(fields))
        if unknown:
            raise ConfigError(
                f"unknown setting {', '.join(unknown)} in [{section}] of {path}; "
                f"known: {', '.join(sorted(fields))}"
            )
        merged.update(file_data[section])
    merged = {
        k: _anchored(v, fields[k].annotation, path.parent) for k, v in merged.items() if k in fields
    }
    nested = groups(model)
    for name in fields:
        value = env.get(ENV_PREFIX + name.upper())
        if value is not None and value != "" and name not in nested:
            merged[name] = value
    for name, group in nested.items():
        prefix = f"{ENV_PREFIX}{name.upper()}_"
        given = {k: v for k in group.model_fields if (v := env.get(prefix + k.upper()))}
        if given:
            table = merged.get(name)
            merged[name] = {**(table if isinstance(table, dict) else {}), **given}
    merged.update({k: v for k, v in (flags or {}).items() if v is not None})
    try:
        return model.model_validate(merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(
            f"invalid setting ({problems}); set it in {path}, as {ENV_PREFIX}<NAME> or with a flag"
        ) from exc
