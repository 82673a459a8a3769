"""Optional MLflow tracking, as the original logged it, run beside the aggregator's worker.

Runs in the aggregator's environment, which has MLflow when tracking is on (the builder
adds ``mlflow-skinny`` at the version the user's ``conda.yaml`` pins for mlflow,
``sqlalchemy`` and ``alembic``: ``images.spec.actor_requirements``)::

    python -m flops_env.tracking --tracking-uri sqlite:///DIR/mlflow.db
        --experiment "FLOps Project <id>" --artifact-root file:///DIR/artifacts

It answers one JSON line on stdout per JSON line on stdin, after a first line that says it
is ready (``{"ok": true, "experiment_id": ...}``)::

    {"op": "round", "round": 2, "metrics": {"loss": 0.61, "accuracy": 0.85}}
        -> a run "FLOps FL round 2" with those metrics   -> {"ok": true, "run_id": ...}
    {"op": "model", "round": 2, "path": "ARTIFACT_DIR"}
        -> the artifact's files under "model" in that round's run  -> {"ok": true, ...}

A failure answers ``{"ok": false, "error": ...}`` and the process goes on. Standard library
at import; MLflow is imported by ``main``. The parent sets MLFLOW_DISABLE_TELEMETRY=true.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import import_module
from typing import Any

RUN_NAME = "FLOps FL round {round}"


class Tracking:
    """One experiment in one MLflow store; a run per round."""

    def __init__(self, mlflow: Any, experiment: str, artifact_root: str | None) -> None:
        self.mlflow = mlflow
        self.client = mlflow.MlflowClient()
        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            self.experiment_id = self.client.create_experiment(
                experiment, artifact_location=artifact_root
            )
        else:
            self.experiment_id = found.experiment_id
        self.runs: dict[int, str] = {}

    def round(self, number: int, metrics: dict[str, float]) -> str:
        """Log one round's metrics in its own run; its run id."""
        run = self.client.create_run(self.experiment_id, run_name=RUN_NAME.format(round=number))
        run_id: str = run.info.run_id
        for key, value in metrics.items():
            self.client.log_metric(run_id, key, float(value), step=number)
        self.client.set_terminated(run_id)
        self.runs[number] = run_id
        return run_id

    def model(self, number: int, path: str) -> str:
        """Log the artifact's files in the run of its round (made if none was logged)."""
        run_id = self.runs.get(number) or self.round(number, {})
        self.client.log_artifacts(run_id, path, artifact_path="model")
        return run_id

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """One request, one answer."""
        op = request.get("op")
        if op == "round":
            return {"ok": True, "run_id": self.round(int(request["round"]), request["metrics"])}
        if op == "model":
            return {"ok": True, "run_id": self.model(int(request["round"]), request["path"])}
        return {"ok": False, "error": f"unknown op {op!r}"}


def _answer(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """Serve requests from stdin until it closes."""
    parser = argparse.ArgumentParser(prog="python -m flops_env.tracking")
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--artifact-root")
    args = parser.parse_args(argv)
    try:
        mlflow = import_module("mlflow")
        mlflow.set_tracking_uri(args.tracking_uri)
        tracking = Tracking(mlflow, args.experiment, args.artifact_root)
    except Exception as exc:  # reported to the parent, which decides
        _answer({"ok": False, "error": f"MLflow tracking cannot start: {exc}"})
        return 1
    _answer({"ok": True, "experiment_id": tracking.experiment_id})
    for line in sys.stdin:
        try:
            answer = tracking.handle(json.loads(line))
        except Exception as exc:  # one failed request; the next may work
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        _answer(answer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
