"""The bare run of the training benchmark: one process, no MQTT, no workers.

``IMAGE_PYTHON bench/alone.py REPO DATA_JSON ROUNDS`` runs in the learner image's own Python
(numpy, scikit-learn and ``flops_utils`` only, as a worker has), so it pays the imports a
worker pays. It imports the repository's ``model_manager`` the way ``flops_env.worker``
does, builds one ModelManager per learner share (DATA_JSON: each learner's data variables,
the ones ``flops_utils.load_dataset`` reads), and runs ROUNDS rounds of the same FedAvg:
every share fits from the global parameters, the weighted mean by example counts, then
every share evaluates the mean. It prints its figures as one JSON line.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # after the image's own packages: only for services.training.fedavg

from services.training.fedavg import Evaluation, weighted_evaluation, weighted_mean  # noqa: E402


def bare(repo: Path, shares: list[dict[str, str]], rounds: int) -> dict[str, float]:
    """The same ModelManager on the same shares, ``rounds`` FedAvg rounds; wall and parts."""
    started = time.perf_counter()
    sys.path.insert(0, str(repo))
    sys.path.append(str(repo.parent))
    os.chdir(repo)
    module = importlib.import_module("model_manager")
    imported = time.perf_counter()
    managers = []
    for share in shares:
        os.environ.update(share)
        manager = module.ModelManager()
        manager.set_model_data()
        managers.append(manager)
    loaded = time.perf_counter()
    parameters = list(managers[0].get_model_parameters())
    evaluation = Evaluation(0.0, 0.0, 0)
    for _ in range(rounds):
        fits = []
        for manager in managers:
            manager.set_model_parameters([p.copy() for p in parameters])
            with contextlib.redirect_stdout(io.StringIO()):
                examples = manager.fit_model()
            fits.append(([p.copy() for p in manager.get_model_parameters()], int(examples)))
        parameters = weighted_mean(fits)
        results = []
        for manager in managers:
            manager.set_model_parameters(parameters)
            loss, accuracy, examples = manager.evaluate_model()
            results.append(Evaluation(float(loss), float(accuracy), int(examples)))
        evaluation = weighted_evaluation(results)
    done = time.perf_counter()
    return {
        "wall": done - started,
        "import model_manager": imported - started,
        "data": loaded - imported,
        "rounds": done - loaded,
        "accuracy": evaluation.accuracy,
    }


def main(argv: list[str]) -> int:
    """Run ``bare`` with the command line's arguments; print its figures."""
    repo, data, rounds = Path(argv[0]), json.loads(argv[1]), int(argv[2])
    figures: dict[str, Any] = bare(repo, data, rounds)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
