#!/usr/bin/env python3
"""pybpf maps against C/libbpf, on the same machine, in one run.

    python3 bench/maps_bench.py [--entries N] [--batch-size B] [--repeats R] [--slices S] [--rounds K]

Builds bench/c/maps_bench.c with ``cc -O2 ... -lbpf`` into bench/build/,
then, for a hash map of N (default 1M) u32 -> u64 entries, filled, measures
per operation, identically on both sides: every key is visited once in the
same scrambled order, R times; each pass is timed in S slices and the best
slice is kept (the least disturbed one: the machines are shared):

- single lookup (``m[k]`` vs ``bpf_map_lookup_elem``),
- single update of an existing key (``m[k] = v`` vs ``bpf_map_update_elem``),
- a full batch lookup walk, per entry (``m.lookup_batch()`` yielding
  decoded key and value lists vs ``bpf_map_lookup_batch`` into C arrays),
- pybpf only: reading an element of an mmapable array (``a[i]``), with the
  number of bpf(2) calls made during the reads (must be 0).

C and Python processes alternate K rounds (default 3) and the best of each
is kept.
Needs root (or CAP_BPF) and libbpf-dev.  Goals: single ops within 3x of C,
batch within 1.5x.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

from pybpf._sys import syscall as _syscall  # noqa: E402
from pybpf._sys.attrs import MapElemAttr  # noqa: E402
from pybpf.maps import ArrayMap, HashMap  # noqa: E402
from results import add  # noqa: E402

SOURCE = HERE / "c" / "maps_bench.c"
BINARY = HERE / "build" / "maps_bench"


def build() -> Path:
    BINARY.parent.mkdir(parents=True, exist_ok=True)
    if not BINARY.exists() or BINARY.stat().st_mtime < SOURCE.stat().st_mtime:
        cmd = ["cc", "-O2", "-o", str(BINARY), str(SOURCE), "-lbpf"]
        print("building:", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    return BINARY


def run_c(entries: int, batch_size: int, repeats: int, slices: int) -> dict[str, float]:
    out = subprocess.run([str(BINARY), str(entries), str(batch_size), str(repeats), str(slices)],
                         check=True, capture_output=True, text=True).stdout
    return {name: float(value) for name, value in (line.split() for line in out.splitlines())}


def scrambled(n: int) -> list[int]:
    return [(i * 2654435761) % n for i in range(n)]


def best_of(repeats: int, fn) -> float:
    best = float("inf")
    for _ in range(repeats):
        best = min(best, fn())
    return best


def run_python(entries: int, batch_size: int, repeats: int, slices: int) -> dict[str, float]:
    order = scrambled(entries)
    per_slice = entries // slices
    parts = [(range(s * per_slice, (s + 1) * per_slice), order[s * per_slice:(s + 1) * per_slice])
             for s in range(slices)]
    result: dict[str, float] = {}
    with HashMap(key="u32", value="u64", max_entries=entries, name="bench_py") as m:
        m.update_batch(range(entries), range(entries))
        best_lookup = best_update = float("inf")
        for _ in range(repeats):
            for values, keys in parts:
                t0 = time.perf_counter_ns()
                for k in keys:
                    m[k]
                best_lookup = min(best_lookup, (time.perf_counter_ns() - t0) / per_slice)
                t0 = time.perf_counter_ns()
                for k, v in zip(keys, values):
                    m[k] = v
                best_update = min(best_update, (time.perf_counter_ns() - t0) / per_slice)

        def batch() -> float:
            total = 0
            t0 = time.perf_counter_ns()
            for keys, _values in m.lookup_batch(batch_size):
                total += len(keys)
            elapsed = time.perf_counter_ns() - t0
            result["batch_count"] = total
            return elapsed / total

        result["lookup_ns"] = best_lookup
        result["update_ns"] = best_update
        result["batch_ns"] = best_of(repeats, batch)

        # The floor: one bare sys_bpf lookup through ctypes (same key every time).
        attr = MapElemAttr(map_fd=m.fd, key=ctypes.addressof(ctypes.c_uint32(1)),
                           value=ctypes.addressof(ctypes.c_uint64()))
        key, value = ctypes.c_uint32(1), ctypes.c_uint64()
        attr.key, attr.value = ctypes.addressof(key), ctypes.addressof(value)
        addr, size, sys_bpf = ctypes.addressof(attr), ctypes.sizeof(attr), _syscall.sys_bpf

        def floor() -> float:
            n = 200_000
            t0 = time.perf_counter_ns()
            for _ in range(n):
                sys_bpf(1, addr, size)
            return (time.perf_counter_ns() - t0) / n

        result["floor_ns"] = best_of(repeats, floor)

    n_array = min(entries, 1 << 16)
    array_order = scrambled(n_array)
    with ArrayMap(value="u64", max_entries=n_array, mmapable=True, name="bench_mmap") as a:
        for i in range(n_array):
            a[i] = i
        calls = 0
        real = _syscall._syscall4

        def counting(*args: object) -> int:
            nonlocal calls
            calls += 1
            return real(*args)

        def reads() -> float:
            t0 = time.perf_counter_ns()
            for i in array_order:
                a[i]
            return (time.perf_counter_ns() - t0) / n_array

        _syscall._syscall4 = counting
        try:
            result["mmap_read_ns"] = best_of(repeats, reads)
        finally:
            _syscall._syscall4 = real
        result["mmap_syscalls"] = calls
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--slices", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("note: not root; map creation may fail without CAP_BPF", file=sys.stderr)
    build()

    c_best: dict[str, float] = {}
    py_best: dict[str, float] = {}
    c_all: dict[str, list[float]] = {}
    py_all: dict[str, list[float]] = {}
    for rnd in range(args.rounds):
        print(f"round {rnd + 1}/{args.rounds}: C ...", end=" ", flush=True)
        for name, value in run_c(args.entries, args.batch_size, args.repeats, args.slices).items():
            c_best[name] = min(c_best.get(name, value), value)
            c_all.setdefault(name, []).append(value)
        print("pybpf ...", flush=True)
        for name, value in run_python(args.entries, args.batch_size, args.repeats, args.slices).items():
            py_best[name] = min(py_best.get(name, value), value) if name != "mmap_syscalls" else \
                max(py_best.get(name, 0), value)
            py_all.setdefault(name, []).append(value)

    assert c_best["batch_count"] == py_best["batch_count"] == args.entries, (c_best, py_best)
    rows = [
        ("single lookup (ns/op)", "lookup_ns", 3.0),
        ("single update (ns/op)", "update_ns", 3.0),
        (f"batch lookup (ns/entry, batch {args.batch_size})", "batch_ns", 1.5),
    ]
    print()
    print(f"hash map, {args.entries:,} entries u32 -> u64; best slice of {args.rounds} rounds x "
          f"{args.repeats} passes x {args.slices} slices")
    print(f"{'operation':<36} {'C/libbpf':>10} {'pybpf':>10} {'ratio':>7} {'goal':>6}")
    print("-" * 73)
    for label, key, goal in rows:
        case = f"{label.split(' (')[0]} ({args.entries:,} entries)"
        add("map operations", case, "pybpf", py_all[key], "ns/op", note=f"goal <= {goal}x")
        add("map operations", case, "libbpf (C)", c_all[key], "ns/op", anchor=True)
        c, py = c_best[key], py_best[key]
        ratio = py / c
        mark = "ok" if ratio <= goal else "MISS"
        print(f"{label:<36} {c:>10.1f} {py:>10.1f} {ratio:>6.2f}x {'<=' + str(goal) + 'x':>6} {mark}")
    print(f"{'mmap array read (ns/op)':<36} {'-':>10} {py_best['mmap_read_ns']:>10.1f} "
          f"{'':>7} bpf(2) calls: {int(py_best['mmap_syscalls'])}")
    print(f"{'ctypes sys_bpf floor (ns/call)':<36} {'-':>10} {py_best['floor_ns']:>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
