"""Acceptance tests of ``pybpf exporter`` against the kernel: the three example modules.

One exporter process serves the shipped examples (built by clang, pointed at
tests/bin/exporter_target.c); the workload makes an exact number of calls
and /metrics must show exactly those numbers, with cookie-derived labels.
Then SIGHUP (unchanged modules keep their objects and counts, a bad config
is refused) and SIGTERM (exit 0, no link or program left in the kernel).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.root  # against the kernel: needs root

pytest.importorskip("prometheus_client")
pytest.importorskip("yaml")

from exporter_support import (  # noqa: E402
    ALPHA, BETA, EXAMPLES, GETPPID, MODULES, PY_MODULES, SLOW, ExporterProcess, Workload, build_target,
    example_config, example_object, http_get, samples, value,
)

from pybpf import features  # noqa: E402
from pybpf.cli import main as cli_main  # noqa: E402


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    if not features.has("bpf_cookie"):
        pytest.skip("bpf_cookie is not supported by this kernel (the examples name functions by cookie)")
    tmp = tmp_path_factory.mktemp("exporter")
    target = build_target(tmp)
    work = Workload(target)
    config = example_config(tmp / "config", target, work.pid, MODULES + PY_MODULES)
    exp = ExporterProcess(config, tmp / "exporter.log")
    try:
        exp.wait_ready()
        work.run()
        yield exp, config
    finally:
        work.kill()
        exp.stop()


def program_ids(smp: dict) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for (name, labels), _ in smp.items():
        if name == "pybpf_exporter_program_info":
            d = dict(labels)
            out.setdefault(d["module"], set()).add(int(d["id"]))
    return out


def test_metrics_exact_counts_and_cookie_labels(running):
    exp, _ = running
    smp = exp.metrics()
    for module in MODULES + PY_MODULES:
        assert value(smp, "pybpf_exporter_module_up", module=module) == 1, exp.log()
        assert value(smp, "pybpf_exporter_attach_failures_total", module=module) == 0
        assert value(smp, "pybpf_exporter_map_read_errors_total", module=module) == 0
    assert value(smp, "pybpf_exporter_programs_loaded", module="latency") == 2
    # One program, one cookie per function: the names come from the config.
    assert value(smp, "function_calls_total", function="alpha") == ALPHA
    assert value(smp, "function_calls_total", function="beta") == BETA
    assert value(smp, "function_calls_total", function="sleepy") == SLOW
    assert {dict(k[1])["function"] for k in smp if k[0] == "function_calls_total"} == {"alpha", "beta", "sleepy"}
    # The same design written in Python, compiled by pybpf.compile when the module loaded.
    assert value(smp, "function_calls_py_total", function="alpha") == ALPHA
    assert value(smp, "function_calls_py_total", function="beta") == BETA
    # Per-CPU counts summed, the syscall named from its number.
    assert value(smp, "syscalls_total", syscall="getppid") == GETPPID
    # Latency: slow() sleeps 1 ms (>= 2^19 ns), and is far below a second.
    assert value(smp, "function_latency_seconds_count", function="slow") == SLOW
    assert value(smp, "function_latency_seconds_count", function="alpha") == ALPHA
    assert value(smp, "function_latency_seconds_bucket", function="slow", le="0.000524288") == 0
    assert value(smp, "function_latency_seconds_bucket", function="slow", le="1.073741824") == SLOW
    assert value(smp, "function_latency_seconds_bucket", function="slow", le="+Inf") == SLOW
    total = value(smp, "function_latency_seconds_sum", function="slow")
    assert SLOW * 0.001 <= total < SLOW * 1.0
    buckets = sorted((float(dict(k[1])["le"]), v) for k, v in smp.items()
                     if k[0] == "function_latency_seconds_bucket" and dict(k[1])["function"] == "alpha")
    assert [b for b, _ in buckets][0] == 2.0 ** 10 * 1e-9 and len(buckets) == 36 - 10 + 1 + 1
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:]))        # cumulative


def test_openmetrics_and_healthz(running):
    exp, _ = running
    status, ctype, body = http_get(exp.url + "/metrics", accept="application/openmetrics-text; version=1.0.0")
    assert status == 200 and ctype.startswith("application/openmetrics-text")
    assert body.rstrip().endswith("# EOF")
    assert 'function_calls_total{function="alpha"} 3.0' in body
    status, _, body = http_get(exp.url + "/healthz")
    assert status == 200
    assert sorted(body.split("\n")[:4]) == ["calls_py: up", "latency: up", "syscalls: up", "uprobe_counter: up"]
    assert http_get(exp.url + "/nope")[0] == 404


def test_gzip_answer_is_the_same_metrics(running):
    """Prometheus asks for gzip: the compressed answer decodes to the plain one's samples."""
    import gzip
    import urllib.request

    exp, _ = running
    req = urllib.request.Request(exp.url + "/metrics", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers["Content-Encoding"] == "gzip"
        raw = resp.read()
        assert int(resp.headers["Content-Length"]) == len(raw)
    zipped = samples(gzip.decompress(raw).decode())
    plain = samples(http_get(exp.url + "/metrics")[2])
    calls = {k: v for k, v in zipped.items() if k[0] == "function_calls_total"}
    assert calls == {k: v for k, v in plain.items() if k[0] == "function_calls_total"}
    assert calls[("function_calls_total", frozenset({("function", "alpha")}))] == 3


def test_sighup_keeps_unchanged_modules_and_refuses_bad_config(running):
    exp, config = running
    before = exp.metrics()
    ids = program_ids(before)
    # Change one module (its help text): it restarts; the others keep their objects and counts.
    text = (config / "syscalls.yaml").read_text()
    (config / "syscalls.yaml").write_text(text.replace("System calls entered", "Syscalls entered"))
    exp.signal(signal.SIGHUP)
    deadline = time.monotonic() + 15
    while value(smp := exp.metrics(), "pybpf_exporter_config_reloads_total", result="success") != 1:
        assert time.monotonic() < deadline, exp.log()
        time.sleep(0.1)
    after = program_ids(smp)
    assert after["uprobe_counter"] == ids["uprobe_counter"] and after["latency"] == ids["latency"]
    assert after["calls_py"] == ids["calls_py"]
    assert after["syscalls"] != ids["syscalls"]
    assert value(smp, "function_calls_total", function="beta") == BETA
    assert value(smp, "function_latency_seconds_count", function="slow") == SLOW
    assert value(smp, "pybpf_exporter_config_last_reload_successful") == 1

    # A bad config on reload: refused, reported, the running modules untouched.
    good = (config / "uprobe_counter.yaml").read_text()
    (config / "uprobe_counter.yaml").write_text(good.replace("table: calls_total", "table: no_such_map"))
    try:
        exp.signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while value(smp := exp.metrics(), "pybpf_exporter_config_reloads_total", result="failure") != 1:
            assert time.monotonic() < deadline, exp.log()
            time.sleep(0.1)
        assert value(smp, "pybpf_exporter_config_last_reload_successful") == 0
        assert program_ids(smp) == after
        assert value(smp, "function_calls_total", function="alpha") == ALPHA
        line = next(i + 1 for i, ln in enumerate(good.splitlines()) if ln.lstrip().startswith("- name: function_calls"))
        assert (f"uprobe_counter.yaml:{line}: metrics.counters[0].table: unknown map 'no_such_map' "
                f"(known: calls_total)") in exp.log()
        assert "last reload refused" in http_get(exp.url + "/healthz")[2]
    finally:
        (config / "uprobe_counter.yaml").write_text(good)


def kernel_objects(pid: int) -> tuple[set[int], set[int]]:
    """(link ids, program ids) of the BPF fds process ``pid`` holds, from /proc/PID/fdinfo."""
    links, progs = set(), set()
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                info = dict(ln.split(":", 1) for ln in f.read().splitlines() if ":" in ln)
        except OSError:
            continue
        if "link_id" in info:
            links.add(int(info["link_id"]))
            progs.add(int(info["prog_id"]))
        elif "prog_id" in info and "prog_type" in info:
            progs.add(int(info["prog_id"]))
    return links, progs


def test_sigterm_detaches_everything(tmp_path):
    if not features.has("bpf_cookie"):
        pytest.skip("bpf_cookie is not supported by this kernel")
    target = build_target(tmp_path)
    config = example_config(tmp_path / "config", target, 1)
    exp = ExporterProcess(config, tmp_path / "exporter.log")
    try:
        exp.wait_ready()
        ids = set().union(*program_ids(exp.metrics()).values())
        assert len(ids) == 4
        links, progs = kernel_objects(exp.proc.pid)
        assert ids <= progs
        assert len(links) >= 4                      # a tracepoint, and one link per uprobe list at least
        shown = json.loads(subprocess.run(["bpftool", "-j", "link", "show"], capture_output=True, text=True,
                                          check=True).stdout)
        assert links <= {lk["id"] for lk in shown}
    finally:
        rc = exp.stop()
    assert rc == 0, exp.log()
    shown = json.loads(subprocess.run(["bpftool", "-j", "link", "show"], capture_output=True, text=True,
                                      check=True).stdout)
    assert not links & {lk["id"] for lk in shown}
    for prog_id in progs:
        res = subprocess.run(["bpftool", "prog", "show", "id", str(prog_id)], capture_output=True, text=True)
        assert res.returncode != 0, res.stdout


@pytest.mark.parametrize("mutation, message", [
    (lambda t: t.replace("table: calls_total", "table: callz"),
     "{f}:{line}: metrics.counters[0].table: unknown map 'callz' (known: calls_total)"),
    (lambda t: t.replace("program: count_call", "program: count_cal"),
     "{f}:{attach}: attach[0].program: unknown program 'count_cal' (known: count_call)"),
    (lambda t: t.replace("name: cookie", "name: cookiez"),
     "{f}:{decoder}: metrics.counters[0].labels[0].decoders[0].name: unknown decoder 'cookiez'"),
    (lambda t: t.replace("table: calls_total", "table: calls_total: x"),
     "{f}:{table}: YAML: mapping values are not allowed here"),
])
def test_bad_config_exits_2_naming_file_line_field(tmp_path, capsys, mutation, message):
    config = tmp_path / "uprobe_counter.yaml"
    shutil.copy(example_object("uprobe_counter"), tmp_path / "uprobe_counter.bpf.o")
    good = (EXAMPLES / "uprobe_counter.yaml").read_text()
    lines = good.splitlines()

    def line_of(prefix: str) -> int:
        return next(i + 1 for i, ln in enumerate(lines) if ln.lstrip().startswith(prefix))
    config.write_text(mutation(good))
    # In this process (the exit status of a real process: the Python module test below).
    rc = cli_main(["exporter", "--config", str(config), "--listen", "127.0.0.1:0"])
    stderr = capsys.readouterr().err
    assert rc == 2, stderr
    expected = message.format(f=config, line=line_of("- name: function_calls"), attach=line_of("- program:"),
                              decoder=line_of("- name: cookie"), table=line_of("table:"))
    assert expected in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_python_module_compile_error_exits_2_naming_the_line(tmp_path):
    # A real process: its exit status is 2.
    source = (EXAMPLES / "calls_py.py").read_text()
    bad = source.replace("calls_py_total[ctx.cookie] += 1", "calls_py_total[ctx.cookie] += len([1, 2])")
    assert bad != source
    (tmp_path / "calls_py.py").write_text(bad)
    (tmp_path / "calls_py.yaml").write_text((EXAMPLES / "calls_py.yaml").read_text())
    line = next(i + 1 for i, ln in enumerate(bad.splitlines()) if "len([1, 2])" in ln)
    res = subprocess.run([sys.executable, "-m", "pybpf.cli", "exporter", "--config", str(tmp_path),
                          "--listen", "127.0.0.1:0"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res.stderr
    assert f"{tmp_path / 'calls_py.yaml'}: object: calls_py.py: program 'count_call_py': " \
           f"{tmp_path / 'calls_py.py'}:{line}:" in res.stderr
    assert "'len' cannot be called from a BPF program" in res.stderr


def test_failing_modules_are_reported_and_the_others_keep_running(tmp_path):
    if not features.has("bpf_cookie"):
        pytest.skip("bpf_cookie is not supported by this kernel")
    from buildprogs import build

    target = build_target(tmp_path)
    work = Workload(target)
    config = example_config(tmp_path / "config", target, work.pid, ("uprobe_counter",))
    # A module the verifier refuses, and one whose attach point does not exist.
    shutil.copy(build("exporter_broken"), config / "broken.bpf.o")
    (config / "broken.yaml").write_text("metrics:\n  counters:\n    - name: broken_total\n")
    missing = (config / "uprobe_counter.yaml").read_text().replace("function_calls_total", "missing_calls_total")
    (config / "missing.yaml").write_text(missing.replace("- beta", "- no_such_function"))
    shutil.copy(config / "uprobe_counter.bpf.o", config / "missing.bpf.o")
    exp = ExporterProcess(config, tmp_path / "exporter.log")
    try:
        exp.wait_ready()
        work.run()
        smp = exp.metrics()
        assert value(smp, "pybpf_exporter_module_up", module="uprobe_counter") == 1
        assert value(smp, "pybpf_exporter_module_up", module="broken") == 0
        assert value(smp, "pybpf_exporter_programs_loaded", module="broken") == 0
        assert value(smp, "pybpf_exporter_module_up", module="missing") == 0
        assert value(smp, "pybpf_exporter_attach_failures_total", module="missing") == 1
        assert value(smp, "function_calls_total", function="alpha") == ALPHA
        assert value(smp, "function_calls_total", function="beta") == BETA
        status, _, body = http_get(exp.url + "/healthz")
        assert status == 200 and "uprobe_counter: up" in body
        assert "broken: down: load: " in body and "missing: down: attach[0] (uprobe " in body
        assert "no_such_function" in body
        assert "module 'broken': load: " in exp.log()
    finally:
        work.kill()
        assert exp.stop() == 0


def test_tracepoint_attach_point_from_config_with_cookie(tmp_path):
    """The syscalls program attached where the config says, its cookie named there too."""
    from pybpf.exporter.service import Exporter

    target = build_target(tmp_path)
    work = Workload(target)
    config = example_config(tmp_path / "config", target, work.pid, ("syscalls",))
    text = (config / "syscalls.yaml").read_text()
    (config / "syscalls.yaml").write_text(
        "attach:\n  - program: count_syscall\n    tracepoint: raw_syscalls/sys_enter\n"
        "    cookie: 42\n    name: every_syscall\n" + text)
    exp = Exporter(str(config))
    try:
        exp.start()
        mod = exp.modules["syscalls"]
        assert mod.up, mod.error
        assert mod.config.cookie_names == {42: "every_syscall"}
        link = mod.links[0]
        assert link.info().prog_id == mod.programs["count_syscall"].id
        assert link.cookie == 42          # what was asked (the kernel reports it from Linux 6.9)
        work.run()
        families = {f.name: f for f in exp.collect()}
        counts = {s.labels["syscall"]: s.value for s in families["syscalls"].samples}
        assert counts["getppid"] == GETPPID
    finally:
        work.kill()
        exp.close()
