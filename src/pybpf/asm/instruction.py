"""One BPF instruction slot (``struct bpf_insn``) and its 8-byte encoding.

The kernel counts programs in 8-byte slots, and so does pybpf: a 64-bit
immediate load (``ld_imm64``) is two :class:`Instruction` objects, the second
with opcode 0 and the high half of the constant in ``imm``.  Jump offsets,
call offsets and verifier-log indices are all in slots, so ``insns[i]`` is
always the instruction the kernel calls ``i``.

Layout, little-endian (the only byte order pybpf targets)::

    code:8  dst:4 src:4  off:16 (signed)  imm:32 (signed)

Example::

    >>> from pybpf.asm.instruction import Instruction, decode_all, encode_all
    >>> insn = Instruction(0xb7, dst=1, imm=42)           # r1 = 42
    >>> insn.encode().hex()
    'b70100002a000000'
    >>> decode_all(encode_all([insn, Instruction(0x95)])) == [insn, Instruction(0x95)]
    True

``symbol``, ``reference`` and ``source`` are metadata for the layers above
(labels, relocation targets, line info); they are never encoded and do not
take part in ``==``.
"""

from __future__ import annotations

import struct

from pybpf._record import Record
from pybpf.errors import ObjectError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable, Sequence

__all__ = ["Instruction", "decode_all", "encode_all", "imm64", "set_imm64", "INSN_SIZE"]

INSN_SIZE = 8
_INSN = struct.Struct("<BBhi")
_pack = _INSN.pack
_unpack_from = _INSN.unpack_from
_iter_unpack = _INSN.iter_unpack

# Opcode values used by the predicates below (see opcodes.py for the names).
_LD_IMM64 = 0x18         # LD | DW | IMM
_CALL = 0x85             # JMP | CALL
_EXIT = 0x95             # JMP | EXIT
_GOTOL = 0x06            # JMP32 | JA: 32-bit offset in imm
_GOTOX = 0x0D            # JMP | JA | X: indirect jump through a register
_PSEUDO_CALL = 1
_PSEUDO_KFUNC_CALL = 2
_PSEUDO_FUNC = 4


