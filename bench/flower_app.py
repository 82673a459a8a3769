"""The base case as a Flower app: the seed ModelManager under Flower's own runtime.

Loaded by Flower (``flwr run``) inside the Flower environment that ``bench.flower`` builds,
never by our code: ``server_app`` is the ServerApp, ``client_app`` the ClientApp. It does
what our aggregator and learners do: the initial parameters from the server's
``ModelManager().get_model_parameters()``, then per round ``fit_model`` on every node,
FedAvg weighted by example counts (Flower's ``FedAvg``), and ``evaluate_model`` of the
aggregated parameters on every node. Each node learns from its own share of the data,
given as the data variables of ``flops_utils.load_dataset`` (the same slices as our
learners'). Timestamps go to the run config's ``times`` file, one JSON line each.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import sys
import time
from typing import Any

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

_managers: dict[int, Any] = {}  # partition -> ModelManager with its data (one per node)


def note(context: Context, what: str, **values: float) -> None:
    """Append one timestamped line to the times file."""
    line = json.dumps({"what": what, "ts": time.time(), **values})
    with open(str(context.run_config["times"]), "a") as out:  # noqa: PTH123 - one append
        out.write(line + "\n")


def model_manager(context: Context) -> Any:  # noqa: ANN401 - the user's class
    """A new ``ModelManager`` of the repository in the run config (imported once)."""
    repo = str(context.run_config["repo"])
    if repo not in sys.path:
        sys.path.insert(0, repo)
        sys.path.append(os.path.dirname(repo))  # noqa: PTH120 - as flops_env.worker does
        os.chdir(repo)
    return importlib.import_module("model_manager").ModelManager()


def node_manager(context: Context) -> Any:  # noqa: ANN401 - the user's class
    """This node's ModelManager with its data loaded (the first call loads it)."""
    partition = int(context.node_config["partition-id"])
    if partition not in _managers:
        started = time.time()
        data = json.loads(str(context.run_config["data"]))[partition]
        os.environ.update(data)
        manager = model_manager(context)
        manager.set_model_data()
        _managers[partition] = manager
        note(context, "client ready", partition=partition, seconds=time.time() - started)
    return _managers[partition]


def train(message: Message, context: Context) -> Message:
    """``fit_model`` from the global parameters; the new parameters and the example count."""
    manager = node_manager(context)
    manager.set_model_parameters(message.content["arrays"].to_numpy_ndarrays())
    with contextlib.redirect_stdout(io.StringIO()):
        examples = manager.fit_model()
    arrays = ArrayRecord([*manager.get_model_parameters()])
    content = RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": examples})})
    return Message(content=content, reply_to=message)


def evaluate(message: Message, context: Context) -> Message:
    """``evaluate_model`` of the aggregated parameters."""
    manager = node_manager(context)
    manager.set_model_parameters(message.content["arrays"].to_numpy_ndarrays())
    loss, accuracy, examples = manager.evaluate_model()
    metrics = {"loss": float(loss), "accuracy": float(accuracy), "num-examples": int(examples)}
    return Message(content=RecordDict({"metrics": MetricRecord(metrics)}), reply_to=message)


def main(grid: Grid, context: Context) -> None:
    """FedAvg over every node for the configured rounds, each round's metrics noted."""
    note(context, "server main")
    initial = ArrayRecord([*model_manager(context).get_model_parameters()])
    note(context, "initial parameters")
    nodes = int(context.run_config["nodes"])

    def evaluated(replies: list[RecordDict], key: str) -> MetricRecord:
        total = sum(int(r["metrics"][key]) for r in replies)
        loss = sum(float(r["metrics"]["loss"]) * int(r["metrics"][key]) for r in replies)
        right = sum(float(r["metrics"]["accuracy"]) * int(r["metrics"][key]) for r in replies)
        note(context, "round", loss=loss / total, accuracy=right / total, examples=total)
        return MetricRecord({"loss": loss / total, "accuracy": right / total})

    strategy = FedAvg(
        min_train_nodes=nodes,
        min_evaluate_nodes=nodes,
        min_available_nodes=nodes,
        evaluate_metrics_aggr_fn=evaluated,
    )
    strategy.start(grid=grid, initial_arrays=initial, num_rounds=int(context.run_config["rounds"]))
    note(context, "server done")


client_app = ClientApp()
client_app.train()(train)
client_app.evaluate()(evaluate)
server_app = ServerApp()
server_app.main()(main)
