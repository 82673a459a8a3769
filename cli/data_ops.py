"""What ``mock_data``, ``data`` and ``images`` do, on the node's data dir (``data_dir``).

They work on the files of this node, without the stack, except ``images prune``: it asks
the manager which projects still need their images (a project that is gone, or FAILED,
STOPPED or COMPLETED, does not) and keeps every image it cannot confirm to be unused.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from cli.ops import DEFAULT_USER, Out, _ask, _connect
from cli.settings import CliSettings
from core.errors import BrokerError, ConfigError, FlopsError, RemoteError, RequestTimeoutError
from core.progress import Notice
from images.store import ImageStore
from images.uses import Use, forget_use, read_uses
from nodedata.errors import DataError
from nodedata.importer import import_file
from nodedata.mock import load_mock_sla, prepare_mock_data
from nodedata.store import TagManifest, list_tags
from protocol import topics
from protocol.messages import ProjectView, ShowProject, new_request_id

MNIST_NOTE = (
    "Note: dataset 'mnist' here is scikit-learn's bundled handwritten digits (1,797, 8x8) "
    "resampled to 28x28, not MNIST: no package in the reachable registries ships MNIST."
)


def _tag_row(m: TagManifest) -> dict[str, Any]:
    return {
        "tag": m.tag,
        "dataset": m.dataset,
        "partitions": len(m.partitions),
        "rows": m.rows,
        "partition_rows": [p.rows for p in m.partitions],
        "columns": {k: {"dtype": c.dtype, "shape": c.shape} for k, c in m.columns.items()},
        "source": m.source,
    }


async def mock_data(settings: CliSettings, name: str) -> int:
    """``flops mock_data``: prepare the mock SLA's dataset as partitions of its tag."""
    out = Out(settings)
    try:
        sla, path = load_mock_sla(name)
    except DataError as exc:
        raise ConfigError(str(exc)) from None  # bad input: refused before anything is written
    notes: list[dict[str, Any]] = []

    async def progress(notice: Notice) -> None:
        notes.append({"level": notice.level, "text": notice.text, **dict(notice.data)})
        out.line(notice.text)

    out.line(f"Preparing mock data of {path} in {settings.data_dir}")
    manifest = await prepare_mock_data(sla, settings.data_dir, progress)
    if sla.mock_data_configuration.dataset_name == "mnist":
        out.line(MNIST_NOTE)
    out.line(f"Success: tag '{manifest.tag}' is ready; use it in an SLA's data_tags.")
    out.doc({"success": True, "mock_sla": str(path), "progress": notes, "data": _tag_row(manifest)})
    return 0


def list_data(settings: CliSettings) -> int:
    """``flops data``: the tags on this node, their partitions and rows."""
    out = Out(settings)
    tags = list_tags(settings.data_dir)
    if not tags:
        out.line(f"No data in {settings.data_dir}; prepare some with `flops mock-data`.")
    for m in tags:
        sizes = ", ".join(str(p.rows) for p in m.partitions)
        out.line(
            f"{m.tag:<24} {m.dataset:<16} {len(m.partitions):>3} partition(s)"
            f"  {m.rows:>7} rows  ({sizes})"
        )
    out.doc({"data_dir": str(settings.data_dir), "tags": [_tag_row(m) for m in tags]})
    return 0


def import_data(settings: CliSettings, file: Path, tag: str, partitions: int) -> int:
    """``flops data import``: store a .npz or .csv file's rows under ``tag``."""
    out = Out(settings)
    try:
        manifest = import_file(settings.data_dir, file, tag, partitions)
    except DataError as exc:
        raise ConfigError(str(exc)) from None
    out.line(
        f"Imported {manifest.rows} rows of {file} as {len(manifest.partitions)} "
        f"partition(s) of tag '{tag}'."
    )
    out.doc({"success": True, "data": _tag_row(manifest)})
    return 0


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def _age(seconds: float) -> str:
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= length:
            return f"{seconds / length:.0f} {unit}"
    return f"{seconds:.0f} s"


def list_images(settings: CliSettings) -> int:
    """``flops images``: the images on this node and the projects that use them."""
    out = Out(settings)
    used_by: dict[str, list[str]] = defaultdict(list)
    for use in read_uses(settings.data_dir):
        for name in use.names:
            used_by[name].append(use.project)
    infos = ImageStore(settings.data_dir).list_images(used_by)
    if not infos:
        out.line(f"No images in {settings.data_dir / 'images'}.")
    for i in infos:
        out.line(
            f"{i.name}\n    {i.digest[:12]}  {_size(i.size_bytes)}  {_age(i.age_seconds)} old"
            f"  python {i.python}  projects: {', '.join(i.projects) or '-'}"
        )
    out.doc(
        {
            "images": [
                {
                    "name": i.name,
                    "digest": i.digest,
                    "size_bytes": i.size_bytes,
                    "created_at": i.created_at,
                    "age_seconds": round(i.age_seconds, 1),
                    "python": i.python,
                    "projects": list(i.projects),
                }
                for i in infos
            ]
        }
    )
    return 0


async def _still_used(settings: CliSettings, uses: list[Use]) -> tuple[list[Use], list[Use]]:
    """The records whose projects may still need their images, and those that do not."""
    live: list[Use] = []
    done: list[Use] = []
    by_user: dict[str, list[Use]] = defaultdict(list)
    for use in uses:
        by_user[use.user or DEFAULT_USER].append(use)
    for user, mine in by_user.items():
        if settings.password is not None and user != (settings.user or DEFAULT_USER):
            live.extend(mine)  # another user's projects: cannot be confirmed, kept
            continue
        async with _connect(settings, user) as sess:
            for use in mine:
                request = ShowProject(
                    request_id=new_request_id(), reply_to=sess.client_id, project_id=use.project
                )
                try:
                    view = await _ask(
                        sess, topics.Op.SHOW_PROJECT, request, ProjectView, settings.timeout
                    )
                except RemoteError as exc:
                    (done if exc.code == "not_found" else live).append(use)
                    continue
                (done if _finished(view) else live).append(use)
    return live, done


def _finished(view: ProjectView) -> bool:
    """A project in a final state that serves no model (a COMPLETED one may, from its image)."""
    return view.state.final and not view.inference_url


async def prune_images(settings: CliSettings) -> int:
    """``flops images prune``: remove the images no project needs."""
    out = Out(settings)
    uses = read_uses(settings.data_dir)
    try:
        live, done = await _still_used(settings, uses) if uses else ([], [])
    except (BrokerError, RequestTimeoutError) as exc:
        raise FlopsError(
            f"cannot ask the manager which projects use the images, so nothing was pruned: {exc}"
        ) from exc
    used = {name for use in live for name in use.names}
    for use in done:
        forget_use(settings.data_dir, use.project)
    removed = ImageStore(settings.data_dir).prune(used)
    for name in removed:
        out.line(f"Removed {name}")
    out.line(f"{len(removed)} image(s) removed; {len(used)} kept for {len(live)} project(s).")
    out.doc({"removed": removed, "kept": sorted(used), "projects": sorted(u.project for u in live)})
    return 0