class Instruction(Record):
    """One 8-byte instruction slot.

    ``code`` is the opcode byte, ``dst``/``src`` the 4-bit register fields,
    ``off`` a signed 16-bit and ``imm`` a signed 32-bit integer.  Values are
    stored as given; :meth:`encode` rejects those that do not fit.

    Metadata, never encoded: ``symbol`` is a label or function name defined at
    this instruction, ``reference`` a symbol it refers to (jump label, call
    target, map name), ``source`` line information attached by a loader or
    compiler (opaque here).

    >>> insn = Instruction(0xb7, dst=1, imm=42)
    >>> str(insn), insn.is_jump
    ('(b7) r1 = 42', False)
    """

    __slots__ = ("code", "dst", "src", "off", "imm", "symbol", "reference", "source")

    def __init__(self, code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0,
                 symbol: str | None = None, reference: str | None = None, source: object | None = None) -> None:
        self.code = code
        self.dst = dst
        self.src = src
        self.off = off
        self.imm = imm
        self.symbol = symbol
        self.reference = reference
        self.source = source

    # -- encoding ----------------------------------------------------------------------

    def encode(self) -> bytes:
        """The 8 little-endian bytes of this slot; ``ValueError`` if a field does not fit.

        >>> Instruction(0x95).encode().hex()
        '9500000000000000'
        """
        try:
            if not (self.dst | self.src) & ~0xF:
                return _pack(self.code, (self.src << 4) | self.dst, self.off, self.imm)
        except (struct.error, TypeError):
            pass
        raise ValueError(_field_problem(self))

    @classmethod
    def decode(cls, buf: bytes | bytearray | memoryview, offset: int = 0) -> "Instruction":
        """Decode the slot at byte ``offset`` of ``buf``; ``ObjectError`` if it is cut short."""
        if offset < 0 or len(buf) - offset < INSN_SIZE:
            raise ObjectError(
                f"instruction at byte offset {offset}: need {INSN_SIZE} bytes, "
                f"{max(0, len(buf) - offset)} left")
        code, regs, off, imm = _unpack_from(buf, offset)
        return cls(code, regs & 0xF, regs >> 4, off, imm)

    # -- equality (encoded fields only) ------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Instruction):
            return NotImplemented
        return (self.code == other.code and self.dst == other.dst and self.src == other.src
                and self.off == other.off and self.imm == other.imm)

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        text = (f"Instruction(code=0x{self.code:02x}, dst={self.dst}, src={self.src}, "
                f"off={self.off}, imm={self.imm}")
        if self.symbol is not None:
            text += f", symbol={self.symbol!r}"
        if self.reference is not None:
            text += f", reference={self.reference!r}"
        if self.source is not None:
            text += f", source={self.source!r}"
        return text + ")"

    def __str__(self) -> str:
        """The verifier-log text without an index, e.g. ``(b7) r1 = 0``."""
        from pybpf.asm.disasm import instruction_text

        return f"({self.code & 0xFF:02x}) {instruction_text(self)}"

    # -- opcode fields -----------------------------------------------------------------

    @property
    def cls(self) -> int:
        """Instruction class (``opcodes.Class``)."""
        return self.code & 0x07

    @property
    def op(self) -> int:
        """ALU/JMP operation bits (``opcodes.ALUOp`` / ``opcodes.JmpOp``)."""
        return self.code & 0xF0

    @property
    def size(self) -> int:
        """Load/store size bits (``opcodes.Size``)."""
        return self.code & 0x18

    @property
    def mode(self) -> int:
        """Load/store mode bits (``opcodes.Mode``)."""
        return self.code & 0xE0

    @property
    def source_bit(self) -> int:
        """ALU/JMP source bit (``opcodes.Source``: K=0, X=8)."""
        return self.code & 0x08

    # -- predicates --------------------------------------------------------------------

    @property
    def is_ld_imm64(self) -> bool:
        """First slot of a 64-bit immediate load (the next slot holds the high half)."""
        return self.code == _LD_IMM64

    @property
    def is_call(self) -> bool:
        """Any call: helper, bpf-to-bpf or kfunc."""
        return self.code == _CALL

    @property
    def is_helper_call(self) -> bool:
        """A call to a kernel helper (``imm`` is the helper id)."""
        return self.code == _CALL and self.src == 0

    @property
    def is_pseudo_call(self) -> bool:
        """A bpf-to-bpf call (``imm`` is the offset of the callee)."""
        return self.code == _CALL and self.src == _PSEUDO_CALL

    @property
    def is_kfunc_call(self) -> bool:
        """A call to a kernel function (``imm`` is its BTF id)."""
        return self.code == _CALL and self.src == _PSEUDO_KFUNC_CALL

    @property
    def is_pseudo_func(self) -> bool:
        """An ``ld_imm64`` of a subprogram address (callbacks such as bpf_loop's)."""
        return self.code == _LD_IMM64 and self.src == _PSEUDO_FUNC

    @property
    def is_exit(self) -> bool:
        """``exit``: return r0."""
        return self.code == _EXIT

    @property
    def is_jump(self) -> bool:
        """A jump to a fixed offset: conditional, ``goto``, ``gotol`` or ``may_goto``.

        Calls, ``exit`` and the indirect ``gotox`` are not jumps in this sense.
        """
        code = self.code
        cls = code & 0x07
        if cls != 0x05 and cls != 0x06:  # JMP, JMP32
            return False
        op = code & 0xF0
        return op != 0x80 and op != 0x90 and code != _GOTOX

    def jump_target(self, index: int) -> int:
        """Slot index this instruction at ``index`` transfers to.

        Works for jumps (``off``, or ``imm`` for ``gotol``), bpf-to-bpf calls
        and ``ld_imm64`` of a subprogram (``imm``); ``ValueError`` otherwise.
        """
        if self.is_jump:
            return index + 1 + (self.imm if self.code == _GOTOL else self.off)
        if self.is_pseudo_call or self.is_pseudo_func:
            return index + 1 + self.imm
        raise ValueError(f"instruction {index} (opcode 0x{self.code:02x}) has no jump target")


