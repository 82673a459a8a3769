from __future__ import annotations

import pytest

from core.errors import ConfigError
from services.kinds import BUILDER, KINDS, OBSERVER, kind_of


def test_every_kind_is_in_the_table_under_its_own_name() -> None:
    assert all(name == kind.name for name, kind in KINDS.items())
    assert kind_of("builder") is BUILDER


def test_an_unknown_kind_is_a_config_error_naming_the_known_ones() -> None:
    with pytest.raises(
        ConfigError,
        match="no service kind 'trainer'; known: aggregator, builder, cluster_aggregator, "
        "learner, observer",
    ):
        kind_of("trainer")


def test_a_bad_config_is_refused_naming_the_kind() -> None:
    with pytest.raises(ConfigError, match="not a builder configuration"):
        BUILDER.validated({"repo": "x"})
    with pytest.raises(ConfigError, match="not a observer configuration"):
        OBSERVER.validated({"extra": 1})


def test_only_the_observer_lives_in_the_observatory_and_goes_unwatched() -> None:
    assert [k.name for k in KINDS.values() if k.in_observatory or not k.watched] == ["observer"]
    assert (BUILDER.one_shot, OBSERVER.one_shot) == (True, False)
