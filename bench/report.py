"""The printed table: scenario, figure, value, baseline, ratio, target, met.

``python -m bench.report FILE.json`` prints a results file's table in Markdown.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.harness import Row

HEADERS = ["scenario", "figure", "value", "baseline", "ratio", "target", "met"]


def number(value: float | None, unit: str = "") -> str:
    """A figure for people: thousands separated, at most 3 significant decimals."""
    if value is None:
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"
    return f"{text} {unit}".strip()


def met(row: Row) -> str:
    """``yes``, ``no``, or ``n/a`` (no target, or its level not reached)."""
    if row.met is None:
        return "n/a" if row.target else ""
    return "yes" if row.met else "no"


def cells(row: Row) -> list[str]:
    """One row's cells."""
    ratio = row.ratio
    return [
        row.scenario,
        row.figure,
        number(row.value, row.unit),
        number(row.baseline, row.unit),
        "-" if ratio is None else f"{ratio:.2f}x",
        row.target,
        met(row),
    ]


def table(rows: list[Row]) -> str:
    """A plain-text table, one line per figure."""
    lines = [HEADERS, *(cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADERS))]
    out = []
    for n, line in enumerate(lines):
        out.append("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def markdown(rows: list[Row]) -> str:
    """The same table in Markdown (for docs/performance.md)."""
    out = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in cells(r)) + " |" for r in rows]
    return "\n".join(out)


def rows_of(document: dict[str, object]) -> list[Row]:
    """The rows of a results document, in scenario order."""
    scenarios = document["scenarios"]
    if not isinstance(scenarios, dict):
        raise TypeError("not a results document")
    fields = ("scenario", "figure", "value", "unit", "baseline", "target", "met", "note")
    return [Row(**{k: r[k] for k in fields}) for rows in scenarios.values() for r in rows]


def main(argv: list[str]) -> int:
    """Print the Markdown table of each results file named in ``argv``."""
    if not argv or argv[0] in ("-h", "--help"):
        print(
            "usage: python -m bench.report RESULTS.json [...]  (files written by python -m bench)"
        )
        return 0 if argv else 2
    for name in argv:
        try:
            document = json.loads(Path(name).read_text())
        except (OSError, ValueError) as exc:
            print(f"bench.report: cannot read {name}: {exc}", file=sys.stderr)
            return 1
        print(f"`{document['command']}`, {document['started_at']}, {document['duration_s']} s\n")
        print(markdown(rows_of(document)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
