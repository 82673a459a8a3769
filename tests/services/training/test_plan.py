"""The train stage's plan: cluster groups by count (embedded) or by name (Oakestra)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.errors import ConfigError
from services.builder.facts import ImagesReady
from services.kinds import CLUSTER
from services.training.plan import Planned, cluster_groups, training_wants
from services.training.settings import TrainingSettings
from slas import ProjectSLA, bundled_dir, parse_sla

PROJECT = "6761bf5d59461659a24b1197"


def sla(name: str) -> ProjectSLA:
    return parse_sla(json.loads((bundled_dir() / name).read_text()), name)


def ready(tmp_path: Path) -> ImagesReady:
    image = {"name": "r/a:c", "digest": "d", "path": str(tmp_path), "python": "/py"}
    return ImagesReady.model_validate(
        {
            "repo_url": "https://example.org/r", "source": "s", "fallback": False,
            "commit": "c" * 40, "repo_user": "u", "repo_name": "r", "reused": False,
            "repo_path": str(tmp_path), "data_dir": str(tmp_path),
            "learner": image, "aggregator": image,
        }
    )  # fmt: skip


def plan(tmp_path: Path, name: str, clusters: Any) -> list[Planned]:
    return training_wants(
        PROJECT, "Admin", sla(name), ready(tmp_path), clusters, TrainingSettings()
    )


def configs(planned: list[Planned], kind: str) -> list[dict[str, Any]]:
    return [config.model_dump() for k, config, _, _ in planned if k.name == kind]


def test_a_count_makes_groups_c0_to_cn_placed_nowhere(tmp_path: Path) -> None:
    planned = plan(tmp_path, "hierarchical_mnist_sklearn_small.json", 2)
    (root,) = configs(planned, "aggregator")
    assert root["expected"] == 2
    clusters = configs(planned, "cluster_aggregator")
    assert [(c["cluster"], c["placement"]) for c in clusters] == [("c0", None), ("c1", None)]
    learners = configs(planned, "learner")
    assert [(c["group"], c["placement"]) for c in learners] == [("c0", None)] * 2 + [
        ("c1", None)
    ] * 2


def test_names_make_one_group_per_cluster_placed_in_it(tmp_path: Path) -> None:
    planned = plan(tmp_path, "hierarchical_mnist_sklearn_small.json", ("edge1", "edge2", "cloud"))
    (root,) = configs(planned, "aggregator")
    assert root["expected"] == 3 and "placement" not in root
    clusters = configs(planned, "cluster_aggregator")
    assert [(c["cluster"], c["placement"]) for c in clusters] == [
        ("edge1", "edge1"),
        ("edge2", "edge2"),
        ("cloud", "cloud"),
    ]
    assert [c["name"] for c in clusters] == [CLUSTER.name_for(PROJECT, k) for k in range(3)]
    learners = configs(planned, "learner")
    assert [(c["group"], c["placement"]) for c in learners] == [
        (name, name) for name in ("edge1", "edge2", "cloud") for _ in range(2)
    ]


def test_classic_mode_ignores_the_clusters(tmp_path: Path) -> None:
    planned = plan(tmp_path, "mnist_sklearn_small.json", ("edge1", "edge2"))
    assert not configs(planned, "cluster_aggregator")
    assert {(c["group"], c["placement"]) for c in configs(planned, "learner")} == {("root", None)}


def test_a_name_listed_twice_is_one_cluster() -> None:
    assert cluster_groups(["a", "b", "a"]) == (["a", "b"], ["a", "b"])


@pytest.mark.parametrize(
    ("clusters", "problem"),
    [
        ((), "at least one cluster"),
        (0, "at least one cluster"),
        (("edge/1",), "'edge/1' is not a valid topic level"),
        (("a+",), "not a valid topic level"),
        (("root",), "the root's own"),
    ],
)
def test_clusters_that_cannot_be_groups_are_refused(clusters: Any, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        cluster_groups(clusters)
