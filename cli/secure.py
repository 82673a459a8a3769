"""``flops secure init``: print what the deployment's secure files init did."""

from __future__ import annotations

import click

from stack.secure_init import Plan, init


def run_init(plan: Plan) -> int:
    """Write the files and say, per file, whether it was created, changed or kept."""
    fates = init(plan)
    for path, fate in fates.items():
        click.echo(f"{fate:8} {path}")
    created = sum(fate != "kept" for fate in fates.values())
    click.echo(f"{created} of {len(fates)} files created or changed.")
    return 0
