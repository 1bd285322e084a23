#!/usr/bin/env python3
"""pybpf's ring buffer reader against libbpf (C) and BCC (Python), on the same machine, in one run.

    python3 bench/streams_bench.py [--size-mib 256] [--rounds 2] [--no-bcc]

A BPF ring buffer of ``--size-mib`` MiB is filled to the brim with 64-byte
records (72 bytes with the header: 3.7 M records for 256 MiB) by an XDP
program run with ``test_run``, whose ``bpf_loop`` reserves and submits a
million records per run (with BPF_RB_NO_WAKEUP).  Then one consumer drains
the whole buffer and the time of the drain is measured; the ring is filled
again for the next consumer.  Consumers:

- **libbpf (C)**: bench/c/ringbuf_consumer.c, ``ring_buffer__consume`` with a
  callback that reads each record's sequence number; it opens the very same
  map by id (built with ``cc -O2 ... -lbpf`` into bench/build/);
- **pybpf callback**: ``reader.consume(cb)`` with a callback that does
  nothing, and one that unpacks the sequence number;
- **pybpf iterator**: ``for rec in reader.poll(timeout=0)``;
- **pybpf batch**: ``reader.read_batch()`` + ``batch.array`` (a NumPy
  structured view, no copy) + the sum of the sequence numbers;
- **BCC (Python)**: python3-bpfcc's ``ring_buffer_consume`` with a no-op
  Python callback, on a ring buffer BCC created (``BPF_RINGBUF_OUTPUT``)
  and the same producer filled.  BCC compiles C at run time and needs kernel
  headers: Debian's linux-headers (6.1) stand in for the running kernel's
  through /lib/modules/$(uname -r)/build and source links, which this
  script creates when they are missing (say --no-bcc to skip BCC).  When BCC
  cannot run, the table says why.

Each consumer runs ``--rounds`` times (alternating) and the best is kept:
the machines are shared and noisy, ratios within one run hold.  Goals:
per-record callback >= 1 M records/s, batch >= 5 M records/s.  Needs root.
"""

from __future__ import annotations

import argparse
import gc
import glob
import os
import platform
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

from pybpf._sys import HelperID as H, ProgType  # noqa: E402
from pybpf._sys.commands import btf_load  # noqa: E402
from pybpf.asm import builder as b, opcodes as op  # noqa: E402
from pybpf.btf.types import VOID, Func, FuncLinkage, FuncProto, Int, IntEncoding, Pointer  # noqa: E402
from pybpf.btf.writer import Builder  # noqa: E402
from pybpf.maps.array import ArrayMap  # noqa: E402
from pybpf.maps.ringbuf import RingBuf  # noqa: E402
from pybpf.program import Program  # noqa: E402
from pybpf.readers import RingBufReader  # noqa: E402
from results import add  # noqa: E402

SOURCE = HERE / "c" / "ringbuf_consumer.c"
BINARY = HERE / "build" / "ringbuf_consumer"
RECORD = 64
SEQ = [("seq", "<u8")]  # the NumPy dtype of what the batch consumer reads (the first 8 bytes)
RECORD_DTYPE = [("seq", "<u8"), ("payload", "V56")]  # the whole record, as a structured array


def event_type() -> Any:
    """The BTF of ``struct event { u64 seq; char payload[56]; }``: records decoded with fields by name."""
    from pybpf.btf.types import Array, Int, Member, Struct

    u64, char = Int("unsigned long long", 8), Int("char", 1, IntEncoding.CHAR)
    return Struct("event", RECORD, [Member("seq", u64, 0), Member("payload", Array(char, None, 56), 64)])
BPF_RB_NO_WAKEUP = 1
R0, R1, R2, R3, R4, R5, R6, R7, R8 = range(9)


# ---------------------------------------------------------------------- the producer

