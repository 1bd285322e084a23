"""Build instructions by name and assemble them with labels.

Each function returns one :class:`Instruction` (or a list of two for the
64-bit immediate loads); :func:`assemble` flattens nested lists, attaches
:func:`label` markers to the next instruction (its ``symbol``) and turns label
targets of jumps, local calls and ``ld_func`` into relative offsets counted in
slots (an ``ld_imm64`` counts two)::

    >>> from pybpf.asm import builder as b, opcodes as op
    >>> prog = b.assemble([
    ...     b.mov64_imm(op.R0, 0),
    ...     b.jmp_imm(op.JEQ, op.R1, 0, "done"),   # forward jump to a label
    ...     b.ld_imm64(op.R2, 0x1122334455667788),  # two slots
    ...     b.alu64_reg(op.ADD, op.R0, op.R2),
    ...     b.label("done"),
    ...     b.exit_(),
    ... ])
    >>> prog[1].off, prog[5].symbol
    (3, 'done')

Registers are ints 0..10 (``opcodes.R0``..``opcodes.R10``), sizes
``opcodes.W/H/B/DW``, operations ``opcodes.ALUOp``/``JmpOp``/``AtomicOp``.
Immediates may be given signed or as unsigned 32-bit values; they are stored
signed, the way the kernel's ``struct bpf_insn`` holds them.  Bad arguments
raise ``ValueError``.

Instructions that name something the assembler cannot resolve (a map for
``ld_map_fd(r, "counts")``) keep it in ``reference`` for the loader.
"""

from __future__ import annotations

from pybpf._record import FrozenRecord
from pybpf.asm import opcodes as _op
from pybpf.asm.instruction import Instruction

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable, Union

    OffOrLabel = Union[int, str]
    Item = Union[Instruction, "Label", Iterable["Item"]]

__all__ = [
    "Label", "label", "assemble",
    "mov64_imm", "mov64_reg", "mov32_imm", "mov32_reg", "movsx64_reg", "movsx32_reg",
    "alu64_imm", "alu64_reg", "alu32_imm", "alu32_reg", "neg64", "neg32", "endian", "bswap",
    "ld_imm64", "ld_map_fd", "ld_map_value", "ld_func",
    "ldx_mem", "ldx_memsx", "stx_mem", "st_mem", "atomic_op",
    "jmp_imm", "jmp_reg", "jmp32_imm", "jmp32_reg", "ja", "gotol", "may_goto",
    "call_helper", "call_kfunc", "call_local", "exit_",
]


