"""The exporter scraped by a real Prometheus server (Debian's ``prometheus``).

The three example modules watch tests/bin/exporter_target.c, which makes an
exact number of calls; Prometheus scrapes the exporter every second into
its own temporary storage, and its HTTP query API (/api/v1/query) must
return exactly those numbers with the labels the decoders made — the
function names derived from BPF cookies included.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse

import pytest

pytestmark = pytest.mark.root  # against the kernel: needs root

pytest.importorskip("prometheus_client")
pytest.importorskip("yaml")

from exporter_support import (  # noqa: E402
    ALPHA, BETA, GETPPID, MODULES, PY_MODULES, SLOW, ExporterProcess, Workload, build_target, example_config, free_port, http_get,
)

from test_exporter_deploy import dashboard_queries  # noqa: E402

from pybpf import features  # noqa: E402

PROMETHEUS = shutil.which("prometheus")


class PrometheusServer:
    """``prometheus`` scraping one target every second, storage in ``tmp``."""

    def __init__(self, tmp, target: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = tmp / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: pybpf\n    static_configs:\n"
            f"      - targets: ['{target}']\n"
        )
        self.log = open(tmp / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )

    def query(self, expr: str) -> list[dict]:
        status, _, body = http_get(f"{self.url}/api/v1/query?query={urllib.parse.quote(expr)}")
        assert status == 200, body
        data = json.loads(body)
        assert data["status"] == "success", data
        return data["data"]["result"]

    def wait_for(self, expr: str, timeout: float = 30) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                result = self.query(expr)
                if result:
                    return result
            except OSError:
                pass            # not listening yet
            assert self.proc.poll() is None, "prometheus exited"
            assert time.monotonic() < deadline, f"no result for {expr!r} after {timeout} s"
            time.sleep(0.25)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def by_label(result: list[dict], label: str) -> dict[str, float]:
    return {r["metric"][label]: float(r["value"][1]) for r in result}


def test_prometheus_scrapes_exact_values_and_cookie_labels(tmp_path):
    assert PROMETHEUS is not None, "prometheus is not installed: run scripts/install-test-deps.sh"
    if not features.has("bpf_cookie"):
        pytest.skip("bpf_cookie is not supported by this kernel (the examples name functions by cookie)")
    target = build_target(tmp_path)
    work = Workload(target)
    config = example_config(tmp_path / "config", target, work.pid, MODULES + PY_MODULES)
    exp = ExporterProcess(config, tmp_path / "exporter.log")
    prom = None
    try:
        exp.wait_ready()
        work.run()
        prom = PrometheusServer(tmp_path, f"127.0.0.1:{exp.port}")
        up = prom.wait_for('up{job="pybpf"} == 1')
        assert up[0]["metric"]["instance"] == f"127.0.0.1:{exp.port}"

        calls = by_label(prom.wait_for("function_calls_total"), "function")
        assert calls == {"alpha": ALPHA, "beta": BETA, "sleepy": SLOW}
        # The Python (pybpf.lang) version of the same module.
        assert by_label(prom.query("function_calls_py_total"), "function") == {"alpha": ALPHA, "beta": BETA}
        series = prom.query('function_calls_total{function="alpha"}')
        assert series[0]["metric"] == {"__name__": "function_calls_total", "function": "alpha",
                                       "instance": f"127.0.0.1:{exp.port}", "job": "pybpf"}

        assert by_label(prom.query('syscalls_total{syscall="getppid"}'), "syscall") == {"getppid": GETPPID}
        assert len(prom.query("syscalls_total")) > 1           # the process made other syscalls too

        counts = by_label(prom.query("function_latency_seconds_count"), "function")
        assert counts == {"slow": SLOW, "alpha": ALPHA}
        below = prom.query('function_latency_seconds_bucket{function="slow", le="0.000524288"}')
        second = prom.query('function_latency_seconds_bucket{function="slow", le="1.073741824"}')
        assert float(below[0]["value"][1]) == 0 and float(second[0]["value"][1]) == SLOW
        total = float(prom.query('function_latency_seconds_sum{function="slow"}')[0]["value"][1])
        assert SLOW * 0.001 <= total < SLOW
        # PromQL over the exported buckets: the median of 1 ms sleeps lies in (2^19, 2^30] ns.
        median = float(prom.query('histogram_quantile(0.5, function_latency_seconds_bucket{function="slow"})')
                       [0]["value"][1])
        assert 0.000524288 < median <= 1.073741824

        modules = by_label(prom.query("pybpf_exporter_module_up"), "module")
        assert modules == {"syscalls": 1, "uprobe_counter": 1, "latency": 1, "calls_py": 1}
        assert by_label(prom.query("pybpf_exporter_attach_failures_total"), "module") == \
            {"syscalls": 0, "uprobe_counter": 0, "latency": 0, "calls_py": 0}

        # Every query of the Grafana dashboard (deploy/grafana) answers over these data.
        prom.wait_for('count_over_time(function_calls_total{function="alpha"}[1m]) >= 3')
        for expr in dashboard_queries():
            assert prom.query(expr), expr
    finally:
        if prom is not None:
            prom.stop()
        work.kill()
        assert exp.stop() == 0, exp.log()
