"""Save and load a trained model in its flavor's standard format, never unpickling it.

Runs inside built environments: the aggregator's worker saves the best model
(``save_model``, called by its ``save_model`` op), the trained model's scoring server loads
it (``load_model``). Standard library only at import; the flavor's libraries are imported
when a model of that flavor is saved or loaded.

A saved model is a folder:

    flavor.json     what was saved: flavor, format, file, sha256, size, the types trusted
                    at load, the library versions, the model's class and input width
    model.skops     the model in the flavor's format (scikit-learn: skops, not pickle)

Loading trusts no list from the folder blindly: it asks skops which types the file holds
beyond skops' own safe set, refuses any whose module is not one of the flavor's own
libraries, refuses any that ``flavor.json`` did not list when the model was saved, checks the
file's sha256, and only then loads with exactly that list.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module, metadata
from pathlib import Path
from typing import Any

INFO_FILE = "flavor.json"
Predict = Callable[[Any], Any]  # rows (a 2-D numpy array) to predictions


class FlavorError(Exception):
    """A model cannot be saved or loaded in its flavor's format; the message says why."""


def _plain_predictor(model: Any) -> Predict:
    def predict(rows: Any) -> Any:  # looked up per call: a model without it fails a request
        return model.predict(rows)

    return predict


@dataclass(frozen=True)
class Flavor:
    """How one SLA ``ml_model_flavor`` is saved and loaded."""

    format: str
    file: str
    libraries: tuple[str, ...]  # distributions whose versions are recorded (and served)
    trusted_modules: tuple[str, ...]  # top-level modules whose extra types may be loaded
    dump: Callable[[object, Path], None]
    extra_types: Callable[[Path], list[str]]  # types in the file beyond the format's safe set
    load: Callable[[Path, list[str]], object]
    modules: tuple[str, ...] = ()  # what dump imports (``prepare`` imports it ahead)
    predictor: Callable[[Any], Predict] = _plain_predictor  # how the scoring server predicts


def _skops_dump(model: object, path: Path) -> None:
    import_module("skops.io").dump(model, path)


def _skops_extra_types(path: Path) -> list[str]:
    return sorted(import_module("skops.io").get_untrusted_types(file=path))


def _skops_load(path: Path, trusted: list[str]) -> object:
    loaded: object = import_module("skops.io").load(path, trusted=trusted)
    return loaded


FLOAT32_MAX = 3.4028234663852886e38  # scikit-learn's trees compute in float32


def _holds_estimators(value: object) -> bool:
    if hasattr(value, "get_params") and not isinstance(value, type):
        return True
    if isinstance(value, list | tuple):
        return any(_holds_estimators(item) for item in value)
    if isinstance(value, dict):
        return any(_holds_estimators(item) for item in value.values())
    return False


def _sklearn_predictor(model: Any) -> Predict:
    """``model.predict`` without scikit-learn's own finiteness check when ours passed.

    scikit-learn checks every input for NaN and infinity (a third of ``predict`` for one
    row); a cheaper check of the same rows here lets it skip that. Rows whose values are all
    finite and within float32's range (so no estimator's float32 copy overflows) are scored
    with ``assume_finite``, set once for the calling thread (the scoring server's event
    loop; a per-call ``config_context`` costs as much as the check it skips); any other rows
    under ``assume_finite=False``, so the model decides (a 400 with scikit-learn's reason, or
    a prediction from an estimator that accepts NaN). Only for an estimator that holds no
    other estimators: inside a pipeline or an ensemble, the later steps' inputs are not the
    rows checked here, and they keep their checks.
    """
    predict: Predict | None = getattr(model, "predict", None)
    params = getattr(model, "get_params", None)
    if predict is None or params is None or _holds_estimators(params(deep=False)):
        return _plain_predictor(model)
    sklearn = import_module("sklearn")
    numpy = import_module("numpy")
    sklearn.set_config(assume_finite=True)

    def checked_here(rows: Any) -> Any:
        if rows.dtype.kind == "f" and not numpy.abs(rows).max(initial=0.0) <= FLOAT32_MAX:
            with sklearn.config_context(assume_finite=False):
                return predict(rows)
        return predict(rows)

    return checked_here


FLAVORS: dict[str, Flavor] = {
    "sklearn": Flavor(
        format="skops",
        file="model.skops",
        libraries=("scikit-learn", "scipy", "numpy", "joblib", "threadpoolctl", "skops"),
        trusted_modules=("sklearn", "numpy", "scipy"),
        dump=_skops_dump,
        extra_types=_skops_extra_types,
        load=_skops_load,
        modules=("skops.io",),
        predictor=_sklearn_predictor,
    ),
}


