"""Perf buffers against the running kernel: PerfEventArray + PerfBufReader.

The producer is an XDP program run with test_run: bpf_loop calls a callback
that writes a record (seq, seq^1, ...) with ``bpf_perf_event_output(ctx,
&map, BPF_F_CURRENT_CPU, ...)``.  The XDP context reaches the callback
through bpf_loop's callback context (a pointer to the caller's stack slot
holding it).  test_run runs the program on the CPU of the calling thread, so
tests pin themselves with sched_setaffinity to choose the ring.
"""

from __future__ import annotations

import os
import select
import struct
import threading
from contextlib import contextmanager
from typing import Iterator

import pytest

import pybpf
from pybpf._sys import HelperID as H, MapType
from pybpf.asm import builder as b, opcodes as op
from pybpf.maps.array import ArrayMap
from pybpf.maps.hash import HashMap
from pybpf.maps.perf_event_array import PerfEventArray
from pybpf.maps.ringbuf import RingBuf
from pybpf.readers import PerfBufReader, RecordBatch
from pybpf.readers.perfbuf import online_cpus

from test_ringbuf import (
    FP, Producer, R0, R1, R2, R3, R4, R5, R6, R7, R8, expected_record, load_program, seq_of, wait_until_blocked,
)

pytestmark = pytest.mark.root  # against the kernel: needs root

BPF_F_CURRENT_CPU = 0xFFFFFFFF
CPUS = online_cpus()


def perf_producer(pea_fd: int, state_fd: int, count: int, size: int = 64) -> list:
    """XDP code: ``count`` times bpf_perf_event_output of ``size`` bytes (seq, seq ^ k words).

    state[0] hands out sequence numbers, state[1] counts failed outputs.
    """
    return [
        b.stx_mem(op.DW, FP, R1, -8),                         # the ctx, for the callback
        b.mov64_imm(R1, count), b.ld_func(R2, "cb"),
        b.mov64_reg(R3, FP), b.alu64_imm(op.ADD, R3, -8), b.mov64_imm(R4, 0),
        b.call_helper(H.loop),
        b.mov64_imm(R0, 2), b.exit_(),
        b.label("cb"),
        b.ldx_mem(op.DW, R6, R2, 0),                          # r6 = ctx
        b.ld_map_value(R7, state_fd, 0),
        b.mov64_imm(R8, 1), b.atomic_op(op.DW, op.ADD, R7, R8, 0, fetch=True),
        b.stx_mem(op.DW, FP, R8, -size),
        *[x for k in range(1, size // 8) for x in (b.mov64_reg(R1, R8), b.alu64_imm(op.XOR, R1, k),
                                                   b.stx_mem(op.DW, FP, R1, -size + 8 * k))],
        b.mov64_reg(R1, R6), b.ld_map_fd(R2, pea_fd), b.ld_imm64(R3, BPF_F_CURRENT_CPU),
        b.mov64_reg(R4, FP), b.alu64_imm(op.ADD, R4, -size), b.mov64_imm(R5, size),
        b.call_helper(H.perf_event_output),
        b.jmp_imm(op.JEQ, R0, 0, "ok"),
        b.mov64_imm(R8, 1), b.atomic_op(op.DW, op.ADD, R7, R8, 8),
        b.label("ok"),
        b.mov64_imm(R0, 0), b.exit_(),
    ]


class PerfProducer(Producer):
    """A perf event array, a state array (seq, failures) and a loaded perf_event_output producer."""

    def __init__(self, count: int, *, size: int = 64, pea: PerfEventArray | None = None,
                 state: ArrayMap | None = None) -> None:
        self.own = pea is None
        self.pea = pea if pea is not None else PerfEventArray(name="events")
        self.own_state = state is None
        self.state = state if state is not None else ArrayMap(value="<QQ", max_entries=1, name="state")
        self.prog = load_program(perf_producer(self.pea.fd, self.state.fd, count, size), name="perf_producer")

    def close(self) -> None:
        self.prog.close()
        if self.own_state:
            self.state.close()
        if self.own:
            self.pea.close()


@contextmanager
def on_cpu(cpu: int) -> Iterator[None]:
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def test_perf_event_array_map_class():
    with PerfEventArray() as pea:
        assert pea.type == MapType.PERF_EVENT_ARRAY and pea.max_entries == pybpf.maps.possible_cpus()
        assert pybpf.maps.map_class(MapType.PERF_EVENT_ARRAY) is PerfEventArray
        assert pea.key_size == pea.value_size == 4