class Label(FrozenRecord):
    """A position marker for :func:`assemble`; made by :func:`label`.

    >>> label("out")
    Label(name='out')
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        super().__init__(name=name)


# -- argument checks ---------------------------------------------------------------------

def _reg(r: int, what: str = "register") -> int:
    if not isinstance(r, int) or not 0 <= r <= 10:
        raise ValueError(f"{what} must be r0..r10, not {r!r}")
    return int(r)


def _s32(v: int, what: str = "imm") -> int:
    if not isinstance(v, int) or not -(1 << 31) <= v < (1 << 32):
        raise ValueError(f"{what} {v!r} does not fit 32 bits")
    return v - (1 << 32) if v >= (1 << 31) else int(v)


def _s16(v: int, what: str = "off") -> int:
    if not isinstance(v, int) or not -(1 << 15) <= v < (1 << 15):
        raise ValueError(f"{what} {v!r} does not fit a signed 16-bit offset")
    return int(v)


def _size(size: int) -> int:
    if size not in _op.SIZE_BYTES:
        raise ValueError(f"size must be opcodes.W, H, B or DW, not {size!r}")
    return int(size)


def _alu_op(op: int) -> int:
    if not isinstance(op, int) or op & ~0xF0 or op > _op.END:
        raise ValueError(f"not an ALU operation: {op!r}")
    return int(op)


_COND_JUMPS = frozenset(o for o in _op.JmpOp
                        if o not in (_op.JA, _op.CALL, _op.EXIT, _op.JCOND))


_ATOMIC_OPS = frozenset(int(o) for o in _op.AtomicOp)


def _cond_op(op: int) -> int:
    if op not in _COND_JUMPS:
        raise ValueError(f"not a conditional jump operation: {op!r}")
    return int(op)


def _target(off_or_label: OffOrLabel) -> tuple[int, str | None]:
    if isinstance(off_or_label, str):
        return 0, off_or_label
    return _s16(off_or_label, "jump offset"), None


# -- ALU -----------------------------------------------------------------------------

def _alu(cls: int, op: int, dst: int, src: int, imm: int, off: int, x: bool) -> Instruction:
    return Instruction(cls | _alu_op(op) | (_op.X if x else _op.K), _reg(dst, "dst"),
                       _reg(src, "src") if x else 0, off, 0 if x else _s32(imm))


def _signed_off(op: int, signed: bool) -> int:
    if not signed:
        return 0
    if op not in (_op.DIV, _op.MOD):
        raise ValueError("signed=True applies to DIV and MOD only")
    return _op.OFF_SIGNED


def mov64_imm(dst: int, imm: int) -> Instruction:
    """``dst = imm`` (sign-extended to 64 bits).

    >>> str(mov64_imm(1, 42))
    '(b7) r1 = 42'
    """
    return _alu(_op.ALU64, _op.MOV, dst, 0, imm, 0, False)


def mov64_reg(dst: int, src: int) -> Instruction:
    """``dst = src``.

    >>> str(mov64_reg(6, 1))
    '(bf) r6 = r1'
    """
    return _alu(_op.ALU64, _op.MOV, dst, src, 0, 0, True)


def mov32_imm(dst: int, imm: int) -> Instruction:
    """``wdst = imm`` (upper 32 bits cleared).

    >>> str(mov32_imm(1, -1))
    '(b4) w1 = -1'
    """
    return _alu(_op.ALU, _op.MOV, dst, 0, imm, 0, False)


def mov32_reg(dst: int, src: int) -> Instruction:
    """``wdst = wsrc`` (upper 32 bits cleared).

    >>> str(mov32_reg(2, 3))
    '(bc) w2 = w3'
    """
    return _alu(_op.ALU, _op.MOV, dst, src, 0, 0, True)


def movsx64_reg(dst: int, src: int, bits: int) -> Instruction:
    """``dst = (s8|s16|s32)src``: sign-extending move (cpu v4, Linux 6.6).

    >>> str(movsx64_reg(1, 2, 16))
    '(bf) r1 = (s16)r2'
    """
    if bits not in (8, 16, 32):
        raise ValueError(f"movsx64 sign-extends from 8, 16 or 32 bits, not {bits!r}")
    return _alu(_op.ALU64, _op.MOV, dst, src, 0, bits, True)


def movsx32_reg(dst: int, src: int, bits: int) -> Instruction:
    """``wdst = (s8|s16)wsrc``: sign-extending 32-bit move (cpu v4, Linux 6.6).

    >>> str(movsx32_reg(1, 2, 8))
    '(bc) w1 = (s8)w2'
    """
    if bits not in (8, 16):
        raise ValueError(f"movsx32 sign-extends from 8 or 16 bits, not {bits!r}")
    return _alu(_op.ALU, _op.MOV, dst, src, 0, bits, True)


def alu64_imm(op: int, dst: int, imm: int, *, signed: bool = False) -> Instruction:
    """``dst op= imm``; ``signed=True`` makes DIV/MOD signed (cpu v4).

    >>> from pybpf.asm import opcodes as op
    >>> str(alu64_imm(op.ADD, 2, -4))
    '(07) r2 += -4'
    """
    return _alu(_op.ALU64, op, dst, 0, imm, _signed_off(op, signed), False)


def alu64_reg(op: int, dst: int, src: int, *, signed: bool = False) -> Instruction:
    """``dst op= src``; ``signed=True`` makes DIV/MOD signed (cpu v4).

    >>> from pybpf.asm import opcodes as op
    >>> str(alu64_reg(op.DIV, 1, 2, signed=True))
    '(3f) r1 s/= r2'
    """
    return _alu(_op.ALU64, op, dst, src, 0, _signed_off(op, signed), True)


def alu32_imm(op: int, dst: int, imm: int, *, signed: bool = False) -> Instruction:
    """``wdst op= imm`` (32-bit, upper half of dst cleared).

    >>> from pybpf.asm import opcodes as op
    >>> str(alu32_imm(op.AND, 1, 0xff))
    '(54) w1 &= 255'
    """
    return _alu(_op.ALU, op, dst, 0, imm, _signed_off(op, signed), False)


def alu32_reg(op: int, dst: int, src: int, *, signed: bool = False) -> Instruction:
    """``wdst op= wsrc`` (32-bit, upper half of dst cleared).

    >>> from pybpf.asm import opcodes as op
    >>> str(alu32_reg(op.XOR, 1, 2))
    '(ac) w1 ^= w2'
    """
    return _alu(_op.ALU, op, dst, src, 0, _signed_off(op, signed), True)


def neg64(dst: int) -> Instruction:
    """``dst = -dst``.

    >>> str(neg64(3))
    '(87) r3 = -r3'
    """
    return _alu(_op.ALU64, _op.NEG, dst, 0, 0, 0, False)


def neg32(dst: int) -> Instruction:
    """``wdst = -wdst``.

    >>> str(neg32(3))
    '(84) w3 = -w3'
    """
    return _alu(_op.ALU, _op.NEG, dst, 0, 0, 0, False)


def endian(dst: int, bits: int, *, big: bool = True) -> Instruction:
    """``dst = be16/32/64 dst`` (or ``le`` with ``big=False``): convert host order.

    On little-endian hosts ``le`` only truncates to ``bits``.

    >>> str(endian(1, 16))
    '(dc) r1 = be16 r1'
    """
    if bits not in (16, 32, 64):
        raise ValueError(f"endian conversion is 16, 32 or 64 bits, not {bits!r}")
    return Instruction(_op.ALU | _op.END | (_op.TO_BE if big else _op.TO_LE),
                       _reg(dst, "dst"), imm=bits)


def bswap(dst: int, bits: int) -> Instruction:
    """``dst = bswap16/32/64 dst``: unconditional byte swap (cpu v4, Linux 6.6).

    >>> str(bswap(1, 32))
    '(d7) r1 = bswap32 r1'
    """
    if bits not in (16, 32, 64):
        raise ValueError(f"bswap is 16, 32 or 64 bits, not {bits!r}")
    return Instruction(_op.ALU64 | _op.END | _op.TO_LE, _reg(dst, "dst"), imm=bits)


# -- 64-bit immediate loads (two slots) --------------------------------------------------

def _split64(value: int) -> tuple[int, int]:
    if not isinstance(value, int) or not -(1 << 63) <= value < (1 << 64):
        raise ValueError(f"ld_imm64 value {value!r} does not fit 64 bits")
    value &= 0xFFFFFFFFFFFFFFFF
    return _s32(value & 0xFFFFFFFF), _s32(value >> 32)


def ld_imm64(dst: int, value: int, src: int = 0) -> list[Instruction]:
    """``dst = value`` for any 64-bit value; ``src`` is a ``PSEUDO_*`` source, if any.

    >>> from pybpf.asm import disassemble
    >>> print(disassemble(ld_imm64(1, 1 << 40)))
    0: (18) r1 = 0x10000000000
    """
    lo, hi = _split64(value)
    if not isinstance(src, int) or not 0 <= src <= 15:
        raise ValueError(f"ld_imm64 src must be 0..15, not {src!r}")
    return [Instruction(_op.LD_IMM64, _reg(dst, "dst"), src, 0, lo), Instruction(0, imm=hi)]


def _map_ref(fd: int | str) -> tuple[int, str | None]:
    if isinstance(fd, str):
        return 0, fd
    return _s32(fd, "map fd"), None


def ld_map_fd(dst: int, fd: int | str) -> list[Instruction]:
    """``dst = &map``; ``fd`` is a map fd, or a map name left in ``reference`` for the loader.

    >>> from pybpf.asm import disassemble
    >>> print(disassemble(ld_map_fd(1, 5)))
    0: (18) r1 = map[fd:5]
    """
    imm, ref = _map_ref(fd)
    first = Instruction(_op.LD_IMM64, _reg(dst, "dst"), _op.PSEUDO_MAP_FD, 0, imm, reference=ref)
    return [first, Instruction(0)]


def ld_map_value(dst: int, fd: int | str, offset: int = 0) -> list[Instruction]:
    """``dst = &map_value[0] + offset`` (array maps, global data).

    ``fd`` is a map fd or a map name, as in :func:`ld_map_fd`.

    >>> from pybpf.asm import disassemble
    >>> print(disassemble(ld_map_value(1, 5, 16)))
    0: (18) r1 = map_value[fd:5]+16
    """
    imm, ref = _map_ref(fd)
    first = Instruction(_op.LD_IMM64, _reg(dst, "dst"), _op.PSEUDO_MAP_VALUE, 0, imm,
                        reference=ref)
    return [first, Instruction(0, imm=_s32(offset, "map value offset"))]


def ld_func(dst: int, target: OffOrLabel) -> list[Instruction]:
    """``dst = &subprogram`` (a callback for bpf_loop & co.), by label or relative offset.

    >>> from pybpf.asm import disassemble
    >>> print(disassemble(ld_func(2, 3)))
    0: (18) r2 = func[pc+3]
    """
    if isinstance(target, str):
        first = Instruction(_op.LD_IMM64, _reg(dst, "dst"), _op.PSEUDO_FUNC, 0, 0,
                            reference=target)
    else:
        first = Instruction(_op.LD_IMM64, _reg(dst, "dst"), _op.PSEUDO_FUNC, 0,
                            _s32(target, "function offset"))
    return [first, Instruction(0)]


# -- memory ------------------------------------------------------------------------------

def ldx_mem(size: int, dst: int, src: int, off: int = 0) -> Instruction:
    """``dst = *(size *)(src + off)`` (zero-extended).

    >>> from pybpf.asm import opcodes as op
    >>> str(ldx_mem(op.DW, 6, 1, 8))
    '(79) r6 = *(u64 *)(r1 +8)'
    """
    return Instruction(_op.LDX | _size(size) | _op.MEM, _reg(dst, "dst"), _reg(src, "src"),
                       _s16(off))


def ldx_memsx(size: int, dst: int, src: int, off: int = 0) -> Instruction:
    """``dst = *(s8/s16/s32 *)(src + off)``: sign-extending load (cpu v4, Linux 6.6).

    >>> from pybpf.asm import opcodes as op
    >>> str(ldx_memsx(op.H, 0, 1, 2))
    '(89) r0 = *(s16 *)(r1 +2)'
    """
    if size == _op.DW:
        raise ValueError("sign-extending loads are 1, 2 or 4 bytes (B, H, W)")
    return Instruction(_op.LDX | _size(size) | _op.MEMSX, _reg(dst, "dst"), _reg(src, "src"),
                       _s16(off))


def stx_mem(size: int, dst: int, src: int, off: int = 0) -> Instruction:
    """``*(size *)(dst + off) = src``.

    >>> from pybpf.asm import opcodes as op
    >>> str(stx_mem(op.W, 10, 6, -4))
    '(63) *(u32 *)(r10 -4) = r6'
    """
    return Instruction(_op.STX | _size(size) | _op.MEM, _reg(dst, "dst"), _reg(src, "src"),
                       _s16(off))


def st_mem(size: int, dst: int, off: int, imm: int) -> Instruction:
    """``*(size *)(dst + off) = imm``.

    >>> from pybpf.asm import opcodes as op
    >>> str(st_mem(op.DW, 10, -16, 1))
    '(7a) *(u64 *)(r10 -16) = 1'
    """
    return Instruction(_op.ST | _size(size) | _op.MEM, _reg(dst, "dst"), 0, _s16(off),
                       _s32(imm))


def atomic_op(size: int, op: int, dst: int, src: int, off: int = 0, *,
              fetch: bool = False) -> Instruction:
    """Atomic read-modify-write of ``*(size *)(dst + off)`` with ``src``.

    ``op`` is an :class:`~pybpf.asm.opcodes.AtomicOp` (``ADD``, ``OR``, ``AND``,
    ``XOR``, their ``FETCH_*`` forms, ``XCHG``, ``CMPXCHG``, ``LOAD_ACQ``,
    ``STORE_REL``); ``fetch=True`` adds the ``FETCH`` flag, so the old value is
    returned in ``src`` (in ``r0`` for ``CMPXCHG``).  Read-modify-write
    operations are 4 or 8 bytes wide; fetch forms need Linux 5.12.

    >>> from pybpf.asm import opcodes as op
    >>> str(atomic_op(op.DW, op.ADD, 0, 1, fetch=True))
    '(db) r1 = atomic64_fetch_add((u64 *)(r0 +0), r1)'
    """
    if not isinstance(op, int) or (op | (_op.FETCH if fetch else 0)) not in _ATOMIC_OPS:
        shown = f"{op:#x}" if isinstance(op, int) else repr(op)
        raise ValueError(f"not an atomic operation: {shown}" + (" with fetch=True" if fetch else ""))
    op = int(op) | (_op.FETCH if fetch else 0)
    if op not in (_op.LOAD_ACQ, _op.STORE_REL) and size not in (_op.W, _op.DW):
        raise ValueError("atomic read-modify-write operations are 4 or 8 bytes (W, DW)")
    return Instruction(_op.STX | _size(size) | _op.ATOMIC, _reg(dst, "dst"), _reg(src, "src"),
                       _s16(off), op)


# -- jumps and calls -----------------------------------------------------------------

def _jump(code: int, dst: int, src: int, imm: int, off_or_label: OffOrLabel) -> Instruction:
    off, ref = _target(off_or_label)
    return Instruction(code, _reg(dst, "dst"), src, off, imm, reference=ref)


def jmp_imm(op: int, dst: int, imm: int, off_or_label: OffOrLabel) -> Instruction:
    """``if dst op imm goto off`` (64-bit compare); a str target is a label.

    >>> from pybpf.asm import opcodes as op
    >>> str(jmp_imm(op.JEQ, 0, 0, 3))
    '(15) if r0 == 0x0 goto pc+3'
    """
    return _jump(_op.JMP | _cond_op(op) | _op.K, dst, 0, _s32(imm), off_or_label)


def jmp_reg(op: int, dst: int, src: int, off_or_label: OffOrLabel) -> Instruction:
    """``if dst op src goto off`` (64-bit compare).

    >>> from pybpf.asm import opcodes as op
    >>> str(jmp_reg(op.JGT, 1, 2, -5))
    '(2d) if r1 > r2 goto pc-5'
    """
    return _jump(_op.JMP | _cond_op(op) | _op.X, dst, _reg(src, "src"), 0, off_or_label)


def jmp32_imm(op: int, dst: int, imm: int, off_or_label: OffOrLabel) -> Instruction:
    """``if wdst op imm goto off`` (32-bit compare, cpu v3, Linux 5.1).

    >>> from pybpf.asm import opcodes as op
    >>> str(jmp32_imm(op.JSLT, 1, 0, 2))
    '(c6) if w1 s< 0x0 goto pc+2'
    """
    return _jump(_op.JMP32 | _cond_op(op) | _op.K, dst, 0, _s32(imm), off_or_label)


def jmp32_reg(op: int, dst: int, src: int, off_or_label: OffOrLabel) -> Instruction:
    """``if wdst op wsrc goto off`` (32-bit compare, cpu v3, Linux 5.1).

    >>> from pybpf.asm import opcodes as op
    >>> str(jmp32_reg(op.JNE, 1, 2, 1))
    '(5e) if w1 != w2 goto pc+1'
    """
    return _jump(_op.JMP32 | _cond_op(op) | _op.X, dst, _reg(src, "src"), 0, off_or_label)


def ja(off_or_label: OffOrLabel) -> Instruction:
    """``goto off`` (16-bit offset).

    >>> str(ja(4))
    '(05) goto pc+4'
    """
    return _jump(_op.JMP | _op.JA, 0, 0, 0, off_or_label)


def gotol(off_or_label: OffOrLabel) -> Instruction:
    """``gotol off``: unconditional jump with a 32-bit offset in ``imm`` (cpu v4, Linux 6.6).

    >>> str(gotol(70000))
    '(06) gotol pc+70000'
    """
    if isinstance(off_or_label, str):
        return Instruction(_op.JMP32 | _op.JA, reference=off_or_label)
    return Instruction(_op.JMP32 | _op.JA, imm=_s32(off_or_label, "jump offset"))


def may_goto(off_or_label: OffOrLabel) -> Instruction:
    """``may_goto off``: a jump the kernel takes once a loop budget is spent (Linux 6.9).

    >>> str(may_goto(2))
    '(e5) may_goto pc+2'
    """
    return _jump(_op.JMP | _op.JCOND, 0, _op.PSEUDO_MAY_GOTO, 0, off_or_label)


def call_helper(helper_id: int) -> Instruction:
    """``call helper`` by id (``bpf_map_lookup_elem`` is 1); the result is in r0.

    >>> str(call_helper(1))
    '(85) call bpf_map_lookup_elem#1'
    """
    return Instruction(_op.CALL_OPCODE, imm=_s32(helper_id, "helper id"))


def call_kfunc(btf_id: int, *, module: int = 0) -> Instruction:
    """Call a kernel function by BTF id.

    ``module`` is the index of the module's BTF fd in fd_array (0: vmlinux).

    >>> str(call_kfunc(12345))
    '(85) call kernel-function#12345'
    """
    return Instruction(_op.CALL_OPCODE, src=_op.PSEUDO_KFUNC_CALL, off=_s16(module, "module"),
                       imm=_s32(btf_id, "BTF id"))


def call_local(target: OffOrLabel) -> Instruction:
    """bpf-to-bpf call of a subprogram by label (or relative offset in slots).

    Until :func:`assemble` resolves it, ``imm`` is -1, as in clang's objects.

    >>> str(call_local(10))
    '(85) call pc+10'
    """
    if isinstance(target, str):
        return Instruction(_op.CALL_OPCODE, src=_op.PSEUDO_CALL, imm=-1, reference=target)
    return Instruction(_op.CALL_OPCODE, src=_op.PSEUDO_CALL, imm=_s32(target, "call offset"))


def exit_() -> Instruction:
    """``exit``: return r0.

    >>> str(exit_())
    '(95) exit'
    """
    return Instruction(_op.EXIT_OPCODE)


def label(name: str) -> Label:
    """A marker naming the next instruction, for jumps and calls in :func:`assemble`.

    >>> [i.off for i in assemble([ja("out"), mov64_imm(0, 1), label("out"), exit_()])]
    [1, 0, 0]
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a label needs a non-empty name, not {name!r}")
    return Label(name)


