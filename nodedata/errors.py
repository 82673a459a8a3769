"""The errors of ``nodedata``: one root, a clear message naming the problem."""

from __future__ import annotations

from core.errors import FlopsError


class DataError(FlopsError):
    """Data cannot be prepared, imported or read; nothing was written."""
