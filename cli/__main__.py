"""``python -m cli`` is ``flops``."""

from cli.main import flops_entry

flops_entry()
