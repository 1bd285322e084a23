#!/usr/bin/env python3
"""One benchmark report: every comparison of bench/ in one run, written to BENCHMARKS.md and bench/plots/.

    python3 bench/report.py [--smoke] [--out BENCHMARKS.md] [--plots bench/plots]

``bash scripts/bench.sh`` installs the anchors on a fresh Debian machine and
runs this.  Each comparison is repeated; the report gives min and median of
the samples and the ratio of pybpf's median against each anchor measured in
the same run (machines are shared and noisy: absolute times move with the
load, printed with the machine; ratios in one run hold).

Measured here: ``import pybpf``; object parse + load + close against libbpf
(bench/load_bench.py's objects and C program, each side in a process of its
own; with ``--also-python``, pybpf's on a second interpreter too); the whole process that loads a
CO-RE object and exits, against a C program doing the same (wall time and
peak RSS from ``wait4``); attaching 1,000 and 10,000 uprobes with cookies
(bench/attach_bench.py's targets: uprobe_multi against libbpf per-probe,
which is capped and extrapolated linearly, said so in the table).  Run as
scripts, each writing its rows through bench/results.py: the seed's claim
(cookie_bench), ring buffer (streams_bench), maps (maps_bench), tools
start-up and tracing overhead (tools_bench), generated code (lang_bench),
the exporter (exporter_bench).  A bench that is missing or fails is named
in the report with its error; the others still run.

``--smoke`` runs every comparison once with tiny sizes (under a minute when
the C sides are built); scripts/test.sh runs it so the harness cannot rot.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

import results  # noqa: E402
from results import add  # noqa: E402

BUILD = HERE / "build"
PYCACHE = BUILD / "pycache"

# (script, full arguments, smoke arguments, timeout in seconds for the full run)
SCRIPTS = [
    ("cookie_bench", ["--rounds", "5", "--attach-rounds", "2"], ["--sizes", "1,10", "--rounds", "1", "--attach-rounds", "1"], 900),
    ("streams_bench", ["--size-mib", "64", "--rounds", "3"], ["--size-mib", "4", "--rounds", "1"], 900),
    ("maps_bench", ["--entries", "200000", "--rounds", "3"], ["--entries", "20000", "--rounds", "1", "--repeats", "1", "--slices", "1"], 900),
    ("tools_bench", ["--rounds", "5"], ["--rounds", "1", "--calls", "20000"], 900),
    ("lang_bench", [], ["--rounds", "2"], 900),
    ("exporter_bench", ["--scrapes", "50", "--events", "100000"], ["--series", "500", "--scrapes", "5", "--events", "5000"], 900),
]


def child_env() -> dict[str, str]:
    """Python children run as an installed package does: bytecode cached (in bench/build/pycache)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def spawn(argv: list[str]) -> tuple[float, float]:
    """Run ``argv`` to its end: (wall seconds, peak RSS in MB).

    The peak RSS comes from GNU time (``%M``), which forks from a small
    process: a child forked from this Python process would report this
    process's RSS as its own peak (the kernel carries the high-water mark
    across fork and exec)."""
    with tempfile.NamedTemporaryFile() as rss:
        timer = ["/usr/bin/time", "-f", "%M", "-o", rss.name] if Path("/usr/bin/time").exists() else []
        t0 = time.perf_counter()
        done = subprocess.run(timer + argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=child_env())
        wall = time.perf_counter() - t0
        if done.returncode:
            raise RuntimeError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.decode()[-400:]}")
        text = Path(rss.name).read_text().split()
    return wall, (int(text[-1]) / 1024 if timer and text else float("nan"))


# ------------------------------------------------------------------- measured here

def bench_import(runs: int) -> None:
    code = "import pybpf"
    spawn([sys.executable, "-c", code])  # fills the bytecode cache
    ms = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                             env=child_env(), check=True).stderr
        ms.append(int(out.strip().splitlines()[-1].split("|")[1]) / 1e3)
    add("start-up", "import pybpf (bytecode cached)", "pybpf", ms, "ms", note="goal <= 25 ms")


