"""Instruction emission for the compiler: values, scratch registers, the stack, integer ALU.

Register convention of the generated code:

* r1-r5 and r0 are scratch registers for expression temporaries (and the
  helper-call arguments / result); a temporary still live at a call is
  spilled to the stack first and reloaded when used;
* r6-r9 hold the most used locals (``ctx`` first), the rest live in 8-byte
  stack slots;
* r10 is the frame pointer; stack buffers (map keys, values) are
  statement-scoped and reused by the next statement.

Values are normalised in registers: an unsigned value is zero-extended to
64 bits, a signed one sign-extended, so 64-bit comparisons are always right.
Types of 32 bits or fewer compute with 32-bit ALU instructions.
"""

from __future__ import annotations

from typing import Any

from pybpf.asm import opcodes as op
from pybpf.asm.instruction import Instruction
from pybpf.lang.types import Fixed, binop, common_type, wrap

__all__ = ["Emitter", "Imm", "Reg", "Tmp", "bits_signed", "ALU_OPS"]

ALU_OPS = {"+": op.ADD, "-": op.SUB, "*": op.MUL, "//": op.DIV, "%": op.MOD, "&": op.AND, "|": op.OR,
           "^": op.XOR, "<<": op.LSH, ">>": op.RSH}
# operations whose result stays within the width of normalised operands
_CLOSED = {"&", "|", "^"}
_SIZE = {1: op.B, 2: op.H, 4: op.W, 8: op.DW}
SCRATCH = (1, 2, 3, 4, 5, 0)


def bits_signed(t: Any) -> tuple[int, bool]:
    if isinstance(t, type) and issubclass(t, Fixed):
        return t.bits, t.signed
    return 64, True   # plain int (and bool) compute as i64


class Imm:
    """A constant, already wrapped to its type."""

    __slots__ = ("value", "type", "tmp")

    def __init__(self, value: int, type: Any) -> None:
        self.value = value
        self.type = type
        self.tmp: "Tmp | None" = None    # the register reg_of() put it in, released with it


class Reg:
    """A local's home register: read it, never write it through this value."""

    __slots__ = ("reg", "type")

    def __init__(self, reg: int, type: Any) -> None:
        self.reg = reg
        self.type = type


class Tmp:
    """A temporary owned by the expression that made it: in ``reg``, or spilled at ``slot``."""

    __slots__ = ("reg", "slot", "type")

    def __init__(self, reg: int | None, type: Any) -> None:
        self.reg = reg
        self.slot: int | None = None
        self.type = type


def _fits_s32(v: int) -> bool:
    v = wrap(v, 64, True)
    return -(1 << 31) <= v < (1 << 31)


