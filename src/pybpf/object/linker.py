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
from operator import itemgetter

from pybpf.asm.opcodes import (
    PSEUDO_BTF_ID, PSEUDO_CALL, PSEUDO_FUNC, PSEUDO_KFUNC_CALL, PSEUDO_MAP_FD, PSEUDO_MAP_VALUE,
)
from pybpf.errors import ObjectError
from pybpf.object.elffile import (
    R_BPF_64_32, R_BPF_64_64, R_BPF_NONE, STB_GLOBAL, STB_WEAK, STT_FUNC, ElfFile,
    Section,
)
from pybpf.object.parts import ExternSpec, MapSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Iterator
    from pybpf.btf.reader import CoreRelo
    from pybpf.object.btf_ext import RawExtInfo, RecordIndex

__all__ = ["Function", "split_functions", "apply_relocations", "link", "FIX_MAP", "FIX_EXTERN",
           "FIX_KFUNC"]

FIX_MAP = 1      # ld_imm64: imm = fd of the map named (src already PSEUDO_MAP_FD / PSEUDO_MAP_VALUE)
FIX_EXTERN = 2   # ld_imm64 of a ksym or kfunc: BTF id (+ module BTF fd) or address, src set at load
FIX_KFUNC = 3    # call of a kfunc: BTF id in imm, fd_array slot in off

_CALL = 0x85
_LD_IMM64 = 0x18
_IMM = struct.Struct("<i")
_OFF_IMM = struct.Struct("<hi")
_U32 = "I" if array("I").itemsize == 4 else "L"
_EMPTY: array = array(_U32)
_BY_VALUE_NAME = itemgetter(2, 1)   # a symbol's (value, name)


class Function:
    """A function of a code section: ``count`` instructions starting at slot ``start``.

    ``code`` holds its relocated bytes; ``calls`` its pending calls and
    callback addresses ``(local slot, target section index, target slot)``;
    ``fixups`` ``(local slot, kind, name)``; ``func_info``/``line_info`` its
    .BTF.ext records in the kernel's layout (u32 arrays, ``insn_off`` in
    instructions from the function's first one), ``core_relos`` (``insn_off``
    in bytes, as :mod:`pybpf.btf.core` wants them).
    """

    __slots__ = ("name", "section", "start", "count", "code", "calls", "fixups", "entry", "func_info",
                 "line_info", "core_relos", "has_func_info", "_placed")

    def __init__(self, name: str, section: Section, start: int, count: int, code: bytes, entry: bool) -> None:
        self.name = name
        self.section = section
        self.start = start
        self.count = count
        self.code = code
        self.calls: list[tuple[int, int, int]] = []
        self.fixups: list[tuple[int, int, str]] = []
        self.entry = entry
        self.func_info: array = _EMPTY
        self.line_info: array = _EMPTY
        self.core_relos: list["CoreRelo"] = []
        self.has_func_info = False
        self._placed: dict[int, tuple] = {}   # base -> its fixups and records moved there (link)

    def __repr__(self) -> str:
        return f"<Function {self.name!r} in {self.section.name!r} [{self.start}, +{self.count})>"


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


def split_functions(elf: ElfFile, sec: Section, code: bytearray, *, entry: bool,
                    fallback_name: str) -> list[Function]:
    """The functions of ``sec`` from its FUNC symbols (the whole section if it has none)."""
    # Symbols as tuples: (index, name, value, size, type, bind, visibility, shndx).
    syms = sorted((s for s in elf.symbols_in(sec.index) if s[4] == STT_FUNC and s[1]), key=_BY_VALUE_NAME)
    n = len(code) >> 3
    code = bytes(code)
    if not syms:
        return [Function(fallback_name, sec, 0, n, code, entry)] if n else []
    out: list[Function] = []
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
        if count == 0:
            continue
        end = start + count
        out.append(Function(name, sec, start, count, code[8 * start:8 * end], entry))
    return out


