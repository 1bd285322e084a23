"""Ring buffers against the running kernel: RingBufReader, RingBuf, UserRingBuf/UserRingBufWriter.

Producers are hand-assembled XDP programs run with test_run: ``bpf_loop``
calls a callback that reserves, fills and submits one record per iteration
(sequence numbers from an array map), and counts its own failed
reservations.  bpf_loop callbacks need BTF func_info, built here with
pybpf.btf.  The helpers at the top are shared with test_perfbuf.py.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import os
import struct
import threading
import time
import tracemalloc
import types

import pytest

import pybpf
from pybpf._sys import HelperID as H, MapType, ProgType
from pybpf._sys.commands import btf_load
from pybpf.asm import builder as b, opcodes as op
from pybpf.btf.types import (
    VOID, Array, Func, FuncLinkage, FuncProto, Int, IntEncoding, Member, Pointer, Struct,
)
from pybpf.btf.writer import Builder
from pybpf.maps.array import ArrayMap
from pybpf.maps.hash import HashMap
from pybpf.maps.ringbuf import RingBuf, UserRingBuf
from pybpf.program import Program
from pybpf.readers import RecordBatch, RecordError, RingBufReader, UserRingBufWriter, btf_dtype
from pybpf.readers.ringbuf import BUSY_BIT, DISCARD_BIT, _Ring, run_length

pytestmark = pytest.mark.root  # against the kernel: needs root

R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, FP = range(11)
PAGE = 4096
PACKET = bytes(64)


# ---------------------------------------------------------------------- program helpers

def load_program(items: list, *, name: str, callbacks: tuple[str, ...] = ("cb",),
                 prog_type: ProgType = ProgType.XDP) -> Program:
    """Load hand-assembled code whose subprograms (bpf_loop callbacks) start at ``callbacks`` labels.

    The kernel wants BTF func_info for every subprogram when a program
    passes a callback: main gets ``int name(void *ctx)``, callbacks
    ``long cb(void *, void *)`` with static linkage.
    """
    insns = b.assemble(items)
    starts = {insn.symbol: i for i, insn in enumerate(insns) if insn.symbol}
    i32 = Int("int", 4, IntEncoding.SIGNED)
    i64 = Int("long", 8, IntEncoding.SIGNED)
    vp = Pointer(VOID)
    builder = Builder()
    records = [(0, builder.add(Func(name, FuncProto(i32, [("ctx", vp)]), FuncLinkage.GLOBAL)))]
    for label in callbacks:
        fn = Func(label, FuncProto(i64, [("a", vp), ("b", vp)]), FuncLinkage.STATIC)
        records.append((starts[label], builder.add(fn)))
    btf_fd, log, err = btf_load(builder.encode(), log_size=1 << 16, log_level=1)
    assert btf_fd is not None, (err, log)
    with btf_fd:
        return Program.load(insns, prog_type=prog_type, name=name, btf_fd=btf_fd,
                            func_info=b"".join(struct.pack("<II", off, tid) for off, tid in records),
                            func_info_rec_size=8)


def fill_words(dst: int, size: int) -> list:
    """Store ``seq ^ k`` (seq in r8) in the u64 words k = 1.. of the record at ``dst``."""
    out = []
    for k in range(1, size // 8):
        out += [b.mov64_reg(R1, R8), b.alu64_imm(op.XOR, R1, k), b.stx_mem(op.DW, dst, R1, 8 * k)]
    return out


def expected_record(seq: int, size: int) -> bytes:
    return struct.pack(f"<{size // 8}Q", seq, *[seq ^ k for k in range(1, size // 8)])


def ringbuf_producer(ring_fd: int, state_fd: int, count: int, *, size: int = 64, submit_flags: int = 0,
                     discard_every: int = 0) -> list:
    """XDP code: ``count`` times reserve ``size`` bytes, write seq and seq^k words, submit.

    state[0] (u64) hands out sequence numbers; state[1] counts failed
    reservations; with ``discard_every`` = n, records whose seq % n == 0 are
    discarded instead of submitted.
    """
    tail = [b.mov64_reg(R1, R0), b.mov64_imm(R2, submit_flags), b.call_helper(H.ringbuf_submit)]
    if discard_every:
        tail = [
            b.mov64_reg(R1, R8), b.alu64_imm(op.MOD, R1, discard_every),
            b.jmp_imm(op.JNE, R1, 0, "submit"),
            b.mov64_reg(R1, R0), b.mov64_imm(R2, submit_flags), b.call_helper(H.ringbuf_discard),
            b.ja("done"),
            b.label("submit"), *tail,
        ]
    return [
        b.mov64_imm(R1, count), b.ld_func(R2, "cb"), b.mov64_imm(R3, 0), b.mov64_imm(R4, 0),
        b.call_helper(H.loop),
        b.mov64_imm(R0, 2), b.exit_(),
        b.label("cb"),
        b.ld_map_value(R7, state_fd, 0),
        b.mov64_imm(R8, 1),
        b.atomic_op(op.DW, op.ADD, R7, R8, 0, fetch=True),      # r8 = seq
        b.ld_map_fd(R1, ring_fd), b.mov64_imm(R2, size), b.mov64_imm(R3, 0),
        b.call_helper(H.ringbuf_reserve),
        b.jmp_imm(op.JEQ, R0, 0, "fail"),
        b.stx_mem(op.DW, R0, R8, 0),
        *fill_words(R0, size),
        *tail,
        b.label("done"),
        b.mov64_imm(R0, 0), b.exit_(),
        b.label("fail"),
        b.mov64_imm(R8, 1), b.atomic_op(op.DW, op.ADD, R7, R8, 8),
        b.mov64_imm(R0, 0), b.exit_(),
    ]


def variable_producer(ring_fd: int, state_fd: int, count: int) -> list:
    """XDP code: bpf_ringbuf_output of 8 + 8 * (seq % 4) bytes (seq, then seq ^ k words) per iteration."""
    return [
        b.mov64_imm(R1, count), b.ld_func(R2, "cb"), b.mov64_imm(R3, 0), b.mov64_imm(R4, 0),
        b.call_helper(H.loop),
        b.mov64_imm(R0, 2), b.exit_(),
        b.label("cb"),
        b.ld_map_value(R7, state_fd, 0),
        b.mov64_imm(R8, 1),
        b.atomic_op(op.DW, op.ADD, R7, R8, 0, fetch=True),
        b.stx_mem(op.DW, FP, R8, -32),
        *[x for k in range(1, 4) for x in (b.mov64_reg(R1, R8), b.alu64_imm(op.XOR, R1, k),
                                           b.stx_mem(op.DW, FP, R1, -32 + 8 * k))],
        b.ld_map_fd(R1, ring_fd), b.mov64_reg(R2, FP), b.alu64_imm(op.ADD, R2, -32),
        b.mov64_reg(R3, R8), b.alu64_imm(op.AND, R3, 3), b.alu64_imm(op.LSH, R3, 3), b.alu64_imm(op.ADD, R3, 8),
        b.mov64_imm(R4, 0),
        b.call_helper(H.ringbuf_output),
        b.jmp_imm(op.JEQ, R0, 0, "ok"),
        b.mov64_imm(R8, 1), b.atomic_op(op.DW, op.ADD, R7, R8, 8),
        b.label("ok"),
        b.mov64_imm(R0, 0), b.exit_(),
    ]


class Producer:
    """A ring buffer, a state array (seq, failures) and a loaded producer program; closes all three."""

    def __init__(self, count: int, *, ring_size: int = 1 << 16, size: int = 64, ring: RingBuf | None = None,
                 variable: bool = False, **kw: object) -> None:
        self.own_ring = ring is None
        self.ring = ring if ring is not None else RingBuf(ring_size, name="events")
        self.state = ArrayMap(value="<QQ", max_entries=1, name="state")
        code = (variable_producer(self.ring.fd, self.state.fd, count) if variable
                else ringbuf_producer(self.ring.fd, self.state.fd, count, size=size, **kw))  # type: ignore[arg-type]
        self.prog = load_program(code, name="producer")

    def run(self, times: int = 1) -> None:
        for _ in range(times):
            assert self.prog.test_run(PACKET).retval == 2

    @property
    def produced(self) -> int:
        return self.state[0][0]

    @property
    def failed(self) -> int:
        return self.state[0][1]

    def close(self) -> None:
        self.prog.close()
        self.state.close()
        if self.own_ring:
            self.ring.close()

    def __enter__(self) -> "Producer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def seq_of(rec: memoryview) -> int:
    return struct.unpack_from("<Q", rec)[0]


# ---------------------------------------------------------------------- the map classes

def test_ringbuf_map_class_and_registry():
    with RingBuf(1 << 16, name="events") as rb:
        assert rb.type == MapType.RINGBUF and rb.size == 1 << 16 and rb.key_size == rb.value_size == 0
        assert pybpf.maps.map_class(MapType.RINGBUF) is RingBuf
        with pybpf.maps.Map.from_fd(rb.fd) as again:
            assert type(again) is RingBuf and again.id == rb.id
        with pytest.raises(TypeError, match="no keys or values.*RingBufReader"):
            rb[0]
        with pytest.raises(TypeError):
            list(rb.items())
    with pybpf.maps.create(MapType.RINGBUF, max_entries=PAGE) as rb2:
        assert type(rb2) is RingBuf
    for bad in (0, 1000, 3 * PAGE):
        with pytest.raises(ValueError, match="positive int|power of two"):
            RingBuf(bad)


# ---------------------------------------------------------------------- the three ways to read

def test_iterator_callback_and_batch_read_in_order():
    with Producer(100) as p, RingBufReader(p.ring) as reader:
        p.run()
        assert reader.available() == 100 * 72
        views = []
        for rec in reader.poll(timeout=0):
            assert isinstance(rec, memoryview) and len(rec) == 64 and rec.readonly
            assert bytes(rec) == expected_record(seq_of(rec), 64)
            views.append(seq_of(rec))
        assert views == list(range(100)) and reader.received == 100 and reader.available() == 0

        p.run()
        got: list[int] = []
        assert reader.consume(lambda rec: got.append(seq_of(rec))) == 100
        assert got == list(range(100, 200))

        p.run()
        with reader.read_batch() as batch:
            assert isinstance(batch, RecordBatch) and len(batch) == 100 and batch.runs == 1
            assert [seq_of(v) for v in batch] == list(range(200, 300)) and seq_of(batch[-1]) == 299
            assert batch.nbytes == 6400
            assert reader.available() == 100 * 72  # held until released
        assert reader.available() == 0 and reader.received == 300
        assert reader.read_batch(timeout=0).__len__() == 0
        assert list(reader.poll(timeout=0)) == []
        assert p.failed == 0


def test_dispatch_waits_for_records_and_uses_the_default_callback():
    got: list[int] = []
    with Producer(10) as p, RingBufReader(p.ring, callback=lambda r: got.append(seq_of(r))) as reader:
        t0 = time.monotonic()
        assert reader.dispatch(timeout=0.05) == 0
        assert time.monotonic() - t0 >= 0.04
        timer = threading.Timer(0.05, p.run)
        timer.start()
        assert reader.dispatch(timeout=5) == 10  # woken by the kernel's notification
        timer.join()
        assert got == list(range(10))
    with Producer(1) as p, RingBufReader(p.ring) as plain:
        with pytest.raises(TypeError, match="no callback"):
            plain.dispatch(0)


def test_callback_exception_consumes_only_what_was_handed_over():
    with Producer(50) as p, RingBufReader(p.ring) as reader:
        p.run()
        seen: list[int] = []

        def cb(rec: memoryview) -> None:
            seen.append(seq_of(rec))
            if seq_of(rec) == 19:
                raise RuntimeError("stop")

        with pytest.raises(RuntimeError):
            reader.consume(cb)
        assert seen == list(range(20)) and reader.received == 20
        assert reader.available() == 30 * 72
        rest = [seq_of(r) for r in reader.poll(timeout=0)]
        assert rest == list(range(20, 50))


def test_breaking_out_of_the_iterator_keeps_the_rest():
    with Producer(40) as p, RingBufReader(p.ring) as reader:
        p.run()
        for rec in reader.poll(timeout=0):
            if seq_of(rec) == 9:
                break
        assert reader.available() == 30 * 72
        assert [seq_of(r) for r in reader.poll(timeout=0)] == list(range(10, 40))


def test_wrapped_records_read_as_one_block():
    # 4 KiB ring, 64-byte records (72 with the header): the ring wraps every 57 records or so.
    with Producer(20, ring_size=PAGE) as p, RingBufReader(p.ring) as reader:
        wrapped = 0
        for _ in range(30):
            p.run()
            for rec in reader.poll(timeout=0):
                assert bytes(rec) == expected_record(seq_of(rec), 64)
            pos = reader._rings[0]._cons[0]
            wrapped += (pos - 20 * 72) // PAGE != pos // PAGE
        assert reader.received == 600 and p.failed == 0 and wrapped >= 5
        # a batch across the wrap point is one run, and its array is one strided view
        p.run()
        with reader.read_batch() as batch:
            arr = batch.numpy("<u8")
            assert arr.tolist() == list(range(600, 620)) and batch.runs == 1


def test_discarded_records_are_skipped_and_counted():
    with Producer(30, discard_every=3) as p, RingBufReader(p.ring) as reader:
        p.run()
        assert [seq_of(r) for r in reader.poll(timeout=0)] == [s for s in range(30) if s % 3]
        assert reader.discarded == 10 and reader.received == 20
        p.run()
        with reader.read_batch() as batch:
            assert [seq_of(v) for v in batch] == [s for s in range(30, 60) if s % 3]
            assert batch.runs == 10  # each discarded record splits the run
            assert batch.numpy("<u8").tolist() == [s for s in range(30, 60) if s % 3]
        assert reader.discarded == 20 and reader.available() == 0


def test_variable_sized_records():
    with Producer(200, variable=True) as p, RingBufReader(p.ring) as reader:
        p.run()
        for rec in reader.poll(timeout=0):
            s = seq_of(rec)
            assert len(rec) == 8 + 8 * (s % 4)
            assert bytes(rec) == expected_record(s, 32)[:len(rec)]
        assert reader.received == 200
        p.run()
        with reader.read_batch() as batch:
            assert [len(v) for v in batch] == [8 + 8 * (s % 4) for s in range(200, 400)]
            with pytest.raises(RecordError, match="shorter than dtype"):
                batch.numpy("<2u8")


# ---------------------------------------------------------------------- typed records

def test_records_decoded_with_struct_ctypes_and_btf():
    class Event(ctypes.Structure):
        _fields_ = [("seq", ctypes.c_uint64), ("x1", ctypes.c_uint64), ("x2", ctypes.c_uint64)]

    u64 = Int("unsigned long long", 8)
    u32 = Int("unsigned int", 4)
    char = Int("char", 1, IntEncoding.CHAR)
    event_t = Struct("event", 24, [Member("seq", u64, 0), Member("lo", u32, 64), Member("hi", u32, 96),
                                   Member("tag", Array(char, u32, 8), 128)])
    with Producer(10, size=24) as p:
        with RingBufReader(p.ring, record="<QQQ") as reader:
            p.run()
            assert list(reader.poll(timeout=0)) == [(s, s ^ 1, s ^ 2) for s in range(10)]
            p.run()
            with reader.read_batch() as batch:
                arr = batch.array
                assert arr.dtype.names == ("f0", "f1", "f2") and arr["f0"].tolist() == list(range(10, 20))
                assert batch.decode()[0] == (10, 11, 8)
        with RingBufReader(p.ring, record=Event) as reader:
            p.run()
            evs = list(reader.poll(timeout=0))
            assert [(e.seq, e.x2) for e in evs] == [(s, s ^ 2) for s in range(20, 30)]
            p.run()
            with reader.read_batch() as batch:
                assert batch.array["x1"].tolist() == [s ^ 1 for s in range(30, 40)]
        with RingBufReader(p.ring, record=event_t) as reader:
            p.run()
            evs = list(reader.poll(timeout=0))
            assert [(e.seq, e.lo, e.hi) for e in evs] == [(s, s ^ 1, 0) for s in range(40, 50)]
            p.run()
            with reader.read_batch() as batch:
                arr = batch.array
                assert arr.dtype == btf_dtype(event_t) and arr.dtype.itemsize == 24
                assert arr["seq"].tolist() == list(range(50, 60))
                assert arr["tag"].tolist() == [struct.pack("<Q", s ^ 2).rstrip(b"\0") for s in range(50, 60)]
        with RingBufReader(p.ring, dtype=[("seq", "<u8"), ("a", "<u8")]) as reader:
            p.run()
            recs = list(reader.poll(timeout=0))
            assert [int(r["seq"]) for r in recs] == list(range(60, 70))


def test_short_records_are_reported_never_read_past():
    with Producer(6, size=16) as p:
        with RingBufReader(p.ring, record="<QQQQ") as reader:  # 32 bytes declared, 16 come
            p.run()
            with pytest.raises(RecordError, match="record of 16 bytes is shorter than .*32 bytes") as info:
                list(reader.poll(timeout=0))
            assert info.value.length == 16 and info.value.needed == 32
            assert info.value.data == expected_record(0, 16)
            assert reader.lost == 1 and reader.available() == 5 * 24  # skipped the bad one only
        errors: list[RecordError] = []
        with RingBufReader(p.ring, record="<QQQQ", on_error=errors.append) as reader:
            assert list(reader.poll(timeout=0)) == []
            assert len(errors) == 5 and reader.lost == 5 and reader.available() == 0
            p.run()
            got: list = []
            assert reader.consume(got.append) == 0 and len(errors) == 11 and not got
            p.run()
            batch = reader.read_batch()
            assert len(batch) == 0 and len(errors) == 17
            batch.release()
            assert reader.available() == 0


def test_batch_is_released_by_the_next_read_and_refuses_use_after_release():
    with Producer(10) as p, RingBufReader(p.ring) as reader:
        p.run()
        first = reader.read_batch()
        assert len(first) == 10
        p.run()
        second = reader.read_batch()  # releases the first
        assert [seq_of(v) for v in second] == list(range(10, 20))
        with pytest.raises(ValueError, match="released"):
            first[0]
        second.release()
        assert reader.available() == 0


def test_batch_allocates_nothing_per_record():
    pytest.importorskip("numpy")
    with Producer(1 << 16, ring_size=1 << 23) as p, RingBufReader(p.ring, dtype=[("seq", "<u8")]) as reader:
        p.run()
        assert p.failed == 0
        with reader.read_batch(max_records=1000) as warm:  # imports, dtype caches
            assert warm.array["seq"].tolist() == list(range(1000))
        gc.collect()
        tracemalloc.start()
        try:
            batch = reader.read_batch()
            arr = batch.array
            first, last, count = int(arr["seq"][0]), int(arr["seq"][-1]), len(batch)
            batch.release()
            del arr, batch
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert (first, last, count) == (1000, 65535, 64536)
        # 64536 records of 64 bytes: one object each would be megabytes
        assert peak < 16 * 1024, f"{peak} bytes traced for a batch of {count} records"
        assert reader.received == 65536


# ---------------------------------------------------------------------- several rings, waking, closing

def test_several_ring_buffers_in_one_reader():
    with Producer(5) as a, Producer(7, size=16) as c:
        per_ring: dict[int, list] = {0: [], 1: []}
        with RingBufReader([a.ring]) as reader:
            assert reader.add(c.ring, record="<QQ") == 1
            a.run()
            c.run()
            recs = list(reader.poll(timeout=1))
            assert len(recs) == 12
            assert [seq_of(r) for r in recs if isinstance(r, memoryview)] == list(range(5))
            assert [r for r in recs if isinstance(r, tuple)] == [(s, s ^ 1) for s in range(7)]
            a.run()
            c.run()
            batches = reader.read_batches()
            assert sorted(bt.ring for bt in batches) == [0, 1] and sum(map(len, batches)) == 12
            for bt in batches:
                per_ring[bt.ring] = [seq_of(v) for v in bt]
                bt.release()
            assert per_ring == {0: list(range(5, 10)), 1: list(range(7, 14))}
            c.run()
            one = reader.read_batch(ring=0)
            assert len(one) == 0
            assert len(reader.read_batch(ring=1)) == 7


# Blocking waits a reader thread can be in (x86_64, arm64): epoll_wait/epoll_pwait/epoll_pwait2.
_WAIT_SYSCALLS = {"x86_64": {232, 281, 441}, "aarch64": {22, 441}}


def wait_until_blocked(thread: threading.Thread, timeout: float = 10) -> None:
    """Return once ``thread`` sleeps in an epoll wait (from /proc/self/task/TID/syscall), or ended.

    Orders a test's close()/flush() after the reader blocked, without guessing a time.
    """
    waits = _WAIT_SYSCALLS.get(os.uname().machine)
    path = f"/proc/self/task/{thread.native_id}/syscall"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and thread.is_alive():
        try:
            with open(path) as f:
                first = f.read().split()[0]
        except (OSError, IndexError):
            first = ""
        if first.lstrip("-").isdigit() and (waits is None or int(first) in waits):
            return
        time.sleep(0.001)
    if not thread.is_alive():
        return
    raise AssertionError(f"thread {thread.name} did not block in epoll within {timeout} s")


def test_close_and_flush_wake_a_blocked_reader():
    with Producer(3) as p:
        reader = RingBufReader(p.ring)
        results: list = []
        got_three = threading.Event()

        def blocked(mode: str) -> None:
            t0 = time.monotonic()
            if mode == "poll":
                results.append(("poll", list(reader.poll(timeout=None)), time.monotonic() - t0))
            else:
                seqs = []
                for r in reader:
                    seqs.append(seq_of(r))
                    if len(seqs) == 3:
                        got_three.set()
                results.append(("iter", seqs, time.monotonic() - t0))

        t = threading.Thread(target=blocked, args=("poll",))
        t.start()
        wait_until_blocked(t)
        reader.flush()
        t.join(5)
        assert not t.is_alive() and results[0][1] == [] and results[0][2] < 2

        t = threading.Thread(target=blocked, args=("iter",))
        t.start()
        wait_until_blocked(t)
        p.run()
        assert got_three.wait(10)
        reader.close()
        t.join(5)
        assert not t.is_alive() and results[1][1] == [0, 1, 2]
        assert reader.closed
        with pytest.raises(ValueError, match="closed"):
            list(reader.poll(timeout=0))


def test_closing_the_map_ends_the_reader():
    ring = RingBuf(1 << 16)
    with Producer(4, ring=ring) as p:
        reader = RingBufReader(ring)
        got: list[int] = []
        all_four = threading.Event()

        def run() -> None:
            for rec in reader:
                got.append(seq_of(rec))
                if len(got) == 4:
                    all_four.set()

        t = threading.Thread(target=run)
        t.start()
        p.run()
        assert all_four.wait(10)
        ring.close()
        t.join(5)
        assert not t.is_alive() and got == [0, 1, 2, 3]
        assert reader.closed
        reader.close()
        with pytest.raises(ValueError, match="closed"):
            RingBufReader(ring)


def test_a_dropped_reader_frees_its_kernel_objects():
    with RingBuf(PAGE) as ring:
        reader = RingBufReader(ring)
        fds = {r.fd for r in reader._rings} | {reader.fileno()}
        del reader
        gc.collect()
        # (the conftest fixture checks that nothing is left open; this says what was)
        assert fds
        with RingBufReader(ring) as again:
            with pytest.raises(ValueError, match="read by this reader already"):
                again.add(ring)


def test_asyncio_without_threads():
    async def main(p: Producer, reader: RingBufReader) -> list[int]:
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, p.run)
        loop.call_later(0.2, p.run)
        got = []
        async for rec in reader:
            got.append(seq_of(rec))
            if len(got) == 20:
                loop.call_soon(reader.close)
        return got

    with Producer(10) as p, RingBufReader(p.ring) as reader:
        before = threading.active_count()
        got = asyncio.run(main(p, reader))
        assert got == list(range(20)) and threading.active_count() == before


def test_wrong_map_types_are_type_errors():
    with HashMap(key="u32", value="u64", max_entries=4) as h, UserRingBuf(PAGE) as u:
        with pytest.raises(TypeError, match="HASH map, not a RINGBUF"):
            RingBufReader(h)
        with pytest.raises(TypeError, match="USER_RINGBUF map.*UserRingBufWriter"):
            RingBufReader(u)
        with pytest.raises(TypeError):
            RingBufReader(object())
        with pytest.raises(TypeError, match="not a USER_RINGBUF"):
            UserRingBufWriter(h)
        odd = types.SimpleNamespace(type="ringbuf", fd=3)  # a type that is not a number
        with pytest.raises(TypeError, match="reads ring buffer maps, not SimpleNamespace"):
            RingBufReader(odd)
        with pytest.raises(TypeError, match="writes user ring buffer maps"):
            UserRingBufWriter(types.SimpleNamespace(type=MapType.USER_RINGBUF))  # no fd
    u.close()
    with pytest.raises(ValueError, match="closed"):
        UserRingBufWriter(u)


def test_closed_user_ringbuf_writer_says_so():
    with UserRingBuf(PAGE) as urb:
        w = UserRingBufWriter(urb)
        assert w.pending == 0 and w.free == PAGE
        w.close()
        assert w.closed and "closed" in repr(w)
        for what in ("pending", "free"):
            with pytest.raises(ValueError, match="writer is closed"):
                getattr(w, what)
        with pytest.raises(ValueError, match="writer is closed"):
            w.write(b"12345678")


# ---------------------------------------------------------------------- loss accounting under concurrency

def test_concurrent_producer_and_reader_lose_nothing_unaccounted():
    """A producer thread fills a small ring while a reader thread drains it."""
    runs, per_run = 200, 500
    with Producer(per_run, ring_size=1 << 14) as p, RingBufReader(p.ring) as reader:
        seqs: list[int] = []
        first_burst = threading.Event()  # 500 records into a ring of 227: overflows for sure
        done = threading.Event()

        def produce() -> None:
            try:
                p.run()
                first_burst.set()
                p.run(runs - 1)
            finally:
                first_burst.set()
                done.set()

        def consume() -> None:
            append = seqs.append
            unpack = struct.Struct("<Q").unpack_from
            first_burst.wait(30)
            while not done.is_set():
                reader.dispatch(0.01, lambda r: append(unpack(r)[0]))
            reader.consume(lambda r: append(unpack(r)[0]))

        threads = [threading.Thread(target=consume), threading.Thread(target=produce)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        produced, failed = p.produced, p.failed
        assert produced == runs * per_run
        assert len(seqs) + failed == produced, (len(seqs), failed)
        assert len(set(seqs)) == len(seqs)                      # no duplicates
        assert all(a < b for a, b in zip(seqs, seqs[1:]))       # order kept
        assert reader.received == len(seqs)
        assert failed >= per_run - 16384 // 72 and len(seqs) > 0  # the first burst overflowed


# ---------------------------------------------------------------------- scanning logic on fake memory

class FakeRing(_Ring):
    """A _Ring over bytearrays instead of the kernel's mapping (for busy bits and odd layouts)."""

    __slots__ = ("mem",)

    def __init__(self, size: int) -> None:  # noqa: D401 - no super().__init__: no kernel map
        from pybpf.readers._records import RecordType

        self.mem = bytearray(16 + 2 * size)
        view = memoryview(self.mem)
        self.index, self.map, self.rtype, self.dead = 0, None, RecordType(), False
        self.size, self._mask = size, size - 1
        self._cons, self._prod = view[0:8].cast("Q"), view[8:16].cast("Q")
        self._data = view[16:]
        self._hdr = self._data.cast("I")
        self._seen, self._batch, self.discarded, self.fd = 0, None, 0, -1
        self._ring = None

    def put(self, pos: int, length: int, flags: int = 0, fill: int = 0) -> int:
        """Write a record at ``pos`` into both copies of the data area, as the kernel's double mapping shows it."""
        total = (length + 8 + 7) & ~7
        rec = struct.pack("<II", length | flags, 0) + bytes([fill]) * length
        rec += bytes(total - len(rec))
        for j, byte in enumerate(rec):
            k = (pos + j) & self._mask
            self._data[k] = self._data[k + self.size] = byte
        self._prod[0] = max(self._prod[0], pos + total)
        return pos + total


