"""Output helpers shared by the subcommands."""

from __future__ import annotations

import json
import sys
from typing import Any, Sequence, TextIO


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO | None = None) -> None:
    """Print rows under headers in left-aligned columns (the last column is not padded)."""
    out = out or sys.stdout
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        padded = [c.ljust(w) for c, w in zip(row[:-1], widths)] + [row[-1]]
        print("  ".join(padded).rstrip(), file=out)


def print_json(value: Any, out: TextIO | None = None) -> None:
    """Print ``value`` as one JSON document and a newline."""
    out = out or sys.stdout
    json.dump(value, out)
    out.write("\n")
