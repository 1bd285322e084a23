"""The deployment files: the Kubernetes manifest's modules check against the example objects,
the DaemonSet has what BPF needs, the systemd unit's command parses, and every query of the
Grafana dashboard is valid PromQL (Prometheus's own promtool) over metrics the examples export.
(The Prometheus test runs the same queries against real data.)
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess

import pytest

yaml = pytest.importorskip("yaml")

from exporter_support import EXAMPLES, MODULES, REPO, example_object  # noqa: E402

from pybpf.cli import build_parser  # noqa: E402
from pybpf.exporter.config import read_module  # noqa: E402
from pybpf.exporter.module import prepare  # noqa: E402

DEPLOY = REPO / "deploy"
DASHBOARD = DEPLOY / "grafana" / "pybpf-exporter-examples.json"
OWN_METRICS = {"pybpf_exporter_module_up", "pybpf_exporter_scrape_duration_seconds",
               "pybpf_exporter_attach_failures_total", "pybpf_exporter_map_read_errors_total",
               "pybpf_exporter_decoder_errors_total"}


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the dashboard, Grafana's variables given values."""
    doc = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    return [e.replace("$__rate_interval", "1m").replace("$instance", ".*") for e in exprs]


def example_metric_names() -> set[str]:
    names = set(OWN_METRICS)
    for name in MODULES:
        doc = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
        for kind, items in doc["metrics"].items():
            for m in items:
                names |= {m["name"]} if kind == "counters" else \
                    {m["name"] + s for s in ("_bucket", "_sum", "_count")}
    return names


def test_dashboard_queries_are_valid_promql_over_exported_metrics(tmp_path):
    queries = dashboard_queries()
    assert len(queries) >= 10
    known = example_metric_names()
    for q in queries:
        used = set(re.findall(r"\b([a-z_]+(?:_total|_bucket|_sum|_count|_up|_seconds))\b", q))
        assert used and used <= known, (q, used - known)
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian's prometheus package) is not installed: run scripts/install-test-deps.sh"
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:query{i}", "expr": q}
                                                        for i, q in enumerate(queries)]}]}
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rules))
    res = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"SUCCESS: {len(queries)} rules found" in res.stdout


def test_kubernetes_manifest(tmp_path):
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "pybpf-exporter.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"Namespace", "ConfigMap", "DaemonSet"}
    pod = kinds["DaemonSet"]["spec"]["template"]["spec"]
    assert pod["hostPID"] is True
    container = pod["containers"][0]
    assert container["securityContext"]["privileged"] is True
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/sys/fs/bpf", "/sys/kernel/tracing", "/sys/fs/cgroup", "/etc/pybpf/exporter"} <= mounts
    host_paths = {v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    assert {"/sys/fs/bpf", "/sys/kernel/tracing", "/sys/fs/cgroup"} <= host_paths
    args = build_parser().parse_args(container["args"])
    assert args.config == "/etc/pybpf/exporter" and args.listen == ":9435"
    # Every module of the ConfigMap checks against the example objects (the image's paths mapped here).
    for file, text in kinds["ConfigMap"]["data"].items():
        name = file.removesuffix(".yaml")
        shutil.copy(example_object(name), tmp_path / f"{name}.bpf.o")
        text = text.replace("/usr/share/pybpf/exporter/", f"{tmp_path}/").replace("/host/lib/", "/lib/")
        (tmp_path / file).write_text(text)
        prepare(read_module(tmp_path / file))
    assert sorted(kinds["ConfigMap"]["data"]) == sorted(f"{m}.yaml" for m in MODULES)


def test_systemd_unit():
    unit = (DEPLOY / "pybpf-exporter.service").read_text()
    fields = dict(ln.split("=", 1) for ln in unit.splitlines() if "=" in ln and not ln.startswith("#"))
    argv = shlex.split(fields["ExecStart"])
    assert argv[0].endswith("/pybpf")
    args = build_parser().parse_args(argv[1:])
    assert args.config == "/etc/pybpf/exporter"
    assert fields["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert fields["KillSignal"] == "SIGTERM" and fields["RestartPreventExitStatus"] == "2"
    assert {"CAP_BPF", "CAP_PERFMON"} <= set(fields["CapabilityBoundingSet"].split())
