"""Functions, relocations and linking: ELF code sections → one linked bytecode per program.

Each code section is split into functions by its FUNC symbols.  The
relocations of the section are applied to its bytes in place (no
instruction objects: a parse must not cost a Python object per instruction):

- ``call`` against a function (global FUNC symbol, or the section symbol of
  ``.text`` plus ``imm`` for static functions) → a pending bpf-to-bpf call;
- ``call`` against an undefined symbol → a kfunc call (``src``
  PSEUDO_KFUNC_CALL, BTF id filled at load: fixup :data:`FIX_KFUNC`);
- ``ld_imm64`` against a function → a pending callback address
  (PSEUDO_FUNC, for bpf_loop, bpf_for_each_map_elem, timers...);
- ``ld_imm64`` against a map → PSEUDO_MAP_FD (fixup :data:`FIX_MAP`: the
  map's fd goes in ``imm`` at load);
- ``ld_imm64`` against a global data section → PSEUDO_MAP_VALUE with the
  variable's offset in the second slot (fixup :data:`FIX_MAP`);
- ``ld_imm64`` against an extern → ``.kconfig`` map value, or a ksym /
  kfunc address resolved at load (fixup :data:`FIX_EXTERN`).

Linking then builds each entry program the way libbpf does: the program's
own instructions first, then every subprogram it reaches (directly or
through other subprograms), each appended once, with call and callback
offsets rewritten and the .BTF.ext records (func_info, line_info, CO-RE
relocations) moved along with their instructions.  A fixup is
``(slot, kind, name)``: the slot of the instruction, what the loader fills
in, and the map or extern it names (the instruction's ``reference`` once
decoded).
"""

from __future__ import annotations

import bisect
import struct
from array import array
from itertools import compress, count, repeat
from operator import add, and_, eq, ge, itemgetter, lshift, lt, mul, not_, or_, rshift, sub

from pybpf.asm.opcodes import (
    PSEUDO_BTF_ID, PSEUDO_CALL, PSEUDO_FUNC, PSEUDO_KFUNC_CALL, PSEUDO_MAP_FD, PSEUDO_MAP_VALUE,
)
from pybpf.errors import ObjectError
from pybpf.object.elffile import (
    R_BPF_64_32, R_BPF_64_64, R_BPF_NONE, SHF_EXECINSTR, SHT_PROGBITS, STB_GLOBAL, STB_WEAK, STT_FUNC, ElfFile,
    Section,
)
from pybpf.object.parts import ExternSpec, MapSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable
    from pybpf.btf.reader import CoreRelo
    from pybpf.object.btf_ext import RawExtInfo, RecordIndex

__all__ = ["Function", "section_functions", "apply_relocations", "link", "Linked", "FIX_MAP", "FIX_EXTERN",
           "FIX_KFUNC", "FunctionIndex"]

FIX_MAP = 1      # ld_imm64: imm = fd of the map named (src already PSEUDO_MAP_FD / PSEUDO_MAP_VALUE)
FIX_EXTERN = 2   # ld_imm64 of a ksym or kfunc: BTF id (+ module BTF fd) or address, src set at load
FIX_KFUNC = 3    # call of a kfunc: BTF id in imm, fd_array slot in off

_CALL = 0x85
_LD_IMM64 = 0x18
_IMM = struct.Struct("<i")
_OFF_IMM = struct.Struct("<hi")
_CALL_REL = _CALL << 32 | R_BPF_64_32           # a call with its relocation type
_LD_IMM64_REL = _LD_IMM64 << 32 | R_BPF_64_64   # a 64-bit immediate load with its relocation type
_SRC_MAP_VALUE = PSEUDO_MAP_VALUE << 4          # src in the regs byte
_SRC_MAP_FD = PSEUDO_MAP_FD << 4
_SRC_FUNC = PSEUDO_FUNC << 4
_TYPE = itemgetter(2)    # a section's type
_FLAGS = itemgetter(3)   # a section's flags
_U32 = "I" if array("I").itemsize == 4 else "L"
_EMPTY: array = array(_U32)
_BY_VALUE_NAME = itemgetter(2, 1)   # a symbol's (value, name)
_SNAME = itemgetter(1)              # a symbol's name
_START = itemgetter(2)              # a Function's first slot
_FUNC_CODE = itemgetter(4)          # its bytes
_FIRST, _SECOND, _THIRD = itemgetter(0), itemgetter(1), itemgetter(2)
_STYPE = itemgetter(4)              # a symbol's type


