#!/usr/bin/env python3
"""pybpf's ELF loader against libbpf, on the same machine, in one run.

    python3 bench/load_bench.py [--iterations N] [--rounds K] [--cold-runs C]

Builds with clang-19 into bench/build/ three objects:

- bench/progs/ten_progs.bpf.c: 10 programs of assorted types, four maps,
  global data; no CO-RE, but some of its program types make libbpf read the
  kernel's BTF on every load (pybpf caches it per process);
- ten_xdp, tests/progs/obj_many.bpf.c: 10 XDP programs, one array map, .rodata/.bss and
  a shared subprogram; nothing needs the kernel's BTF, so this compares the
  bare loaders;
- bench/progs/core_task.bpf.c: CO-RE reads of task_struct (needs the kernel's
  BTF);

and bench/c/load_bench.c against libbpf-dev.  Then:

1. Loader, in process: for each object, N iterations (default 30) of
   parse + create maps + load programs + close, timed per stage; the median
   of iterations 2..N is kept, and the best of K rounds (default 3; C and
   Python alternate, the machines are shared).  libbpf side:
   bpf_object__open_file + bpf_object__load + bpf_object__close.
   Goal: pybpf total within 1.5x of libbpf.  With strace installed, the
   bpf(2) calls of one warm load+close are counted for both (strace -c over
   N+1 iterations minus 1 iteration, divided by N).  Then the time spent
   inside bpf(2), by command, with bench/c/bpf_time.c preloaded (it wraps
   libc's syscall(), which libbpf and pybpf's ctypes both call), the same
   way; "user space and other syscalls" is the total minus that.
2. CO-RE cold start: a fresh ``python3`` process imports pybpf and loads
   core_task (which makes pybpf parse /sys/kernel/btf/vmlinux); measured from
   just before the process is spawned to "loaded", with the interpreter start
   and ``import pybpf`` reported separately, then a second and a third load
   in the same process (the kernel BTF is cached).  Best of C runs (default 5).
   Goal: first CO-RE load, all included, under 200 ms.  Measured with the
   bytecode cache an installed package has (kept in bench/build/pycache), and
   again without (as under PYTHONDONTWRITEBYTECODE=1).
3. The cost of that cache: RSS growth over the first CO-RE load, and the
   tracemalloc peak of the same in another fresh process.  Goal: under 100 MB.

Needs root (or CAP_BPF + CAP_PERFMON), clang-19 and libbpf-dev.  Benchmarks
are not tests: nothing here fails on a missed goal, the table says it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from buildprogs import build, build_file  # noqa: E402

BUILD = HERE / "build"
C_SOURCE = HERE / "c" / "load_bench.c"
C_BINARY = BUILD / "load_bench"
TIMER_SOURCE = HERE / "c" / "bpf_time.c"
TIMER_LIB = BUILD / "bpf_time.so"
OBJECTS = ("ten_progs", "ten_xdp", "core_task")
KTIME_N = 200  # iterations of the bpf_time runs
KERNEL_BTF = {"ten_progs": "libbpf reads kernel BTF per load", "ten_xdp": "no kernel BTF needed",
              "core_task": "CO-RE: kernel BTF"}


# ----------------------------------------------------------------------------- build

def build_object(name: str) -> Path:
    if name == "ten_xdp":  # the loader tests' own 10-XDP-program object
        return build("obj_many")
    return build_file(HERE / "progs" / f"{name}.bpf.c", BUILD)


def build_c() -> Path:
    BUILD.mkdir(parents=True, exist_ok=True)
    if not C_BINARY.exists() or C_BINARY.stat().st_mtime < C_SOURCE.stat().st_mtime:
        cmd = ["cc", "-O2", "-o", str(C_BINARY), str(C_SOURCE), "-lbpf", "-lelf", "-lz"]
        print("building:", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    if not TIMER_LIB.exists() or TIMER_LIB.stat().st_mtime < TIMER_SOURCE.stat().st_mtime:
        cmd = ["cc", "-O2", "-shared", "-fPIC", "-o", str(TIMER_LIB), str(TIMER_SOURCE), "-ldl"]
        print("building:", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    return C_BINARY


# ----------------------------------------------------------------------------- in-process loader timing

def run_libbpf(obj: Path, iterations: int) -> dict[str, float]:
    out = subprocess.run([str(C_BINARY), str(obj), str(iterations)], check=True, capture_output=True,
                         text=True).stdout
    values = {name: int(value) / 1e6 for name, value in (line.split() for line in out.splitlines())}
    return {"parse": values["open_median"], "load": values["load_median"], "close": values["close_median"],
            "total": values["total_median"], "first": values["first_total"], "cpu": values["cpu_mean"]}


def run_pybpf(obj: Path, iterations: int) -> dict[str, float]:
    import pybpf

    parse, load, close, total = [], [], [], []
    cpu0 = 0.0
    for i in range(iterations):
        if i == 1:
            cpu0 = time.process_time()   # user + system, every thread of the process
        t0 = time.perf_counter()
        spec = pybpf.ObjectSpec.from_file(obj)
        t1 = time.perf_counter()
        loaded = spec.load()
        t2 = time.perf_counter()
        loaded.close()
        t3 = time.perf_counter()
        parse.append(t1 - t0)
        load.append(t2 - t1)
        close.append(t3 - t2)
        total.append(t3 - t0)
    med = lambda xs: statistics.median(xs[1:]) * 1e3  # noqa: E731
    return {"parse": med(parse), "load": med(load), "close": med(close), "total": med(total),
            "first": total[0] * 1e3, "cpu": (time.process_time() - cpu0) / (iterations - 1) * 1e3}


RUN_PYBPF_CHILD = r"""
import json, sys
sys.path[:0] = [{bench!r}, {src!r}, {tests!r}]
from load_bench import run_pybpf
print(json.dumps(run_pybpf({obj!r}, {n})))
"""


def run_pybpf_on(python: str, obj: Path, iterations: int) -> dict[str, float]:
    """:func:`run_pybpf` in a process of another interpreter (pybpf needs only the standard library)."""
    code = RUN_PYBPF_CHILD.format(bench=str(HERE), src=str(ROOT / "src"), tests=str(ROOT / "tests"),
                                  obj=str(obj), n=iterations)
    out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[-1])


PY_COUNT_CHILD = r"""
import sys
sys.path.insert(0, {src!r})
import pybpf
for _ in range({n}):
    pybpf.ObjectSpec.from_file({obj!r}).load().close()