def assign(funcs: list[Function], calls: dict[int, tuple[int, int]], fixups: dict[int, tuple[int, str]],
           ext: "RawExtInfo | None") -> None:
    """Give each function of one section its calls, fixups and .BTF.ext records (function-relative)."""
    if not funcs:
        return
    starts = [f.start for f in funcs]
    for slot in sorted(calls):
        i = bisect.bisect_right(starts, slot) - 1
        if i >= 0:
            f = funcs[i]
            if slot < f.start + f.count:
                tsec, tslot = calls[slot]
                f.calls.append((slot - f.start, tsec, tslot))
    for slot in sorted(fixups):
        i = bisect.bisect_right(starts, slot) - 1
        if i >= 0:
            f = funcs[i]
            if slot < f.start + f.count:
                kind, ref = fixups[slot]
                f.fixups.append((slot - f.start, kind, ref))
    if ext is None:
        return
    name = funcs[0].section[1]
    fidx, lidx, core = ext.func.get(name), ext.line.get(name), ext.core.get(name)
    if fidx is not None:   # func_info: (insn_off, type_id), most often one at the start of each function
        for f, recs, at_start in _records_of(funcs, fidx):
            f.func_info, f.has_func_info = recs, at_start
    if lidx is not None:   # line_info: (insn_off, file_name_off, line_off, line_col)
        for f, recs, _at_start in _records_of(funcs, lidx):
            f.line_info = recs
    if core:
        core_offs = [r.insn_off for r in core]
        for f in funcs:
            lo, hi = 8 * f.start, 8 * (f.start + f.count)
            a, b = bisect.bisect_left(core_offs, lo), bisect.bisect_left(core_offs, hi)
            f.core_relos = [type(r)(r.insn_off - lo, r.type_id, r.access_str, r.kind) for r in core[a:b]]


def _records_of(funcs: list[Function], index: "RecordIndex") -> Iterator[tuple[Function, array, bool]]:
    """For each of ``funcs`` that has records in ``index`` (its section's): the function, its records
    as a new array with ``insn_off`` made an instruction index from the function's first, and
    whether one of them is at that first instruction."""
    offs, words, width, left = index.offs, index.words, index.width, bisect.bisect_left
    for f in funcs:
        lo = 8 * f.start
        a = left(offs, lo)
        b = left(offs, lo + 8 * f.count, a)
        if b > a:
            recs = words[width * a:width * b]
            if b - a == 1:   # one record: most functions have one func_info
                recs[0] = (recs[0] - lo) >> 3
            else:
                recs[0::width] = array(recs.typecode, [(x - lo) >> 3 for x in recs[0::width]])
            yield f, recs, offs[a] == lo


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
        self.code_sections = elf.code_sections