class Emitter:
    """Code buffer with labels, scratch registers and stack slots of one function."""

    def __init__(self) -> None:
        self.code: list[Instruction | str] = []   # str: a label
        self.lines: list[Any] = []                 # parallel to code: the statement each came from
        self.cur_line: Any = None
        self._labels = 0
        self.last_def: Instruction | None = None
        self.scratch: tuple[int, ...] = SCRATCH    # registers for temporaries (fewer when locals use r3-r5)
        self.free: list[int] = list(SCRATCH)
        self.live: list[Tmp] = []
        self.perm_stack = 0        # bytes used by stack-resident locals
        self.stmt_stack = 0        # bytes used by the current statement's buffers
        self.max_stack = 0

    # -- output ---------------------------------------------------------------------------

    def emit(self, code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0,
             reference: str | None = None) -> Instruction:
        insn = Instruction(code, dst, src, off, imm, None, reference)
        self.code.append(insn)
        self.lines.append(self.cur_line)
        return insn

    label_prefix = ""

    def new_label(self, hint: str = "L") -> str:
        self._labels += 1
        return f"{self.label_prefix}.{hint}{self._labels}"

    def place(self, label: str) -> None:
        self.code.append(label)
        self.lines.append(None)

    def jump(self, label: str) -> None:
        self.emit(op.JMP | op.JA, reference=label)

    def ld_imm64(self, dst: int, value: int, src: int = 0, reference: str | None = None,
                 high: int | None = None) -> None:
        value &= (1 << 64) - 1
        lo = value & 0xFFFFFFFF
        hi = value >> 32 if high is None else high
        self.emit(op.LD | op.DW | op.IMM, dst, src, 0, lo - (1 << 32) if lo >> 31 else lo, reference)
        self.emit(0, 0, 0, 0, hi - (1 << 32) if hi >> 31 else hi)

    def mov_imm(self, dst: int, value: int) -> None:
        value = wrap(value, 64, True)
        if -(1 << 31) <= value < (1 << 31):
            self.emit(op.ALU64 | op.MOV | op.K, dst, imm=value)
        elif 0 <= value < (1 << 32):
            self.emit(op.ALU | op.MOV | op.K, dst, imm=value - (1 << 32) if value >> 31 else value)
        else:
            self.ld_imm64(dst, value)

    def mov_reg(self, dst: int, src: int) -> None:
        if dst != src:
            self.emit(op.ALU64 | op.MOV | op.X, dst, src)

    def load(self, dst: int, base: int, off: int, size: int) -> None:
        self.emit(op.LDX | _SIZE[size] | op.MEM, dst, base, off)

    def store(self, base: int, off: int, src: int, size: int) -> None:
        self.emit(op.STX | _SIZE[size] | op.MEM, base, src, off)

    def store_imm(self, base: int, off: int, value: int, size: int) -> None:
        self.emit(op.ST | _SIZE[size] | op.MEM, base, 0, off, value)

    def call_helper(self, helper: int) -> None:
        self.spill_live()
        self.emit(op.JMP | op.CALL, imm=int(helper))

    # -- scratch registers ------------------------------------------------------------------

    def alloc(self, type: Any, prefer: int | None = None) -> Tmp:
        if not self.free:
            self._spill(self.live[0])
        if prefer is not None and prefer in self.free:
            reg = prefer
        else:
            reg = self.free[0]
        self.free.remove(reg)
        t = Tmp(reg, type)
        self.live.append(t)
        return t

    def take(self, reg: int, type: Any) -> Tmp:
        """A temporary in ``reg`` (r0 after a call), which must be free."""
        if reg not in self.free:
            for t in self.live:
                if t.reg == reg:
                    self._spill(t)
        self.free.remove(reg)
        t = Tmp(reg, type)
        self.live.append(t)
        return t

    def release(self, v: Any) -> None:
        if isinstance(v, Imm):
            if v.tmp is not None:
                self.release(v.tmp)
                v.tmp = None
            return
        if isinstance(v, Tmp) and v in self.live:
            self.live.remove(v)
            if v.reg is not None:
                self.free.append(v.reg)
                v.reg = None

    def _spill(self, t: Tmp) -> None:
        if t.reg is None:
            return
        if t.slot is None:
            t.slot = self.stack_alloc(8)
        self.store(10, t.slot, t.reg, 8)
        self.free.append(t.reg)
        t.reg = None
        self.live.remove(t)
        self.live.append(t)    # keep it owned; a reload puts it back in a register

    def spill_live(self, keep: tuple[int, ...] = ()) -> None:
        """Save every live temporary in a caller-saved register (a call follows)."""
        for t in list(self.live):
            if t.reg is not None and t.reg not in keep:
                self._spill(t)

    def reg_of(self, v: Any) -> int:
        """A register holding ``v`` (a reload for a spilled temporary, a new one for a constant)."""
        if isinstance(v, Reg):
            return v.reg
        if isinstance(v, Tmp):
            if v.reg is None:
                self.live.remove(v)
                if not self.free:
                    self._spill(self.live[0])
                v.reg = self.free.pop(0)
                self.live.append(v)
                self.load(v.reg, 10, v.slot, 8)
            return v.reg
        if v.tmp is not None and v.tmp in self.live:
            return self.reg_of(v.tmp)
        t = v.tmp = self.alloc(v.type)
        self.mov_imm(t.reg, v.value)
        return t.reg

    def owned(self, v: Any, prefer: int | None = None) -> Tmp:
        """``v`` in a temporary this code may overwrite."""
        if isinstance(v, Tmp):
            self.reg_of(v)
            return v
        t = self.alloc(v.type, prefer)
        if isinstance(v, Reg):
            self.mov_reg(t.reg, v.reg)
        else:
            self.mov_imm(t.reg, v.value)
        return t

    def into(self, v: Any, reg: int) -> None:
        """Put ``v`` in ``reg`` (an argument register, a local's home); ``v`` is released after.

        A temporary defined by the instruction just emitted (a load or a move) is
        retargeted to ``reg`` instead of being copied there."""
        if isinstance(v, Imm):
            self.mov_imm(reg, v.value)
            return
        src = self.reg_of(v)
        last = self.code[-1] if self.code else None
        if isinstance(v, Tmp) and src != reg and last is not None and last is self.last_def and last.dst == src:
            last.dst = reg
            return
        self.mov_reg(reg, src)

    def defined(self, insn: Instruction) -> None:
        """``insn`` (just emitted, never jumped over) alone defines a fresh temporary: into() may retarget it."""
        self.last_def = insn

    # -- stack ----------------------------------------------------------------------------------

    def stack_alloc(self, size: int) -> int:
        size = (size + 7) & ~7
        self.stmt_stack += size
        used = self.perm_stack + self.stmt_stack
        self.max_stack = max(self.max_stack, used)
        return -used

    def perm_alloc(self, size: int) -> int:
        self.perm_stack += (size + 7) & ~7
        self.max_stack = max(self.max_stack, self.perm_stack)
        return -self.perm_stack

    # -- integers -------------------------------------------------------------------------------

    def normalize(self, reg: int, t: Any, wide: bool = True) -> None:
        """Bring ``reg`` back to type ``t``'s range after an operation that may overflow it."""
        bits, signed = bits_signed(t)
        if bits == 64:
            return
        if signed:
            self.emit(op.ALU64 | op.LSH | op.K, reg, imm=64 - bits)
            self.emit(op.ALU64 | op.ARSH | op.K, reg, imm=64 - bits)
        elif bits == 32:
            if wide:
                self.emit(op.ALU | op.MOV | op.X, reg, reg)
        else:
            self.emit(op.ALU | op.AND | op.K, reg, imm=(1 << bits) - 1)

    def convert(self, v: Any, t: Any) -> Any:
        """``v`` as a value of type ``t`` (C conversion: wrap to the new width)."""
        if isinstance(v, Imm):
            bits, signed = bits_signed(t)
            return Imm(wrap(v.value, bits, signed), t)
        if not self.needs_conversion(v.type, t):
            if isinstance(v, Reg):
                return Reg(v.reg, t)
            v.type = t
            return v
        if bits_signed(t) == (32, False):
            # one 32-bit move zero-extends into a fresh temporary (or in place)
            src = self.reg_of(v)
            tmp = v if isinstance(v, Tmp) else self.alloc(t)
            insn = self.emit(op.ALU | op.MOV | op.X, tmp.reg, src)
            if tmp is not v:
                self.defined(insn)
            tmp.type = t
            return tmp
        tmp = self.owned(v)
        self.normalize(tmp.reg, t)
        tmp.type = t
        return tmp

    @staticmethod
    def needs_conversion(s: Any, t: Any) -> bool:
        """False when every value of type ``s`` is already a normalised value of type ``t``."""
        sb, ss = bits_signed(s)
        tb, ts = bits_signed(t)
        return not (tb == 64 or (not ts and not ss and sb <= tb) or (ts and ((ss and sb <= tb) or (not ss and sb < tb))))

    def arith(self, opname: str, a: Any, b: Any, inplace: bool = False) -> Any:
        """``a opname b`` in their common type (constants folded).

        ``inplace``: ``a`` is a Reg this code may overwrite (a local's home being assigned).
        """
        t = common_type(a.type, b.type)
        if isinstance(a, Imm) and isinstance(b, Imm):
            return Imm(binop(opname, a.value, b.value, t), t)
        if isinstance(a, Imm) and opname in ("+", "*", "&", "|", "^") and not inplace:
            a, b = b, a
        if inplace:
            if self.needs_conversion(a.type, t):
                self.normalize(a.reg, t)
            dst = Reg(a.reg, t)
        else:
            dst = self.owned(self.convert(a, t))
            dst.type = t
        b = self.convert(b, t)
        bits, signed = bits_signed(t)
        # &, |, ^ of normalised operands are normalised in 64 bits; the others use 32-bit
        # instructions for types of 32 bits or fewer (shift counts modulo 32), then normalise.
        cls = op.ALU if bits <= 32 and opname not in _CLOSED else op.ALU64
        code = ALU_OPS[opname]
        off = 1 if signed and opname in ("//", "%") else 0
        if isinstance(b, Imm):
            value = b.value
            if opname in ("<<", ">>"):
                value &= 31 if bits <= 32 else 63
            if opname == ">>" and signed:
                code = op.ARSH
            if opname in ("//", "%") and value == 0:
                if opname == "//":
                    self.mov_imm(self.reg_of(dst), 0)
                return dst
            if cls == op.ALU or _fits_s32(value):
                v32 = wrap(value, 32, True)
                self.emit(cls | code | op.K, self.reg_of(dst), 0, off, v32)
            else:
                r = self.reg_of(b)
                self.emit(cls | code | op.X, self.reg_of(dst), r, off)
                self.release(b)
        else:
            if opname == ">>" and signed:
                code = op.ARSH
            rb = self.reg_of(b)
            self.emit(cls | code | op.X, self.reg_of(dst), rb, off)
            self.release(b)
        if opname not in _CLOSED and not (opname in (">>", "//", "%") and not signed):
            self.normalize(self.reg_of(dst), t, wide=False)
        return dst