def test_scan_stops_at_busy_records_and_resumes():
    ring = FakeRing(4096)
    pos = 0
    for i in range(5):
        pos = ring.put(pos, 16, fill=i)
    busy_at = pos
    pos = ring.put(pos, 16, BUSY_BIT, fill=5)
    ring.put(pos, 16, fill=6)
    runs, end = ring.scan(1 << 20)
    assert end == busy_at and [(r[2], r[4]) for r in runs] == [(5, 16)]
    ring.put(busy_at, 16, fill=5)  # committed now
    ring._cons[0] = end
    runs, end = ring.scan(1 << 20)
    assert [(r[2], r[4]) for r in runs] == [(2, 16)] and end == ring._prod[0]


def test_scan_mixed_sizes_discards_and_the_wrap():
    ring = FakeRing(4096)
    pos = 4096 - 3 * 24  # three records before the end, then wrap
    ring._cons[0] = ring._prod[0] = pos
    ring._seen = pos
    lengths = [16, 16, 16, 16, 40, 40, 3, 16, 16]
    flags = [0, 0, 0, 0, 0, DISCARD_BIT, 0, 0, 0]
    for n, f in zip(lengths, flags):
        pos = ring.put(pos, n, f)
    runs, end = ring.scan(1 << 20)
    assert end == pos and ring.discarded == 1
    assert [(r[2], r[4]) for r in runs] == [(4, 16), (1, 40), (1, 3), (2, 16)]


