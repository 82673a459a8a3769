"""Each learner's share of a project's data: disjoint, and together all of it.

With at least as many partitions as learners, partitions go round-robin (learner ``i`` gets
partitions ``i``, ``i + n``, ...). With fewer, learners share partitions round-robin and
split each shared partition into contiguous row ranges. The original gave every learner
all of its tags' data; here no row is seen by two learners of one project.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from flops_utils._contract import PartitionSlice
from nodedata.errors import DataError
from nodedata.store import TagManifest, read_manifest

__all__ = ["PartitionSlice", "assign", "assign_tags"]


def _parts(manifests: Sequence[TagManifest]) -> list[PartitionSlice]:
    return [
        PartitionSlice(m.tag, f"data/{m.tag}/{p.file}", 0, p.rows)
        for m in manifests
        for p in m.partitions
    ]


def assign(
    manifests: Sequence[TagManifest], learner_index: int, learner_count: int
) -> list[PartitionSlice]:
    """The slices of learner ``learner_index`` (0-based) among ``learner_count`` learners."""
    if not 0 <= learner_index < learner_count:
        raise DataError(f"learner {learner_index} is not one of {learner_count} learners")
    parts = _parts(manifests)
    if len(parts) >= learner_count:
        return [p for j, p in enumerate(parts) if j % learner_count == learner_index]
    if not parts:
        return []
    part = parts[learner_index % len(parts)]
    sharers = len(range(learner_index % len(parts), learner_count, len(parts)))
    k = learner_index // len(parts)
    start, stop = part.rows * k // sharers, part.rows * (k + 1) // sharers
    return [PartitionSlice(part.tag, part.file, start, stop)] if stop > start else []


def assign_tags(
    data_dir: Path, tags: Sequence[str], learner_index: int, learner_count: int
) -> list[PartitionSlice]:
    """``assign`` over the tags present on this node (absent tags contribute nothing)."""
    manifests = [m for m in (read_manifest(data_dir, t) for t in dict.fromkeys(tags)) if m]
    return assign(manifests, learner_index, learner_count)
