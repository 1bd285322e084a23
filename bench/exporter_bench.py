#!/usr/bin/env python3
"""The exporter's cost: scrapes of 10,000 series, and CPU per million events per second.

    python3 bench/exporter_bench.py [--series 10000] [--scrapes 200] [--events 200000]

**Scrape.** ``pybpf exporter`` runs as its own process with one module
(bench/progs/exporter_series.bpf.c: a hash map keyed by {pid, cpu, cookie},
three labels decoded by ``uint``, ``uint`` and ``cookie``).  The bench fills
the map with ``--series`` entries from outside (the map found through the
exporter's /proc/PID/fdinfo, written with one batch update), checks one
scrape holds exactly those series and counts, then times ``--scrapes``
scrapes of /metrics over HTTP (text format, OpenMetrics, and as Prometheus
asks: OpenMetrics gzipped): client-side latency p50/p99, and the exporter's
CPU (utime+stime from /proc/PID/stat) per scrape.  The module's own
``pybpf_exporter_scrape_duration_seconds`` (map read + label decoding) is
reported beside it.  ebpf_exporter's design
point is the anchor: it reads each map once per scrape with batch lookups;
so does this exporter, and the bench shows what the batch reads save by
timing the same 10,000-entry map read with BPF_MAP_LOOKUP_BATCH and with
GET_NEXT_KEY + LOOKUP per key.

**Events.** The example modules (examples/exporter) watch
tests/bin/exporter_target.c: ``--events`` calls of one function under the
uprobe counter (one program, a cookie per function) and ``--events`` × 5
getppid system calls under the raw_syscalls tracepoint counter.  Each run
is timed without and with the module attached (best of 3); the difference
per event is the whole cost (uprobe trap included), and BPF_ENABLE_STATS
gives the time inside the BPF program.  CPU per 1M events/s = cost per
event × 10^6 / 10^9 CPU-seconds per second.

Needs root, cc, clang-19, libbpf-dev (headers), bpftool and the exporter
extra (prometheus_client, pyyaml).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from buildprogs import build_file  # noqa: E402
from exporter_support import ExporterProcess, build_target, example_config, http_get, samples  # noqa: E402

from pybpf.maps import Map  # noqa: E402
from pybpf.maps import batch as map_batch  # noqa: E402
from pybpf.program import enable_stats  # noqa: E402
from results import add  # noqa: E402

BUILD = HERE / "build"
SERIES_SOURCE = HERE / "progs" / "exporter_series.bpf.c"
CLK_TCK = os.sysconf("SC_CLK_TCK")

SERIES_CONFIG = """\
object: {obj}
attach: []                     # the bench writes the map itself
metrics:
  counters:
    - name: series_calls_total
      help: Calls per process, CPU and function
      table: series_total
      labels:
        - name: pid
          decoders: [{{name: uint}}]
        - name: cpu
          decoders: [{{name: uint}}]
        - name: function
          decoders: [{{name: cookie}}]
