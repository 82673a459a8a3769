"""The ML repository contract's files, checked with the original's texts."""

from __future__ import annotations

from pathlib import Path

from mlrepos.errors import ContractError

MODEL_MANAGER = "model_manager.py"
CONDA_FILE = "conda.yaml"
REQUIREMENTS_FILE = "requirements.txt"  # accepted in place of conda.yaml


def check_contract(root: Path) -> Path:
    """The repository's dependency file; ``ContractError`` with the original's text(s).

    Both missing files are named in one message, each with the original's sentence.
    """
    missing = []
    if not (root / MODEL_MANAGER).is_file():
        missing.append(MODEL_MANAGER)
    deps = next((root / n for n in (CONDA_FILE, REQUIREMENTS_FILE) if (root / n).is_file()), None)
    if deps is None:
        missing.append(CONDA_FILE)
    if missing:
        raise ContractError(
            " ".join(f"{name} not found in the cloned repository." for name in missing)
        )
    assert deps is not None  # noqa: S101 - narrowed by the check above
    return deps
