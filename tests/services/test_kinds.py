from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from core.errors import ConfigError
from services.aggregator.service import AggregatorConfig
from services.kinds import AGGREGATOR, BUILDER, KINDS, OBSERVER, kind_of, remove_kept
from services.spec import ServiceSpec
from services.training.settings import RoundPlan
from tests.mlrepo import PROJECT, USER, artifact_plan, worker_spec


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


def test_a_deleted_aggregator_takes_its_checkpoints_and_artifact_and_nothing_else(
    tmp_path: Path,
) -> None:
    config = AggregatorConfig(
        user=USER,
        project_id=PROJECT,
        name=AGGREGATOR.name_for(PROJECT),
        plan=RoundPlan(),
        worker=worker_spec(),
        checkpoint_dir=tmp_path / "training" / PROJECT,
        artifact=artifact_plan(tmp_path / "models"),
    )
    kept = [tmp_path / "training" / PROJECT, tmp_path / "models" / PROJECT]
    other = tmp_path / "models" / ("1" * 24)
    for folder in (*kept, other):
        folder.mkdir(parents=True)
        (folder / "file").write_text("x")
    spec = ServiceSpec("s" * 24, config.name, "aggregator", USER, PROJECT, "a" * 24)
    remove_kept(replace(spec, config={"not": "an aggregator's"}))  # names nothing: kept
    assert all(folder.exists() for folder in kept)
    remove_kept(replace(spec, config=config.model_dump(mode="json")))
    assert not any(folder.exists() for folder in kept) and other.exists()
