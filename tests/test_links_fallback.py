"""The cookie fallback's rewrite: ``call bpf_get_attach_cookie`` → ``r0 = <cookie>``.

The rewritten programs run in the kernel (XDP test_run), which can load them
because the cookie helper is gone: the return value proves that jumps,
bpf-to-bpf calls and callback addresses survived the inserted slots.
"""

from __future__ import annotations

import struct

import pytest

from pybpf._sys import HelperID, ProgType
from pybpf.asm import builder as b
from pybpf.asm import opcodes as op
from pybpf.asm.instruction import Instruction, encode_all
from pybpf.errors import BPFError
from pybpf.links import fallback
from pybpf.program import Program

pytestmark = pytest.mark.root  # against the kernel: needs root

COOKIE = HelperID.get_attach_cookie


def _program(callback: bool = True) -> list[Instruction]:
    """r0 = high32(cookie) + 3 * low16(cookie) (+ 5 callback runs), through every kind of reference.

    The kernel wants BTF func_info for callbacks, so the copy that runs in
    the kernel leaves the bpf_loop part out (``callback=False``); the
    callback address is checked without the kernel in test_targets_move.
    """
    loop_part = [
        b.mov64_imm(op.R1, 5),                          # bpf_loop(5, callback, &ctx, 0)
        b.ld_func(op.R2, "callback"),                   # callback address across site 3
        b.st_mem(op.DW, op.R10, -8, 0),
        b.mov64_reg(op.R3, op.R10),
        b.alu64_imm(op.ADD, op.R3, -8),
        b.mov64_imm(op.R4, 0),
        b.call_helper(HelperID.loop),
        b.ldx_mem(op.DW, op.R1, op.R10, -8),
        b.alu64_reg(op.ADD, op.R8, op.R1),
    ] if callback else []
    callback_part = [
        b.label("callback"),                            # *(u64 *)ctx += 1; return 0
        b.ldx_mem(op.DW, op.R3, op.R2, 0),
        b.alu64_imm(op.ADD, op.R3, 1),
        b.stx_mem(op.DW, op.R2, op.R3, 0),
        b.mov64_imm(op.R0, 0),
        b.exit_(),
    ] if callback else []
    return b.assemble([
        b.mov64_reg(op.R6, op.R1),
        b.mov64_imm(op.R8, 0),
        b.jmp_imm(op.JEQ, op.R6, 0, "end"),           # forward jump across all sites (never taken)
        b.call_helper(COOKIE),                          # site 1
        b.mov64_reg(op.R7, op.R0),
        b.alu64_imm(op.RSH, op.R7, 32),
        b.mov64_imm(op.R9, 3),
        b.label("loop"),
        b.call_helper(COOKIE),                          # site 2, inside a loop
        b.alu64_imm(op.AND, op.R0, 0xFFFF),
        b.alu64_reg(op.ADD, op.R8, op.R0),
        b.alu64_imm(op.SUB, op.R9, 1),
        b.jmp_imm(op.JNE, op.R9, 0, "loop"),            # backward jump across site 2
        *loop_part,
        b.mov64_reg(op.R1, op.R7),
        b.call_local("sub"),                            # bpf-to-bpf call across site 3
        b.alu64_reg(op.ADD, op.R8, op.R0),
        b.label("end"),
        b.mov64_reg(op.R0, op.R8),
        b.exit_(),
        b.label("sub"),                                 # r0 = r1 (+ 0 * cookie)
        b.mov64_reg(op.R6, op.R1),
        b.call_helper(COOKIE),                          # site 3, in a subprogram
        b.alu64_imm(op.MUL, op.R0, 0),
        b.alu64_reg(op.ADD, op.R0, op.R6),
        b.exit_(),
        *callback_part,
    ])


def _expected(cookie: int) -> int:
    value = cookie % (1 << 64)
    return ((value >> 32) + 3 * (value & 0xFFFF)) & 0xFFFFFFFF


@pytest.mark.parametrize("cookie", [0, 7, 0x7FFFFFFF, 0x80000000, (5 << 32) | 9, (1 << 64) - 1, -2, 1 << 63])
def test_rewritten_program_runs(cookie):
    insns = _program(callback=False)
    rw = fallback.rewrite_cookie_calls(insns, cookie)
    assert len(rw.sites) == 3
    fits = fallback._fits_imm32(cookie) is not None
    assert len(rw.insns) == len(insns) + (0 if fits else 3)
    assert not fallback.calls_cookie_helper(rw.insns)
    with Program.load(rw.insns, prog_type=ProgType.XDP, name="rewritten") as prog:
        res = prog.test_run(b"\0" * 64)
    assert res.retval == _expected(cookie)


@pytest.mark.parametrize("cookie", [3, 1 << 40])
def test_targets_move(cookie):
    """Every jump, call and callback address points at the same instruction after the rewrite."""
    old = _program()
    rw = fallback.rewrite_cookie_calls(old, cookie)
    new_at = {rw.new_index(i): i for i in range(len(old))}
    checked = 0
    for j, insn in enumerate(rw.insns):
        if j not in new_at or not (insn.is_jump or insn.is_pseudo_call or insn.is_pseudo_func):
            continue
        i = new_at[j]
        assert insn.jump_target(j) == rw.new_index(old[i].jump_target(i))
        checked += 1
    assert checked == 4  # forward jump, backward jump, callback address, local call


def test_rewrite_does_not_touch_the_input():
    insns = _program()
    before = encode_all(insns)
    fallback.rewrite_cookie_calls(insns, 1 << 40)
    assert encode_all(insns) == before
    assert fallback.calls_cookie_helper(insns) and fallback.calls_cookie_helper(before)


