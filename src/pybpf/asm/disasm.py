"""Disassemble instructions into the text the kernel verifier prints.

The notation is the verifier log's (``kernel/bpf/disasm.c``): one line per
instruction, ``"{index}: ({opcode:02x}) {text}"``, indices in 8-byte slots, so
the second slot of an ``ld_imm64`` is not printed and the next line's index
skips it.  A verifier log and ``disassemble()`` of the same program line up::

    >>> from pybpf.asm import builder as b, opcodes as op, disassemble
    >>> print(disassemble(b.assemble([
    ...     b.mov64_imm(1, 0),
    ...     b.stx_mem(op.W, 10, 1, -4),
    ...     b.ld_map_fd(1, 3),
    ...     b.jmp_imm(op.JEQ, 0, 0, "out"),
    ...     b.label("out"), b.exit_(),
    ... ]), helper_name=lambda n: None))
    0: (b7) r1 = 0
    1: (63) *(u32 *)(r10 -4) = r1
    2: (18) r1 = map[fd:3]
    4: (15) if r0 == 0x0 goto pc+0
    5: (95) exit

Differences from the kernel's text: ``ld_imm64`` with a pseudo source shows
what the kernel would resolve (``map[fd:N]``, ``map_value[fd:N]+off``,
``map[idx:N]``, ``map_value[idx:N]+off``, ``ksym[btf_id:N]``, ``func[pc+N]``)
instead of a kernel address, unknown helpers read ``helper#N`` and malformed
instructions read ``invalid ...`` rather than ``BUG_...``.

Helper names come from ``helper_name(id) -> str | None``; by default from
``HelperID`` of the kernel ABI layer (:mod:`pybpf._sys.uapi`), ``helper#N``
for an id it does not know.
"""

from __future__ import annotations

from pybpf._sys.uapi import HelperID

TYPE_CHECKING = False
if TYPE_CHECKING:   # Instruction.__str__ calls this module: no import back at run time
    from typing import Callable, Sequence

    from pybpf.asm.instruction import Instruction

    HelperName = Callable[[int], "str | None"]

__all__ = ["disassemble", "format_instruction", "instruction_text"]

_CLASS_NAMES = ("ld", "ldx", "st", "stx", "alu", "jmp", "jmp32", "alu64")
_SIZE_U = {0x00: "u32", 0x08: "u16", 0x10: "u8", 0x18: "u64"}
_SIZE_S = {0x00: "s32", 0x08: "s16", 0x10: "s8"}
_ALU_OPS = {
    0x00: "+=", 0x10: "-=", 0x20: "*=", 0x30: "/=", 0x40: "|=", 0x50: "&=", 0x60: "<<=",
    0x70: ">>=", 0x90: "%=", 0xA0: "^=", 0xB0: "=", 0xC0: "s>>=",
}
_SIGNED_ALU_OPS = {0x30: "s/=", 0x90: "s%="}
_MOVSX = {8: "(s8)", 16: "(s16)", 32: "(s32)"}
_JMP_OPS = {
    0x10: "==", 0x20: ">", 0x30: ">=", 0x40: "&", 0x50: "!=", 0x60: "s>", 0x70: "s>=",
    0xA0: "<", 0xB0: "<=", 0xC0: "s<", 0xD0: "s<=",
}
_ATOMIC = {  # STX|ATOMIC by imm, formatted with size, d, s, off and bits ("64" for DW)
    0x00: "lock *({size} *)(r{d} {off:+d}) += r{s}",
    0x40: "lock *({size} *)(r{d} {off:+d}) |= r{s}",
    0x50: "lock *({size} *)(r{d} {off:+d}) &= r{s}",
    0xA0: "lock *({size} *)(r{d} {off:+d}) ^= r{s}",
    0x01: "r{s} = atomic{bits}_fetch_add(({size} *)(r{d} {off:+d}), r{s})",
    0x41: "r{s} = atomic{bits}_fetch_or(({size} *)(r{d} {off:+d}), r{s})",
    0x51: "r{s} = atomic{bits}_fetch_and(({size} *)(r{d} {off:+d}), r{s})",
    0xA1: "r{s} = atomic{bits}_fetch_xor(({size} *)(r{d} {off:+d}), r{s})",
    0xE1: "r{s} = atomic{bits}_xchg(({size} *)(r{d} {off:+d}), r{s})",
    0xF1: "r0 = atomic{bits}_cmpxchg(({size} *)(r{d} {off:+d}), r0, r{s})",
    0x100: "r{d} = load_acquire(({size} *)(r{s} {off:+d}))",
    0x110: "store_release(({size} *)(r{d} {off:+d}), r{s})",
}
_LD_IMM64_SRC = {  # ld_imm64 by pseudo src; filled in with imm and hi (the second slot's imm)
    1: "map[fd:{imm}]", 2: "map_value[fd:{imm}]+{hi}", 3: "ksym[btf_id:{imm}]", 4: "func[pc{imm:+d}]",
    5: "map[idx:{imm}]", 6: "map_value[idx:{imm}]+{hi}",
}


