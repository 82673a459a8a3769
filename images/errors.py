"""The errors of ``images``: one root; uv's own words are kept, readable, in the message."""

from __future__ import annotations

from core.errors import FlopsError


class ImageError(FlopsError):
    """An environment image cannot be built or read."""


class SpecError(ImageError):
    """The repository's conda.yaml or requirements.txt cannot be used; names file and entry."""


class ResolutionError(ImageError):
    """uv found no set of packages satisfying the requirements (the resolver's message)."""


class InstallError(ImageError):
    """uv could not create the environment or install the locked packages."""
