#!/usr/bin/env python3
"""``pybpf funccount`` against BCC's funccount and a bpftrace one-liner, on the same machine, in one run.

    python3 bench/tools_bench.py [--rounds K] [--calls N]

Each tool counts calls of ``func_a`` in tests/bin/cookie_target.c (built
with gcc).  Three measurements per tool:

- **start → first probe attached**: a copy of the target idles (waiting on
  stdin) while the tool starts; the bench polls the first byte of
  ``func_a`` in that process through ``/proc/PID/mem`` and stops the clock
  when it turns into ``int3`` (0xcc) — the moment the kernel installed the
  uprobe, the same for every tool.  Best and median of K rounds.
- **peak RSS** of the tool's process (``wait4``'s ``ru_maxrss``), after it
  attached and was stopped with Ctrl-C.
- **overhead** on the traced process: the target calls ``func_a`` N times
  in a tight loop, untraced and then traced by each tool; the slowdown and
  the cost per call.

pybpf runs as an installed package would: with its bytecode cached (in a
private ``PYTHONPYCACHEPREFIX``, warmed by one untimed run), whatever
``PYTHONDONTWRITEBYTECODE`` says.  The machine is shared: absolute times
move with the load (printed), ratios in one run hold.

Goals (issue 12): pybpf ≤ 0.15 s to the first probe, ≤ 40 MB peak RSS.
Anchors: Debian's bpfcc-tools (``/usr/sbin/funccount-bpfcc``, BCC compiles
C at run time: kernel headers of another kernel stand in, see
bench/streams_bench.py) and bpftrace.  Needs root and gcc.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from pybpf.links.symbols import ElfFile  # noqa: E402
from test_links_support import target  # noqa: E402
from results import add  # noqa: E402

INT3 = b"\xcc"
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), "pybpf-tools-bench-pycache")


def tool_commands(binary: str) -> dict[str, list[str] | str]:
    """The command of each tool, or why it cannot run here."""
    env_python = sys.executable
    tools: dict[str, list[str] | str] = {
        "pybpf funccount": [env_python, "-m", "pybpf.cli", "funccount", f"{binary}:func_a"],
    }
    bcc = "/usr/sbin/funccount-bpfcc"
    if os.path.exists(bcc):
        from streams_bench import bcc_headers
        why = bcc_headers()
        tools["BCC funccount"] = why if why else [bcc, f"{binary}:func_a"]
    else:
        tools["BCC funccount"] = "not installed (apt-get install bpfcc-tools)"
    bpftrace = shutil.which("bpftrace")
    tools["bpftrace"] = [bpftrace, "-e", f"uprobe:{binary}:func_a {{ @[probe] = count(); }}"] if bpftrace \
        else "not installed (apt-get install bpftrace)"
    tools["pythonbpf"] = pythonbpf_status()
    return tools


def pythonbpf_status() -> str:
    """Why pythonbpf, the fourth anchor the report names (scripts/bench.sh installs it from PyPI), has no
    row: what importing it and its toolchain say on this machine."""
    import importlib.util

    if importlib.util.find_spec("pythonbpf") is None:
        return "not installed (pip install pythonbpf did not succeed on this machine)"
    done = subprocess.run([sys.executable, "-c", "import pythonbpf"], capture_output=True, text=True)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        return (f"installed, but it does not import on Python {version} ({last}; pythonbpf 0.2 is written "
                "for Python 3.12+); checked by hand on 2026-12-03: on 3.12 it imports, but the LLVM IR it "
                "writes needs LLVM 21+ (captures(none)) and this Debian's opt/llc are 14-19: it compiles nothing here")
    return "installed, but not measured: its funccount equivalent is not written yet"


def function_address(pid: int, path: str, file_offset: int) -> int:
    """The virtual address of ``file_offset`` of ``path`` in process ``pid``."""
    real = os.path.realpath(path)
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and parts[5] == real:
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                off = int(parts[2], 16)
                if off <= file_offset < off + (hi - lo):
                    return lo + file_offset - off
    raise RuntimeError(f"{path} offset {file_offset:#x} is not mapped in process {pid}")


def stop(tool: subprocess.Popen) -> os.struct_rusage | None:
    """Ctrl-C the tool and reap it; its rusage.  SIGINT is repeated: bpftrace 0.17 can miss one sent
    while it is still attaching."""
    deadline = time.monotonic() + 30
    while True:
        tool.send_signal(signal.SIGINT)
        for _ in range(20):
            pid, _, usage = os.wait4(tool.pid, os.WNOHANG)
            if pid:
                tool.returncode = 0       # reaped here
                return usage
            time.sleep(0.05)
        if time.monotonic() > deadline:
            tool.kill()
            _, _, usage = os.wait4(tool.pid, 0)
            tool.returncode = -9
            return usage


def start_to_attach(cmd: list[str], binary: str, offset: int) -> tuple[float, int]:
    """(seconds from starting ``cmd`` to the uprobe in an idle target, the tool's peak RSS in KiB)."""
    idle = subprocess.Popen([binary, "1", "0", "wait"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                addr = function_address(idle.pid, binary, offset)
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.001)
        mem = os.open(f"/proc/{idle.pid}/mem", os.O_RDONLY)
        try:
            if os.pread(mem, 1, addr) == INT3:
                raise RuntimeError("func_a is already probed by another tracer")
            t0 = time.perf_counter()
            tool = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
            while os.pread(mem, 1, addr) != INT3:
                if tool.poll() is not None:
                    raise RuntimeError(f"{cmd[0]} exited with {tool.returncode} before attaching")
                if time.perf_counter() - t0 > 60:
                    tool.kill()
                    raise RuntimeError(f"{cmd[0]} did not attach within 60 s")
                time.sleep(0.0002)
            elapsed = time.perf_counter() - t0
        finally:
            os.close(mem)
        time.sleep(0.3)                       # let it settle (bpftrace prints, BCC polls)
        return elapsed, stop(tool).ru_maxrss
    finally:
        idle.kill()
        idle.wait()


def traced_loop(cmd: list[str] | None, binary: str, offset: int, calls: int) -> float:
    """Seconds the target needs for ``calls`` calls of func_a while ``cmd`` traces it (None: untraced)."""
    tool = None
    if cmd is not None:
        tool = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        start_to_wait = time.monotonic()
        # Attached once a fresh target shows the breakpoint.
        while True:
            probe = subprocess.Popen([binary, "1", "0", "wait"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
            try:
                time.sleep(0.01)
                mem = os.open(f"/proc/{probe.pid}/mem", os.O_RDONLY)
                try:
                    hit = os.pread(mem, 1, function_address(probe.pid, binary, offset)) == INT3
                finally:
                    os.close(mem)
            finally:
                probe.kill()
                probe.wait()
            if hit:
                break
            if time.monotonic() - start_to_wait > 60 or tool.poll() is not None:
                tool.kill()
                raise RuntimeError(f"{cmd[0]} did not attach")
            time.sleep(0.05)
    try:
        t0 = time.perf_counter()
        subprocess.run([binary, str(calls), "0"], check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - t0
    finally:
        if tool is not None:
            stop(tool)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    binary = str(target())
    offset = ElfFile.open(binary).resolve("func_a").offset
    tools = tool_commands(binary)
    warm = tools["pybpf funccount"]
    subprocess.run([*warm, "-d", "0"], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    rows = []
    base = min(traced_loop(None, binary, offset, args.calls) for _ in range(args.rounds))
    for name, cmd in tools.items():
        if isinstance(cmd, str):
            rows.append((name, cmd))
            continue
        try:
            runs = [start_to_attach(cmd, binary, offset) for _ in range(args.rounds)]
            loops = [traced_loop(cmd, binary, offset, args.calls) for _ in range(args.rounds)]
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            rows.append((name, f"failed: {exc}"))
            continue
        loop = min(loops)
        starts = [r[0] for r in runs]
        rss = max(r[1] for r in runs) / 1024
        anchor = not name.startswith("pybpf")
        add("tool start-up", "funccount of one function: start to first probe attached", name,
            [1e3 * s for s in starts], "ms", anchor=anchor, note="" if anchor else "goal <= 150 ms")
        add("tool start-up", "funccount of one function: peak RSS", name, [r[1] / 1024 for r in runs], "MB",
            anchor=anchor, note="" if anchor else "goal <= 40 MB")
        add("tracing overhead on the traced process", f"funccount: cost per traced call ({args.calls:,} calls)",
            name, [(t - base) / args.calls * 1e9 for t in loops], "ns/call", anchor=anchor)
        rows.append((name, min(starts), statistics.median(starts), rss, loop / base, (loop - base) / args.calls * 1e9))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; Linux {os.uname().release}")
    print(f"funccount on {binary}:func_a; {args.rounds} rounds; untraced loop of {args.calls} calls: "
          f"{base * 1e3:.1f} ms ({base / args.calls * 1e9:.1f} ns/call)")
    header = f"{'tool':18} {'attach best':>11} {'median':>8} {'peak RSS':>9} {'slowdown':>9} {'ns/call':>8}"
    print(header)
    print("-" * len(header))
    pybpf_best = next((r[1] for r in rows if r[0] == "pybpf funccount" and len(r) > 2), None)
    for row in rows:
        if len(row) == 2:
            print(f"{row[0]:18} {row[1]}")
            continue
        name, best, median, rss, slow, per_call = row
        ratio = f"  ({best / pybpf_best:.1f}x pybpf)" if pybpf_best and name != "pybpf funccount" else ""
        print(f"{name:18} {best:>10.3f}s {median:>7.3f}s {rss:>7.1f}MB {slow:>8.2f}x {per_call:>8.0f}{ratio}")
    if pybpf_best is not None:
        prow = next(r for r in rows if r[0] == "pybpf funccount")
        print(f"goals: start to first probe {prow[1]:.3f} s (goal <= 0.15 s), peak RSS {prow[3]:.1f} MB "
              f"(goal <= 40 MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