@pytest.mark.parametrize("pattern", [
    [7] * 100, [7] * 50 + [8] + [7] * 49, [7] * 9 + [1], [7, 1] * 10, [7] * 1000 + [7 | BUSY_BIT],
    [7] * 17 + [9] * 3, [7],
])
def test_run_length_finds_the_first_different_header(pattern):
    words = []
    for w in pattern:
        words += [w, 0xdead, 7, 0]  # header, pg_off, payload that looks like a header
    hv = memoryview(struct.pack(f"<{len(words)}I", *words)).cast("I")
    expected = next((i for i, w in enumerate(pattern) if w != pattern[0]), len(pattern))
    assert run_length(hv, 0, 4, len(pattern)) == expected


# ---------------------------------------------------------------------- user ring buffer

def drain_program(urb_fd: int, state_fd: int) -> list:
    """XDP code: bpf_user_ringbuf_drain; the callback reads 16 bytes (a, b) of each record.

    state: [0] sum of a, [1] records read, [2] records too short, [3] drain's return value.
    """
    return [
        b.ld_map_fd(R1, urb_fd), b.ld_func(R2, "cb"), b.mov64_imm(R3, 0), b.mov64_imm(R4, 0),
        b.call_helper(H.user_ringbuf_drain),
        b.ld_map_value(R7, state_fd, 0), b.stx_mem(op.DW, R7, R0, 24),
        b.mov64_imm(R0, 2), b.exit_(),
        b.label("cb"),
        b.mov64_reg(R3, R1),
        b.mov64_reg(R1, FP), b.alu64_imm(op.ADD, R1, -16), b.mov64_imm(R2, 16), b.mov64_imm(R4, 0),
        b.mov64_imm(R5, 0),
        b.call_helper(H.dynptr_read),
        b.ld_map_value(R7, state_fd, 0),
        b.jmp_imm(op.JNE, R0, 0, "short"),
        b.ldx_mem(op.DW, R1, FP, -16), b.atomic_op(op.DW, op.ADD, R7, R1, 0),
        b.mov64_imm(R1, 1), b.atomic_op(op.DW, op.ADD, R7, R1, 8),
        b.mov64_imm(R0, 0), b.exit_(),
        b.label("short"),
        b.mov64_imm(R1, 1), b.atomic_op(op.DW, op.ADD, R7, R1, 16),
        b.mov64_imm(R0, 0), b.exit_(),
    ]


