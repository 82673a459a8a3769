"""The name people call FLOps by, so that every hint names a command that works.

Installed with pip it is ``flops``; from a checkout, the wrappers ``bin/flops`` and
``bin/oak`` say how they were called in ``FLOPS_PROG`` (``flops`` when ``bin`` is on
PATH, else the path that was typed, e.g. ``bin/flops``).
"""

from __future__ import annotations

import os

PROG_ENV = "FLOPS_PROG"
OAK_SUFFIX = " addon flops"


def prog() -> str:
    """How to call the ``flops`` commands: ``flops``, ``bin/flops``, ``bin/oak addon flops``."""
    name = os.environ.get(PROG_ENV, "").strip()
    return name if 0 < len(name) <= 200 and name.isprintable() else "flops"


def oak_prog() -> str:
    """How to call ``oak``: the wrapper's path when ``bin/oak`` was called, else ``oak``."""
    name = prog()
    return name.removesuffix(OAK_SUFFIX) if name.endswith(OAK_SUFFIX) else "oak"
