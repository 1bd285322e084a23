"""USDT arguments in pybpf.lang: ``ctx.arg(n)`` and ``ctx.cookie`` of a ``@usdt`` program.

Where a USDT argument lives (a constant, a register, or memory at a register
plus an offset) differs from one probe site to the next, so it cannot be
compiled in.  As libbpf's ``<bpf/usdt.bpf.h>`` does, the program reads it from
the ``__bpf_usdt_specs`` array map: the attach (:func:`pybpf.links.attach_usdt`)
writes each site's argument specs there and gives the site the spec's id as
its BPF cookie.  ``ctx.arg(n)`` compiles to::

    spec = __bpf_usdt_specs[bpf_get_attach_cookie(ctx)]   # None: the value is 0
    if n < spec.arg_cnt:
        arg = spec.args[n]
        val = arg.val_off                                 # a constant
        if arg.arg_type != CONST:
            probe_read_kernel(&val, 8, ctx + arg.reg_off) # the register, from pt_regs
        if arg.arg_type == REG_DEREF:
            probe_read_user(&val, 8, val + arg.val_off)   # memory at register + offset
        val = (val << arg.bitshift) >> arg.bitshift       # arithmetic when arg.signed

and ``ctx.cookie`` to ``spec.usdt_cookie`` (the ``cookie=`` of ``attach_usdt``).
In CPython, ``FakeCtx(args=[...])`` gives the arguments.  Minimum kernel: 5.15
(BPF cookies; without them pybpf clones the program per spec id).
"""

from __future__ import annotations

from pybpf.asm import opcodes as op
from pybpf.links.usdt import (
    ARG_CONST, ARG_REG, ARG_REG_DEREF, ARG_SPEC_SIZE, MAX_ARGS, SPEC_SIZE, USDT_SPEC_MAP,
)
from pybpf.lang.types import u8, u64

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ast
    from typing import Any

__all__ = ["UsdtMixin", "SPEC_MAP_ENTRIES"]

SPEC_MAP_ENTRIES = 256          # libbpf's BPF_USDT_MAX_SPEC_CNT
_COOKIE = MAX_ARGS * ARG_SPEC_SIZE         # struct __bpf_usdt_spec: u64 usdt_cookie after the args
_ARG_CNT = _COOKIE + 8                     # then short arg_cnt
# struct __bpf_usdt_arg_spec: u64 val_off; u32 arg_type; short reg_off; bool arg_signed; char arg_bitshift
_VAL_OFF, _TYPE, _REG_OFF, _SIGNED, _BITSHIFT = 0, 8, 12, 14, 15


class UsdtMixin:
    """``ctx.arg(n)`` / ``ctx.cookie`` of USDT programs, for the FunctionCompiler."""

    def _usdt_spec(self, node: ast.AST, slot: int, missing: str) -> None:
        """r0 = this site's spec (from the attach cookie); jumps to ``missing`` when there is none."""
        from pybpf._sys.uapi import HelperID
        from pybpf.lang.maps import Array

        if USDT_SPEC_MAP not in self.unit.maps:
            self.unit.maps[USDT_SPEC_MAP] = Array(u8[SPEC_SIZE], SPEC_MAP_ENTRIES, name=USDT_SPEC_MAP)
        self.spill_live()
        self.mov_reg(1, self.ctx_reg(node))
        self.call_helper(HelperID.get_attach_cookie)
        self.store(10, slot, 0, 4)
        self.ld_map(1, USDT_SPEC_MAP)
        self.mov_reg(2, 10)
        self.emit(op.ALU64 | op.ADD | op.K, 2, imm=slot)
        self.call_helper(HelperID.map_lookup_elem)
        self.emit(op.JMP | op.JEQ | op.K, 0, reference=missing)

    def usdt_cookie(self, node: ast.AST) -> Any:
        slot = self.stack_alloc(8)
        missing, done = self.new_label("nospec"), self.new_label("cookie")
        self._usdt_spec(node, slot, missing)
        self.load(0, 0, _COOKIE, 8)
        self.jump(done)
        self.place(missing)
        self.mov_imm(0, 0)
        self.place(done)
        return self.take(0, u64)

    def usdt_arg(self, node: ast.AST, n: int) -> Any:
        from pybpf._sys.uapi import HelperID

        if not 0 <= n < MAX_ARGS:
            raise self.error(node, f"ctx.arg({n}): a USDT probe has at most {MAX_ARGS} arguments")
        val, key, spec = self.stack_alloc(8), self.stack_alloc(8), self.stack_alloc(8)
        a = ARG_SPEC_SIZE * n
        done, shift, unsigned = self.new_label("usdt"), self.new_label("shift"), self.new_label("unsigned")
        self.store_imm(10, val, 0, 8)
        self._usdt_spec(node, key, done)
        self.load(1, 0, _ARG_CNT, 2)
        self.emit(op.JMP | op.JLE | op.K, 1, imm=n, reference=done)       # n >= arg_cnt: 0
        self.store(10, spec, 0, 8)
        self.load(1, 0, a + _VAL_OFF, 8)
        self.store(10, val, 1, 8)
        self.load(1, 0, a + _TYPE, 4)
        self.emit(op.JMP | op.JEQ | op.K, 1, imm=ARG_CONST, reference=shift)
        self.load(3, 0, a + _REG_OFF, 2)                                   # the register in pt_regs
        self.emit(op.ALU64 | op.ADD | op.X, 3, self.ctx_reg(node))
        self.mov_reg(1, 10)
        self.emit(op.ALU64 | op.ADD | op.K, 1, imm=val)
        self.mov_imm(2, 8)
        self.call_helper(HelperID.probe_read_kernel)
        self.load(0, 10, spec, 8)
        self.load(1, 0, a + _TYPE, 4)
        self.emit(op.JMP | op.JEQ | op.K, 1, imm=ARG_REG, reference=shift)
        self.emit(op.JMP | op.JNE | op.K, 1, imm=ARG_REG_DEREF, reference=shift)
        self.load(3, 10, val, 8)                                           # memory at register + offset
        self.load(1, 0, a + _VAL_OFF, 8)
        self.emit(op.ALU64 | op.ADD | op.X, 3, 1)
        self.mov_reg(1, 10)
        self.emit(op.ALU64 | op.ADD | op.K, 1, imm=val)
        self.mov_imm(2, 8)
        self.call_helper(HelperID.probe_read_user)
        self.load(0, 10, spec, 8)
        self.place(shift)                                                  # r0: the spec
        self.load(1, 10, val, 8)
        self.load(2, 0, a + _BITSHIFT, 1)
        self.emit(op.ALU64 | op.LSH | op.X, 1, 2)
        self.load(3, 0, a + _SIGNED, 1)
        self.emit(op.JMP | op.JEQ | op.K, 3, imm=0, reference=unsigned)
        self.emit(op.ALU64 | op.ARSH | op.X, 1, 2)
        self.store(10, val, 1, 8)
        self.jump(done)
        self.place(unsigned)
        self.emit(op.ALU64 | op.RSH | op.X, 1, 2)
        self.store(10, val, 1, 8)
        self.place(done)
        res = self.alloc(u64)
        self.load(res.reg, 10, val, 8)
        return res
