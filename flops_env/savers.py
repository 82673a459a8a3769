"""Saving the user's model in its flavor's format, run inside the worker.

Every flavor also writes ``parameters.npz`` (the arrays, loadable with
``allow_pickle=False``) and ``model.json`` (flavor, format, files), so the artifact is
useful even where the flavor's own library is not installed. The trained-model stage
(issue 14) decides what it serves.
"""

from __future__ import annotations

import importlib
import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _sklearn(model: Any, folder: Path) -> tuple[str, str]:
    try:
        sio = importlib.import_module("skops.io")
    except ImportError:
        # Without skops in the environment: a pickle of the user's own model, written here;
        # nothing from the network is ever unpickled.
        with (folder / "model.pkl").open("wb") as out:
            pickle.dump(model, out, protocol=pickle.HIGHEST_PROTOCOL)
        return "model.pkl", "pickle"
    sio.dump(model, folder / "model.skops")
    return "model.skops", "skops"


def _pytorch(model: Any, folder: Path) -> tuple[str, str]:
    torch = importlib.import_module("torch")
    torch.save(model.state_dict(), folder / "model.pt")
    return "model.pt", "torch-state-dict"


def _keras(model: Any, folder: Path) -> tuple[str, str]:
    model.save(folder / "model.keras")
    return "model.keras", "keras"


SAVERS: dict[str, Callable[[Any, Path], tuple[str, str]]] = {
    "sklearn": _sklearn,
    "pytorch": _pytorch,
    "tensorflow": _keras,
    "keras": _keras,
}


def save(
    manager: Any, folder: Path, flavor: str, parameters: list[np.ndarray[Any, Any]]
) -> dict[str, Any]:
    """Save ``manager.get_model()`` and its parameters into ``folder``; what was written."""
    saver = SAVERS.get(flavor)
    if saver is None:
        raise ValueError(f"unknown model flavor {flavor!r}; known: {', '.join(SAVERS)}")
    folder.mkdir(parents=True, exist_ok=True)
    model_file, fmt = saver(manager.get_model(), folder)
    np.savez(folder / "parameters.npz", *parameters)
    files = [model_file, "parameters.npz", "model.json"]
    manifest = {"flavor": flavor, "format": fmt, "files": files, "parameters": len(parameters)}
    (folder / "model.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return {"files": files, "format": fmt}
