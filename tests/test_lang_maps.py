"""pybpf.lang map families beyond hash/array: stack traces, perf event arrays, queues, LPM tries,
tail calls through a prog array — compiled, loaded and checked against what the kernel produced."""

from __future__ import annotations

import os

import pybpf
from pybpf.lang import FakeCtx

from lang_support import module_from_source

SOURCE = '''
from pybpf.lang import *


class V4(Struct):
    prefixlen: u32
    addr: u32


stacks = StackTrace(64)
perf = PerfEventArray()
q = Queue(u64, 8)
routes = LpmTrie(key=V4, value=u32, max_entries=16)
OUT = u64(0)
TARGET_TGID = Const(u32, 0)
ids = HashMap(key=u32, value=i64, max_entries=4)


@tracepoint("syscalls/sys_enter_getppid")
def on_getppid(ctx) -> int:
    if tgid() != TARGET_TGID:
        return 0
    ids[0] = stacks.get_stackid(ctx, 256)      # BPF_F_USER_STACK
    perf.output(u64(0xABCDEF))
    return 0


@xdp
def queue_and_trie(ctx) -> int:
    global OUT
    q.push(41)
    q.push(42)
    k = V4(prefixlen=32, addr=0x0C0C0B0A)
    OUT = q.pop() * 1000 + routes[k]
    return XDP_PASS


@xdp
def drop(ctx) -> int:
    return XDP_DROP


progs = ProgArray(2, programs={1: drop})


@xdp
def dispatch(ctx) -> int:
    progs.tail_call(ctx, 1)
    return XDP_PASS
'''


def test_stack_trace_and_perf_event_array():
    mod = module_from_source(SOURCE)
    spec = pybpf.compile(mod.on_getppid)
    spec.variables["TARGET_TGID"].value = os.getpid()
    with spec.load() as obj:
        with obj.programs["on_getppid"].attach(), pybpf.PerfBufReader(obj.maps["perf"], record="<Q") as reader:
            os.getppid()
            assert list(reader.poll(timeout=1.0)) == [0xABCDEF]
        stack_id = obj.maps["ids"][0]
        assert stack_id >= 0
        frames = obj.maps["stacks"][stack_id]
        assert frames and frames[0] != 0


def test_queue_and_lpm_trie():
    mod = module_from_source(SOURCE)
    with pybpf.compile(mod.queue_and_trie).load() as obj:
        # 10.11.12.x/24 (the key's bytes in memory order, as the trie compares them)
        obj.maps["routes"][{"prefixlen": 24, "addr": 0x000C0B0A}] = 77
        assert obj.programs["queue_and_trie"].test_run(data=bytes(64)).retval == 2
        assert obj.variables["OUT"].value == 41 * 1000 + 77
        assert obj.maps["q"].pop() == 42


def test_tail_call_through_prog_array():
    mod = module_from_source(SOURCE)
    spec = pybpf.compile(mod.dispatch)
    assert "drop" in spec.programs, "the prog array's programs are compiled in"
    with spec.load() as obj:
        assert obj.programs["dispatch"].test_run(data=bytes(64)).retval == 1   # XDP_DROP, from drop
    assert mod.dispatch(FakeCtx()) == 1


STATS = '''
from pybpf.lang import *


class Stat(Struct):
    calls: u64
    last_nr: u32
    max_nr: u32


stats = HashMap(key=u32, value=Stat, max_entries=64)
events = RingBuf(1 << 12)
TARGET_TGID = Const(u32, 0)


@tracepoint("raw_syscalls/sys_enter")
def per_process(ctx) -> int:
    proc = tgid()
    if proc != TARGET_TGID:
        return 0
    s = stats.lookup(proc)
    if not s:
        first = Stat(calls=1, last_nr=ctx.id, max_nr=ctx.id)
        stats[proc] = first
        return 0
    s.calls += 1
    s.last_nr = ctx.id
    if ctx.id > s.max_nr:
        s.max_nr = ctx.id
    if ctx.id == GETPPID:
        events.output(s.calls)
    return 0
'''


def test_struct_values_updated_in_place_and_typed_ring_buffer_reader():
    import platform

    mod = module_from_source(STATS + f"\nGETPPID = {dict(x86_64=110, aarch64=173)[platform.machine()]}\n")
    spec = pybpf.compile(mod.per_process)
    assert {v.var.name for v in spec.btf.find(".maps").vars} == {"stats", "events"}
    spec.variables["TARGET_TGID"].value = os.getpid()
    with spec.load() as obj:
        with obj.programs["per_process"].attach():
            for _ in range(3):
                os.getppid()
        stat = obj.maps["stats"][os.getpid()]
        assert stat.calls >= 3 and stat.max_nr >= mod.GETPPID
        with mod.events.reader(obj) as reader:
            counts = list(reader.poll(timeout=0))
    assert len(counts) == 3 and counts == sorted(counts) and counts[-1] <= stat.calls


COPIES = '''
from pybpf.lang import *


class Stat(Struct):
    calls: u64
    last: u32
    flags: u8


stats = HashMap(key=u32, value=Stat, max_entries=8)
out = Array(value=u64, max_entries=8)


@syscall
def copies(ctx) -> int:
    s = Stat(calls=5, last=7, flags=1)
    stats[1] = s
    s.calls = 100                 # the map keeps its own copy
    got = stats[1]
    out[0] = got.calls
    out[1] = got.last + got.flags
    got.calls = 9                 # and a read is a copy too
    out[2] = stats[1].calls
    missing = stats[2]            # absent: zeros
    out[3] = missing.calls + missing.last + 1
    return 0
'''


def test_struct_values_read_as_copies_in_the_kernel_and_in_cpython():
    mod = module_from_source(COPIES)
    mod.copies(FakeCtx())
    want = {0: 5, 1: 8, 2: 5, 3: 1}
    assert {int(k): int(v) for k, v in mod.out.items()} == want
    with pybpf.compile(mod.copies).load() as obj:
        assert obj.programs["copies"].test_run(ctx=bytes(8)).retval == 0
        assert {k: v for k, v in obj.maps["out"].items() if k in want} == want
