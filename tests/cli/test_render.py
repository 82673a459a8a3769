"""Round lines and the training summary of the CLI."""

from __future__ import annotations

import pytest

from cli import render
from protocol.events import Level, LogEntry, RoundMetrics

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


def test_the_summary_has_the_last_round_and_the_best_so_far() -> None:
    entries = [entry(1, "x"), round_entry(1, 0.5, 1.2), round_entry(2, 0.9, 0.5)]
    entries.append(round_entry(3, 0.85, 0.55))
    summary = render.training_summary(entries)
    assert summary is not None
    assert summary["round"] == 3 and summary["best"] == {"round": 2, "accuracy": 0.9, "loss": 0.5}
    assert render.training_line(summary).startswith("Training: round 3, accuracy 0.850")
    assert render.training_summary(entries[:1]) is None
