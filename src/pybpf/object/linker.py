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
from itertools import repeat
from operator import add, itemgetter

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
_U32 = "I" if array("I").itemsize == 4 else "L"
_EMPTY: array = array(_U32)
_BY_VALUE_NAME = itemgetter(2, 1)   # a symbol's (value, name)
_START = itemgetter(2)              # a Function's first slot
_FUNC_CODE = itemgetter(4)          # its bytes
_FIRST, _SECOND, _THIRD = itemgetter(0), itemgetter(1), itemgetter(2)


class Function(tuple):
    """A function of a code section: ``count`` instructions starting at slot ``start``.

    ``code`` holds its relocated bytes; ``calls`` its pending calls and
    callback addresses ``(local slot, target section index, target slot)``;
    ``fixups`` ``(local slot, kind, name)``; ``func_info``/``line_info`` its
    .BTF.ext records in the kernel's layout (u32 arrays, ``insn_off`` in
    instructions from the function's first one), ``core_relos`` (``insn_off``
    in bytes, as :mod:`pybpf.btf.core` wants them); ``has_func_info``: a
    func_info record at its first instruction.

    A tuple underneath (made with one ``tuple.__new__``, read by index in
    the linker), equal only to itself: the linker keys its tables by function.
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
    ``fixups`` (slot -> (kind, name)) and .BTF.ext records, with slots made function-relative.

    Plain loops: over a section's few functions and items they cost less time than chains of
    mapped builtins (each mapped C call costs about what a few bytecodes do)."""
    n = len(code) >> 3
    code = bytes(code)
    # Symbols as tuples: (index, name, value, size, type, bind, visibility, shndx); named FUNCs only.
    syms = sorted([s for s in elf.symbols_in(sec[0]) if s[4] == STT_FUNC and s[1]], key=_BY_VALUE_NAME)
    spans: list[tuple[str, int, int]] = []   # (name, first slot, end slot)
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
            spans.append((name, start, end))
    if not syms and n:
        spans.append((fallback_name, 0, n))
    shares = [_shares(spans, calls), _shares(spans, fixups)]
    fis = lis = cores = None
    if ext is not None:
        name = sec[1]
        fis, lis, cores = _records(spans, ext.func.get(name)), _records(spans, ext.line.get(name)), ext.core.get(name)
    new = tuple.__new__
    out = []
    for k, (name, start, end) in enumerate(spans):
        lo = 8 * start
        fi = li = _EMPTY
        has_func_info = False
        if fis is not None:
            fi, has_func_info = fis[k]
        if lis is not None:
            li = lis[k][0]
        core = ()
        if cores:
            hi = 8 * end
            core = [type(r)(r.insn_off - lo, r.type_id, r.access_str, r.kind) for r in cores if lo <= r.insn_off < hi]
        out.append(new(Function, (name, sec, start, end - start, code[lo:8 * end], shares[0][k], shares[1][k],
                                  fi, li, core, has_func_info)))
    return out


def _shares(spans: list[tuple[str, int, int]], table: dict[int, tuple]) -> list[tuple]:
    """For each function of ``spans``, a tuple of ``(local slot, *value)`` for the items of ``table``
    (slot -> value tuple) inside it, in slot order."""
    out: list[list] = [[] for _ in spans]
    if table:
        k = 0
        last = len(spans)
        for slot in sorted(table):
            while k < last and slot >= spans[k][2]:
                k += 1
            if k == last:
                break
            start = spans[k][1]
            if slot >= start:
                out[k].append((slot - start, *table[slot]))
    return list(map(tuple, out))