def _helper_name(helper_id: int) -> str | None:
    """``bpf_<name>`` of a helper id, from the kernel ABI layer's HelperID (None when unknown)."""
    try:
        return "bpf_" + HelperID(helper_id).name
    except ValueError:
        return None


def _invalid(insn: Instruction, what: str = "") -> str:
    text = f"invalid {_CLASS_NAMES[insn.code & 7]} instruction"
    if what:
        text += f" ({what})"
    return text


def _alu(insn: Instruction) -> str:
    code, d, s, off, imm = insn.code, insn.dst, insn.src, insn.off, insn.imm
    alu64 = code & 0x07 == 0x07
    r = "r" if alu64 else "w"
    op = code & 0xF0
    if op == 0xD0:  # END
        if alu64:
            return f"r{d} = bswap{imm} r{d}"
        return f"r{d} = {'be' if code & 0x08 else 'le'}{imm} r{d}"
    if op == 0x80:
        return f"{r}{d} = -{r}{d}"
    if code == 0xBF and off == 1:
        return f"r{d} = addr_space_cast(r{s}, {(imm & 0xFFFFFFFF) >> 16}, {imm & 0xFFFF})"
    text = _SIGNED_ALU_OPS.get(op) if off == 1 else None
    text = text or _ALU_OPS.get(op)
    if text is None:
        return _invalid(insn, f"op 0x{op:02x}")
    if code & 0x08:
        sx = _MOVSX.get(off, "") if op == 0xB0 else ""
        return f"{r}{d} {text} {sx}{r}{s}"
    return f"{r}{d} {text} {imm}"


def _stx(insn: Instruction) -> str:
    code, d, s, off, imm = insn.code, insn.dst, insn.src, insn.off, insn.imm
    size = _SIZE_U[code & 0x18]
    mode = code & 0xE0
    if mode == 0x60:
        return f"*({size} *)(r{d} {off:+d}) = r{s}"
    if mode != 0xC0:
        return _invalid(insn, f"mode 0x{mode:02x}")
    template = _ATOMIC.get(imm)
    if template is None:
        return _invalid(insn, f"atomic op 0x{imm & 0xFFFFFFFF:x}")
    return template.format(size=size, d=d, s=s, off=off, bits="64" if code & 0x18 == 0x18 else "")


def _ld_imm64(insn: Instruction, next_insn: Instruction | None) -> str:
    d, src, imm = insn.dst, insn.src, insn.imm
    if next_insn is None:
        return f"r{d} = {imm & 0xFFFFFFFF:#x} (ld_imm64 without its second slot)"
    hi = next_insn.imm
    if src == 0:
        return f"r{d} = {((hi & 0xFFFFFFFF) << 32) | (imm & 0xFFFFFFFF):#x}"
    template = _LD_IMM64_SRC.get(src)
    if template is not None:
        return f"r{d} = " + template.format(imm=imm, hi=hi)
    return _invalid(insn, f"ld_imm64 src {src}")