def test_rewrite_accepts_bytes():
    raw = encode_all(_program())
    rw = fallback.rewrite_cookie_calls(raw, 3)
    assert encode_all(rw.insns)[:8] == raw[:8]


def test_new_index_mapping():
    rw = fallback.rewrite_cookie_calls(_program(), 1 << 40)
    first, second, third = rw.sites
    assert rw.new_index(0) == 0
    assert rw.new_index(first) == first
    assert rw.new_index(first + 1) == first + 2
    assert rw.new_index(third + 1) == third + 4


def test_jump_that_no_longer_fits_is_an_error():
    body = [b.call_helper(COOKIE)] + [b.mov64_imm(op.R0, 0)] * 32765
    insns = b.assemble([b.jmp_imm(op.JEQ, op.R1, 0, "far"), *body, b.label("far"), b.exit_()])
    assert insns[0].off == 32766
    fallback.rewrite_cookie_calls(insns, 1)  # same length: fine
    insns2 = b.assemble([b.jmp_imm(op.JEQ, op.R1, 0, "far"), *body, b.mov64_imm(op.R0, 0), b.label("far"), b.exit_()])
    with pytest.raises(BPFError, match="no longer fits 16 bits"):
        fallback.rewrite_cookie_calls(insns2, 1 << 40)


def test_gotox_is_refused():
    insns = [b.call_helper(COOKIE), Instruction(0x0D, dst=1), b.exit_()]
    with pytest.raises(BPFError, match="gotox"):
        fallback.rewrite_cookie_calls(insns, 1 << 40)


def test_cookie_range():
    with pytest.raises(ValueError):
        fallback.rewrite_cookie_calls(_program(), 1 << 64)
    with pytest.raises(TypeError):
        fallback.rewrite_cookie_calls(_program(), "1")


class _FakeProgram:
    """Records what a clone would be loaded with."""

    def __init__(self, insns, **options):
        self.insns = insns
        self.expected_attach_type = None
        self.closed = False
        self._load_options = options
        self.clones = []

    @property
    def load_options(self):
        return self._load_options

    def clone(self, insns=None, **overrides):
        child = _FakeProgram(insns, **{**self._load_options, **overrides})
        child.expected_attach_type = overrides.get("expected_attach_type")
        self.clones.append(child)
        return child

    def close(self):
        self.closed = True


def test_func_info_line_info_and_line_table_move():
    insns = _program()
    sub = next(i for i, x in enumerate(insns) if x.symbol == "sub")
    cb = next(i for i, x in enumerate(insns) if x.symbol == "callback")
    func_info = struct.pack("<IIIIII", 0, 1, sub, 2, cb, 3)
    line_info = struct.pack("<IIII", 0, 0, 0, 0) + struct.pack("<IIII", sub + 1, 0, 0, 0)
    fake = _FakeProgram(insns, func_info=func_info, func_info_rec_size=8, line_info=line_info,
                        line_info_rec_size=16, line_table={sub + 1: "sub.c:3"})
    lease = fallback.acquire(fake, cookie=1 << 40)
    clone = lease.program
    rw = fallback.rewrite_cookie_calls(insns, 1 << 40)
    offs = struct.unpack("<IIIIII", clone._load_options["func_info"])[0::2]
    assert offs == (0, rw.new_index(sub), rw.new_index(cb))
    assert clone._load_options["func_info"] != func_info
    assert struct.unpack_from("<I", clone._load_options["line_info"], 16)[0] == rw.new_index(sub + 1)
    assert clone._load_options["line_table"] == {rw.new_index(sub + 1): "sub.c:3"}
    # the same cookie again: the cached clone, no new load
    again = fallback.acquire(fake, cookie=1 << 40)
    assert again.program is clone and len(fake.clones) == 1
    lease.release()
    assert not clone.closed
    again.release()
    assert clone.closed and fallback.live_clones(fake) == {}


def test_small_cookie_keeps_records():
    fake = _FakeProgram(_program(), func_info=b"\0" * 8, func_info_rec_size=8)
    lease = fallback.acquire(fake, cookie=42)
    assert "func_info" not in lease.program._load_options or lease.program._load_options["func_info"] == b"\0" * 8
    lease.release()


def test_program_without_the_helper_is_not_cloned():
    fake = _FakeProgram(b.assemble([b.mov64_imm(op.R0, 0), b.exit_()]))
    lease = fallback.acquire(fake, cookie=5)
    assert lease.program is fake and not lease.is_clone
    prep = fallback.prepare(fake, 5, kernel_cookies=False)
    assert prep.program is fake and prep.cookie == 0


def test_program_not_loaded_by_pybpf_cannot_be_cloned():
    from pybpf.errors import NotSupportedError

    class Opened:
        insns = None
        expected_attach_type = None
        _label = "program 'x'"

    with pytest.raises(NotSupportedError, match="was not loaded by pybpf"):
        fallback.acquire(Opened(), expected_attach_type=48)


def test_program_load_without_kernel_cookies_loads_r0_zero():
    """Program.load on a kernel without bpf_get_attach_cookie: the kernel gets r0 = 0 instead."""
    from pybpf import features
    from pybpf.asm import decode_all

    insns = b.assemble([b.call_helper(HelperID.get_attach_cookie), b.exit_()])
    with Program.load(insns, prog_type=ProgType.TRACEPOINT) as normal:
        assert decode_all(normal.xlated_insns())[0].code == 0x85  # the helper call
    with features.override(bpf_cookie=False):
        with Program.load(insns, prog_type=ProgType.TRACEPOINT) as prog:
            xlated = decode_all(prog.xlated_insns())
            assert [(x.code, x.imm) for x in xlated] == [(0xB7, 0), (0x95, 0)]
            assert prog.insns[0].imm == HelperID.get_attach_cookie  # the original, for clones
