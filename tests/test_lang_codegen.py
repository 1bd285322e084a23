"""Shapes of generated code that the verifier walks more cheaply, checked against CPython on boundary
inputs: range loops tested at the bottom (the loop variable keeps CPython's value), match compiled as
one compare chain, array indexes computed at run time stored without a constant the verifier would
track precisely, per-CPU ``+=`` in place through the looked-up pointer."""

from __future__ import annotations

import struct

import pytest

import pybpf
from pybpf.asm import opcodes as op
from pybpf.lang import FakeCtx

from lang_support import expression_module, module_from_source, run_kernel, run_python

LOOPS = '''
from pybpf.lang import *

res = Array(u64, 16)


@syscall
def prog(ctx) -> int:
    a = ctx.arg(0)
    b = ctx.arg(1)
    i = 77
    for i in range(10):             # breaks on the first (a=0), the last (a=9) or no iteration
        if i == a:
            break
    res[0] = u64(i)
    j = 55
    for j in range(5, 5):           # empty: j keeps its value
        res[15] = 1
    res[1] = u64(j)
    k = 66
    n = u64(0)
    for k in range(a, 10):          # run-time start: empty when a >= 10 (k keeps its value)
        n += 1
    res[2] = u64(k)
    res[3] = n
    m = i64(0)
    s = i64(0)
    for m in range(10, 0, -3):      # 10 7 4 1
        if m == i64(b):
            continue
        s += m
    res[4] = u64(m) + u64(s) * 100
    c = u8(0)
    cnt = u64(0)
    for c in range(u8(a) | 0xF0, 256):  # up to the top of u8: once for a = 255
        cnt += 1
    res[5] = u64(c) + cnt * 1000
    d = i64(99)
    t = i64(0)
    for d in range(i64(a & 15) - 8, -5, -2):  # run-time start -8..7, downwards, empty up to -5
        t += d
    res[6] = u64(d) + u64(t) * 1000
    e = 0
    for e in range(0, 11, 5):       # 0 5 10: stop - step is the last value
        pass
    res[7] = u64(e)
    f = 0
    for f in range(3, 4):           # one iteration: no back edge at all
        res[8] = u64(f) + 1
    return 0
'''

MATCH = '''
from pybpf.lang import *

res = Array(u64, 8)


def pick(x: i8) -> u64:
    match x:
        case -128 | -127 | -126:      # a run from the type's minimum
            return 1
        case -1 | -3:
            return 2
        case 2 | 0 | 1:               # a run from 0: one unsigned compare, negatives must not match
            return 3
        case 5 | 6 | 7 | 127:         # a run in the middle, and one more value
            return 5
    return 4


@syscall
def prog(ctx) -> int:
    a = ctx.arg(0)
    match a:                          # a subject in a register
        case 0 | 1 | 17 | 18:
            cls = u32(1)
        case 2 | 3 | 257:
            cls = u32(2)
        case 9 | 11 | 10:
            cls = u32(3)
        case 1099511627776:           # 2**40: a constant that needs a register
            cls = u32(5)
        case _:
            cls = u32(0)
    res[0] = u64(cls)
    r = u64(100)
    match a & 0xFF:                   # an expression subject, no default arm
        case 1:
            r = 101
        case 255:
            r = 102
    res[1] = r
    res[2] = pick(i8(a))
    g = u64(0)
    match a:                          # guards keep the case-by-case form
        case 0 | 1 if ctx.arg(1) > 5:
            g = 1
        case 1:
            g = 2
        case _:
            g = 3
    res[3] = g
    return 0
'''

LOG2 = '''
from pybpf.lang import *

hist = Array(u64, 64)


@syscall
def prog(ctx) -> int:
    delta = ctx.arg(0)
    slot = u32(0)
    for i in range(63):
        if delta <= 1:
            break
        delta = delta >> 1
        slot += 1
    hist[slot] += 1
    return 0
'''