def bench_object_load(iterations: int, rounds: int, also_python: str | None) -> None:
    import load_bench

    load_bench.build_c()
    for name in load_bench.OBJECTS:
        path = load_bench.build_object(name)
        # Each side in a process of its own, as the C side is; ten_xdp's cycle is about 1 ms, on a
        # machine whose speed moves by a third from one second to the next: four times the iterations.
        n = iterations * 4 if name == "ten_xdp" else iterations
        c, py, other = [], [], []
        for _ in range(rounds):
            c.append(load_bench.run_libbpf(path, n))
            py.append(load_bench.run_pybpf_on(sys.executable, path, n))
            if also_python and name == "ten_xdp":
                other.append(load_bench.run_pybpf_on(also_python, path, n))
        case = f"{name}.bpf.o parse + load + close ({load_bench.KERNEL_BTF[name]})"
        note = "goal <= 1.5x; pybpf loads the programs on two threads where there are two CPUs" \
            if name == "ten_xdp" else ""
        add("object load", case, "pybpf", [r["total"] for r in py], "ms", note=note)
        add("object load", case, "libbpf (C)", [r["total"] for r in c], "ms", anchor=True)
        if other:
            add("object load", case, f"pybpf on {python_label(also_python)}", [r["total"] for r in other], "ms",
                note="the same, on the python3 found first on PATH")
        if name == "ten_xdp":
            case = f"{name}.bpf.o parse + load + close: CPU time per cycle (user + system, all threads)"
            add("object load", case, "pybpf", [r["cpu"] for r in py], "ms")
            add("object load", case, "libbpf (C)", [r["cpu"] for r in c], "ms", anchor=True)


def bench_cold_start(runs: int) -> None:
    import load_bench

    obj = load_bench.build_object("core_task")
    c_binary = load_bench.build_c()
    py = [sys.executable, "-c", f"import pybpf; pybpf.load({str(obj)!r}).close()"]
    c = [str(c_binary), str(obj), "2"]  # its fewest iterations: open + load + close twice
    spawn(py)
    walls = {"pybpf": [], "libbpf (C)": []}
    rss = {"pybpf": [], "libbpf (C)": []}
    for _ in range(runs):
        for impl, argv in (("libbpf (C)", c), ("pybpf", py)):
            wall, peak = spawn(argv)
            walls[impl].append(wall * 1e3)
            rss[impl].append(peak)
    bare = [spawn([sys.executable, "-c", "pass"]) for _ in range(runs)]
    case = "fresh process loads core_task.bpf.o (CO-RE) and exits"
    note = "reference, not an anchor: the interpreter alone, with this machine's site packages"
    add("CO-RE cold start", case + ": wall time", "python3 -c pass", [w * 1e3 for w, _ in bare], "ms", note=note)
    add("CO-RE cold start", case + ": peak RSS", "python3 -c pass", [r for _, r in bare], "MB", note=note)
    for impl in walls:
        anchor = impl != "pybpf"
        add("CO-RE cold start", case + ": wall time", impl, walls[impl], "ms", anchor=anchor,
            note="" if anchor else "goal <= 3x")
        add("CO-RE cold start", case + ": peak RSS", impl, rss[impl], "MB", anchor=anchor,
            note="" if anchor else "goal <= 25 MB")
    # The first load of a fresh process reads the kernel BTF: libbpf parses all of it, pybpf its index.
    case = "first CO-RE load in a fresh process (reads the kernel BTF)"
    work = load_bench.cold_start(obj, runs, code_first=True)
    lazy = load_bench.cold_start(obj, runs)
    add("CO-RE cold start", case, "pybpf (its modules already imported)", work["first_load_ms"], "ms",
        note="min of the runs; goal <= 2x libbpf's cold load")
    add("CO-RE cold start", case, "pybpf (importing the loader on the way)", lazy["first_load_ms"], "ms",
        note="min of the runs; the import is also in the whole-process rows above")
    add("CO-RE cold start", case, "libbpf (C)", [load_bench.run_libbpf(obj, 2)["first"] for _ in range(runs)], "ms",
        anchor=True, note="the first open + load of a fresh process")


def bench_uprobes(smoke: bool) -> None:
    """uprobe_multi at 1k and 10k points against libbpf per-probe.  Detaching a per-probe uprobe
    waits for an RCU grace period (about 0.1 s each), so libbpf runs once, on at most ``cap``
    probes, and larger counts are extrapolated linearly from that run (the table says so)."""
    import attach_bench

    attach_bench.build_libbpf_side()
    prog = attach_bench.trivial(attach_bench.AttachType.TRACE_UPROBE_MULTI)
    cap = 5 if smoke else 1000
    per_probe_ms: float | None = None
    measured = 0
    try:
        for n in ((100, 1000) if smoke else (1000, 10000)):
            binary = attach_bench.generate_target(n)
            case = f"{n:,} uprobes with cookies: attach"
            multi = [attach_bench.pybpf_multi(prog, binary, n)[0] * 1e3 for _ in range(1 if smoke else 5)]
            add("uprobes with cookies", case, "pybpf uprobe_multi (one link)", multi, "ms")
            if per_probe_ms is None:
                measured = min(n, cap)
                time.sleep(0 if smoke else 1.0)
                per_probe_ms = attach_bench.libbpf_attach(binary, measured)[0] * 1e3 / measured
            note = "" if measured == n else f"extrapolated linearly from {measured:,} probes measured"
            add("uprobes with cookies", case, "libbpf (C) per-probe", per_probe_ms * n, "ms", anchor=True, note=note)
    finally:
        prog.close()