def producer_code(ring_fd: int, state_fd: int, count: int) -> list:
    """XDP: bpf_loop(count): reserve 64 bytes, write the sequence number, submit without wake-up."""
    return b.assemble([
        b.mov64_imm(R1, count), b.ld_func(R2, "cb"), b.mov64_imm(R3, 0), b.mov64_imm(R4, 0),
        b.call_helper(H.loop),
        b.mov64_imm(R0, 2), b.exit_(),
        b.label("cb"),
        b.ld_map_value(R7, state_fd, 0),
        b.mov64_imm(R8, 1), b.atomic_op(op.DW, op.ADD, R7, R8, 0, fetch=True),
        b.ld_map_fd(R1, ring_fd), b.mov64_imm(R2, RECORD), b.mov64_imm(R3, 0),
        b.call_helper(H.ringbuf_reserve),
        b.jmp_imm(op.JEQ, R0, 0, "full"),
        b.stx_mem(op.DW, R0, R8, 0),
        b.mov64_reg(R1, R0), b.mov64_imm(R2, BPF_RB_NO_WAKEUP), b.call_helper(H.ringbuf_submit),
        b.mov64_imm(R0, 0), b.exit_(),
        b.label("full"),
        b.mov64_imm(R8, 1), b.atomic_op(op.DW, op.ADD, R7, R8, 8),
        b.mov64_imm(R0, 1), b.exit_(),                 # stop the loop: the ring is full
    ])


def load_producer(ring_fd: int, state_fd: int, count: int) -> Program:
    insns = producer_code(ring_fd, state_fd, count)
    cb = next(i for i, insn in enumerate(insns) if insn.symbol == "cb")
    vp = Pointer(VOID)
    builder = Builder()
    main = builder.add(Func("fill", FuncProto(Int("int", 4, IntEncoding.SIGNED), [("ctx", vp)]), FuncLinkage.GLOBAL))
    callback = builder.add(Func("cb", FuncProto(Int("long", 8, IntEncoding.SIGNED), [("i", vp), ("c", vp)])))
    fd, log, err = btf_load(builder.encode(), log_size=1 << 16, log_level=1)
    if fd is None:
        raise RuntimeError(f"BTF load failed ({err}): {log}")
    with fd:
        return Program.load(insns, prog_type=ProgType.XDP, name="fill", btf_fd=fd,
                            func_info=struct.pack("<IIII", 0, main, cb, callback), func_info_rec_size=8)


class Filler:
    """Fills a ring buffer map (any Map of type RINGBUF, by fd) to the brim."""

    def __init__(self, ring_fd: int, size: int) -> None:
        self.size = size
        self.state = ArrayMap(value="<QQ", max_entries=1, name="bench_state")
        self.prog = load_producer(ring_fd, self.state.fd, 1 << 20)

    def fill(self) -> int:
        """Fill until a reservation fails; return the records in the ring."""
        self.state[0] = (0, 0)
        while self.state[0][1] == 0:
            self.prog.test_run(bytes(64))
        seq, failed = self.state[0]
        return seq - failed

    def close(self) -> None:
        self.prog.close()
        self.state.close()


# ---------------------------------------------------------------------- consumers

