"""Untrusted text in log lines, the malformed-message throttle, and the rotating log (unit)."""

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from core.logs import OneLineFormatter, Throttle, shown
from tests.conftest import ROOT


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "'plain'"),
        ("a\nb\r\x1b[2J", "'a\\nb\\r\\x1b[2J'"),
        (b"\xff\xfe", "'\ufffd\ufffd'"),
        ("x" * 200, "'" + "x" * 120 + "'… (200 characters)"),
    ],
)
def test_shown_quotes_escapes_and_cuts(value: str | bytes, expected: str) -> None:
    assert shown(value) == expected


def record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("t", logging.WARNING, __file__, 1, msg, args, None)


def test_one_record_is_one_line_whatever_its_arguments() -> None:
    line = OneLineFormatter("%(levelname)s %(message)s").format(
        record("request %s", "x\n2099-01-01 ERROR forged\x1b[1m")
    )
    assert line == "WARNING request x\\n2099-01-01 ERROR forged\\x1b[1m"


def boom() -> None:
    raise ValueError("boom")


def test_a_traceback_keeps_its_lines() -> None:
    try:
        boom()
    except ValueError:
        entry = record("failed")
        entry.exc_info = sys.exc_info()
    text = OneLineFormatter("%(message)s").format(entry)
    assert text.startswith("failed\nTraceback") and text.endswith("ValueError: boom")


def test_the_throttle_logs_a_burst_then_counts(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    throttle = Throttle(logging.getLogger("throttled"), burst=3, window=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, "throttled"):
        for i in range(10):
            throttle.warning("bad message %d", i)
        now[0] = 61.0
        throttle.warning("bad message %d", 10)
    assert [r.getMessage() for r in caplog.records] == [
        "bad message 0",
        "bad message 1",
        "bad message 2",
        "the next malformed messages are counted, not logged, for 60s",
        "7 more malformed messages in 61s were not logged",
        "bad message 10",
    ]


ROTATING = """
import logging, os, sys
from pathlib import Path
from core import logs
path = Path(sys.argv[1])
logs.configure("INFO", logs.RotatingStderr(path, 1024, int(sys.argv[2])))
for i in range(40):
    logging.getLogger("t").info("line %03d %s", i, "x" * 80)
print("printed at the end", file=sys.stderr)
"""


@pytest.mark.parametrize("backups", [0, 1, 3])
def test_the_log_rotates_with_its_backups(tmp_path: Path, backups: int) -> None:
    log = tmp_path / "stack.log"
    with log.open("ab") as out:
        subprocess.run(
            [sys.executable, "-c", ROTATING, str(log), str(backups)],
            stdout=subprocess.DEVNULL,
            stderr=out,
            cwd=ROOT,
            check=True,
            timeout=30,
        )
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["stack.log", *(f"stack.log.{n}" for n in range(1, backups + 1))]
    assert all((tmp_path / n).stat().st_size < 1024 + 200 for n in names)
    text = log.read_text()
    assert text.endswith("printed at the end\n") and "line 039" in text
