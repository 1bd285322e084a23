"""BPF instruction-set constants: classes, sizes, modes, operations, pseudo sources.

An opcode byte is built by OR-ing a class with either an operation and a
source (ALU and JMP classes) or a size and a mode (load and store classes)::

    7       4   3   2     0
    +-------+---+---------+
    |  op   |src|  class  |     ALU, ALU64, JMP, JMP32
    +-------+---+---------+
    | mode  |size|  class |     LD, LDX, ST, STX
    +-------+----+--------+

The names are the kernel's without the ``BPF_`` prefix (``include/uapi/linux/
bpf_common.h`` and ``bpf.h``).  Each family is an :class:`enum.IntEnum`; the
members are also exported as module constants so code reads like C::

    >>> from pybpf.asm import opcodes as op
    >>> hex(op.ALU64 | op.MOV | op.K)        # "r1 = 0" is opcode 0xb7
    '0xb7'
    >>> op.Class(0x85 & 0x07).name, op.JmpOp(0x85 & 0xf0).name
    ('JMP', 'CALL')

Extensions that reuse an opcode and select a variant through another field:

* signed division/modulo (cpu v4, Linux 6.6): ``DIV``/``MOD`` with ``off=1``
  (:data:`OFF_SIGNED`);
* sign-extending move (cpu v4, Linux 6.6): ``MOV|X`` with ``off`` 8, 16 or 32;
* sign-extending load (cpu v4, Linux 6.6): mode ``MEMSX`` in class ``LDX``;
* unconditional byte swap (cpu v4, Linux 6.6): ``ALU64|END|TO_LE`` ("bswap");
* ``addr_space_cast`` (arena, Linux 6.9): ``ALU64|MOV|X`` with ``off=1``;
* ``may_goto`` (Linux 6.9): ``JMP|JCOND`` with ``src=0``;
* ``gotol`` (cpu v4): ``JMP32|JA`` with the 32-bit offset in ``imm``;
* atomic operations live in ``imm`` of ``STX|ATOMIC`` (:class:`AtomicOp`);
  load-acquire/store-release need Linux 6.15.
"""

from __future__ import annotations

from enum import IntEnum

INSN_SIZE = 8
"""Bytes in one instruction slot (``struct bpf_insn``)."""


class Class(IntEnum):
    """Instruction class: the low three bits of the opcode."""

    LD = 0x00
    LDX = 0x01
    ST = 0x02
    STX = 0x03
    ALU = 0x04
    JMP = 0x05
    JMP32 = 0x06  # Linux 5.1, cpu v3
    ALU64 = 0x07


class Size(IntEnum):
    """Access size of load and store classes (bits 3-4)."""

    W = 0x00   # 4 bytes
    H = 0x08   # 2 bytes
    B = 0x10   # 1 byte
    DW = 0x18  # 8 bytes


SIZE_BYTES: dict[int, int] = {Size.W: 4, Size.H: 2, Size.B: 1, Size.DW: 8}
"""Number of bytes accessed for each :class:`Size`."""


class Mode(IntEnum):
    """Addressing mode of load and store classes (bits 5-7)."""

    IMM = 0x00     # with LD|DW: the two-slot 64-bit immediate load
    ABS = 0x20     # legacy packet access (socket filters)
    IND = 0x40     # legacy packet access (socket filters)
    MEM = 0x60
    MEMSX = 0x80   # sign-extending load, LDX only (Linux 6.6, cpu v4)
    ATOMIC = 0xC0  # STX only; the operation is in imm


class Source(IntEnum):
    """Operand source of ALU and JMP classes (bit 3)."""

    K = 0x00  # the 32-bit immediate
    X = 0x08  # the source register


class Endian(IntEnum):
    """Byte-order conversion selected by the source bit of ``ALU|END``."""

    TO_LE = 0x00
    TO_BE = 0x08


class ALUOp(IntEnum):
    """Operations of the ALU and ALU64 classes (bits 4-7)."""

    ADD = 0x00
    SUB = 0x10
    MUL = 0x20
    DIV = 0x30   # off=1: signed (sdiv)
    OR = 0x40
    AND = 0x50
    LSH = 0x60
    RSH = 0x70
    NEG = 0x80
    MOD = 0x90   # off=1: signed (smod)
    XOR = 0xA0
    MOV = 0xB0   # with X and off=8/16/32: sign-extending move (movsx)
    ARSH = 0xC0
    END = 0xD0   # byte swap; in ALU64 an unconditional bswap