@dataclass(frozen=True)
class LoadedModel:
    """A model loaded from a saved folder, with what ``flavor.json`` says about it."""

    model: Any  # the flavor's own object; it has ``predict``
    info: dict[str, Any]

    def predictor(self) -> Predict:
        """What the scoring server calls to predict rows, as fast as the flavor allows.

        For the process that serves this model: it may set the flavor library's
        configuration of the calling thread (scikit-learn: ``assume_finite``).
        """
        return flavor_of(self.info["flavor"]).predictor(self.model)


def flavor_of(name: str) -> Flavor:
    """The flavor called ``name``, or an error that lists the supported ones."""
    try:
        return FLAVORS[name]
    except KeyError:
        known = ", ".join(sorted(FLAVORS))
        raise FlavorError(
            f"model flavor {name!r} cannot be saved or served; supported: {known}"
        ) from None


def prepare(flavor: str) -> None:
    """Import what saving a model of ``flavor`` needs, so that the save itself is quick.

    The aggregator's worker does it while the rounds run (its CPU is idle then), instead of
    after the last round, when everything waits for the saved model.
    """
    for module in flavor_of(flavor).modules:
        import_module(module)


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_types(types: list[str], flavor: Flavor, path: Path) -> None:
    """Refuse types whose module is not one of the flavor's own libraries."""
    outside = [t for t in types if t.split(".", 1)[0] not in flavor.trusted_modules]
    if outside:
        raise FlavorError(
            f"{path.name} holds types outside {', '.join(flavor.trusted_modules)}, which are "
            f"never loaded: {', '.join(outside)}"
        )


def _versions(names: tuple[str, ...]) -> dict[str, str]:
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def save_model(model: object, directory: Path, flavor: str) -> dict[str, Any]:
    """Save ``model`` into the new or empty ``directory``; the ``flavor.json`` content.

    A model whose file would be refused at load is refused here, and nothing is left behind.
    """
    kind = flavor_of(flavor)
    if directory.exists() and any(directory.iterdir()):
        raise FlavorError(f"{directory} is not empty; a model is saved into a new folder")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / kind.file
    try:
        kind.dump(model, path)
        extra = kind.extra_types(path)
        check_types(extra, kind, path)
    except FlavorError:
        path.unlink(missing_ok=True)
        raise
    except Exception as exc:
        path.unlink(missing_ok=True)
        raise FlavorError(f"cannot save the {flavor} model as {kind.format}: {exc}") from exc
    width = getattr(model, "n_features_in_", None)
    info = {
        "flavor": flavor,
        "format": kind.format,
        "file": kind.file,
        "sha256": sha256_of(path),
        "size": path.stat().st_size,
        "trusted_types": extra,
        "libraries": _versions(kind.libraries),
        "python": platform.python_version(),
        "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
        "n_features_in": int(width) if width is not None else None,
    }
    (directory / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return info


def read_info(directory: Path) -> dict[str, Any]:
    """The ``flavor.json`` of a saved model, checked for the fields loading needs."""
    try:
        info: object = json.loads((directory / INFO_FILE).read_text())
    except FileNotFoundError:
        raise FlavorError(f"{directory} holds no saved model ({INFO_FILE} is missing)") from None
    except (OSError, ValueError) as exc:
        raise FlavorError(f"{directory / INFO_FILE} cannot be read: {exc}") from exc
    if not (
        isinstance(info, dict)
        and all(isinstance(info.get(k), str) for k in ("flavor", "file", "sha256"))
        and isinstance(info.get("trusted_types"), list)
        and Path(info["file"]).name == info["file"]
    ):
        raise FlavorError(f"{directory / INFO_FILE} is not a saved model's description")
    return info


def load_model(directory: Path) -> LoadedModel:
    """Load the model saved in ``directory``, trusting only what passes the checks above."""
    info = read_info(directory)
    kind = flavor_of(info["flavor"])
    path = directory / info["file"]
    if not path.is_file():
        raise FlavorError(f"{path} is missing")
    if sha256_of(path) != info["sha256"]:
        raise FlavorError(f"{path.name} does not match the sha256 recorded when it was saved")
    try:
        extra = kind.extra_types(path)
    except Exception as exc:
        raise FlavorError(f"{path.name} is not a readable {kind.format} file: {exc}") from exc
    check_types(extra, kind, path)
    unlisted = sorted(set(extra) - set(info["trusted_types"]))
    if unlisted:
        raise FlavorError(f"{path.name} holds types not listed when saved: {', '.join(unlisted)}")
    try:
        model = kind.load(path, extra)
    except Exception as exc:
        raise FlavorError(f"cannot load {path.name}: {exc}") from exc
    return LoadedModel(model=model, info=info)


def version_drift(info: dict[str, Any]) -> list[str]:
    """Libraries whose installed version differs from the one the model was saved with."""
    saved = info.get("libraries") or {}
    now = _versions(tuple(saved))
    return [
        f"{n} {saved[n]} (saved) != {now.get(n, 'absent')}" for n in saved if now.get(n) != saved[n]
    ]
