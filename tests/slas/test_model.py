"""A table of good and bad SLAs: each bad one names its field."""

import copy
import json
from typing import Any

import pytest

from core.errors import SLAError
from slas import bundled_dir, load_sla, parse_sla

BASE: dict[str, Any] = json.loads((bundled_dir() / "mnist_sklearn_small.json").read_text())


def variant(path: str, value: Any) -> dict[str, Any]:
    sla = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node = sla
    for p in parents:
        node = node[p]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return sla


DELETE = object()


@pytest.mark.parametrize("name", sorted(p.name for p in bundled_dir().glob("*.json")))
def test_every_bundled_sla_is_valid(name: str) -> None:
    load_sla(bundled_dir() / name)


GOOD = [
    (
        "defaults fill optional fields",
        {
            "customerID": "Admin",
            "ml_repo_url": "https://github.com/a/b",
            "ml_model_flavor": "pytorch",
        },
    ),
    ("a .git suffix", variant("ml_repo_url", "https://github.com/Malyuk-A/repo.git")),
    ("a local file:// repository", variant("ml_repo_url", "file:///tmp/repos/user/repo")),
    ("arm64 without devel images", variant("supported_platforms", ["linux/amd64", "linux/arm64"])),
    (
        "hierarchical with cycles",
        variant(
            "training_configuration",
            {
                "mode": "hierarchical",
                "training_cycles": 2,
                "min_available_clients": 3,
                "min_fit_clients": 3,
                "min_evaluate_clients": 2,
            },
        ),
    ),
    ("build without deploy", variant("post_training_steps", ["build_image_for_trained_model"])),
]


@pytest.mark.parametrize(("case", "sla"), GOOD, ids=[c for c, _ in GOOD])
def test_good_slas_pass(case: str, sla: dict[str, Any]) -> None:
    parse_sla(sla, "x.json")


BAD = [
    ("missing customer", variant("customerID", DELETE), "customerID: required field is missing"),
    (
        "misspelled field",
        {**BASE, "ml_model_flavr": "sklearn"},
        "ml_model_flavr: unknown field; did you mean 'ml_model_flavor'?",
    ),
    (
        "unknown nested field",
        variant("training_configuration.rounds", 3),
        "training_configuration.rounds: unknown field",
    ),
    (
        "rounds as a string",
        variant("training_configuration.training_rounds", "3"),
        "training_configuration.training_rounds",
    ),
    (
        "zero rounds",
        variant("training_configuration.training_rounds", 0),
        "training_configuration.training_rounds: Input should be greater than or equal to 1",
    ),
    (
        "zero clients",
        variant("training_configuration.min_available_clients", 0),
        "training_configuration.min_available_clients",
    ),
    (
        "fit above available",
        variant("training_configuration.min_fit_clients", 5),
        "min_fit_clients (5) must not exceed min_available_clients (2)",
    ),
    (
        "evaluate above available",
        variant("training_configuration.min_evaluate_clients", 3),
        "min_evaluate_clients (3) must not exceed min_available_clients (2)",
    ),
    (
        "deploy without build",
        variant("post_training_steps", ["deploy_trained_model_image"]),
        "deploy_trained_model_image needs build_image_for_trained_model",
    ),
    (
        "devel images on arm64",
        {**variant("use_devel_base_images", True), "supported_platforms": ["linux/arm64"]},
        "use_devel_base_images is only valid with supported_platforms ['linux/amd64']",
    ),
    (
        "non-GitHub URL",
        variant("ml_repo_url", "https://gitlab.com/a/b"),
        "ml_repo_url: must be a GitHub repository URL",
    ),
    ("unknown flavor", variant("ml_model_flavor", "jax"), "ml_model_flavor"),
    (
        "unknown platform",
        variant("supported_platforms", ["windows/amd64"]),
        "supported_platforms.0",
    ),
    (
        "cycles in classic mode",
        variant("training_configuration.training_cycles", 3),
        "training_cycles is only valid with mode 'hierarchical'",
    ),
    ("user that escapes its topic", variant("customerID", "a/#"), "customerID"),
    ("verbose as a string", variant("verbose", "yes"), "verbose"),
    ("negative memory", variant("resource_constraints.memory", -1), "resource_constraints.memory"),
]


@pytest.mark.parametrize(("case", "sla", "message"), BAD, ids=[c for c, _, _ in BAD])
def test_bad_slas_name_the_file_and_field(case: str, sla: dict[str, Any], message: str) -> None:
    with pytest.raises(SLAError) as caught:
        parse_sla(sla, "my_sla.json")
    text = str(caught.value)
    assert text.startswith("my_sla.json: invalid SLA")
    assert message in text


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "invalid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"\xff\xfe", "invalid JSON"),
        (b"{" + b" " * 70_000 + b"}", "larger than"),
    ],
)
def test_unreadable_slas_are_refused(raw: bytes, message: str) -> None:
    with pytest.raises(SLAError, match=message):
        parse_sla(raw, "x.json")