# -- assembly ----------------------------------------------------------------------------

def _flatten(items: Iterable[Item], out: list[Instruction], labels: dict[str, int],
             pending: list[str]) -> None:
    for item in items:
        if isinstance(item, Instruction):
            insn = Instruction(item.code, item.dst, item.src, item.off, item.imm,
                               item.symbol, item.reference, item.source)
            names = pending + ([insn.symbol] if insn.symbol is not None else [])
            for name in dict.fromkeys(names):
                if name in labels:
                    raise ValueError(f"duplicate label {name!r} (at instructions "
                                     f"{labels[name]} and {len(out)})")
                labels[name] = len(out)
            if insn.symbol is None and pending:
                insn.symbol = pending[0]
            pending.clear()
            out.append(insn)
        elif isinstance(item, Label):
            pending.append(item.name)
        elif isinstance(item, (str, bytes)):
            raise TypeError(f"unexpected {item!r} in assemble(): use label({item!r}) for a label")
        else:
            try:
                sub = iter(item)  # type: ignore[call-overload]
            except TypeError:
                raise TypeError(f"assemble() takes Instructions, labels and lists of them, "
                                f"not {type(item).__name__}") from None
            _flatten(sub, out, labels, pending)


def assemble(items: Iterable[Item]) -> list[Instruction]:
    """Flatten ``items`` and resolve label targets to relative offsets (in slots).

    Jumps (``off``, or ``imm`` of ``gotol``), local calls and ``ld_func`` whose
    ``reference`` is a label get ``target - (index + 1)``; other references
    (map names) are left for the loader.  A label names the instruction after
    it, and so does an instruction's own ``symbol``.  The input instructions are
    not modified.  Raises ``ValueError`` for an unknown or duplicate label, a
    label with no instruction after it, or an offset that does not fit.

    >>> from pybpf.asm import opcodes as op
    >>> prog = assemble([mov64_imm(0, 0), jmp_imm(op.JEQ, 1, 0, "out"), ld_imm64(2, 7), label("out"), exit_()])
    >>> len(prog), prog[1].off, prog[4].symbol
    (5, 2, 'out')
    """
    out: list[Instruction] = []
    labels: dict[str, int] = {}
    pending: list[str] = []
    _flatten(items, out, labels, pending)
    if pending:
        raise ValueError(f"label {pending[0]!r} is not followed by an instruction")
    for index, insn in enumerate(out):
        ref = insn.reference
        if ref is None:
            continue
        is_jump = insn.is_jump
        if not (is_jump or insn.is_pseudo_call or insn.is_pseudo_func):
            continue
        target = labels.get(ref)
        if target is None:
            raise ValueError(f"unknown label {ref!r} (referenced by instruction {index})")
        delta = target - (index + 1)
        if is_jump and insn.code != _op.JMP32 | _op.JA:
            if not -(1 << 15) <= delta < (1 << 15):
                raise ValueError(
                    f"jump at instruction {index} to label {ref!r}: offset {delta} does not fit "
                    "16 bits (use gotol for long jumps)")
            insn.off = delta
        else:
            if not -(1 << 31) <= delta < (1 << 31):
                raise ValueError(f"instruction {index} to label {ref!r}: offset {delta} "
                                 "does not fit 32 bits")
            insn.imm = delta
    return out
