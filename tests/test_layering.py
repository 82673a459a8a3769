"""No package imports a package above it (docs/architecture.md has the picture)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.timeout(30)

# Lowest first; a package may import itself and the packages before it.
# flops_utils and flops_env run inside the built environments, beside the user's code: they
# import nothing of ours (tests/flops_env checks they need only the standard library and numpy).
LAYERS = ["flops_utils", "flops_env", "core", "protocol", "slas", "nodedata", "mlrepos"]
LAYERS += ["images", "mqtt", "broker", "services", "runtimes", "manager", "stack", "cli"]


def imported(path: Path) -> set[str]:
    """The top-level packages ``path`` imports, at module level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", LAYERS)
def test_a_package_imports_only_itself_and_the_packages_below_it(package: str) -> None:
    above = set(LAYERS[LAYERS.index(package) + 1 :])
    wrong = {
        str(path.relative_to(ROOT)): sorted(imported(path) & above)
        for path in sorted((ROOT / package).rglob("*.py"))
        if imported(path) & above
    }
    assert wrong == {}


def test_every_package_of_the_distribution_has_a_layer() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert all(f'"{package}*"' in text for package in LAYERS)
