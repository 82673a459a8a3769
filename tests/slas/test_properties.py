"""Property tests: any input gives a valid SLA or an SLAError, never anything else."""

import contextlib
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import SLAError
from slas import ProjectSLA, bundled_dir, parse_sla
from tests.strategies import JSON, mutated

BASE: dict[str, Any] = json.loads((bundled_dir() / "mnist_sklearn_small.json").read_text())


@settings(max_examples=500, deadline=None)
@given(st.one_of(JSON, mutated(BASE)))
def test_any_json_is_an_sla_or_an_sla_error(value: Any) -> None:
    try:
        sla = parse_sla(value if isinstance(value, dict) else json.dumps(value), "fuzz.json")
    except SLAError as exc:
        assert str(exc).startswith("fuzz.json: ")
    else:
        assert isinstance(sla, ProjectSLA)
        assert parse_sla(sla.model_dump(mode="json"), "again.json") == sla


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_are_an_sla_or_an_sla_error(raw: bytes) -> None:
    with contextlib.suppress(SLAError):
        parse_sla(raw, "raw.json")
