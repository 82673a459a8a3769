"""Hypothesis strategies shared by the property tests and the fuzz run."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

JSON: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=24),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=16,
)


def mutated(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """``base`` with one key (possibly nested) replaced by any JSON value, added or removed."""

    def one(key: str, value: Any, drop: bool) -> dict[str, Any]:
        copy: dict[str, Any] = json.loads(json.dumps(base))
        path = key.split(".")
        node = copy
        for part in path[:-1]:
            node = node.setdefault(part, {}) if isinstance(node, dict) else {}
        if drop:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = value
        return copy

    keys = [*sorted(_paths(base)), "unknown_field", "nested.unknown"]
    return st.builds(one, st.sampled_from(keys), JSON, st.booleans())


def _paths(node: dict[str, Any], prefix: str = "") -> set[str]:
    found: set[str] = set()
    for key, value in node.items():
        found.add(prefix + key)
        if isinstance(value, dict):
            found |= _paths(value, prefix + key + ".")
    return found


def payloads(valid_request: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """Any bytes, any JSON, or a request one mutation away from valid (the SLA included)."""
    as_json = st.one_of(
        JSON,
        mutated(valid_request),
        mutated(valid_request["sla"]).map(lambda sla: {**valid_request, "sla": sla}),
    ).map(lambda v: json.dumps(v).encode())
    return st.one_of(st.binary(max_size=512), as_json)