def _agree(source: str, inputs: list[tuple[int, int]], table: str = "res") -> None:
    """Run ``prog`` with ctx (a, b) in the kernel and in CPython; the non-zero entries of ``table`` agree."""
    mod = module_from_source(source)
    with pybpf.compile(mod.prog).load() as obj:
        kernel_table = obj.maps[table]
        for a, b in inputs:
            a, b = a & (2**64 - 1), b & (2**64 - 1)
            for key, _ in list(kernel_table.items()):
                kernel_table[key] = 0
            obj.programs["prog"].test_run(ctx=struct.pack("<QQ", a, b))
            got = {k: v for k, v in kernel_table.items() if v}
            getattr(mod, table).clear()
            mod.prog(FakeCtx(args=[a, b]))
            want = {k: int(v) for k, v in getattr(mod, table).items() if v}
            assert got == want, f"a={a} b={b}: kernel {got} != CPython {want}"


@pytest.mark.root
def test_range_loops_agree_on_boundaries():
    _agree(LOOPS, [(0, 0), (9, 7), (10, 4), (100, 1), (255, 10), (254, 0), (2**64 - 1, 2**64 - 1),
                   (-5, 0), (-4, 0), (-6, 0), (3, 10), (256, 4), (2**63, 1)])


@pytest.mark.root
def test_match_agrees_on_arm_edges():
    edges = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 16, 17, 18, 19, 126, 127, 128, 129, 130, 131, 252, 253,
             254, 255, 256, 257, 258, 0x17F, 2**40, 2**40 + 1, 2**63, 2**64 - 1]
    _agree(MATCH, [(a, b) for a in edges for b in (0, 6)])


@pytest.mark.root
def test_histogram_after_a_loop_counts_exactly():
    """The lat_exit shape: a loop computes the slot, then hist[slot] += 1 — every slot counted once."""
    mod = module_from_source(LOG2)
    inputs = [0, 1, 2, 3, 4, 1023, 1024, 2**32, 2**62, 2**63, 2**64 - 1] + [1 << k for k in range(64)]
    with pybpf.compile(mod.prog).load() as obj:
        for a in inputs:
            obj.programs["prog"].test_run(ctx=struct.pack("<QQ", a, 0))
        got = {k: v for k, v in obj.maps["hist"].items() if v}
    mod.hist.clear()
    for a in inputs:
        mod.prog(FakeCtx(args=[a, 0]))
    assert got == {k: int(v) for k, v in mod.hist.items() if v}
    assert sum(got.values()) == len(inputs) and got[63] == 3


def test_range_loop_is_tested_at_the_bottom():
    """One compare and one add per iteration: the only backward jump is the compare at the bottom."""
    insns = pybpf.compile(module_from_source(LOG2).prog).programs["prog"].instructions
    backward = [x for x in insns if x.code & 0x07 in (op.JMP, op.JMP32) and x.off < 0]
    assert len(backward) == 1 and backward[0].code & 0xF0 != op.JA


def test_run_time_array_index_is_stored_as_8_bytes():
    """hist[slot] with slot in a register: an 8-byte store of the key, which the verifier does not take
    as a constant key (it would track it precisely and stop pruning the loop's exits)."""
    insns = pybpf.compile(module_from_source(LOG2).prog).programs["prog"].instructions
    key_stores = [x for x in insns if x.code & 0x07 == op.STX and x.dst == 10]
    assert key_stores and all(x.code & 0x18 == op.DW for x in key_stores)


def test_range_values_outside_the_loop_variable_type_are_refused():
    src = LOG2.replace("for i in range(63):", "for i in range(u8(0), 300):")
    with pytest.raises(pybpf.CompileError, match="outside the loop variable's type u8"):
        pybpf.compile(module_from_source(src).prog)


PERCPU = '''
from pybpf.lang import *

hits = PerCpuArray(u64, 4)
seen = PerCpuHash(key=u32, value=u64, max_entries=8)


@xdp
def prog(ctx) -> int:
    data = ctx.data
    if data + 2 > ctx.data_end:
        return XDP_PASS
    v = u64(load_u8(data))
    k = u32(load_u8(data + 1)) & 3
    hits[0] += 1
    hits[1] += v
    hits[k] += 2
    seen[k] += v
    return XDP_PASS
'''


def test_percpu_array_augment_is_in_place():
    """PerCpuArray ``+=``: lookup, then load / add / store through the pointer — no map_update_elem
    (the PerCpuHash ``+=`` inserts when the key is absent: one update)."""
    from pybpf._sys.uapi import HelperID

    insns = pybpf.compile(module_from_source(PERCPU).prog).programs["prog"].instructions
    calls = [x.imm for x in insns if x.code == op.JMP | op.CALL]
    assert calls.count(HelperID.map_lookup_elem) == 4 and calls.count(HelperID.map_update_elem) == 1
    assert not any(x.code & 0xE0 == op.ATOMIC and x.code & 0x07 == op.STX for x in insns)