class Function(tuple):
    """A function of a code section: ``count`` instructions starting at slot ``start``.

    ``code`` holds its relocated bytes; ``calls`` its pending calls and
    callback addresses ``(local slot, target section index, target slot)``;
    ``fixups`` ``(local slot, kind, name)``; ``func_info``/``line_info`` its
    .BTF.ext records in the kernel's layout (u32 arrays, ``insn_off`` in
    instructions from the function's first one), ``core_relos`` (``insn_off``
    in bytes, as :mod:`pybpf.btf.core` wants them); ``has_func_info``: a
    func_info record at its first instruction.

    A tuple underneath: :func:`section_functions` makes those of a section
    column by column, without a Python step per function.  Equal only to
    itself (the linker keys tables by function).
    """

    __slots__ = ()

    name = property(itemgetter(0))
    section = property(itemgetter(1))
    start = property(itemgetter(2))
    count = property(itemgetter(3))
    code = property(itemgetter(4))
    calls = property(itemgetter(5))
    fixups = property(itemgetter(6))
    func_info = property(itemgetter(7))
    line_info = property(itemgetter(8))
    core_relos = property(itemgetter(9))
    has_func_info = property(itemgetter(10))

    __hash__ = object.__hash__
    __eq__ = object.__eq__
    __ne__ = object.__ne__

    def __repr__(self) -> str:
        return f"<Function {self.name!r} in {self.section.name!r} [{self.start}, +{self.count})>"


def _placed(f: Function, base: int) -> tuple:
    """``f``'s fixups, func_info, line_info and CO-RE relocations for ``f`` placed at slot ``base``."""
    fixups = f[6]
    if fixups:
        fixups = tuple(zip(map(add, map(_FIRST, fixups), repeat(base)), map(_SECOND, fixups), map(_THIRD, fixups)))
    fi = f[7]
    if fi:
        fi = array(_U32, fi)
        fi[0::2] = array(_U32, map(add, fi[0::2], repeat(base)))
    li = f[8]
    if li:
        li = array(_U32, li)
        li[0::4] = array(_U32, map(add, li[0::4], repeat(base)))
    shift = 8 * base
    core = [type(r)(r.insn_off + shift, r.type_id, r.access_str, r.kind) for r in f[9]]
    return fixups, fi, li, core


def section_label(sec: Section) -> str:
    return f"section '{sec.name}'"


def section_code(sec: Section) -> bytearray:
    """The bytes of code section ``sec``, checked to be whole instructions."""
    data = sec.data
    size = len(data)
    if size % 8:
        last = size - size % 8
        raise ObjectError(f"instruction data is {size} bytes, not a multiple of 8: the instruction at byte "
                          f"offset {last} is truncated").add_context(section_label(sec))
    return bytearray(data)