"""


def _strace_bpf_calls(argv: list[str]) -> dict[str, int] | None:
    """bpf(2) calls of ``argv`` by command, from ``strace -f -c -e trace=bpf`` (None without strace)."""
    import shutil

    if shutil.which("strace") is None:
        return None
    res = subprocess.run(["strace", "-f", "-qq", "-e", "trace=bpf", "-e", "signal=none", "-o", "/dev/stdout",
                          "-e", "abbrev=all", *argv], capture_output=True, text=True)
    if res.returncode != 0:
        return None
    counts: dict[str, int] = {}
    for line in res.stdout.splitlines():
        i = line.find("bpf(")
        if i < 0:
            continue
        cmd = line[i + 4:].split(",", 1)[0]
        counts[cmd] = counts.get(cmd, 0) + 1
    return counts


def syscalls_per_load(obj: Path, n: int = 10) -> tuple[dict[str, float], dict[str, float]] | None:
    """Warm bpf(2) calls per load+close, by command: (pybpf, libbpf)."""
    def per_load(make) -> dict[str, float] | None:
        one, many = _strace_bpf_calls(make(1)), _strace_bpf_calls(make(n + 1))
        if one is None or many is None:
            return None
        return {k: (many.get(k, 0) - one.get(k, 0)) / n for k in sorted(set(one) | set(many))
                if many.get(k, 0) != one.get(k, 0)}

    py = per_load(lambda k: [sys.executable, "-c", PY_COUNT_CHILD.format(src=str(ROOT / "src"), obj=str(obj),
                                                                             n=k)])
    # load_bench needs ITERATIONS >= 2: count 2 and n + 2
    c_one = _strace_bpf_calls([str(C_BINARY), str(obj), "2"])
    c_many = _strace_bpf_calls([str(C_BINARY), str(obj), str(n + 2)])
    if py is None or c_one is None or c_many is None:
        return None
    c = {k: (c_many.get(k, 0) - c_one.get(k, 0)) / n for k in sorted(set(c_one) | set(c_many))
         if c_many.get(k, 0) != c_one.get(k, 0)}
    return py, c


def _bpf_time(argv: list[str]) -> tuple[dict[int, tuple[int, int]], float]:
    """({bpf command: (calls, nanoseconds inside bpf(2))}, wall seconds) of ``argv``, run with
    bpf_time.so preloaded."""
    import tempfile

    with tempfile.NamedTemporaryFile("r", suffix=".bpf_time") as out:
        env = dict(os.environ, LD_PRELOAD=str(TIMER_LIB), BPF_TIME_OUT=out.name)
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, check=True, capture_output=True)
        wall = time.perf_counter() - t0
        result = {}
        for line in out.read().splitlines():
            cmd, calls, ns = (int(x) for x in line.split())
            result[cmd] = (calls, ns)
    return result, wall


def kernel_time_per_load(obj: Path, n: int = 100) -> tuple[tuple[dict[str, tuple[float, float]], float], ...]:
    """Per warm parse+load+close, for (pybpf, libbpf): ({command: (bpf(2) calls, microseconds inside
    bpf(2))}, mean milliseconds per iteration, from the same two runs)."""
    from pybpf._sys.uapi import Cmd

    def name(cmd: int) -> str:
        try:
            return Cmd(cmd).name
        except ValueError:
            return str(cmd)

    def per_load(make) -> tuple[dict[str, tuple[float, float]], float]:
        (few, wall_few), (many, wall_many) = _bpf_time(make(2)), _bpf_time(make(n + 2))
        out = {}
        for cmd in sorted(set(few) | set(many)):
            calls = (many.get(cmd, (0, 0))[0] - few.get(cmd, (0, 0))[0]) / n
            ns = (many.get(cmd, (0, 0))[1] - few.get(cmd, (0, 0))[1]) / n
            if calls > 0:
                out[name(cmd)] = (calls, ns / 1e3)
        return out, (wall_many - wall_few) / n * 1e3

    py = per_load(lambda k: [sys.executable, "-c", PY_COUNT_CHILD.format(src=str(ROOT / "src"), obj=str(obj),
                                                                           n=k)])
    c = per_load(lambda k: [str(C_BINARY), str(obj), str(k)])
    return py, c


def best(rounds: list[dict[str, float]]) -> dict[str, float]:
    """The best round of each stage; "first" is the very first iteration (the only cold one)."""
    out = {key: min(r[key] for r in rounds) for key in rounds[0]}
    out["first"] = rounds[0]["first"]
    return out


# ----------------------------------------------------------------------------- cold start

COLD_CHILD = r"""
import time
t_interp = time.clock_gettime(time.CLOCK_MONOTONIC)
import os, sys, json
sys.path.insert(0, {src!r})
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
t0 = time.clock_gettime(time.CLOCK_MONOTONIC)
import pybpf
t_import = time.clock_gettime(time.CLOCK_MONOTONIC)
if {code_first!r}:   # the loader and CO-RE modules first: the load below is the work alone
    import pybpf.object.spec, pybpf.object.elf, pybpf.object.loader, pybpf.btf.core, pybpf.btf.kernel
