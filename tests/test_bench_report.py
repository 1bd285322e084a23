"""The benchmark report's smoke mode runs every comparison, so the harness cannot rot (issue 13).

Benchmarks are not tests: nothing here looks at a number, only that each
comparison ran, wrote its rows and its chart.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPARISONS = ["start-up", "object load", "CO-RE cold start", "uprobes with cookies",
               "the seed's claim: one program + N cookies vs N programs", "ring buffer records/s",
               "map operations", "exporter scrape"]


@pytest.mark.root  # the benchmarks load BPF programs
def test_smoke_report_has_every_comparison(tmp_path):
    out, plots = tmp_path / "BENCHMARKS.md", tmp_path / "plots"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "report.py"), "--smoke", "--out", str(out),
                           "--plots", str(plots)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    report = out.read_text()
    assert "smoke mode" in report and "| kernel | Linux" in report
    for comparison in COMPARISONS:
        assert f"\n## {comparison}\n" in report, comparison
    assert "failed:" not in report and "(exit " not in report and "timed out" not in report, report
    for name in ("tools_bench", "lang_bench"):          # run when they are there
        if (ROOT / "bench" / f"{name}.py").exists():
            assert f"### bench/{name}.py" in report
    charts = {p.name for p in plots.glob("*.png")}
    assert {"object_load.png", "co_re_cold_start.png", "uprobes_with_cookies.png"} <= charts, charts