def section_functions(elf: ElfFile, sec: Section, code: bytearray, calls: dict[int, tuple[int, int]],
                      fixups: dict[int, tuple[int, str]], ext: "RawExtInfo | None", *,
                      fallback_name: str) -> list[Function]:
    """The functions of ``sec`` from its FUNC symbols (the whole section if it has none), each given
    its share of the section's pending ``calls`` (slot -> (target section index, target slot)),
    ``fixups`` (slot -> (kind, name)) and .BTF.ext records, with slots made function-relative."""
    n = len(code) >> 3
    code = bytes(code)
    syms = elf.symbols_in(sec[0])
    # Symbols as tuples: (index, name, value, size, type, bind, visibility, shndx); named FUNCs only.
    is_func = map(and_, map(eq, map(_STYPE, syms), repeat(STT_FUNC)), map(bool, map(_SNAME, syms)))
    syms = sorted(compress(syms, is_func), key=_BY_VALUE_NAME)
    if syms:
        _index, names, values, sizes = list(zip(*syms))[:4]
        starts = list(map(rshift, values, repeat(3)))
        counts = list(map(rshift, sizes, repeat(3)))
        ends = list(map(add, starts, counts))
        if any(map(and_, map(or_, values, sizes), repeat(7))) or max(ends) > n or any(map(lt, starts[1:], ends)):
            _check_functions(sec, syms, n)
        if 0 in counts:   # empty functions have no instructions to place
            names, starts, ends = compress(names, counts), compress(starts, counts), compress(ends, counts)
            names, starts, ends, counts = list(names), list(starts), list(ends), list(filter(None, counts))
    elif n:
        names, starts, counts, ends = [fallback_name], [0], [n], [n]
    else:
        return []
    cut = _Cutter(starts, ends)
    records: list = [repeat(_EMPTY), repeat(_EMPTY)]
    has_func_info = repeat(False)
    core = repeat(())
    if ext is not None:
        name = sec[1]
        recs = ext.func.get(name)
        if recs is not None:
            records[0], first = cut.records(recs)
            # a record at the function's first instruction
            has_func_info = map(eq, map((recs.slots + [-1]).__getitem__, first), starts)
        recs = ext.line.get(name)
        if recs is not None:
            records[1], _first = cut.records(recs)
        relos = ext.core.get(name)
        if relos:
            core = cut.core_relos(relos)
    codes = map(code.__getitem__, map(slice, map(mul, starts, repeat(8)), map(mul, ends, repeat(8))))
    return list(map(tuple.__new__, repeat(Function),
                    zip(names, repeat(sec), starts, counts, codes, cut.shares(calls), cut.shares(fixups),
                        *records, core, has_func_info)))


class _Cutter:
    """Cuts what a section has per slot into its functions' shares, slots made function-relative:
    all mapped, no Python step per function or per item."""

    def __init__(self, starts: list[int], ends: list[int]) -> None:
        self.starts, self.ends = starts, ends
        self._padded = [0, *starts]   # the function start at or before a slot (0 before the first)

    def _local(self, slots: list[int]):
        """Each of ``slots`` counted from the first slot of its function (or of the one before it)."""
        return map(sub, slots, map(self._padded.__getitem__, map(bisect.bisect_right, repeat(self.starts), slots)))

    def _bounds(self, slots: list[int], width: int = 1) -> tuple[list[int], object]:
        """For each function, where its items start and end in ``slots`` (sorted), times ``width``."""
        first = list(map(bisect.bisect_left, repeat(slots), self.starts))
        last = map(bisect.bisect_left, repeat(slots), self.ends)
        if width == 1:
            return first, map(slice, first, last)
        return first, map(slice, map(mul, first, repeat(width)), map(mul, last, repeat(width)))

    def shares(self, table: dict[int, tuple]):
        """For each function, a tuple of ``(local slot, *value)`` for the items of ``table``
        (slot -> value tuple) inside it."""
        if not table:
            return repeat(())
        slots = sorted(table)
        rows = tuple(zip(self._local(slots), *zip(*map(table.__getitem__, slots))))
        return map(rows.__getitem__, self._bounds(slots)[1])

    def records(self, recs: "RecordIndex") -> tuple[object, list[int]]:
        """For each function, its records of ``recs`` as an array, ``insn_off`` an instruction index
        from its first instruction; and where each function's records start in ``recs``."""
        width = recs.width
        words = array(recs.words.typecode, recs.words)
        words[0::width] = array(words.typecode, self._local(recs.slots))
        first, cuts = self._bounds(recs.slots, width)
        return map(words.__getitem__, cuts), first

    def core_relos(self, relos: list["CoreRelo"]):
        """For each function, its CO-RE relocations, ``insn_off`` in bytes from its first instruction."""
        slots = [r.insn_off >> 3 for r in relos]
        moved = [type(r)(r.insn_off - 8 * (slot - local), r.type_id, r.access_str, r.kind)
                 for r, slot, local in zip(relos, slots, self._local(slots))]
        return map(moved.__getitem__, self._bounds(slots)[1])