def build_c() -> Path:
    BINARY.parent.mkdir(parents=True, exist_ok=True)
    if not BINARY.exists() or BINARY.stat().st_mtime < SOURCE.stat().st_mtime:
        cmd = ["cc", "-O2", "-o", str(BINARY), str(SOURCE), "-lbpf"]
        print("building:", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    return BINARY


def run_c(map_id: int, expected: int) -> tuple[int, float]:
    out = subprocess.run([str(BINARY), str(map_id), str(expected)], check=True, capture_output=True, text=True).stdout
    values = dict(line.split() for line in out.splitlines())
    return int(values["records"]), int(values["ns"]) / 1e9


def timed(fn: Callable[[], int]) -> tuple[int, float]:
    gc.collect()
    t0 = time.perf_counter()
    n = fn()
    return n, time.perf_counter() - t0


def pybpf_consumers(reader: RingBufReader, typed: RingBufReader) -> dict[str, Callable[[], int]]:
    """The pybpf consumers; ``typed`` reads the same ring with ``record=`` the BTF struct."""
    unpack = struct.Struct("<Q").unpack_from

    def noop(rec: Any) -> None:
        pass

    def seq(rec: Any) -> None:
        unpack(rec)

    def iterate() -> int:
        n = 0
        for _rec in reader.poll(timeout=0):
            n += 1
        return n

    def batch() -> int:
        with reader.read_batch() as bt:
            total = int(bt.numpy(SEQ)["seq"].sum())
            assert total >= 0
            return len(bt)

    def batch_array() -> int:
        with reader.read_batch() as bt:
            return len(bt.numpy(RECORD_DTYPE))

    def typed_records() -> int:
        n = total = 0
        with typed.read_batch() as bt:
            for event in bt.decode():
                total += event.seq
                n += 1
        return n

    def typed_fields() -> int:
        n = total = 0
        with typed.read_batch() as bt:
            for seq in bt.fields("seq"):
                total += seq
                n += 1
        return n

    return {
        "pybpf callback (no-op)": lambda: reader.consume(noop),
        "pybpf callback (unpack seq)": lambda: reader.consume(seq),
        "pybpf iterator": iterate,
        "pybpf batch (NumPy view + sum)": batch,
        "pybpf batch -> structured array": batch_array,
        "pybpf typed iteration, batch.fields('seq')": typed_fields,
        "pybpf BTF records, batch.decode() + .seq": typed_records,
    }


# ---------------------------------------------------------------------- BCC

def bcc_headers() -> str | None:
    """Make /lib/modules/$(uname -r)/{build,source} point at Debian's headers if absent; None or why not."""
    release = platform.release()
    moddir = Path("/lib/modules") / release
    if (moddir / "build").exists():
        return None
    builds = sorted(glob.glob("/usr/src/linux-headers-*-amd64"))
    commons = sorted(glob.glob("/usr/src/linux-headers-*-common"))
    if not builds or not commons:
        return ("no kernel headers for BCC: /lib/modules/%s/build is missing and Debian's "
                "linux-headers-amd64 is not installed" % release)
    moddir.mkdir(parents=True, exist_ok=True)
    os.symlink(builds[-1], moddir / "build")
    if not (moddir / "source").exists():
        os.symlink(commons[-1], moddir / "source")
    print(f"BCC: linked {moddir}/build -> {builds[-1]} and source -> {commons[-1]} "
          f"(headers of another kernel standing in for {release})", flush=True)
    return None


def bench_bcc(size: int, rounds: int) -> tuple[int, float] | str:
    """Best (records, seconds) of BCC's ring_buffer_consume, or the reason it could not run."""
    if "/usr/lib/python3/dist-packages" not in sys.path:
        sys.path.append("/usr/lib/python3/dist-packages")  # python3-bpfcc lives with Debian's Python
    try:
        from bcc import BPF  # type: ignore[import-not-found]
    except ImportError as exc:
        return f"BCC not importable ({exc}): apt-get install python3-bpfcc"
    why = bcc_headers()
    if why:
        return why
    try:
        bpf = BPF(text=f"BPF_RINGBUF_OUTPUT(events, {size // 4096});\nint nothing(void *ctx) {{ return 0; }}\n")
    except Exception as exc:  # noqa: BLE001 - report whatever BCC says
        return f"BCC failed to compile its program: {exc}"
    best: tuple[int, float] | None = None
    try:
        table = bpf["events"]
        count = [0]

        def callback(ctx: Any, data: Any, size: int) -> None:
            count[0] += 1

        table.open_ring_buffer(callback)
        filler = Filler(table.map_fd, size)
        try:
            for _ in range(rounds):
                expected = filler.fill()
                count[0] = 0
                gc.collect()
                t0 = time.perf_counter()
                while count[0] < expected:
                    before = count[0]
                    bpf.ring_buffer_consume()
                    if count[0] == before:
                        break
                dt = time.perf_counter() - t0
                if count[0] != expected:
                    return f"BCC consumed {count[0]} of {expected} records"
                if best is None or dt < best[1]:
                    best = (count[0], dt)
        finally:
            filler.close()
    finally:
        bpf.cleanup()
    assert best is not None
    return best


# ---------------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-bcc", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("streams_bench needs root (BPF programs and maps)")
    size = args.size_mib << 20
    build_c()

    best: dict[str, tuple[int, float]] = {}
    rates: dict[str, list[float]] = {}

    def keep(name: str, result: tuple[int, float], expected: int) -> None:
        n, dt = result
        if n != expected:
            raise SystemExit(f"{name}: consumed {n} records, expected {expected}")
        rates.setdefault(name, []).append(n / dt / 1e6)
        if name not in best or dt < best[name][1]:
            best[name] = (n, dt)

    with RingBuf(size, name="bench_events") as ring, RingBufReader(ring) as reader, \
            RingBufReader(ring, record=event_type()) as typed:
        filler = Filler(ring.fd, size)
        try:
            consumers = pybpf_consumers(reader, typed)
            for _ in range(args.rounds):
                expected = filler.fill()
                keep("libbpf C ring_buffer__consume", run_c(ring.id, expected), expected)
                for name, fn in consumers.items():
                    expected = filler.fill()
                    keep(name, timed(fn), expected)
        finally:
            filler.close()

    bcc: tuple[int, float] | str = "skipped (--no-bcc)" if args.no_bcc else bench_bcc(size, args.rounds)

    c_rate = best["libbpf C ring_buffer__consume"][0] / best["libbpf C ring_buffer__consume"][1]
    goals = {"pybpf callback (no-op)": 1e6, "pybpf callback (unpack seq)": 1e6, "pybpf batch (NumPy view + sum)": 5e6,
             "pybpf batch -> structured array": c_rate, "pybpf typed iteration, batch.fields('seq')": 5e6}
    print(f"\nring buffer of {args.size_mib} MiB, {RECORD}-byte records, best of {args.rounds} "
          f"(Python {platform.python_version()}, Linux {platform.release()})\n")
    header = f"{'consumer':34} {'records':>9} {'seconds':>8} {'M rec/s':>8} {'vs C':>7}  goal"
    print(header)
    print("-" * len(header))
    rows = list(best.items())
    if isinstance(bcc, tuple):
        rows.append(("BCC ring_buffer_consume (Python)", bcc))
    for name, (n, dt) in rows:
        rate = n / dt
        goal = goals.get(name)
        verdict = "" if goal is None else (f">= {goal / 1e6:g} M/s " + ("ok" if rate >= goal else "MISSED"))
        print(f"{name:34} {n:9d} {dt:8.3f} {rate / 1e6:8.2f} {rate / c_rate:7.3f}  {verdict}")
    if isinstance(bcc, str):
        print(f"{'BCC ring_buffer_consume (Python)':34} not measured: {bcc}")
    case = f"{RECORD}-byte records, {args.size_mib} MiB ring"
    for name, values in rates.items():
        impl = name.replace("libbpf C ring_buffer__consume", "libbpf (C) ring_buffer__consume")
        add("ring buffer records/s", case, impl, values, "M rec/s", anchor=name.startswith("libbpf C"),
            higher_is_better=True, note="goal: as fast as the C consumer" if goals.get(name) == c_rate else
            f"goal >= {goals[name] / 1e6:g} M/s" if name in goals else "")
    if isinstance(bcc, tuple):
        add("ring buffer records/s", case, "BCC (Python) ring_buffer_consume", bcc[0] / bcc[1] / 1e6, "M rec/s",
            anchor=True, higher_is_better=True)
    if isinstance(bcc, tuple):
        py = best["pybpf callback (no-op)"]
        print(f"\npybpf callback / BCC callback: {(py[0] / py[1]) / (bcc[0] / bcc[1]):.1f}x")


if __name__ == "__main__":
    main()