class JmpOp(IntEnum):
    """Operations of the JMP and JMP32 classes (bits 4-7)."""

    JA = 0x00
    JEQ = 0x10
    JGT = 0x20
    JGE = 0x30
    JSET = 0x40
    JNE = 0x50
    JSGT = 0x60
    JSGE = 0x70
    CALL = 0x80
    EXIT = 0x90
    JLT = 0xA0   # Linux 4.14, cpu v2
    JLE = 0xB0
    JSLT = 0xC0
    JSLE = 0xD0
    JCOND = 0xE0  # may_goto (Linux 6.9)


class AtomicOp(IntEnum):
    """Operations of ``STX|ATOMIC``, stored in ``imm`` (Linux 5.12 except as noted)."""

    ADD = 0x00   # also the legacy XADD (Linux 4.x)
    OR = 0x40
    AND = 0x50
    XOR = 0xA0
    FETCH = 0x01                 # flag: the old value is returned in src
    FETCH_ADD = 0x01
    FETCH_OR = 0x41
    FETCH_AND = 0x51
    FETCH_XOR = 0xA1
    XCHG = 0xE1
    CMPXCHG = 0xF1               # compares with r0, old value returned in r0
    LOAD_ACQ = 0x100             # Linux 6.15
    STORE_REL = 0x110            # Linux 6.15


class PseudoLd(IntEnum):
    """``src`` of an ``ld_imm64`` that the kernel resolves (bpf.h BPF_PSEUDO_*)."""

    MAP_FD = 1         # imm = map fd
    MAP_VALUE = 2      # imm = map fd, next imm = offset into the value
    BTF_ID = 3         # imm = BTF id of a kernel variable (ksym)
    FUNC = 4           # imm = relative instruction offset of a subprogram
    MAP_IDX = 5        # imm = index into fd_array (Linux 5.14)
    MAP_IDX_VALUE = 6  # imm = index into fd_array, next imm = offset


class PseudoCall(IntEnum):
    """``src`` of a call instruction."""

    HELPER = 0         # imm = helper id
    CALL = 1           # bpf-to-bpf call: imm = relative offset (Linux 4.16)
    KFUNC_CALL = 2     # imm = BTF id of a kernel function, off = fd_array index (Linux 5.13)


class Register(IntEnum):
    """The eleven registers; R10 is the read-only frame pointer."""

    R0 = 0
    R1 = 1
    R2 = 2
    R3 = 3
    R4 = 4
    R5 = 5
    R6 = 6
    R7 = 7
    R8 = 8
    R9 = 9
    R10 = 10


OFF_SIGNED = 1
"""``off`` that turns ``DIV``/``MOD`` into signed division/modulo (cpu v4)."""
OFF_ADDR_SPACE_CAST = 1
"""``off`` that turns ``ALU64|MOV|X`` into ``addr_space_cast`` (arenas)."""
MOVSX_BITS = (8, 16, 32)
"""Valid ``off`` values of a sign-extending move."""
PSEUDO_MAY_GOTO = 0
"""``src`` of ``JMP|JCOND`` for ``may_goto``."""

# -- module-level constants, kernel names without the BPF_ prefix ---------------------

LD, LDX, ST, STX, ALU, JMP, JMP32, ALU64 = (
    Class.LD, Class.LDX, Class.ST, Class.STX, Class.ALU, Class.JMP, Class.JMP32, Class.ALU64)
W, H, B, DW = Size.W, Size.H, Size.B, Size.DW
IMM, ABS, IND, MEM, MEMSX, ATOMIC = (
    Mode.IMM, Mode.ABS, Mode.IND, Mode.MEM, Mode.MEMSX, Mode.ATOMIC)
K, X = Source.K, Source.X
TO_LE, TO_BE = Endian.TO_LE, Endian.TO_BE
ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR, MOV, ARSH, END = (
    ALUOp.ADD, ALUOp.SUB, ALUOp.MUL, ALUOp.DIV, ALUOp.OR, ALUOp.AND, ALUOp.LSH, ALUOp.RSH,
    ALUOp.NEG, ALUOp.MOD, ALUOp.XOR, ALUOp.MOV, ALUOp.ARSH, ALUOp.END)