def apply_relocations(ctx: RelocationContext, sec: Section, code: bytearray,
                      calls: dict[int, tuple[int, int]], fixups: dict[int, tuple[int, str]]) -> None:
    """Apply the relocations of code section ``sec`` to its bytes ``code``.

    Pending calls go to ``calls`` (slot -> (target section index, target
    slot)), what the loader fills in to ``fixups`` (slot -> (kind, name)).
    """
    elf = ctx.elf
    n = len(code) >> 3
    symbols = elf.symbols
    unpack_imm = _IMM.unpack_from
    pack_imm = _IMM.pack_into
    relocated: set[int] = set()
    sections = elf.sections
    nsec = len(sections)
    map_sections, data_sections, map_at = ctx.map_sections, ctx.data_sections, ctx._map_at
    code_sections = ctx.code_sections
    for roff, info in elf.raw_relocations(sec.index):
        rtype = info & 0xFFFFFFFF
        if rtype == R_BPF_NONE:
            continue
        if roff & 7 or roff >> 3 >= n:
            raise ObjectError(f"{section_label(sec)}: relocation at offset {roff}: not at an instruction "
                              f"(section has {n} instructions)")
        i = roff >> 3
        symi = info >> 32
        sym = symbols[symi]
        if symi == 0:
            raise ObjectError(f"{section_label(sec)}: relocation at offset {roff}: refers to no symbol "
                              "(symbol index 0)")
        opcode = code[roff]
        relocated.add(i)
        shndx = sym[7]
        if opcode == _CALL:
            if rtype != R_BPF_64_32:
                raise ObjectError(f"{_where(sec, roff, sym)}: relocation type {rtype} on a call instruction")
            if shndx == 0:
                ext = _extern(ctx, sym.name, sym.bind, _where(sec, roff, sym))
                if ext.kind != "kfunc":
                    raise ObjectError(f"{_where(sec, roff, sym)}: call to extern '{sym.name}', which is not a "
                                      "__ksym function")
                code[roff + 1] = (PSEUDO_KFUNC_CALL << 4) | (code[roff + 1] & 0xF)
                _OFF_IMM.pack_into(code, roff + 2, 0, 0)
                fixups[i] = (FIX_KFUNC, sym.name)
                continue
            src = code[roff + 1] >> 4
            if src != PSEUDO_CALL:
                raise ObjectError(f"{_where(sec, roff, sym)}: relocation on a helper call (src {src})")
            if shndx not in code_sections:
                raise ObjectError(f"{_where(sec, roff, sym)}: call target is not in a code section")
            value = sym[2]
            if value % 8:
                raise ObjectError(f"{_where(sec, roff, sym)}: call target offset {value} is not "
                                  "instruction-aligned")
            calls[i] = (shndx, (value >> 3) + unpack_imm(code, roff + 4)[0] + 1)
            continue
        if opcode != _LD_IMM64:
            raise ObjectError(f"{_where(sec, roff, sym)}: relocation on instruction {i} (opcode {opcode:#04x}), "
                              "which is neither a 64-bit immediate load nor a call")
        if rtype != R_BPF_64_64:
            raise ObjectError(f"{_where(sec, roff, sym)}: relocation type {rtype} on a 64-bit immediate load")
        if i + 1 >= n:
            raise ObjectError(f"{_where(sec, roff, sym)}: 64-bit immediate load at instruction {i} has no "
                              "second slot")
        imm = unpack_imm(code, roff + 4)[0]
        regs = code[roff + 1] & 0xF
        if shndx == 0:
            ext = _extern(ctx, sym.name, sym.bind, _where(sec, roff, sym))
            if ext.kind == "kconfig":
                code[roff + 1] = (PSEUDO_MAP_VALUE << 4) | regs
                pack_imm(code, roff + 12, _wrap32(ext.offset + imm))
                pack_imm(code, roff + 4, 0)
                fixups[i] = (FIX_MAP, ".kconfig")
            else:
                code[roff + 1] = ((PSEUDO_BTF_ID if (ext.kind == "kfunc" or ext.typed) else 0) << 4) | regs
                pack_imm(code, roff + 4, 0)
                pack_imm(code, roff + 12, 0)
                fixups[i] = (FIX_EXTERN, sym.name)
            continue
        if shndx >= nsec:
            raise ObjectError(f"{_where(sec, roff, sym)}: symbol is not in a section (index {shndx:#x})")
        target = sections[shndx]
        value = sym[2]
        # (A section is code, maps or global data, never two of them: global data, the most common
        # target, is looked for first.)
        data_map = data_sections.get(shndx)
        if data_map is not None:
            off = imm + value
            if not 0 <= off <= target[5] or off > 0x7FFFFFFF:   # target[5]: its size
                raise ObjectError(f"{_where(sec, roff, sym)}: offset {off} is outside '{target.name}' "
                                  f"({target.size} bytes)")
            code[roff + 1] = (PSEUDO_MAP_VALUE << 4) | regs
            pack_imm(code, roff + 12, off)
            pack_imm(code, roff + 4, 0)
            fixups[i] = (FIX_MAP, data_map)
            continue
        if shndx in code_sections:
            off = value + imm
            if off % 8:
                raise ObjectError(f"{_where(sec, roff, sym)}: function address {off} is not instruction-aligned")
            code[roff + 1] = (PSEUDO_FUNC << 4) | regs
            calls[i] = (shndx, off // 8)
            continue
        if shndx in map_sections:
            m = map_at.get((target[1], value))
            if m is None:
                raise ObjectError(f"{_where(sec, roff, sym)}: no map is defined at offset {value} of "
                                  f"'{target.name}'")
            code[roff + 1] = (PSEUDO_MAP_FD << 4) | regs
            pack_imm(code, roff + 4, 0)
            fixups[i] = (FIX_MAP, m.name)
            continue
        raise ObjectError(f"{_where(sec, roff, sym)}: refers to section '{target.name}', which is neither code, "
                          "a map nor global data")
    # Calls inside one section need no relocation: imm is already relative.  (Each relocated
    # instruction is a call or an ld_imm64: when there are no others, there is nothing to look at.)
    opcodes = bytes(code[0::8])
    if opcodes.count(_CALL) + opcodes.count(_LD_IMM64) == len(relocated):
        return
    i = opcodes.find(_CALL)
    while i >= 0:
        if i not in relocated and code[8 * i + 1] >> 4 == PSEUDO_CALL:
            calls[i] = (sec.index, i + unpack_imm(code, 8 * i + 4)[0] + 1)
        i = opcodes.find(_CALL, i + 1)
    i = opcodes.find(_LD_IMM64)
    while i >= 0:
        if i not in relocated and code[8 * i + 1] >> 4 == PSEUDO_FUNC:
            raise ObjectError(f"{section_label(sec)}: callback address at offset {8 * i} has no relocation")
        i = opcodes.find(_LD_IMM64, i + 1)


def _wrap32(v: int) -> int:
    """``v`` as the signed 32-bit value an ``imm`` field holds."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _where(sec: Section, offset: int, sym) -> str:  # noqa: ANN001
    return f"{section_label(sec)}: relocation at offset {offset} (symbol '{sym.name or f'#{sym.index}'}')"


def _extern(ctx: RelocationContext, name: str, bind: int, where: str) -> ExternSpec:
    ext = ctx.externs.get(name)
    if ext is None:
        why = ctx.extern_error(name) or ("it is not declared __kconfig or __ksym"
                                         if bind in (STB_GLOBAL, STB_WEAK) else "it is a local symbol")
        raise ObjectError(f"{where}: symbol '{name}' is undefined: {why}")
    return ext


# ---------------------------------------------------------------------- linking


def link(entry: Function, find: Callable[[int, int], Function | None]) -> tuple:
    """The instructions of ``entry`` followed by every subprogram it reaches.

    ``find(section index, slot)`` returns the function containing that slot.
    Returns ``(code, fixups, labels, call_refs, func_info, line_info,
    core_relos, complete_func_info)``: the linked bytes, ``(slot, kind,
    name)`` fixups, ``(slot, function name)`` labels, ``(slot,
    "callee[+n]")`` call references, func_info and line_info in the
    kernel's layout (``insn_off`` in instructions), CO-RE relocations with
    ``insn_off`` in bytes, and whether func_info covers every function.
    """
    if not entry.calls:
        return (entry.code, tuple(entry.fixups), ((0, entry.name),), (), entry.func_info, entry.line_info,
                list(entry.core_relos), entry.has_func_info)
    order = [entry]
    placed = {entry: 0}
    total = entry.count
    code = bytearray(entry.code)
    call_refs: list[tuple[int, str]] = []
    pack = _IMM.pack_into
    for f in order:  # grows while it is walked: breadth first, each function placed once
        base = placed[f]
        for local, tsec, tslot in f.calls:
            target = find(tsec, tslot)
            if target is None:
                raise ObjectError(f"section '{f.section.name}': function '{f.name}' instruction {local} "
                                  f"calls slot {tslot} of section {tsec}, which is not inside a function")
            tpos = placed.get(target)
            if tpos is None:
                tpos = placed[target] = total
                total += target.count
                order.append(target)
                code += target.code
            at = base + local
            rel = tslot - target.start
            pack(code, 8 * at + 4, tpos + rel - at - 1)
            call_refs.append((at, f"{target.name}+{rel}" if rel else target.name))
    if len(order) == 1:  # only calls to itself
        return (bytes(code), tuple(entry.fixups), ((0, entry.name),), tuple(call_refs), entry.func_info,
                entry.line_info, list(entry.core_relos), entry.has_func_info)
    fixups: list[tuple[int, int, str]] = list(entry.fixups)
    labels: list[tuple[int, str]] = [(0, entry.name)]
    fi, li = entry.func_info, entry.line_info   # concatenated into new arrays: these stay the entry's
    core: list["CoreRelo"] = list(entry.core_relos)
    complete = entry.has_func_info
    for f in order[1:]:
        base = placed[f]
        labels.append((base, f.name))
        complete = complete and f.has_func_info
        # A subprogram shared by many programs often lands at the same place: move it once.
        moved = f._placed.get(base)
        if moved is None:
            moved = f._placed[base] = _moved(f, base)
        fixups += moved[0]
        fi = fi + moved[1]
        li = li + moved[2]
        core += moved[3]
    return (bytes(code), tuple(fixups), tuple(labels), tuple(call_refs), fi, li, core, complete)


def _moved(f: Function, base: int) -> tuple:
    """``f``'s fixups, func_info, line_info and CO-RE relocations for ``f`` placed at slot ``base``."""
    fixups = [(base + s, k, r) for s, k, r in f.fixups]
    fi = f.func_info
    if fi:
        fi = array(_U32, fi)
        fi[0::2] = array(_U32, [x + base for x in fi[0::2]])
    li = f.line_info
    if li:
        li = array(_U32, li)
        li[0::4] = array(_U32, [x + base for x in li[0::4]])
    shift = 8 * base
    core = [type(r)(r.insn_off + shift, r.type_id, r.access_str, r.kind) for r in f.core_relos]
    return fixups, fi, li, core
