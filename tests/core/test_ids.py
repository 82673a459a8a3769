import re

from core import ids
from services.kinds import BUILDER, OBSERVER


def test_observer_and_builder_names_follow_the_original_scheme() -> None:
    assert OBSERVER.name_for("6761bf5d59461659a24b1197") == "observ8266202cd6db"
    assert BUILDER.name_for("6761bf5d59461659a24b1197") == "builder8266202cd6db"
    assert BUILDER.name_for("6761bf5d59461659a24b1197", 2) == "builder8266202cd6db-2"


def test_per_user_hash_matches_the_reference() -> None:
    assert ids.short_hash("Admin") == "e3afed0047b0"


def test_object_ids_are_24_hex_and_consecutive_in_a_burst() -> None:
    made = [ids.new_object_id(now=1_734_000_000) for _ in range(3)]
    assert all(re.fullmatch(r"[0-9a-f]{24}", i) for i in made)
    counters = [int(i[-6:], 16) for i in made]
    assert counters[1] == (counters[0] + 1) % 0x1000000
    assert made[0][:8] == (1_734_000_000).to_bytes(4, "big").hex()


def test_project_app_names_are_proj_and_12_hex() -> None:
    assert re.fullmatch(r"proj[0-9a-f]{12}", ids.project_app_name("abc"))