def _jmp(insn: Instruction, helper_name: HelperName) -> str:
    code, d, s, off, imm = insn.code, insn.dst, insn.src, insn.off, insn.imm
    op = code & 0xF0
    jmp32 = code & 0x07 == 0x06
    if code == 0x85:
        if s == 1:
            return f"call pc{imm:+d}"
        if s == 2:
            return f"call kernel-function#{imm}"
        if s == 0:
            return f"call {helper_name(imm) or 'helper'}#{imm}"
        return f"call unknown#{imm}"
    if code == 0x05:
        return f"goto pc{off:+d}"
    if code == 0x0D:
        return f"gotox r{d}"
    if code == 0x06:
        return f"gotol pc{imm:+d}"
    if code == 0x95:
        return "exit"
    if code == 0xE5 and s == 0:
        return f"may_goto pc{off:+d}"
    text = _JMP_OPS.get(op)
    if text is None:
        return _invalid(insn, f"op 0x{op:02x}")
    r = "w" if jmp32 else "r"
    if code & 0x08:
        return f"if {r}{d} {text} {r}{s} goto pc{off:+d}"
    return f"if {r}{d} {text} {imm & 0xFFFFFFFF:#x} goto pc{off:+d}"


def instruction_text(insn: Instruction, next_insn: Instruction | None = None,
                     helper_name: HelperName | None = None) -> str:
    """The text of one instruction without index and opcode, e.g. ``r1 = 0``.

    ``next_insn`` is the following slot, needed for the high half of an ``ld_imm64``.

    >>> from pybpf.asm.instruction import Instruction
    >>> instruction_text(Instruction(0x95))
    'exit'
    """
    code = insn.code
    cls = code & 0x07
    if cls == 0x04 or cls == 0x07:
        return _alu(insn)
    if cls == 0x05 or cls == 0x06:
        return _jmp(insn, helper_name or _helper_name)
    mode = code & 0xE0
    if cls == 0x01:  # LDX
        table = _SIZE_U if mode == 0x60 else _SIZE_S if mode == 0x80 else None
        size = table.get(code & 0x18) if table else None
        if size is None:
            return _invalid(insn, f"mode 0x{mode:02x}")
        return f"r{insn.dst} = *({size} *)(r{insn.src} {insn.off:+d})"
    if cls == 0x03:
        return _stx(insn)
    if cls == 0x02:  # ST
        if mode == 0x60:
            return f"*({_SIZE_U[code & 0x18]} *)(r{insn.dst} {insn.off:+d}) = {insn.imm}"
        if mode == 0xC0:  # BPF_NOSPEC, kernel-internal
            return "nospec"
        return _invalid(insn, f"mode 0x{mode:02x}")
    # LD
    if code == 0x18:
        return _ld_imm64(insn, next_insn)
    if mode == 0x20:
        return f"r0 = *({_SIZE_U[code & 0x18]} *)skb[{insn.imm}]"
    if mode == 0x40:
        return f"r0 = *({_SIZE_U[code & 0x18]} *)skb[r{insn.src} + {insn.imm}]"
    return _invalid(insn, f"mode 0x{mode:02x}")


def format_instruction(insn: Instruction, index: int, next_insn: Instruction | None = None,
                       helper_name: HelperName | None = None) -> str:
    """One verifier-log line: ``"{index}: ({code:02x}) {text}"``.

    >>> from pybpf.asm.instruction import Instruction
    >>> format_instruction(Instruction(0xbf, dst=6, src=1), 3)
    '3: (bf) r6 = r1'
    """
    return f"{index}: ({insn.code & 0xFF:02x}) {instruction_text(insn, next_insn, helper_name)}"


def disassemble(insns: Sequence[Instruction], *, helper_name: HelperName | None = None) -> str:
    """The whole program, one line per instruction (``ld_imm64`` takes one line, two slots).

    >>> from pybpf.asm.instruction import Instruction
    >>> print(disassemble([Instruction(0xb7), Instruction(0x95)]))
    0: (b7) r0 = 0
    1: (95) exit
    """
    names = helper_name or _helper_name
    lines = []
    n = len(insns)
    i = 0
    while i < n:
        wide = insns[i].code == 0x18  # ld_imm64: this slot and the next
        lines.append(format_instruction(insns[i], i, insns[i + 1] if wide and i + 1 < n else None, names))
        i += 2 if wide else 1
    return "\n".join(lines)
