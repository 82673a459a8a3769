"""What a repository's environment needs: its ``conda.yaml`` or ``requirements.txt``, parsed.

conda.yaml is MLflow's environment file: conda package specs (``scikit-learn=1.4.2``) and a
``pip:`` list of PEP 508 lines. Conda specs become pip requirements (``=1.4.2`` pins that
version, ``=1.4`` its series); conda-only packages (the interpreter, compilers' runtimes,
CUDA) are left out and names that differ on PyPI are mapped, each said in ``notes``. The
``python`` pin is kept to be compared with the node's Python: a mismatch is a warning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from images.errors import SpecError
from images.names import ActorKind

CONDA_TO_PYPI = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "py-opencv": "opencv-python",
    "opencv": "opencv-python",
    "matplotlib-base": "matplotlib",
    "tensorflow-base": "tensorflow",
    "pytables": "tables",
    "msgpack-python": "msgpack",
    "python-graphviz": "graphviz",
    "pyqt": "PyQt5",
}
CONDA_ONLY = frozenset(
    [
        "python",
        "pip",
        "cudatoolkit",
        "cuda-toolkit",
        "cudnn",
        "pytorch-cuda",
        "cpuonly",
        "mkl",
        "mkl-service",
        "blas",
        "intel-openmp",
        "llvm-openmp",
        "libgcc-ng",
        "libstdcxx-ng",
        "_libgcc_mutex",
        "_openmp_mutex",
        "ca-certificates",
        "openssl",
        "libffi",
        "ncurses",
        "readline",
        "sqlite",
        "tk",
        "xz",
        "zlib",
        "bzip2",
        "tzdata",
        "ld_impl_linux-64",
        "libzlib",
        "libblas",
        "libcblas",
        "liblapack",
        "openblas",
        "libopenblas",
        "libuuid",
        "libnsl",
        "libsqlite",
        "libxcrypt",
    ]
)
MLFLOW = frozenset({"mlflow", "mlflow-skinny"})
OURS = frozenset({"flops-utils"})  # FLOps puts its own flops_utils into every image
SKLEARN = frozenset({"scikit-learn", "sklearn"})  # its aggregator saves the model with skops
_NAME = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")
_CONDA = re.compile(r"^(?:[\w.-]+::)?([A-Za-z0-9_][A-Za-z0-9._-]*)\s*(.*)$")


def canonical(name: str) -> str:
    """A package name as PyPI compares names (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class EnvSpec:
    """The pip requirements of a repository, its Python pin and what was changed on the way."""

    source: str
    requirements: tuple[str, ...]
    python_pin: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def _pip_line(line: str, source: str) -> str:
    text = line.split(" #", 1)[0].strip()
    if text.startswith("-") or not _NAME.match(text):
        raise SpecError(
            f"{source}: {line.strip()!r} is not a package requirement (options, "
            "paths and URLs are not supported)"
        )
    return text


def _conda_version(rest: str) -> str:
    """A conda version spec as a pip one: ``=1.2.3`` -> ``==1.2.3``, ``=1.2`` -> ``==1.2.*``."""
    rest = rest.strip()
    if rest.startswith("=") and not rest.startswith("=="):
        rest = rest[1:]
    if not rest or not rest[0].isdigit():
        return rest  # ">=1.2,<2", "==1.2", "<=24.0" or nothing: already pip's syntax
    version = rest.split("=", 1)[0].strip()  # drop a build string: 1.26.4=py310h...
    if "*" in version or version.count(".") >= 2:
        return f"=={version}"
    return f"=={version}.*"


def parse_conda(text: str, source: str = "conda.yaml") -> EnvSpec:
    """The requirements of an MLflow-style conda environment file."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{source} is not valid YAML: {exc}") from None
    deps = doc.get("dependencies") if isinstance(doc, dict) else None
    if not isinstance(deps, list):
        raise SpecError(f"{source} needs a 'dependencies' list")
    requirements: list[str] = []
    notes: list[str] = []
    pin = None
    for dep in deps:
        if isinstance(dep, dict) and set(dep) == {"pip"} and isinstance(dep["pip"], list):
            requirements += [_pip_line(str(line), source) for line in dep["pip"]]
            continue
        match = _CONDA.match(str(dep).strip()) if isinstance(dep, str) else None
        if match is None:
            raise SpecError(f"{source}: dependency {dep!r} is neither a conda spec nor a pip list")
        name, version = match.group(1).lower(), _conda_version(match.group(2))
        if name == "python":
            pin = version.lstrip("=").removesuffix(".*") or None
        elif name in CONDA_ONLY:
            notes.append(f"conda-only package '{name}' left out")
        else:
            mapped = CONDA_TO_PYPI.get(name, name)
            if mapped != name:
                notes.append(f"conda package '{name}' installed as '{mapped}'")
            requirements.append(mapped + version)
    return EnvSpec(source, tuple(requirements), pin, tuple(notes))


def parse_requirements(text: str, source: str = "requirements.txt") -> EnvSpec:
    """The requirements of a pip requirements file (package lines only)."""
    lines = (
        line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    )
    return EnvSpec(source, tuple(_pip_line(line, source) for line in lines))


def read_spec(path: Path) -> EnvSpec:
    """Parse the repository's dependency file by its name."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path.name} cannot be read: {exc}") from None
    if path.suffix in (".yaml", ".yml"):
        return parse_conda(text, path.name)
    return parse_requirements(text, path.name)


def requirement_name(line: str) -> str:
    """The canonical package name of a requirement line."""
    match = _NAME.match(line)
    return canonical(match.group(1)) if match else ""


def _specifier(line: str) -> str:
    """The version specifier of a requirement line, without its name, extras and marker."""
    match = _NAME.match(line)
    rest = line[match.end() :] if match else ""
    return re.sub(r"^\s*\[[^\]]*\]", "", rest.split(";", 1)[0]).strip()


def _tracking_packages(
    chosen: list[str], mlflow: list[str], names: set[str]
) -> tuple[list[str], str]:
    """MLflow's client and SQL store for tracking: ``mlflow-skinny`` at the user's version.

    A pinned ``mlflow`` becomes ``mlflow-skinny`` with the same specifier (the client
    without the server and UI: ~90 MB instead of ~850); ``sqlalchemy`` and ``alembic`` are
    what ``sqlite:///`` stores need. MLflow before 3 predates SQLAlchemy 2.1 (it imports a
    pool class 2.1 removed) and imports ``pkg_resources`` (gone in setuptools 81).
    """
    specifier = _specifier(mlflow[0]) if mlflow else ""
    old = bool(re.match(r"^(==|~=|<=?)\s*[12]\.", specifier))
    added = [f"mlflow-skinny{specifier}", "sqlalchemy<2.1" if old else "sqlalchemy", "alembic"]
    added = [a for a in added if requirement_name(a) not in names - MLFLOW]
    if old and "setuptools" not in names:
        added.append("setuptools<81")
    return chosen + added, f"MLflow tracking: {', '.join(added)} added"


def actor_requirements(
    spec: EnvSpec, kind: ActorKind, *, tracking: bool = False
) -> tuple[list[str], list[str]]:
    """The packages of the learner's or aggregator's environment, and notes on changes.

    mlflow is left out of every environment, but the aggregator's with ``tracking``
    (``_tracking_packages``); the original's ``flops-utils`` package is left out (ours is
    in every image and must not be shadowed); numpy is added when missing (our worker
    needs it); skops is added to a scikit-learn aggregator (it saves the model).
    """
    names = {requirement_name(r) for r in spec.requirements}
    notes: list[str] = []
    chosen = [r for r in spec.requirements if requirement_name(r) not in MLFLOW]
    if len(chosen) < len(spec.requirements) and not (tracking and kind == "aggregator"):
        notes.append(f"mlflow left out of the {kind}'s packages")
    if names & OURS:
        chosen = [r for r in chosen if requirement_name(r) not in OURS]
        notes.append("flops-utils left out: FLOps provides its own compatible flops_utils")
    if "numpy" not in names:
        chosen.append("numpy")
        notes.append("numpy added (the FLOps worker needs it)")
    if kind == "aggregator" and names & SKLEARN and "skops" not in names:
        chosen.append("skops>=0.10")
        notes.append("skops added (the trained model is saved with skops, never pickle)")
    if kind == "aggregator" and tracking:
        mlflow = [r for r in spec.requirements if requirement_name(r) in MLFLOW]
        chosen, note = _tracking_packages(chosen, mlflow, names)
        notes.append(note)
    return chosen, notes


def python_warning(spec: EnvSpec, host_version: str) -> str | None:
    """A warning when the repository pins a Python other than the node's."""
    pin = spec.python_pin
    if not pin or host_version == pin or host_version.startswith(pin + "."):
        return None
    return (
        f"{spec.source} pins python={pin}, but this node builds environments with Python "
        f"{host_version}; the repository's code will run on {host_version}"
    )