def test_user_ringbuf_writer_feeds_a_program():
    with UserRingBuf(PAGE, name="commands") as urb, ArrayMap(value="<QQQq", max_entries=1) as st, \
            UserRingBufWriter(urb) as w:
        assert pybpf.maps.map_class(MapType.USER_RINGBUF) is UserRingBuf
        with load_program(drain_program(urb.fd, st.fd), name="drain") as prog:
            for i in range(10):
                w.write(struct.pack("<QQ", i, 0))
            with w.reserve(16) as rec:
                struct.pack_into("<QQ", rec.data, 0, 1000, 0)
            with pytest.raises(KeyError):
                with w.reserve(16) as rec:
                    struct.pack_into("<QQ", rec.data, 0, 5000, 0)
                    raise KeyError("discarded")
            w.write(b"\x01\x02\x03")                    # too short for the program
            assert w.pending == 13 * 24 - 8 and w.written == 13
            prog.test_run(PACKET)
            total, count, short, drained = st[0]
            assert (total, count, short) == (45 + 1000, 11, 1) and drained == 12
            assert w.pending == 0 and w.free == PAGE

            # fill it up: reserve fails with ENOSPC at once, and waits for a drain with a timeout
            n = 0
            while w.free >= 24:
                w.write(struct.pack("<QQ", 1, 0))
                n += 1
            with pytest.raises(pybpf.SyscallError, match="ENOSPC"):
                w.write(struct.pack("<QQ", 1, 0))
            timer = threading.Timer(0.1, prog.test_run, args=(PACKET,))
            timer.start()
            t0 = time.monotonic()
            w.write(struct.pack("<QQ", 7, 0), timeout=5)
            assert time.monotonic() - t0 >= 0.05
            timer.join()
            prog.test_run(PACKET)
            assert st[0][1] == 11 + n + 1 and st[0][0] == 45 + 1000 + n + 7
            with pytest.raises(ValueError, match="does not fit"):
                w.reserve(PAGE)


# ---------------------------------------------------------------------- docs

def test_docstrings_name_the_minimum_kernel():
    from pybpf.readers import perfbuf, ringbuf, userringbuf
    from pybpf.maps import perf_event_array, ringbuf as mrb

    assert "5.8" in ringbuf.__doc__ and "5.8" in RingBufReader.__doc__
    assert "6.1" in userringbuf.__doc__ and "6.1" in UserRingBufWriter.__doc__
    assert "4.3" in perfbuf.__doc__ and "4.3" in perf_event_array.__doc__
    assert "Example" in mrb.__doc__ and RingBuf.min_kernel == "5.8" and UserRingBuf.min_kernel == "6.1"