def test_records_arrive_in_the_ring_of_their_cpu():
    with PerfProducer(20) as p, PerfBufReader(p.pea, pages=8) as reader:
        assert reader.cpus == CPUS
        expected = 0
        for index, cpu in enumerate(CPUS):
            with on_cpu(cpu):
                p.run()
            recs = []
            for rec in reader.poll(timeout=1):
                assert reader.last_cpu == cpu
                assert len(rec) == 68  # 64 bytes, padded so the sample stays 8-byte aligned
                assert bytes(rec[:64]) == expected_record(seq_of(rec), 64)
                recs.append(seq_of(rec))
            assert recs == list(range(expected, expected + 20))
            expected += 20
            with on_cpu(cpu):
                p.run()
            with reader.read_batch(timeout=1) as batch:
                assert isinstance(batch, RecordBatch) and batch.ring == index and reader.cpus[batch.ring] == cpu
                assert batch.numpy("<u8").tolist() == list(range(expected, expected + 20))
                assert batch.runs == 1
            expected += 20
        assert reader.received == 40 * len(CPUS) and reader.lost == 0 and p.failed == 0


def test_typed_records_and_callbacks():
    got: list[tuple] = []
    with PerfProducer(10, size=24) as p, PerfBufReader(p.pea, pages=4, record="<QQQ",
                                                       callback=got.append) as reader:
        with on_cpu(CPUS[0]):
            p.run()
        assert reader.dispatch(timeout=1) == 10
        assert got == [(s, s ^ 1, s ^ 2) for s in range(10)]
        with on_cpu(CPUS[-1]):
            p.run()
        with reader.read_batch(timeout=1) as batch:
            assert batch.array["f2"].tolist() == [s ^ 2 for s in range(10, 20)]


def test_wrapped_records_are_whole():
    # One 4 KiB page per CPU and 80-byte samples: every ~51 samples one wraps around the end.
    with PerfProducer(17) as p, PerfBufReader(p.pea, pages=1) as reader, on_cpu(CPUS[0]):
        for _ in range(40):
            p.run()
            for rec in reader.poll(timeout=1):
                assert bytes(rec[:64]) == expected_record(seq_of(rec), 64)
        assert reader.received == 17 * 40 and p.failed == 0 and reader.lost == 0


def test_lost_samples_are_counted_and_reported():
    losses: list[tuple[int, int]] = []
    cpu = CPUS[-1]
    with PerfProducer(200) as big, PerfProducer(1, pea=big.pea, state=big.state) as one, \
            PerfBufReader(big.pea, pages=1, on_lost=lambda c, n: losses.append((c, n))) as reader, on_cpu(cpu):
        received = 0
        for _ in range(3):
            big.run()
            received += sum(1 for _ in reader.poll(timeout=1))
        one.run()  # the kernel writes the pending LOST record before this sample
        received += sum(1 for _ in reader.poll(timeout=1))
        produced, failed = big.produced, big.failed
        assert produced == 601 and failed > 0
        assert reader.lost == failed == sum(n for _c, n in losses)
        assert {c for c, _n in losses} == {cpu}
        assert received == reader.received == produced - failed


def test_wakeup_events_and_watermark_and_flush():
    with PerfProducer(5) as p, on_cpu(CPUS[0]):
        with PerfBufReader(p.pea, pages=4, wakeup_events=8) as reader:
            p.run()  # 5 samples: below wakeup_events, the epoll fd stays quiet
            assert select.select([reader.fileno()], [], [], 0.1)[0] == []
            p.run()  # 10 samples: wakes
            assert select.select([reader.fileno()], [], [], 1)[0] == [reader.fileno()]
            assert len(list(reader.poll(timeout=0))) == 10
        with PerfBufReader(p.pea, pages=4, watermark=1024) as reader:
            p.run()  # 5 * 80 bytes: below the watermark
            assert select.select([reader.fileno()], [], [], 0.1)[0] == []
            result: list = []
            t = threading.Thread(target=lambda: result.append(reader.read_batch(timeout=None)))
            t.start()
            wait_until_blocked(t)
            reader.flush()  # hands over what is there
            t.join(5)
            assert not t.is_alive() and len(result[0]) == 5
            result[0].release()
            p.run(2)  # 15 * 80 bytes > 1024: wakes
            assert select.select([reader.fileno()], [], [], 1)[0] == [reader.fileno()]
            assert len(list(reader.poll(timeout=0))) == 10


