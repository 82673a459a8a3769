"""Round lines and the training summary of the CLI."""

from __future__ import annotations

import pytest

from cli import render
from protocol.events import BestRound, Level, LogEntry, RoundMetrics

pytestmark = pytest.mark.timeout(10)


def entry(seq: int, text: str, data: RoundMetrics | None = None) -> LogEntry:
    return LogEntry(
        seq=seq, event_id="0" * 32, project_id="p" * 24, ts=0.0, source="aggr", level=Level.INFO,
        text=text, data=data,
    )  # fmt: skip


def round_entry(number: int, accuracy: float, loss: float) -> LogEntry:
    data = RoundMetrics(
        round=number, loss=loss, accuracy=accuracy, examples=10, learners=2, seconds=0.1
    )
    return entry(number, f"Round {number}/3: loss {loss:.3f}, accuracy {accuracy:.3f}", data)


def test_a_round_line_has_a_bar_on_a_terminal_only() -> None:
    line = round_entry(2, 0.8, 0.6)
    assert render.log_line(line, terminal=True).endswith("[#############-------] 2/3")
    assert "[" not in render.log_line(line)
    assert "[" not in render.log_line(entry(9, "Aggregator tasks completed successfully."), True)


def test_the_summary_has_the_last_round_and_the_aggregators_best_so_far() -> None:
    best = BestRound(round=2, accuracy=0.9, loss=0.5)
    last = RoundMetrics(
        round=3, loss=0.55, accuracy=0.85, examples=10, learners=2, seconds=0.1, best=best
    )
    summary = render.training_summary(last)
    assert summary is not None
    assert summary["round"] == 3 and summary["best"] == {"round": 2, "accuracy": 0.9, "loss": 0.5}
    assert render.training_line(summary).startswith("Training: round 3, accuracy 0.850")
    assert render.training_summary(None) is None
    alone = render.training_summary(last.model_copy(update={"best": None}))  # older aggregators
    assert alone is not None and alone["best"]["round"] == 3
