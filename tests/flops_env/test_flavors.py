import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.tree import DecisionTreeClassifier
from skops.io import dump

from flops_env import flavors
from flops_env.flavors import FlavorError, load_model, save_model
from tests.models import digits, fitted_model, save_in_process

pytestmark = pytest.mark.timeout(60)


def test_a_saved_model_loads_and_predicts_like_the_original(tmp_path: Path) -> None:
    info = save_in_process(tmp_path / "m")
    assert info["format"] == "skops"
    assert info["trusted_types"] == []  # LogisticRegression: nothing beyond skops' safe set
    assert info["n_features_in"] == 64
    assert info["libraries"]["scikit-learn"]
    assert json.loads((tmp_path / "m" / "flavor.json").read_text()) == info
    loaded = load_model(tmp_path / "m")
    held = digits().x_held
    assert np.array_equal(loaded.model.predict(held), fitted_model().predict(held))


def test_types_of_the_flavor_s_own_libraries_are_listed_and_trusted(tmp_path: Path) -> None:
    data = digits()
    tree = DecisionTreeClassifier(max_depth=4).fit(data.x_train, data.y_train)
    info = save_model(tree, tmp_path / "m", "sklearn")
    assert info["trusted_types"] == ["sklearn.tree._tree.Tree"]
    loaded = load_model(tmp_path / "m")
    assert np.array_equal(loaded.model.predict(data.x_held), tree.predict(data.x_held))


def test_a_model_holding_foreign_code_is_refused_and_nothing_is_left(tmp_path: Path) -> None:
    risky = FunctionTransformer(func=os.system).fit(digits().x_train)
    with pytest.raises(FlavorError, match=r"outside sklearn, numpy, scipy.*system"):
        save_model(risky, tmp_path / "m", "sklearn")
    assert list((tmp_path / "m").iterdir()) == []


def test_a_file_swapped_after_saving_is_refused(tmp_path: Path) -> None:
    save_in_process(tmp_path / "m")
    dump(FunctionTransformer(func=os.system), tmp_path / "m" / "model.skops")
    with pytest.raises(FlavorError, match="does not match the sha256"):
        load_model(tmp_path / "m")


def test_a_description_that_lists_more_than_the_file_holds_does_not_widen_trust(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "m"
    save_in_process(folder)
    info = json.loads((folder / "flavor.json").read_text())
    dump(FunctionTransformer(func=os.system), folder / "model.skops")
    info["sha256"] = flavors.sha256_of(folder / "model.skops")
    info["trusted_types"] = ["posix.system", "nt.system"]
    (folder / "flavor.json").write_text(json.dumps(info))
    with pytest.raises(FlavorError, match="outside sklearn, numpy, scipy"):
        load_model(folder)


def test_unlisted_types_of_the_flavor_s_libraries_are_refused_too(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    save_in_process(folder)
    data = digits()
    dump(DecisionTreeClassifier().fit(data.x_train, data.y_train), folder / "model.skops")
    info = json.loads((folder / "flavor.json").read_text())
    info["sha256"] = flavors.sha256_of(folder / "model.skops")
    (folder / "flavor.json").write_text(json.dumps(info))
    with pytest.raises(FlavorError, match=r"not listed when saved: sklearn.tree._tree.Tree"):
        load_model(folder)


@pytest.mark.parametrize("flavor", ["keras", "pytorch", "nope"])
def test_flavors_without_a_safe_format_here_are_named_as_unsupported(
    tmp_path: Path, flavor: str
) -> None:
    with pytest.raises(
        FlavorError, match=rf"{flavor!r} cannot be saved or served; supported: sklearn"
    ):
        save_model(fitted_model(), tmp_path / "m", flavor)


def test_a_folder_without_a_model_says_so(tmp_path: Path) -> None:
    with pytest.raises(FlavorError, match=r"flavor\.json is missing"):
        load_model(tmp_path)
    (tmp_path / "flavor.json").write_text('{"flavor": "sklearn", "file": "../x", "sha256": "a"}')
    with pytest.raises(FlavorError, match="not a saved model's description"):
        load_model(tmp_path)


def test_saving_into_a_folder_that_holds_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "other").write_text("x")
    with pytest.raises(FlavorError, match="not empty"):
        save_model(fitted_model(), tmp_path, "sklearn")


def test_version_drift_names_each_library_that_changed(tmp_path: Path) -> None:
    info = save_in_process(tmp_path / "m")
    assert flavors.version_drift(info) == []
    info["libraries"]["scikit-learn"] = "0.1"
    (drift,) = flavors.version_drift(info)
    assert drift.startswith("scikit-learn 0.1 (saved) != ")


@pytest.fixture
def sklearn_config() -> Iterator[None]:
    """The scoring server's predictor sets this thread's scikit-learn configuration: undone."""
    with sklearn.config_context():
        yield


def served(model: Any) -> flavors.Predict:
    return flavors.LoadedModel(model, {"flavor": "sklearn"}).predictor()


@pytest.mark.usefixtures("sklearn_config")
def test_the_server_s_predictor_predicts_as_the_model_and_refuses_what_it_refuses() -> None:
    held = digits().x_held
    predict = served(fitted_model())
    assert sklearn.get_config()["assume_finite"]  # the fast path is taken
    assert np.array_equal(predict(held), fitted_model().predict(held))
    assert np.array_equal(predict(held.astype(int)), fitted_model().predict(held))
    bad = held[:2].copy()
    bad[1, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        predict(bad)
    bad[1, 5] = -np.inf
    with pytest.raises(ValueError, match="infinity"):
        predict(bad)


@pytest.mark.usefixtures("sklearn_config")
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_values_past_float32_still_meet_the_tree_s_own_check() -> None:
    data = digits()
    tree = DecisionTreeClassifier(max_depth=4).fit(data.x_train, data.y_train)
    big = data.x_held[:1].copy()
    big[0, 3] = 1e39  # finite as float64, infinite in the tree's float32 copy
    with pytest.raises(ValueError, match="float32"):
        served(tree)(big)


@pytest.mark.usefixtures("sklearn_config")
def test_an_estimator_that_accepts_nan_still_scores_it() -> None:
    data = digits()
    model = HistGradientBoostingClassifier(max_iter=3).fit(data.x_train, data.y_train)
    rows = data.x_held[:3].copy()
    rows[0, 10] = np.nan
    assert np.array_equal(served(model)(rows), model.predict(rows))


@pytest.mark.usefixtures("sklearn_config")
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_pipeline_keeps_the_checks_of_its_later_steps() -> None:
    data = digits()
    steps = (FunctionTransformer(np.log1p), LogisticRegression(max_iter=20))
    pipeline = make_pipeline(*steps).fit(data.x_train, data.y_train)
    rows = data.x_held[:1].copy()
    rows[0, 0] = -1.0  # finite here; log1p makes it -inf for the second step
    predict = served(pipeline)
    assert not sklearn.get_config()["assume_finite"]
    with np.errstate(divide="ignore"), pytest.raises(ValueError, match="infinity"):
        predict(rows)


def test_an_object_that_is_no_estimator_fails_when_asked_to_predict() -> None:
    predict = served(np.zeros(3))  # loads, serves, and each request says why it fails
    with pytest.raises(AttributeError, match="predict"):
        predict(np.zeros((1, 3)))
