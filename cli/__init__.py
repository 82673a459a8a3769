"""Talks to people: the ``flops`` and ``oak`` commands."""