t_code = time.clock_gettime(time.CLOCK_MONOTONIC)
rss0 = rss()
obj = pybpf.ObjectSpec.from_file({obj!r}).load()
t_loaded = time.clock_gettime(time.CLOCK_MONOTONIC)
rss1 = rss()
obj.close()
t2 = time.clock_gettime(time.CLOCK_MONOTONIC)
pybpf.ObjectSpec.from_file({obj!r}).load().close()
t3 = time.clock_gettime(time.CLOCK_MONOTONIC)
pybpf.ObjectSpec.from_file({obj!r}).load().close()
t4 = time.clock_gettime(time.CLOCK_MONOTONIC)
print(json.dumps(dict(t_interp=t_interp, import_ms=(t_import - t0) * 1e3, t_loaded=t_loaded,
                      code_ms=(t_code - t_import) * 1e3, first_load_ms=(t_loaded - t_code) * 1e3,
                      second_ms=(t3 - t2) * 1e3,
                      third_ms=(t4 - t3) * 1e3, rss_delta_mb=(rss1 - rss0) / 2**20)))
"""

MEM_CHILD = r"""
import sys, json, tracemalloc
sys.path.insert(0, {src!r})
import pybpf
spec = pybpf.ObjectSpec.from_file({obj!r})
tracemalloc.start()
obj = spec.load()
current, peak = tracemalloc.get_traced_memory()
obj.close()
print(json.dumps(dict(traced_mb=current / 2**20, peak_mb=peak / 2**20)))
"""

BASELINE_CHILD = "import time; print(time.clock_gettime(time.CLOCK_MONOTONIC))"


def child_env(bytecode: bool) -> dict[str, str]:
    """The children's environment.  With ``bytecode``, compiled modules are cached (in
    bench/build/pycache, not beside the sources) as in any installed package, even
    where PYTHONDONTWRITEBYTECODE is set; without, every import compiles the source."""
    env = dict(os.environ)
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(BUILD / "pycache")
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    return env


def spawn(code: str, bytecode: bool = True) -> tuple[float, dict | float]:
    env = child_env(bytecode)
    t_spawn = time.clock_gettime(time.CLOCK_MONOTONIC)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         env=env).stdout
    return t_spawn, json.loads(out)


def cold_start(obj: Path, runs: int, bytecode: bool = True, code_first: bool = False) -> dict[str, float]:
    """A fresh process's first CO-RE load; with ``code_first``, pybpf's loader and CO-RE modules are
    imported before the clock starts (``code_ms``), so ``first_load_ms`` is the work alone."""
    samples = []
    code = COLD_CHILD.format(src=str(ROOT / "src"), obj=str(obj), code_first=code_first)
    if bytecode:
        spawn(code, bytecode)  # fills the bytecode cache
    for _ in range(runs):
        t_spawn, base = spawn(BASELINE_CHILD, bytecode)
        interp_ms = (base - t_spawn) * 1e3
        t_spawn, r = spawn(code, bytecode)
        samples.append(dict(
            interpreter_ms=interp_ms,
            import_ms=r["import_ms"],
            code_ms=r["code_ms"],
            first_load_ms=r["first_load_ms"],
            start_to_loaded_ms=(r["t_loaded"] - t_spawn) * 1e3,
            second_ms=r["second_ms"],
            third_ms=r["third_ms"],
            rss_delta_mb=r["rss_delta_mb"],
        ))
    _, mem = spawn(MEM_CHILD.format(src=str(ROOT / "src"), obj=str(obj)))
    result = {key: min(s[key] for s in samples) for key in samples[0]}
    result["rss_delta_mb"] = max(s["rss_delta_mb"] for s in samples)
    result.update(mem)
    return result


# ----------------------------------------------------------------------------- report

def row(label: str, py: float, c: float | None, unit: str = "ms", goal: str = "") -> str:
    ratio = f"{py / c:6.2f}x" if c else "      "
    cval = f"{c:10.3f}" if c is not None else " " * 10
    return f"  {label:<34} {py:10.3f} {cval} {ratio}  {unit:<3} {goal}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cold-runs", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 1

    objects = {name: build_object(name) for name in OBJECTS}
    build_c()

    results: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
    for name, path in objects.items():
        c_rounds, py_rounds = [], []
        for _ in range(args.rounds):
            c_rounds.append(run_libbpf(path, args.iterations))
            py_rounds.append(run_pybpf(path, args.iterations))
        results[name] = (best(py_rounds), best(c_rounds))

    counts = {name: syscalls_per_load(path) for name, path in objects.items()}
    ktime = {name: kernel_time_per_load(path, KTIME_N) for name, path in objects.items()}
    cold = cold_start(objects["core_task"], args.cold_runs)
    cold_work = cold_start(objects["core_task"], args.cold_runs, code_first=True)
    cold_nopyc = cold_start(objects["core_task"], args.cold_runs, bytecode=False)

    print()
    print(f"pybpf loader vs libbpf {libbpf_version()} -- median of {args.iterations - 1} warm iterations, "
          f"best of {args.rounds} rounds")
    print(f"  {'':<34} {'pybpf':>10} {'libbpf':>10} {'ratio':>7}")
    for name, (py, c) in results.items():
        print(f"  {name}.bpf.o ({program_count(objects[name])} programs; {KERNEL_BTF[name]})")
        print(row("parse (ObjectSpec / open_file)", py["parse"], c["parse"]))
        print(row("create maps + load programs", py["load"], c["load"]))
        print(row("close", py["close"], c["close"]))
        print(row("total", py["total"], c["total"], goal="goal <= 1.5x" + (
            "  ok" if py["total"] <= 1.5 * c["total"] else "  MISSED")))
        print(row("first iteration (cold)", py["first"], c["first"]))
        print(row("CPU time per iteration (all threads)", py["cpu"], c["cpu"]))
        if counts.get(name):
            pyc, cc = counts[name]
            print(row("bpf(2) calls per warm load+close", sum(pyc.values()), sum(cc.values()), "n"))
            print(f"    pybpf:  {_fmt_counts(pyc)}")
            print(f"    libbpf: {_fmt_counts(cc)}")
        (pyk, py_mean), (ck, c_mean) = ktime[name]
        pyk_total = sum(us for _n, us in pyk.values()) / 1e3
        ck_total = sum(us for _n, us in ck.values()) / 1e3
        print(f"  separate runs with bench/c/bpf_time.c preloaded (means of {KTIME_N}):")
        print(row("total (parse + load + close)", py_mean, c_mean))
        print(row("inside bpf(2)", pyk_total, ck_total))
        print(f"    pybpf:  {_fmt_times(pyk)}")
        print(f"    libbpf: {_fmt_times(ck)}")
        print(row("user space and other syscalls", py_mean - pyk_total, c_mean - ck_total))
    print()
    print(f"CO-RE cold start, fresh python3 process (best of {args.cold_runs}), core_task.bpf.o, "
          "bytecode cached as installed")
    print(row("python3 start (no pybpf)", cold["interpreter_ms"], None))
    print(row("import pybpf", cold["import_ms"], None))
    print(row("first CO-RE load (parses vmlinux)", cold["first_load_ms"], None))
    print(row("  of which the work (code imported)", cold_work["first_load_ms"], results["core_task"][1]["first"]))
    ok = "  ok" if cold["start_to_loaded_ms"] < 200 else "  MISSED"
    print(row("process start -> loaded", cold["start_to_loaded_ms"], None, goal="goal < 200 ms" + ok))
    print(row("second load (cache reused)", cold["second_ms"], results["core_task"][1]["total"]))
    print(row("third load", cold["third_ms"], None))
    ok = "  ok" if max(cold["rss_delta_mb"], cold["peak_mb"]) < 100 else "  MISSED"
    print(row("RSS growth over first load", cold["rss_delta_mb"], None, "MB", "goal < 100 MB" + ok))
    print(row("tracemalloc: kept / peak", cold["traced_mb"], None, "MB"))
    print(row("tracemalloc peak", cold["peak_mb"], None, "MB"))
    print("  without bytecode cache (PYTHONDONTWRITEBYTECODE=1: every import compiles):")
    print(row("import pybpf", cold_nopyc["import_ms"], None))
    print(row("first CO-RE load", cold_nopyc["first_load_ms"], None))
    print(row("process start -> loaded", cold_nopyc["start_to_loaded_ms"], None))
    return 0


def _fmt_counts(counts: dict[str, float]) -> str:
    return ", ".join(f"{k.removeprefix('BPF_')} {v:g}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))


def _fmt_times(times: dict[str, tuple[float, float]]) -> str:
    return ", ".join(f"{k.removeprefix('BPF_')} {n:g}x{us / n:.1f}us" for k, (n, us) in
                     sorted(times.items(), key=lambda kv: -kv[1][1]))


def libbpf_version() -> str:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "libbpf1"], capture_output=True, text=True)
        return out.stdout.strip() or "?"
    except OSError:
        return "?"


def program_count(path: Path) -> int:
    import pybpf

    return len(pybpf.ObjectSpec.from_file(path).programs)


if __name__ == "__main__":
    sys.exit(main())