def _records(spans: list[tuple[str, int, int]], recs: "RecordIndex | None") -> list[tuple[array, bool]] | None:
    """For each function of ``spans``, its records of ``recs`` as an array, ``insn_off`` an instruction
    index from its first instruction, and whether one is at that first instruction."""
    if recs is None:
        return None
    offs, words, width = recs.offs, recs.words, recs.width
    left = bisect.bisect_left
    out = []
    for _name, start, end in spans:
        lo = 8 * start
        a = left(offs, lo)
        b = left(offs, 8 * end)
        part = words[width * a:width * b]
        if b - a == 1:  # one record: most functions have one func_info
            part[0] = (part[0] - lo) >> 3
        elif b > a:
            part[0::width] = array(part.typecode, [(x - lo) >> 3 for x in part[0::width]])
        out.append((part, b > a and offs[a] == lo))
    return out


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
        self.code_sections = frozenset([sec[0] for sec in elf.sections   # (Section.is_code, inlined)
                                        if sec[2] == SHT_PROGBITS and sec[3] & SHF_EXECINSTR])
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
    relocated: set[int] = set()
    for roff, info in ctx.elf.raw_relocations(sec[0]):
        rtype = info & 0xFFFFFFFF
        if rtype == R_BPF_NONE:
            continue
        i = roff >> 3
        if roff & 7 or i >= n:
            raise ObjectError(f"{section_label(sec)}: relocation at offset {roff}: not at an instruction "
                              f"(section has {n} instructions)")
        symi = info >> 32
        if symi == 0:
            raise ObjectError(f"{section_label(sec)}: relocation at offset {roff}: refers to no symbol "
                              "(symbol index 0)")
        relocated.add(i)
        target = targets.get(symi)
        if target is None:   # what each symbol refers to, worked out once
            target = targets[symi] = _target(ctx, symbols[symi])
        kind = target[0]
        # the instruction's opcode and the relocation's type as one number: _CALL_REL and _LD_IMM64_REL
        # are those that go together
        what = code[roff] << 32 | rtype
        regs = code[roff + 1]
        if what == _LD_IMM64_REL:
            if i + 1 >= n:
                raise ObjectError(f"{_where(sec, roff, symbols[symi])}: 64-bit immediate load at instruction {i} "
                                  "has no second slot")
            if kind == _DATA:
                off = unpack_imm(code, roff + 4)[0] + target[2]
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
                    pack_imm(code, roff + 12, _wrap32(ext.offset + unpack_imm(code, roff + 4)[0]))
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
                off = target[2] + unpack_imm(code, roff + 4)[0]
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
            calls[i] = (target[1], after + unpack_imm(code, roff + 4)[0])
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
    # Calls inside one section need no relocation: imm is already relative.  The instructions whose
    # opcode is a call and src a bpf-to-bpf call (a callback address) are found with translated bytes
    # ANDed as integers, a bit per slot.
    opcodes, srcs = bytes(code[0::8]), bytes(code[1::8])
    for i in _slots_where(opcodes, _IS_CALL, srcs, _SRC_IS_CALL):
        if i not in relocated:
            calls[i] = (sec[0], i + unpack_imm(code, 8 * i + 4)[0] + 1)
    for i in _slots_where(opcodes, _IS_LD_IMM64, srcs, _SRC_IS_FUNC):
        if i not in relocated:
            raise ObjectError(f"{section_label(sec)}: callback address at offset {8 * i} has no relocation")


def _byte_table(match: Callable[[int], bool]) -> bytes:
    return bytes(1 if match(b) else 0 for b in range(256))


_IS_CALL = _byte_table(lambda b: b == _CALL)
_IS_LD_IMM64 = _byte_table(lambda b: b == _LD_IMM64)
_SRC_IS_CALL = _byte_table(lambda b: b >> 4 == PSEUDO_CALL)
_SRC_IS_FUNC = _byte_table(lambda b: b >> 4 == PSEUDO_FUNC)


def _slots_where(opcodes: bytes, opcode_table: bytes, srcs: bytes, src_table: bytes) -> list[int]:
    """The instruction slots whose opcode byte and regs byte both match (tables of 0/1 per byte value)."""
    both = int.from_bytes(opcodes.translate(opcode_table), "little") & \
        int.from_bytes(srcs.translate(src_table), "little")
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
    at_start = functions.at
    callees = tuple([at_start.get((tsec, tslot)) for _local, tsec, tslot in calls])
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
