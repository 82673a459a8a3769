"""The errors of ``mlrepos``: one root, translated from git's failures at the boundary."""

from __future__ import annotations

from core.errors import FlopsError


class RepoError(FlopsError):
    """The repository cannot be resolved or exported; the message says which and why."""


class ContractError(RepoError):
    """The repository lacks a file of the contract (the original's texts)."""
