"""Mock data SLAs (the original's ``mock_data`` command) and preparing the data they name.

A mock SLA names a dataset, a number of partitions and the tag to store them under::

    {"customerID": "Admin", "mock_data_configuration":
        {"dataset_name": "mnist", "number_of_partitions": 3, "data_tag": "mnist"}}

``mnist_simple.json`` (1 partition) and ``mnist_multi.json`` (3) are bundled. A bad SLA is
refused, naming the file and the field, before anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.progress import Notice, Progress, no_progress
from nodedata import datasets
from nodedata.errors import DataError
from nodedata.store import MAX_PARTITIONS, TAG, TagManifest, write_tag

BUNDLED = Path(__file__).resolve().parent / "bundled"


class MockDataConfiguration(BaseModel):
    """Which dataset, in how many partitions, under which tag."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    dataset_name: Literal["mnist", "fashion_mnist"]
    number_of_partitions: int = Field(ge=1, le=MAX_PARTITIONS)
    data_tag: str = Field(pattern=TAG.pattern)


class MockSLA(BaseModel):
    """A mock data SLA as the original's ``mock_data`` command took it."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    customerID: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # noqa: N815
    mock_data_configuration: MockDataConfiguration


def bundled_names() -> list[str]:
    """The names of the bundled mock SLAs."""
    return sorted(p.name for p in BUNDLED.glob("*.json"))


def find_mock_sla(name: str) -> Path:
    """A path as given when it exists, else the bundled SLA of that name (``.json`` optional)."""
    given = Path(name).expanduser()
    if given.is_file():
        return given
    bundled = BUNDLED / (name if name.endswith(".json") else name + ".json")
    if "/" not in name and bundled.is_file():
        return bundled
    raise DataError(f"mock SLA {name!r} not found; bundled: {', '.join(bundled_names())}")


def load_mock_sla(name: str) -> tuple[MockSLA, Path]:
    """Read and validate a mock SLA; the error names the file and each bad field."""
    path = find_mock_sla(name)
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"mock SLA {path}: not readable JSON ({exc})") from None
    try:
        return MockSLA.model_validate(raw), path
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise DataError(f"mock SLA {path} is invalid: {problems}") from None


async def prepare_mock_data(
    sla: MockSLA, data_dir: Path, progress: Progress = no_progress
) -> TagManifest:
    """Prepare the SLA's dataset as partitions of its tag on this node.

    Loading and writing block for well under a second for mnist, about one for
    fashion_mnist (70,000 images).
    """
    config = sla.mock_data_configuration
    (images, labels), source = datasets.load(config.dataset_name)
    await progress(
        Notice(
            f"Preparing dataset '{config.dataset_name}': {source} ({len(labels)} rows)",
            data={"dataset": config.dataset_name, "source": source, "rows": len(labels)},
        )
    )
    manifest = write_tag(
        data_dir,
        config.data_tag,
        {"image": images, "label": labels},
        config.number_of_partitions,
        dataset=config.dataset_name,
        source=source,
    )
    sizes = ", ".join(str(p.rows) for p in manifest.partitions)
    await progress(
        Notice(
            f"Stored {len(manifest.partitions)} partition(s) of tag '{manifest.tag}' "
            f"({manifest.rows} rows: {sizes})",
            data={
                "tag": manifest.tag,
                "partitions": len(manifest.partitions),
                "rows": manifest.rows,
            },
        )
    )
    return manifest
