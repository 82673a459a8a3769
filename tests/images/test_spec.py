import pytest

from images.errors import SpecError
from images.spec import (
    EnvSpec,
    actor_requirements,
    parse_conda,
    parse_requirements,
    python_warning,
)

ORIGINAL_STYLE = """
name: mlflow-env
channels:
  - conda-forge
dependencies:
  - python=3.10.14
  - pip<=24.0
  - mlflow=2.12.1
  - numpy=1.26.4
  - scikit-learn=1.4
  - pytorch::pytorch=2.1.1=py310_cpu
  - cudatoolkit=11.8
  - pip:
    - scipy==1.13.0  # comment
    - torchvision
"""


@pytest.mark.timeout(10)
def test_conda_specs_become_pip_requirements() -> None:
    spec = parse_conda(ORIGINAL_STYLE)
    assert spec.python_pin == "3.10.14"
    assert spec.requirements == (
        "mlflow==2.12.1",
        "numpy==1.26.4",
        "scikit-learn==1.4.*",
        "torch==2.1.1",
        "scipy==1.13.0",
        "torchvision",
    )
    assert "conda-only package 'pip' left out" in spec.notes
    assert "conda-only package 'cudatoolkit' left out" in spec.notes
    assert "conda package 'pytorch' installed as 'torch'" in spec.notes


@pytest.mark.timeout(10)
def test_requirements_txt_lines() -> None:
    spec = parse_requirements("# deps\nnumpy==1.26.4\n\nscikit-learn>=1.4  # why\n")
    assert spec.requirements == ("numpy==1.26.4", "scikit-learn>=1.4")
    assert spec.python_pin is None


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dependencies: [", "not valid YAML"),
        ("name: x\n", "needs a 'dependencies' list"),
        (
            "dependencies:\n  - pip:\n    - -r other.txt\n",
            "'-r other.txt' is not a package requirement",
        ),
        ("dependencies:\n  - {a: 1}\n", "neither a conda spec nor a pip list"),
    ],
)
def test_bad_conda_files_are_refused_naming_the_entry(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_conda(text)


@pytest.mark.timeout(10)
def test_option_lines_in_requirements_are_refused() -> None:
    with pytest.raises(SpecError, match="--index-url"):
        parse_requirements("--index-url https://example.org\nnumpy\n")


@pytest.mark.timeout(10)
def test_the_learner_never_gets_mlflow_and_everyone_gets_numpy() -> None:
    spec = EnvSpec("conda.yaml", ("mlflow==2.12.1", "scikit-learn==1.4.2"))
    learner, notes = actor_requirements(spec, "learner", tracking=True)
    assert learner == ["scikit-learn==1.4.2", "numpy"]
    assert "mlflow left out of the learner's packages" in notes
    aggregator, _ = actor_requirements(spec, "aggregator")
    assert aggregator == ["scikit-learn==1.4.2", "numpy", "skops>=0.10"]  # saves the model
    pinned, _ = actor_requirements(EnvSpec("r", ("NumPy==1.26.4",)), "learner")
    assert pinned == ["NumPy==1.26.4"]
    ours, notes = actor_requirements(EnvSpec("r", ("flops_utils==0.2.3", "numpy")), "learner")
    assert ours == ["numpy"] and any("flops-utils left out" in n for n in notes)


@pytest.mark.timeout(10)
def test_tracking_gives_the_aggregator_mlflow_skinny_at_the_users_version() -> None:
    spec = EnvSpec("conda.yaml", ("mlflow[extras]==2.12.1", "scikit-learn==1.4.2"))
    tracked, notes = actor_requirements(spec, "aggregator", tracking=True)
    assert tracked == [
        "scikit-learn==1.4.2", "numpy", "skops>=0.10",
        "mlflow-skinny==2.12.1", "sqlalchemy<2.1", "alembic", "setuptools<81",
    ]  # fmt: skip
    assert (
        "MLflow tracking: mlflow-skinny==2.12.1, sqlalchemy<2.1, alembic, setuptools<81 added"
        in notes
    )
    unpinned, _ = actor_requirements(
        EnvSpec("r", ("numpy", "SQLAlchemy==2.0.30")), "aggregator", tracking=True
    )
    assert unpinned == ["numpy", "SQLAlchemy==2.0.30", "mlflow-skinny", "alembic"]  # theirs kept


@pytest.mark.timeout(10)
def test_a_python_pin_other_than_the_nodes_is_a_warning() -> None:
    spec = EnvSpec("conda.yaml", (), "3.10.14")
    warning = python_warning(spec, "3.11.7")
    assert warning is not None and "python=3.10.14" in warning and "3.11.7" in warning
    assert python_warning(EnvSpec("c", (), "3.11"), "3.11.7") is None
    assert python_warning(EnvSpec("c", ()), "3.11.7") is None