# ------------------------------------------------------------------- run as scripts

def run_script(name: str, argv: list[str], timeout: float) -> tuple[list[dict], str]:
    """Run bench/NAME.py: (its rows, its output or why it did not run)."""
    path = HERE / f"{name}.py"
    if not path.exists():
        return [], f"bench/{name}.py is not there yet"
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        env = child_env()
        env[results.ENV] = out.name
        try:
            done = subprocess.run([sys.executable, str(path), *argv], capture_output=True, text=True, env=env,
                                  timeout=timeout, cwd=ROOT)
        except subprocess.TimeoutExpired:
            return [], f"timed out after {timeout:.0f} s"
        text = done.stdout + (f"\n(exit {done.returncode})\n{done.stderr[-1500:]}" if done.returncode else "")
        data = Path(out.name).read_text()
        return (json.loads(data) if data else []), text


# ------------------------------------------------------------------- the report

def command_version(argv: list[str], pattern: str = r"[\d][\w.\-+~]*") -> str:
    if shutil.which(argv[0]) is None:
        return "not installed"
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"not usable ({exc})"
    found = re.search(pattern, out.stdout + out.stderr)
    return found.group(0) if found else "unknown"


def package_version(name: str) -> str:
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", name], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "not installed"


def python_package_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def python_label(python: str) -> str:
    """``Python 3.11.7 (/path/to/python3.11)`` for an interpreter."""
    version = subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True).stdout.strip() or "?"
    return f"Python {version} ({python})"


def machine() -> list[tuple[str, str]]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    mem = next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal"))
    return [
        ("kernel", f"Linux {platform.release()} ({platform.machine()})"),
        ("CPU", f"{cpu}, {os.cpu_count()} CPUs"),
        ("memory", f"{int(mem) / 2**20:.1f} GiB"),
        ("Python (pybpf's side)", python_label(os.path.realpath(sys.executable))),
        ("libbpf (anchor)", package_version("libbpf-dev")),
        ("clang (anchor)", command_version(["clang-19", "--version"])),
        ("bpftool", command_version(["bpftool", "version"], r"v[\d.]+")),
        ("bpftrace (anchor)", command_version(["bpftrace", "--version"], r"v[\d.]+")),
        ("BCC, python3-bpfcc (anchor)", package_version("python3-bpfcc")),
        ("pythonbpf (anchor)", python_package_version("pythonbpf")),
        ("NumPy", python_package_version("numpy")),
    ]


def summarize(rows: list[dict]) -> list[dict]:
    """Per row: min, median and the ratio of its median to each anchor's of the same case."""
    out = []
    for row in rows:
        s = sorted(row["samples"])
        out.append(dict(row, min=s[-1] if row["higher_is_better"] else s[0], median=statistics.median(s), n=len(s)))
    for row in out:
        anchors = [a for a in out if a["anchor"] and a["comparison"] == row["comparison"] and a["case"] == row["case"]
                   and a is not row]
        row["ratios"] = [(a["impl"], row["median"] / a["median"]) for a in anchors if a["median"]] \
            if not row["anchor"] else []
    return out


def fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"