def test_overwritable_rings_keep_the_newest_records():
    with PerfProducer(200) as p, PerfBufReader(p.pea, pages=1, overwrite=True, record="<Q") as reader, \
            on_cpu(CPUS[0]):
        p.run()
        assert p.failed == 0  # a backward ring never refuses a sample
        snap = reader.snapshot()
        recs = snap[CPUS[0]]
        assert 40 < len(recs) < 200 and recs == list(range(200 - len(recs), 200))
        assert all(not v for c, v in snap.items() if c != CPUS[0])
        p2 = 10
        with PerfProducer(p2, pea=p.pea, state=p.state) as small:
            small.run()
        assert reader.snapshot()[CPUS[0]] == list(range(200, 210))  # only what is new
        everything = reader.snapshot(everything=True)[CPUS[0]]
        assert everything[-1] == 209 and everything == list(range(210 - len(everything), 210))
        with pytest.raises(TypeError, match="snapshot"):
            list(reader.poll(timeout=0))


def test_wrong_map_types_and_bad_options():
    with HashMap(key="u32", value="u32", max_entries=4) as h, RingBuf(4096) as rb, PerfEventArray(1) as small:
        with pytest.raises(TypeError, match="HASH map, not a PERF_EVENT_ARRAY"):
            PerfBufReader(h)
        with pytest.raises(TypeError, match="RINGBUF map"):
            PerfBufReader(rb)
        with pytest.raises(ValueError, match="power of two"):
            PerfBufReader(small, pages=3, cpus=[0])
        if max(CPUS) >= 1:
            with pytest.raises(ValueError, match="max_entries=1, too few"):
                PerfBufReader(small)
        with PerfBufReader(small, cpus=[0], pages=1) as ok:
            assert ok.cpus == [0]


def test_closing_the_map_ends_the_reader():
    pea = PerfEventArray()
    reader = PerfBufReader(pea, pages=1)
    ended = threading.Event()

    def run() -> None:
        for _ in reader:
            pass
        ended.set()

    t = threading.Thread(target=run)
    t.start()
    wait_until_blocked(t)
    pea.close()
    t.join(5)
    assert ended.is_set() and reader.closed
    reader.close()


def test_concurrent_producer_and_reader_account_for_every_sample():
    """A producer thread writes bursts while a reader thread drains; every sample is received or lost.

    The reader starts after the first burst, which is ten times the ring, so
    the ring overflows for sure; afterwards the two race freely.
    """
    runs, per_run = 60, 600
    with PerfProducer(per_run) as p, PerfProducer(1, pea=p.pea, state=p.state) as flusher, \
            PerfBufReader(p.pea, pages=1) as reader:
        seqs: dict[int, list[int]] = {c: [] for c in CPUS}
        first_burst = threading.Event()
        done = threading.Event()

        def produce() -> None:
            try:
                with on_cpu(CPUS[-1]):
                    p.run()
                    first_burst.set()
                    p.run(runs - 1)
            finally:
                first_burst.set()
                done.set()

        def consume() -> None:
            unpack = struct.Struct("<Q").unpack_from
            first_burst.wait(30)
            with on_cpu(CPUS[0]):
                while True:
                    finished = done.is_set()
                    for rec in reader.poll(timeout=0.01):
                        seqs[reader.last_cpu].append(unpack(rec)[0])
                    if finished:
                        return  # drained once more after the producer stopped

        threads = [threading.Thread(target=consume), threading.Thread(target=produce)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for cpu in CPUS:  # a last sample per CPU (the rings are empty now) brings out pending LOST records
            with on_cpu(cpu):
                flusher.run()
        for rec in reader.poll(timeout=1):
            seqs[reader.last_cpu].append(seq_of(rec))
        del rec
        produced, failed = p.produced, p.failed
        received = sum(len(v) for v in seqs.values())
        assert produced == runs * per_run + len(CPUS)
        assert failed >= per_run - 100  # the first burst overflowed the ring
        assert received + failed == produced and reader.lost == failed and received == reader.received
        everything = [s for v in seqs.values() for s in v]
        assert len(set(everything)) == len(everything)
        for v in seqs.values():
            assert all(a < b for a, b in zip(v, v[1:]))