"""


OPENMETRICS = "application/openmetrics-text; version=1.0.0"
# What Prometheus 2.x sends (it also asks for gzip).
PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


def scrape(url: str, headers: dict[str, str]) -> bytes:
    """The body of one /metrics answer, as sent (compressed when gzip was asked for)."""
    with urllib.request.urlopen(urllib.request.Request(url + "/metrics", headers=headers), timeout=30) as resp:
        assert resp.status == 200
        return resp.read()


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK     # utime, stime


def exporter_map(pid: int, name: str) -> Map:
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                info = dict(ln.split(":", 1) for ln in f.read().splitlines() if ":" in ln)
        except OSError:
            continue
        if "map_id" in info:
            m = Map.from_id(int(info["map_id"]))
            if m.info().name == name:
                return m
            m.close()
    raise SystemExit(f"map {name!r} not found in process {pid}")


def series_keys(n: int) -> list[bytes]:
    return [(1000 + i // 64).to_bytes(4, "little") + (i % 4).to_bytes(4, "little") + i.to_bytes(8, "little")
            for i in range(n)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_scrapes(tmp: Path, n_series: int, n_scrapes: int) -> None:
    obj = build_file(SERIES_SOURCE, BUILD)
    config = tmp / "series.yaml"
    config.write_text(SERIES_CONFIG.format(obj=obj))
    exp = ExporterProcess(config, tmp / "series.log")
    try:
        exp.wait_ready()
        m = exporter_map(exp.proc.pid, "series_total")
        m.set_codecs(key=16, value="u64")
        keys = series_keys(n_series)
        m.update_batch(keys, [i + 1 for i in range(n_series)])
        smp = exp.metrics()
        got = {k: v for k, v in smp.items() if k[0] == "series_calls_total"}
        assert len(got) == n_series, f"{len(got)} series"
        assert sum(got.values()) == n_series * (n_series + 1) // 2

        for headers, label in (({}, "text"), ({"Accept": OPENMETRICS}, "openmetrics"),
                               ({"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"}, "as Prometheus")):
            for _ in range(5):
                scrape(exp.url, headers)
            latencies = []
            cpu0 = cpu_seconds(exp.proc.pid)
            size = 0
            for _ in range(n_scrapes):
                t0 = time.perf_counter()
                size = len(scrape(exp.url, headers))
                latencies.append(time.perf_counter() - t0)
            cpu = (cpu_seconds(exp.proc.pid) - cpu0) / n_scrapes
            add("exporter scrape", f"{n_series:,} series, {label}", "pybpf exporter (client latency)",
                [1e3 * t for t in latencies], "ms")
            print(f"scrape {label:13s} {n_series} series, {size / 1e6:.2f} MB: p50 {1e3 * percentile(latencies, 0.5):.1f} ms"
                  f"  p99 {1e3 * percentile(latencies, 0.99):.1f} ms  max {1e3 * max(latencies):.1f} ms"
                  f"  exporter CPU {1e3 * cpu:.1f} ms/scrape")
        inner = samples(http_get(exp.url + "/metrics")[2])
        read = inner[("pybpf_exporter_scrape_duration_seconds", frozenset({("module", "series")}))]
        print(f"  of which map read + decode (pybpf_exporter_scrape_duration_seconds): {1e3 * read:.1f} ms")

        # The same map read with batch lookups and key by key.
        timings = {}
        for how in ("batch", "per-key"):
            runs = []
            for _ in range(7):
                t0 = time.perf_counter()
                if how == "batch":
                    n = sum(len(ks) for ks, _ in m.lookup_batch())
                else:
                    n = sum(1 for k in map_batch._walk_keys(m) if m.get(k) is not None)
                runs.append(time.perf_counter() - t0)
                assert n == n_series
            timings[how] = statistics.median(runs)
            add("exporter scrape", f"map read of {n_series:,} entries", f"pybpf {how}", [1e3 * t for t in runs], "ms",
                anchor=how == "per-key")
        print(f"map read of {n_series} entries: batch {1e3 * timings['batch']:.1f} ms, per key "
              f"{1e3 * timings['per-key']:.1f} ms ({timings['per-key'] / timings['batch']:.1f}x)")
        m.close()
    finally:
        exp.stop()


def run_target(binary: Path, args: list[int], on_ready=None) -> float:
    """Seconds the target takes after its go line (its own startup excluded)."""
    proc = subprocess.Popen([str(binary), *map(str, args), "wait"], stdin=subprocess.PIPE)
    try:
        if on_ready is not None:
            on_ready(proc.pid)
        t0 = time.perf_counter()
        proc.stdin.write(b"go\n")
        proc.stdin.close()
        assert proc.wait(timeout=300) == 0
        return time.perf_counter() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def bench_events(tmp: Path, n_events: int) -> None:
    from pybpf.exporter.config import read_module
    from pybpf.exporter.module import Module, prepare

    target = build_target(tmp)
    cases = (("uprobe_counter", [n_events, 0, 0, 0], n_events, "count_call", "uprobe (function calls)"),
             ("syscalls", [0, 0, 0, 5 * n_events], 5 * n_events, "count_syscall", "raw_syscalls tracepoint"))
    for module, args, events, program, what in cases:
        base = min(run_target(target, args) for _ in range(3))
        runs, in_prog = [], []
        for _ in range(3):
            state = {}

            def attach(pid: int, module=module) -> None:
                cfg_dir = example_config(tmp / f"cfg-{module}-{pid}", target, pid, modules=(module,))
                mod = Module(prepare(read_module(cfg_dir / f"{module}.yaml")))
                mod.start()
                assert mod.up, mod.error
                state["mod"] = mod
            with enable_stats():
                elapsed = run_target(target, args, attach)
                stats = {name: (ns, count) for name, _, _, ns, count in state["mod"].program_stats()}
            state["mod"].close()
            runs.append(elapsed)
            run_ns, run_count = stats[program]
            in_prog.append(run_ns / max(run_count, 1))
            assert run_count >= events, (run_count, events)
        cost = (min(runs) - base) / events
        add("tracing overhead (exporter modules)", what, "pybpf exporter module", [1e9 * (r - base) / events for r in runs],
            "ns/event")
        print(f"{what}: {events} events, {1e9 * cost:.0f} ns per event in all "
              f"({1e9 * base / events:.0f} ns per call without the probe), "
              f"{statistics.median(in_prog):.0f} ns in the BPF program: "
              f"{cost * 1e6:.2f} CPU per 1M events/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=10000)
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--events", type=int, default=200000)
    args = parser.parse_args()
    BUILD.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="exporter-bench-") as d:
        bench_scrapes(Path(d), args.series, args.scrapes)
        bench_events(Path(d), args.events)


if __name__ == "__main__":
    main()