def _check_functions(sec: Section, syms: list, n: int) -> None:
    """Raise for the first function (by offset) that is misaligned, runs past the section's end
    or overlaps the one before it."""
    end = 0
    for _index, name, value, size, _type, _bind, _vis, _shndx in syms:
        if value % 8 or size % 8:
            raise ObjectError(f"{section_label(sec)}: function '{name}' at offset {value} (size {size}) "
                              "is not aligned to 8-byte instructions")
        start, count = value >> 3, size >> 3
        if start + count > n:
            raise ObjectError(f"{section_label(sec)}: function '{name}' at offset {value} (size {size}) "
                              f"runs past the end of the section ({sec.size} bytes)")
        if start < end:
            raise ObjectError(f"{section_label(sec)}: function '{name}' at offset {value} overlaps the "
                              "function before it")
        if count:
            end = start + count


class RelocationContext:
    """What relocating a code section needs to know about the rest of the object."""

    def __init__(self, elf: ElfFile, maps: dict[str, MapSpec], map_sections: set[int],
                 data_sections: dict[int, str], externs: dict[str, ExternSpec],
                 extern_error: Callable[[str], str | None]) -> None:
        self.elf = elf
        self.maps = maps
        self.map_sections = map_sections      # .maps and legacy maps section indexes
        self.data_sections = data_sections    # section index -> global data map name
        self.externs = externs
        self.extern_error = extern_error      # why an undefined symbol is not an extern
        self._map_at = {(m.section, m.offset): m for m in reversed(list(maps.values()))}
        sections = elf.sections
        # Section.is_code of every section, mapped: PROGBITS (a bool) times the EXECINSTR flag bit
        is_code = map(mul, map(eq, map(_TYPE, sections), repeat(SHT_PROGBITS)),
                      map(and_, map(_FLAGS, sections), repeat(SHF_EXECINSTR)))
        self.code_sections = frozenset(compress(range(len(sections)), is_code))
        self.targets: dict[int, tuple] = {}   # symbol index -> what it refers to (_target)


# What a relocated symbol refers to (the first item of a _target tuple).
_EXTERN, _NO_SECTION, _CODE, _MAP, _DATA, _OTHER = range(6)


def _target(ctx: RelocationContext, sym: tuple) -> tuple:
    """What symbol ``sym`` refers to, for every relocation against it: ``(_EXTERN, its ExternSpec
    or None)``, ``(_NO_SECTION,)``, ``(_CODE, section index, value, slot after it or None)``, ``(_MAP, MapSpec or None,
    value, section name)``, ``(_DATA, fixup, value, largest offset, section size, section name)`` or
    ``(_OTHER, section name)``.  Nothing is raised here: each relocation raises in its own order."""
    shndx, value = sym[7], sym[2]
    if shndx == 0:
        return (_EXTERN, ctx.externs.get(sym[1]))
    sections = ctx.elf.sections
    if shndx >= len(sections):
        return (_NO_SECTION,)
    if shndx in ctx.code_sections:   # and the slot a call to it reaches before adding imm
        return (_CODE, shndx, value, None if value % 8 else (value >> 3) + 1)
    target = sections[shndx]
    if shndx in ctx.map_sections:
        return (_MAP, ctx._map_at.get((target[1], value)), value, target[1])
    data_map = ctx.data_sections.get(shndx)
    if data_map is not None:   # and the fixup, and the largest offset allowed
        return (_DATA, (FIX_MAP, data_map), value, min(target[5], 0x7FFFFFFF), target[5], target[1])
    return (_OTHER, target[1])