def markdown(summary: list[dict], texts: dict[str, str], info: list[tuple[str, str]], smoke: bool,
             loads: tuple[str, str], elapsed: float) -> str:
    lines = ["# Benchmarks", "",
             "Written by `bash scripts/bench.sh` (`python3 bench/report.py`)"
             + (" in **smoke mode** (tiny sizes, one repetition: the numbers mean nothing)" if smoke else "")
             + f" on {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, in {elapsed / 60:.1f} min.",
             "",
             "Each row: min and median of the repetitions (*n*), and pybpf's median divided by each anchor's",
             "median measured in the same run (for times, below 1 is faster than the anchor; for rates,",
             "above 1 is faster).  The machine is shared: absolute numbers move with its load, ratios in one",
             "run hold.", "",
             "| machine | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in info]
    lines += [f"| load average (1, 5, 15 min) at start / end | {loads[0]} / {loads[1]} |", ""]
    comparisons = list(dict.fromkeys(r["comparison"] for r in summary))
    lines += ["## Summary", "", "| comparison | case | pybpf | anchor | ratio | note |", "|---|---|---|---|---|---|"]
    for comp in comparisons:
        for row in summary:
            if row["comparison"] != comp or row["anchor"]:
                continue
            anchors = {a: r for a, r in row["ratios"]}
            anchor_text = ", ".join(f"{a}" for a in anchors) or "–"
            ratio_text = ", ".join(f"{r:.2f}x" for r in anchors.values()) or "–"
            lines.append(f"| {comp} | {row['case']} | {row['impl']}: "
                         f"{fmt(row['median'])} {row['unit']} | {anchor_text} | {ratio_text} | {row['note']} |")
    lines.append("")
    for comp in comparisons:
        lines += [f"## {comp}", "", f"![{comp}](bench/plots/{slug(comp)}.png)", "",
                  "| case | implementation | n | min | median | unit | ratio to anchors | note |",
                  "|---|---|---|---|---|---|---|---|"]
        for row in summary:
            if row["comparison"] != comp:
                continue
            ratios = "anchor" if row["anchor"] else ", ".join(f"{r:.2f}x {a}" for a, r in row["ratios"]) or "–"
            lines.append(f"| {row['case']} | {row['impl']} | {row['n']} | {fmt(row['min'])} | {fmt(row['median'])} "
                         f"| {row['unit']} | {ratios} | {row['note']} |")
        lines.append("")
    lines += ["## Output of each bench script", ""]
    for name, text in texts.items():
        lines += [f"### bench/{name}.py", "", "```", text.strip() or "(no output)", "```", ""]
    return "\n".join(lines)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def plots(summary: list[dict], where: Path) -> list[str]:
    """One bar chart per comparison (medians, min as a tick); the files written, or why none."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    where.mkdir(parents=True, exist_ok=True)
    written = []
    for comp in dict.fromkeys(r["comparison"] for r in summary):
        rows = [r for r in summary if r["comparison"] == comp]
        cases = list(dict.fromkeys(r["case"] for r in rows))
        fig, axes = plt.subplots(len(cases), 1, figsize=(9, 1.2 + 1.4 * sum(
            len([r for r in rows if r["case"] == c]) for c in cases) / max(len(cases), 1) * len(cases) / 2 + 0.8),
            squeeze=False)
        for ax, case in zip(axes[:, 0], cases):
            mine = [r for r in rows if r["case"] == case]
            labels = [r["impl"] for r in mine]
            ax.barh(labels, [r["median"] for r in mine], color=["#888" if r["anchor"] else "#2a7" for r in mine])
            ax.plot([r["min"] for r in mine], labels, "k|", markersize=12)
            ax.set_title(case, fontsize=9)
            ax.set_xlabel(mine[0]["unit"] + (" (higher is better)" if mine[0]["higher_is_better"] else ""), fontsize=8)
            ax.tick_params(labelsize=8)
        fig.suptitle(comp, fontsize=11)
        fig.tight_layout()
        path = where / f"{slug(comp)}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(str(path))
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="every comparison once, tiny sizes")
    parser.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--plots", default=str(HERE / "plots"))
    parser.add_argument("--only", help="comma-separated names: import,load,cold,uprobes and bench scripts")
    parser.add_argument("--also-python", metavar="PYTHON",
                        help="another interpreter to time the ten_xdp load on (scripts/bench.sh passes the "
                             "python3 first on PATH when the report runs on the distribution's)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/report.py needs root (it loads BPF programs)", file=sys.stderr)
        return 1
    only = set(args.only.split(",")) if args.only else None
    started, load0 = time.time(), " ".join(Path("/proc/loadavg").read_text().split()[:3])
    BUILD.mkdir(parents=True, exist_ok=True)
    texts: dict[str, str] = {}
    smoke = args.smoke
    here_benches = [
        ("import", lambda: bench_import(1 if smoke else 20)),
        ("load", lambda: bench_object_load(3 if smoke else 30, 1 if smoke else 5, args.also_python)),
        ("cold", lambda: bench_cold_start(1 if smoke else 10)),
        ("uprobes", lambda: bench_uprobes(smoke)),
    ]
    rows: list[dict] = []
    for name, fn in here_benches:
        if only and name not in only:
            continue
        print(f"report: {name} ...", flush=True)
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - one failed comparison is reported, the others still run
            texts[name] = f"failed: {type(exc).__name__}: {exc}"
    rows += results.rows()
    for name, full, small, timeout in SCRIPTS:
        if only and name not in only:
            continue
        print(f"report: bench/{name}.py ...", flush=True)
        got, text = run_script(name, small if smoke else full, 300 if smoke else timeout)
        rows += got
        texts[name] = text
    summary = summarize(rows)
    loads = (load0, " ".join(Path("/proc/loadavg").read_text().split()[:3]))
    Path(args.out).write_text(markdown(summary, texts, machine(), smoke, loads, time.time() - started))
    written = plots(summary, Path(args.plots))
    print(f"report: {args.out} ({len(summary)} rows), {len(written)} plots in {args.plots}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