JA, JEQ, JGT, JGE, JSET, JNE, JSGT, JSGE, CALL, EXIT, JLT, JLE, JSLT, JSLE, JCOND = (
    JmpOp.JA, JmpOp.JEQ, JmpOp.JGT, JmpOp.JGE, JmpOp.JSET, JmpOp.JNE, JmpOp.JSGT,
    JmpOp.JSGE, JmpOp.CALL, JmpOp.EXIT, JmpOp.JLT, JmpOp.JLE, JmpOp.JSLT, JmpOp.JSLE,
    JmpOp.JCOND)
FETCH, XCHG, CMPXCHG, LOAD_ACQ, STORE_REL = (
    AtomicOp.FETCH, AtomicOp.XCHG, AtomicOp.CMPXCHG, AtomicOp.LOAD_ACQ, AtomicOp.STORE_REL)

PSEUDO_MAP_FD = PseudoLd.MAP_FD
PSEUDO_MAP_VALUE = PseudoLd.MAP_VALUE
PSEUDO_BTF_ID = PseudoLd.BTF_ID
PSEUDO_FUNC = PseudoLd.FUNC
PSEUDO_MAP_IDX = PseudoLd.MAP_IDX
PSEUDO_MAP_IDX_VALUE = PseudoLd.MAP_IDX_VALUE
PSEUDO_CALL = PseudoCall.CALL
PSEUDO_KFUNC_CALL = PseudoCall.KFUNC_CALL

R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = (
    Register.R0, Register.R1, Register.R2, Register.R3, Register.R4, Register.R5,
    Register.R6, Register.R7, Register.R8, Register.R9, Register.R10)
FP = Register.R10

LD_IMM64 = LD | DW | IMM   # 0x18, the first slot of a 64-bit immediate load
CALL_OPCODE = JMP | CALL   # 0x85
EXIT_OPCODE = JMP | EXIT   # 0x95


def class_of(code: int) -> int:
    """The class bits of an opcode (``BPF_CLASS``).

    >>> Class(class_of(0x85)).name
    'JMP'
    """
    return code & 0x07


def op_of(code: int) -> int:
    """The operation bits of an ALU/JMP opcode (``BPF_OP``).

    >>> JmpOp(op_of(0x85)).name
    'CALL'
    """
    return code & 0xF0


def size_of(code: int) -> int:
    """The size bits of a load/store opcode (``BPF_SIZE``).

    >>> Size(size_of(0x79)).name
    'DW'
    """
    return code & 0x18


def mode_of(code: int) -> int:
    """The mode bits of a load/store opcode (``BPF_MODE``).

    >>> Mode(mode_of(0x79)).name
    'MEM'
    """
    return code & 0xE0


def source_of(code: int) -> int:
    """The source bit of an ALU/JMP opcode (``BPF_SRC``).

    >>> Source(source_of(0xbf)).name
    'X'
    """
    return code & 0x08


__all__ = [
    "Class", "Size", "Mode", "Source", "ALUOp", "JmpOp", "AtomicOp", "Endian",
    "PseudoLd", "PseudoCall", "Register",
    "SIZE_BYTES", "OFF_SIGNED", "OFF_ADDR_SPACE_CAST", "MOVSX_BITS", "PSEUDO_MAY_GOTO",
    "INSN_SIZE", "LD_IMM64", "CALL_OPCODE", "EXIT_OPCODE",
    "class_of", "op_of", "size_of", "mode_of", "source_of",
    "LD", "LDX", "ST", "STX", "ALU", "JMP", "JMP32", "ALU64", "W", "H", "B", "DW",
    "IMM", "ABS", "IND", "MEM", "MEMSX", "ATOMIC", "K", "X", "TO_LE", "TO_BE",
    "ADD", "SUB", "MUL", "DIV", "OR", "AND", "LSH", "RSH", "NEG", "MOD", "XOR", "MOV",
    "ARSH", "END", "JA", "JEQ", "JGT", "JGE", "JSET", "JNE", "JSGT", "JSGE", "CALL",
    "EXIT", "JLT", "JLE", "JSLT", "JSLE", "JCOND", "FETCH", "XCHG", "CMPXCHG",
    "LOAD_ACQ", "STORE_REL", "PSEUDO_MAP_FD", "PSEUDO_MAP_VALUE", "PSEUDO_BTF_ID",
    "PSEUDO_FUNC", "PSEUDO_MAP_IDX", "PSEUDO_MAP_IDX_VALUE", "PSEUDO_CALL",
    "PSEUDO_KFUNC_CALL", "R0", "R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8", "R9",
    "R10", "FP",
]
