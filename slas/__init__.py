"""Project SLAs: the typed model, its validation, and the SLAs bundled with FLOps."""

from slas.model import ProjectSLA, TrainingConfiguration
from slas.resolve import bundled_dir, load_sla, parse_sla, resolve_sla

__all__ = [
    "ProjectSLA",
    "TrainingConfiguration",
    "bundled_dir",
    "load_sla",
    "parse_sla",
    "resolve_sla",
]
