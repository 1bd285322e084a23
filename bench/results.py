"""What a bench hands to bench/report.py: measured samples, one row per implementation.

A bench calls :func:`add` beside what it prints; when it runs under
bench/report.py (``PYBPF_BENCH_JSON`` names a file) the rows are written
there at exit, and the report computes min, median and the ratio against
each anchor measured in the same run.  Run alone, a bench prints as before.

Example::

    from results import add
    add("map operations", "single lookup", "pybpf", samples_ns, "ns/op")
    add("map operations", "single lookup", "libbpf (C)", c_samples_ns, "ns/op", anchor=True)
"""

from __future__ import annotations

import atexit
import json
import os
from typing import Iterable

ENV = "PYBPF_BENCH_JSON"
_rows: list[dict] = []


def add(comparison: str, case: str, impl: str, samples: Iterable[float] | float, unit: str, *,
        anchor: bool = False, higher_is_better: bool = False, note: str = "") -> None:
    """Record ``samples`` (one value per repetition) of ``impl`` for ``case`` of ``comparison``."""
    values = [float(samples)] if isinstance(samples, (int, float)) else [float(s) for s in samples]
    _rows.append(dict(comparison=comparison, case=case, impl=impl, samples=values, unit=unit,
                      anchor=anchor, higher_is_better=higher_is_better, note=note))


def rows() -> list[dict]:
    return list(_rows)


@atexit.register
def _write() -> None:
    path = os.environ.get(ENV)
    if path and _rows:
        with open(path, "w") as f:
            json.dump(_rows, f)