@pytest.mark.root
def test_percpu_augment_counts_exactly():
    mod = module_from_source(PERCPU)
    runs, packet = 1000, bytes([200, 7]) + bytes(60)
    with pybpf.compile(mod.prog).load() as obj:
        obj.programs["prog"].test_run(packet, repeat=runs)
        hits, seen = obj.maps["hits"], obj.maps["seen"]
        got = ([hits.sum(k) for k in range(4)], dict((k, seen.sum(k)) for k, _ in seen.items()))
    mod.hits.clear()
    mod.seen.clear()
    for _ in range(runs):
        mod.prog(FakeCtx(packet=packet))
    want = ([int(mod.hits[k]) for k in range(4)], {k: int(v) for k, v in mod.seen.items()})
    assert got == want == ([runs, 200 * runs, 0, 2 * runs], {3: 200 * runs})


NARROW = '''
from pybpf.lang import *

res = Array(u64, 8)
small = HashMap(key=u16, value=i8, max_entries=64)


class Rec(Struct):
    b: u8
    h: i16
    w: u32
    q: i64


@syscall
def prog(ctx) -> int:
    a = ctx.arg(0)
    b = i64(ctx.arg(1))
    c = i8(b)
    r = Rec()
    r.b = a
    r.h = b
    r.w = c
    r.q = u8(a)
    res[0] = u64(r.b)
    res[1] = u64(r.h)
    res[2] = u64(r.w)
    res[3] = u64(r.q)
    small[a] = b
    small[c] = a
    res[4] = u64(small.get(u16(a), 99))
    res[5] = u64(small.get(u16(c), 99))
    res[(a >> 32) + 6] += 5           # an index wider than the u32 key: wraps (2**64 - 1 -> 5)
    return 0
'''


@pytest.mark.root
def test_stores_to_narrower_types_wrap_as_conversions():
    """A register value is stored with the target's size and no conversion before: the low bytes
    are the value wrapped to the narrower type, signed or not."""
    _agree(NARROW, [(0, 0), (0xFF, -1), (0x1_0000_00FF, -129), (2**64 - 1, 2**63), (0x8000, 0x7FFF), (0x17F, 128),
                    (0xFFFF_FFFF, -(2**31)), (12345, 2**63 - 1)])


def test_hash_augment_insert_path_keeps_no_pointer():
    """counts[k] += 1 on a hash map: the NULL pointer of the failed lookup is not saved on the stack
    before the insert's call."""
    src = LOG2.replace("hist = Array(u64, 64)", "hist = HashMap(key=u32, value=u64, max_entries=64)")
    insns = pybpf.compile(module_from_source(src).prog).programs["prog"].instructions
    assert not [x for x in insns if x.code & 0x07 == op.STX and x.dst == 10 and x.src == 0]


EDGE_LOOPS = [
    "    i = 5\n    for i in range(3):\n        break\n    OUT = u64(i)\n",
    "    for i in range(3, 9):\n        OUT = u64(i) + a\n        return 0\n",
    "    n = u64(0)\n    for i in range(3):\n        if a == 1:\n            continue\n        n += 1\n    OUT = n + u64(i)\n",
    "    n = u64(0)\n    for i in range(1 << 40, (1 << 40) + 3 * (1 << 33), 1 << 33):\n        n += u64(i)\n    OUT = n\n",
    "    n = u64(0)\n    j = 9\n    for i in range(5):\n        for j in range(i, 5):\n            n += 1\n"
    "    OUT = n * 100 + u64(j)\n",
]


@pytest.mark.root
@pytest.mark.parametrize("body", EDGE_LOOPS)
def test_loops_whose_body_leaves_early_or_nests(body):
    """Bodies that always break or return (the bottom test is unreachable and must be dropped),
    continue, a step beyond 32 bits, a nested loop starting at the outer variable."""
    mod = expression_module(None, "u64", "u64", body)
    with pybpf.compile(mod.prog).load() as obj:
        for a in (0, 1):
            assert run_kernel(mod, a, 0, obj) == run_python(mod, a, 0), (body, a)