def apply_relocations(ctx: RelocationContext, sec: Section, code: bytearray,
                      calls: dict[int, tuple[int, int]], fixups: dict[int, tuple[int, str]]) -> None:
    """Apply the relocations of code section ``sec`` to its bytes ``code``.

    Pending calls go to ``calls`` (slot -> (target section index, target
    slot)), what the loader fills in to ``fixups`` (slot -> (kind, name)).
    The checks of each relocation run in a fixed order, so a damaged object
    always reports the same first problem.
    """
    n = len(code) >> 3
    symbols = ctx.elf.symbols
    targets = ctx.targets
    unpack_imm = _IMM.unpack_from
    pack_imm = _IMM.pack_into
    rels = ctx.elf.raw_relocations(sec[0])
    roffs, infos = zip(*rels) if rels else ((), ())   # columns
    rtypes = list(map(and_, infos, repeat(0xFFFFFFFF)))
    if R_BPF_NONE in rtypes:   # nothing to do for these
        keep = rtypes
        roffs, infos, rtypes = list(compress(roffs, keep)), list(compress(infos, keep)), list(compress(keep, keep))
    slots = list(map(rshift, roffs, repeat(3)))
    symis = list(map(rshift, infos, repeat(32)))
    # The first relocation not at an instruction or against no symbol: those before it come first.
    wrong = map(or_, map(or_, map(and_, roffs, repeat(7)), map(ge, slots, repeat(n))), map(not_, symis))
    first_wrong = next(compress(count(), wrong), None)
    good = roffs[:first_wrong]
    for symi in set(symis[:first_wrong]).difference(targets):   # what each symbol refers to, once
        targets[symi] = _target(ctx, symbols[symi])
    refs = list(map(targets.__getitem__, symis[:first_wrong]))
    # Read only up to the first wrong one: the instruction's opcode and relocation type as one number
    # (_CALL_REL and _LD_IMM64_REL are those that go together), its regs byte and imm.
    whats = map(or_, map(lshift, map(code.__getitem__, good), repeat(32)), rtypes)
    regs_bytes = map(code.__getitem__, map(add, good, repeat(1)))
    imms = map(_FIRST, map(_IMM.unpack_from, repeat(code), map(add, good, repeat(4))))
    for roff, i, symi, what, target, kind, regs, imm in zip(good, slots, symis, whats, refs, map(_FIRST, refs),
                                                            regs_bytes, imms):
        if what == _LD_IMM64_REL:
            if i + 1 >= n:
                raise ObjectError(f"{_where(sec, roff, symbols[symi])}: 64-bit immediate load at instruction {i} "
                                  "has no second slot")
            if kind == _DATA:
                off = imm + target[2]
                if not 0 <= off <= target[3]:
                    raise ObjectError(f"{_where(sec, roff, symbols[symi])}: offset {off} is outside "
                                      f"'{target[5]}' ({target[4]} bytes)")
                code[roff + 1] = _SRC_MAP_VALUE | (regs & 0xF)
                pack_imm(code, roff + 12, off)
                pack_imm(code, roff + 4, 0)
                fixups[i] = target[1]
            elif kind == _MAP:
                m = target[1]
                if m is None:
                    raise ObjectError(f"{_where(sec, roff, symbols[symi])}: no map is defined at offset "
                                      f"{target[2]} of '{target[3]}'")
                code[roff + 1] = _SRC_MAP_FD | (regs & 0xF)
                pack_imm(code, roff + 4, 0)
                fixups[i] = (FIX_MAP, m.name)
            elif kind == _EXTERN:
                sym = symbols[symi]
                ext = _extern(ctx, target[1], sym, _where(sec, roff, sym))
                if ext.kind == "kconfig":
                    code[roff + 1] = _SRC_MAP_VALUE | (regs & 0xF)
                    pack_imm(code, roff + 12, _wrap32(ext.offset + imm))
                    pack_imm(code, roff + 4, 0)
                    fixups[i] = (FIX_MAP, ".kconfig")
                else:
                    code[roff + 1] = ((PSEUDO_BTF_ID if (ext.kind == "kfunc" or ext.typed) else 0) << 4) | (regs & 0xF)
                    pack_imm(code, roff + 4, 0)
                    pack_imm(code, roff + 12, 0)
                    fixups[i] = (FIX_EXTERN, sym.name)
            elif kind == _NO_SECTION:
                sym = symbols[symi]
                raise ObjectError(f"{_where(sec, roff, sym)}: symbol is not in a section (index {sym[7]:#x})")
            elif kind == _CODE:
                off = target[2] + imm
                if off % 8:
                    raise ObjectError(f"{_where(sec, roff, symbols[symi])}: function address {off} is not "
                                      "instruction-aligned")
                code[roff + 1] = _SRC_FUNC | (regs & 0xF)
                calls[i] = (target[1], off // 8)
            else:
                raise ObjectError(f"{_where(sec, roff, symbols[symi])}: refers to section '{target[1]}', which "
                                  "is neither code, a map nor global data")
        elif what == _CALL_REL:
            if kind == _EXTERN:
                sym = symbols[symi]
                ext = _extern(ctx, target[1], sym, _where(sec, roff, sym))
                if ext.kind != "kfunc":
                    raise ObjectError(f"{_where(sec, roff, sym)}: call to extern '{sym.name}', which is not a "
                                      "__ksym function")
                code[roff + 1] = (PSEUDO_KFUNC_CALL << 4) | (regs & 0xF)
                _OFF_IMM.pack_into(code, roff + 2, 0, 0)
                fixups[i] = (FIX_KFUNC, sym.name)
                continue
            src = regs >> 4
            if src != PSEUDO_CALL:
                raise ObjectError(f"{_where(sec, roff, symbols[symi])}: relocation on a helper call (src {src})")
            if kind != _CODE:
                raise ObjectError(f"{_where(sec, roff, symbols[symi])}: call target is not in a code section")
            after = target[3]
            if after is None:
                raise ObjectError(f"{_where(sec, roff, symbols[symi])}: call target offset {target[2]} is not "
                                  "instruction-aligned")
            calls[i] = (target[1], after + imm)
        else:   # the type does not go with the instruction
            opcode, rtype = what >> 32, what & 0xFFFFFFFF
            if opcode == _CALL:
                raise ObjectError(f"{_where(sec, roff, symbols[symi])}: relocation type {rtype} on a call "
                                  "instruction")
            if opcode != _LD_IMM64:
                raise ObjectError(f"{_where(sec, roff, symbols[symi])}: relocation on instruction {i} (opcode "
                                  f"{opcode:#04x}), which is neither a 64-bit immediate load nor a call")
            raise ObjectError(f"{_where(sec, roff, symbols[symi])}: relocation type {rtype} on a 64-bit "
                              "immediate load")
    if first_wrong is not None:
        roff = roffs[first_wrong]
        if roff & 7 or slots[first_wrong] >= n:
            raise ObjectError(f"{section_label(sec)}: relocation at offset {roff}: not at an instruction "
                              f"(section has {n} instructions)")
        raise ObjectError(f"{section_label(sec)}: relocation at offset {roff}: refers to no symbol "
                          "(symbol index 0)")
    # Calls inside one section need no relocation: imm is already relative.  The instructions whose
    # opcode is a call and src a bpf-to-bpf call (callback address), less the relocated ones: found with
    # translated bytes ANDed as integers, a bit per slot.
    opcodes, srcs = bytes(code[0::8]), bytes(code[1::8])
    unrelocated = ~int.from_bytes(bytes(map(set(slots).__contains__, range(n))), "little")
    for i in _slots_where(opcodes, _IS_CALL, srcs, _SRC_IS_CALL, unrelocated):
        calls[i] = (sec[0], i + unpack_imm(code, 8 * i + 4)[0] + 1)
    for i in _slots_where(opcodes, _IS_LD_IMM64, srcs, _SRC_IS_FUNC, unrelocated):
        raise ObjectError(f"{section_label(sec)}: callback address at offset {8 * i} has no relocation")


def _byte_table(match: Callable[[int], bool]) -> bytes:
    return bytes(1 if match(b) else 0 for b in range(256))


_IS_CALL = _byte_table(lambda b: b == _CALL)
_IS_LD_IMM64 = _byte_table(lambda b: b == _LD_IMM64)
_SRC_IS_CALL = _byte_table(lambda b: b >> 4 == PSEUDO_CALL)
_SRC_IS_FUNC = _byte_table(lambda b: b >> 4 == PSEUDO_FUNC)


def _slots_where(opcodes: bytes, opcode_table: bytes, srcs: bytes, src_table: bytes, among: int) -> list[int]:
    """The instruction slots whose opcode byte and regs byte both match (tables of 0/1 per byte value),
    among those whose byte in ``among`` (an integer, a byte per slot, little-endian) is odd."""
    both = int.from_bytes(opcodes.translate(opcode_table), "little") & \
        int.from_bytes(srcs.translate(src_table), "little") & among
    if not both:
        return []
    flags = both.to_bytes(len(opcodes), "little")
    out = []
    i = flags.find(1)
    while i >= 0:
        out.append(i)
        i = flags.find(1, i + 1)
    return out


def _wrap32(v: int) -> int:
    """``v`` as the signed 32-bit value an ``imm`` field holds."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _where(sec: Section, offset: int, sym) -> str:  # noqa: ANN001
    return f"{section_label(sec)}: relocation at offset {offset} (symbol '{sym.name or f'#{sym.index}'}')"


def _extern(ctx: RelocationContext, ext: ExternSpec | None, sym: tuple, where: str) -> ExternSpec:
    """``ext``, the extern undefined symbol ``sym`` names, or why there is none."""
    if ext is None:
        name = sym[1]
        why = ctx.extern_error(name) or ("it is not declared __kconfig or __ksym"
                                         if sym[5] in (STB_GLOBAL, STB_WEAK) else "it is a local symbol")
        raise ObjectError(f"{where}: symbol '{name}' is undefined: {why}")
    return ext


# ---------------------------------------------------------------------- linking


#: What :func:`link` returns: ``(code, fixups, labels, func_info, line_info, core_relos,
#: complete_func_info)`` — ``code`` bytes, ``fixups`` ``(slot, kind, name)``, ``labels``
#: ``(slot, function name)`` (where each function starts: what a call reaches follows), the .BTF.ext records
#: (func_info and line_info in the kernel's layout, ``insn_off`` in instructions; CO-RE
#: relocations with ``insn_off`` in bytes) and whether every function has its func_info.
Linked = tuple


class FunctionIndex:
    """The functions of every code section of an object, found by (section index, slot), and the
    subprograms each (callees, entry size) brings (:func:`_tail`): programs calling the same
    subprograms from entries of the same size share them, placed and moved once."""

    __slots__ = ("at", "tails", "_by_section")

    def __init__(self) -> None:
        self.at: dict[tuple[int, int], Function] = {}     # (section index, first slot) -> function
        self.tails: dict[tuple[tuple[Function, ...], int], tuple] = {}
        self._by_section: dict[int, tuple[list[int], list[Function]]] = {}

    def add(self, sec_index: int, funcs: list[Function]) -> None:
        starts = list(map(_START, funcs))
        self._by_section[sec_index] = (starts, funcs)
        self.at.update(zip(zip(repeat(sec_index), starts), funcs))

    def find(self, f: Function, local: int, tsec: int, tslot: int) -> Function:
        """The function that the call at slot ``local`` of ``f`` reaches: the one of section
        ``tsec`` that holds ``tslot``."""
        target = self.at.get((tsec, tslot))
        if target is not None:
            return target
        starts, funcs = self._by_section.get(tsec, ((), ()))
        i = bisect.bisect_right(starts, tslot) - 1
        if i >= 0 and tslot < funcs[i][2] + funcs[i][3]:
            return funcs[i]
        raise ObjectError(f"section '{f.section.name}': function '{f.name}' instruction {local} "
                          f"calls slot {tslot} of section {tsec}, which is not inside a function")


def link(entry: Function, functions: FunctionIndex) -> Linked:
    """The instructions of ``entry`` followed by every subprogram it reaches (found in ``functions``),
    breadth first, each placed once, with call and callback offsets rewritten."""
    name, _sec, _start, size, code, calls, fixups, fi, li, core, complete = entry
    if not calls:
        return code, fixups, ((0, name),), fi, li, list(core), complete
    callees = tuple(map(functions.at.get, zip(map(_SECOND, calls), map(_THIRD, calls))))
    if None in callees:   # a call to the middle of a function, or to none
        find = functions.find
        callees = tuple([find(entry, local, tsec, tslot) for local, tsec, tslot in calls])
    key = (callees, size)
    tail = functions.tails.get(key)
    if tail is None or entry in tail[7]:   # (another entry's tail that places this one as a subprogram)
        tail = _tail(entry, callees, functions)
        if tail[8]:
            functions.tails[key] = tail
    tail_code, tail_fixups, tail_labels, tail_fi, tail_li, tail_core, tail_complete, placed, _shared = tail
    code = bytearray(code)
    pack = _IMM.pack_into
    for (local, _tsec, tslot), target in zip(calls, callees):   # (the entry itself is at 0)
        pack(code, 8 * local + 4, placed.get(target, 0) + tslot - target[2] - local - 1)
    return (bytes(code) + tail_code, fixups + tail_fixups, ((0, name),) + tail_labels, fi + tail_fi, li + tail_li,
            [*core, *tail_core], complete and tail_complete)


def _tail(entry: Function, callees: tuple[Function, ...], functions: FunctionIndex) -> tuple:
    """The subprograms after ``entry`` (which calls ``callees``): their code with their own calls
    rewritten, fixups, labels, func_info, line_info, CO-RE relocations, whether each has its
    func_info, where each subprogram is placed, and whether none calls the entry (then the tail is
    the same for every other entry of this size with these callees)."""
    placed = {entry: 0}
    order: list[Function] = []
    total = entry[3]
    for target in callees:
        if target not in placed:
            placed[target] = total
            total += target[3]
            order.append(target)
    shared = True
    find = functions.find
    for f in order:  # grows while it is walked: breadth first
        for local, tsec, tslot in f[5]:
            target = find(f, local, tsec, tslot)
            if target not in placed:
                placed[target] = total
                total += target[3]
                order.append(target)
            shared = shared and target is not entry
    size = entry[3]
    code = bytearray(b"".join(map(_FUNC_CODE, order)))
    pack = _IMM.pack_into
    fixups: list = []
    labels = []
    fi = li = _EMPTY
    core: list = []
    complete = True
    for f in order:
        base = placed[f]
        for local, tsec, tslot in f[5]:
            target = find(f, local, tsec, tslot)
            at = base + local
            pack(code, 8 * (at - size) + 4, placed[target] + tslot - target[2] - at - 1)
        labels.append((base, f[0]))
        complete = complete and f[10]
        moved = _placed(f, base)
        fixups += moved[0]
        fi = fi + moved[1]
        li = li + moved[2]
        core += moved[3]
    del placed[entry]
    return bytes(code), tuple(fixups), tuple(labels), fi, li, core, complete, placed, shared