def _field_problem(insn: Instruction) -> str:
    for name, lo, hi in (("code", 0, 0xFF), ("dst", 0, 0xF), ("src", 0, 0xF), ("off", -(1 << 15), (1 << 15) - 1),
                         ("imm", -(1 << 31), (1 << 31) - 1)):
        value = getattr(insn, name)
        if not isinstance(value, int):
            return f"{insn!r}: {name} must be an int, not {type(value).__name__}"
        if not lo <= value <= hi:
            what = "registers are " if name in ("dst", "src") else ""
            return f"{insn!r}: {name}={value} does not fit ({what}{lo}..{hi})"
    return f"{insn!r}: cannot be encoded"


def decode_all(data: bytes | bytearray | memoryview) -> list[Instruction]:
    """Decode a whole instruction stream (an ELF section, a program's xlated insns).

    Raises :class:`~pybpf.errors.ObjectError` when the length is not a multiple of 8.

    >>> decode_all(bytes.fromhex("b7000000000000009500000000000000"))[1].is_exit
    True
    """
    size = len(data)
    if size % INSN_SIZE:
        last = size - size % INSN_SIZE
        raise ObjectError(
            f"instruction data is {size} bytes, not a multiple of {INSN_SIZE}: "
            f"the instruction at byte offset {last} is truncated")
    return [Instruction(code, regs & 0xF, regs >> 4, off, imm)
            for code, regs, off, imm in _iter_unpack(data)]


def encode_all(insns: Iterable[Instruction]) -> bytes:
    """Encode instructions back to bytes; ``ValueError`` names the first bad slot.

    >>> encode_all([Instruction(0xb7), Instruction(0x95)]).hex()
    'b7000000000000009500000000000000'
    """
    insns = insns if isinstance(insns, (list, tuple)) else list(insns)
    try:
        if not any((i.dst | i.src) & ~0xF for i in insns):
            return b"".join([_pack(i.code, (i.src << 4) | i.dst, i.off, i.imm) for i in insns])
    except (struct.error, TypeError, AttributeError):
        pass
    # Something does not fit: find it and say where.
    for index, insn in enumerate(insns):
        if not isinstance(insn, Instruction):
            raise TypeError(f"instruction {index} is a {type(insn).__name__}, not an Instruction "
                            "(nested lists and labels go through assemble() first)")
        try:
            insn.encode()
        except ValueError as err:
            raise ValueError(f"instruction {index}: {err}") from None
    return b"".join(insn.encode() for insn in insns)


def _check_ld_imm64(insns: Sequence[Instruction], i: int) -> None:
    if not 0 <= i < len(insns) or not insns[i].is_ld_imm64:
        raise ObjectError(f"instruction {i} is not a 64-bit immediate load (ld_imm64)")
    if i + 1 >= len(insns):
        raise ObjectError(f"instruction {i}: ld_imm64 is missing its second slot")


def imm64(insns: Sequence[Instruction], i: int) -> int:
    """The unsigned 64-bit constant of the ``ld_imm64`` at slot ``i``.

    >>> hex(imm64([Instruction(0x18, dst=1, imm=2), Instruction(0, imm=1)], 0))
    '0x100000002'
    """
    _check_ld_imm64(insns, i)
    return ((insns[i + 1].imm & 0xFFFFFFFF) << 32) | (insns[i].imm & 0xFFFFFFFF)


def set_imm64(insns: Sequence[Instruction], i: int, value: int) -> None:
    """Store ``value`` (signed or unsigned 64-bit) in the ``ld_imm64`` at slot ``i``.

    >>> insns = [Instruction(0x18, dst=1), Instruction(0)]
    >>> set_imm64(insns, 0, -1); (insns[0].imm, insns[1].imm)
    (-1, -1)
    """
    _check_ld_imm64(insns, i)
    if not -(1 << 63) <= value < (1 << 64):
        raise ValueError(f"ld_imm64 value {value:#x} does not fit 64 bits")
    value &= 0xFFFFFFFFFFFFFFFF
    lo, hi = value & 0xFFFFFFFF, value >> 32
    insns[i].imm = lo - (1 << 32) if lo & 0x80000000 else lo
    insns[i + 1].imm = hi - (1 << 32) if hi & 0x80000000 else hi
