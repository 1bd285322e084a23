"""Functions, relocations and linking: ELF code sections → one instruction list per program.

Each code section is split into functions by its FUNC symbols.  The
relocations of the section are applied to its instructions in place:

- ``call`` against a function (global FUNC symbol, or the section symbol of
  ``.text`` plus ``imm`` for static functions) → a pending bpf-to-bpf call;
- ``call`` against an undefined symbol → a kfunc call (``src``
  PSEUDO_KFUNC_CALL, ``reference`` = name, BTF id filled at load);
- ``ld_imm64`` against a function → a pending callback address
  (PSEUDO_FUNC, for bpf_loop, bpf_for_each_map_elem, timers...);
- ``ld_imm64`` against a map → PSEUDO_MAP_FD, ``reference`` = map name;
- ``ld_imm64`` against a global data section → PSEUDO_MAP_VALUE with the
  variable's offset in the second slot, ``reference`` = section name;
- ``ld_imm64`` against an extern → ``.kconfig`` map value, or a ksym /
  kfunc address resolved at load.

Linking then builds each entry program the way libbpf does: the program's
own instructions first, then every subprogram it reaches (directly or
through other subprograms), each appended once, with call and callback
offsets rewritten and the .BTF.ext records (func_info, line_info, CO-RE
relocations) moved along with their instructions.
"""

from __future__ import annotations

import bisect
import os
from typing import TYPE_CHECKING, Callable

from pybpf.asm.instruction import Instruction, decode_all
from pybpf.asm.opcodes import (
    PSEUDO_BTF_ID, PSEUDO_CALL, PSEUDO_FUNC, PSEUDO_KFUNC_CALL, PSEUDO_MAP_FD, PSEUDO_MAP_VALUE,
)
from pybpf.errors import ObjectError
from pybpf.object.elffile import (
    R_BPF_64_32, R_BPF_64_64, R_BPF_NONE, STB_GLOBAL, STB_WEAK, STT_FUNC, ElfFile, Section,
)
from pybpf.object.spec import ExternSpec, MapSpec

if TYPE_CHECKING:
    from pybpf.btf.reader import CoreRelo, ExtInfo, FuncInfo, LineInfo

__all__ = ["Function", "split_functions", "apply_relocations", "link"]


class Function:
    """A function of a code section: ``count`` instructions starting at slot ``start``."""

    __slots__ = ("name", "section", "start", "count", "insns", "calls", "entry")

    def __init__(self, name: str, section: Section, start: int, count: int, insns: list[Instruction],
                 entry: bool) -> None:
        self.name = name
        self.section = section
        self.start = start
        self.count = count
        self.insns = insns
        self.calls: dict[int, tuple[int, int]] = {}   # local slot -> (section index, target slot)
        self.entry = entry

    def __repr__(self) -> str:
        return f"<Function {self.name!r} in {self.section.name!r} [{self.start}, +{self.count})>"


def section_label(sec: Section) -> str:
    return f"section '{sec.name}'"


def decode_section(sec: Section) -> list[Instruction]:
    try:
        return decode_all(sec.data)
    except ObjectError as exc:
        raise exc.add_context(section_label(sec))


def split_functions(elf: ElfFile, sec: Section, insns: list[Instruction], *, entry: bool,
                    fallback_name: str) -> list[Function]:
    """The functions of ``sec`` from its FUNC symbols (the whole section if it has none)."""
    syms = sorted((s for s in elf.symbols if s.shndx == sec.index and s.type == STT_FUNC and s.name),
                  key=lambda s: (s.value, s.name))
    n = len(insns)
    if not syms:
        return [Function(fallback_name, sec, 0, n, insns, entry)] if n else []
    out: list[Function] = []
    end = 0
    for s in syms:
        if s.value % 8 or s.size % 8:
            raise ObjectError(f"{section_label(sec)}: function '{s.name}' at offset {s.value} (size {s.size}) "
                              "is not aligned to 8-byte instructions")
        start, count = s.value // 8, s.size // 8
        if start + count > n:
            raise ObjectError(f"{section_label(sec)}: function '{s.name}' at offset {s.value} (size {s.size}) "
                              f"runs past the end of the section ({sec.size} bytes)")
        if start < end:
            raise ObjectError(f"{section_label(sec)}: function '{s.name}' at offset {s.value} overlaps the "
                              "function before it")
        if count == 0:
            continue
        end = start + count
        out.append(Function(s.name, sec, start, count, insns[start:end], entry))
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


def apply_relocations(ctx: RelocationContext, sec: Section, insns: list[Instruction],
                      calls: dict[int, tuple[int, int]]) -> None:
    """Apply the relocations of code section ``sec`` to ``insns``; pending calls go to ``calls``.

    ``calls`` maps a slot of the section to (target section index, target slot).
    """
    elf = ctx.elf
    n = len(insns)
    relocated: set[int] = set()
    for rel in elf.relocations_for(sec.index):
        if rel.type == R_BPF_NONE:
            continue
        where = f"{section_label(sec)}: relocation at offset {rel.offset}"
        if rel.offset % 8 or rel.offset // 8 >= n:
            raise ObjectError(f"{where}: not at an instruction (section has {n} instructions)")
        i = rel.offset // 8
        sym = elf.symbols[rel.symbol]
        if rel.symbol == 0:
            raise ObjectError(f"{where}: refers to no symbol (symbol index 0)")
        symname = sym.name or f"#{sym.index}"
        where = f"{where} (symbol '{symname}')"
        insn = insns[i]
        relocated.add(i)
        if insn.is_call:
            if rel.type != R_BPF_64_32:
                raise ObjectError(f"{where}: relocation type {rel.type} on a call instruction")
            if sym.is_undefined:
                ext = _extern(ctx, sym.name, sym.bind, where)
                if ext.kind != "kfunc":
                    raise ObjectError(f"{where}: call to extern '{sym.name}', which is not a __ksym function")
                insn.src, insn.imm, insn.off, insn.reference = PSEUDO_KFUNC_CALL, 0, 0, sym.name
                continue
            if insn.src != PSEUDO_CALL:
                raise ObjectError(f"{where}: relocation on a helper call (src {insn.src})")
            target_sec = _code_section(elf, sym.shndx, where)
            if sym.value % 8:
                raise ObjectError(f"{where}: call target offset {sym.value} is not instruction-aligned")
            calls[i] = (target_sec.index, sym.value // 8 + insn.imm + 1)
            continue
        if not insn.is_ld_imm64:
            raise ObjectError(f"{where}: relocation on instruction {i} (opcode {insn.code:#04x}), which is "
                              "neither a 64-bit immediate load nor a call")
        if rel.type != R_BPF_64_64:
            raise ObjectError(f"{where}: relocation type {rel.type} on a 64-bit immediate load")
        if i + 1 >= n:
            raise ObjectError(f"{where}: 64-bit immediate load at instruction {i} has no second slot")
        nxt = insns[i + 1]
        if sym.is_undefined:
            ext = _extern(ctx, sym.name, sym.bind, where)
            if ext.kind == "kconfig":
                insn.src, nxt.imm, insn.imm = PSEUDO_MAP_VALUE, ext.offset + insn.imm, 0
                insn.reference = ".kconfig"
            else:
                insn.src = PSEUDO_BTF_ID if (ext.kind == "kfunc" or ext.typed) else 0
                insn.imm = nxt.imm = 0
                insn.reference = sym.name
            continue
        if sym.shndx >= len(elf.sections):
            raise ObjectError(f"{where}: symbol is not in a section (index {sym.shndx:#x})")
        target = elf.sections[sym.shndx]
        if target.is_code:
            off = sym.value + insn.imm
            if off % 8:
                raise ObjectError(f"{where}: function address {off} is not instruction-aligned")
            insn.src = PSEUDO_FUNC
            calls[i] = (target.index, off // 8)
            continue
        if target.index in ctx.map_sections:
            m = _map_at(ctx.maps, target.name, sym.value)
            if m is None:
                raise ObjectError(f"{where}: no map is defined at offset {sym.value} of '{target.name}'")
            insn.src, insn.imm, insn.reference = PSEUDO_MAP_FD, 0, m.name
            continue
        data_map = ctx.data_sections.get(target.index)
        if data_map is not None:
            off = insn.imm + sym.value
            if not 0 <= off <= target.size:
                raise ObjectError(f"{where}: offset {off} is outside '{target.name}' ({target.size} bytes)")
            insn.src, nxt.imm, insn.imm, insn.reference = PSEUDO_MAP_VALUE, off, 0, data_map
            continue
        raise ObjectError(f"{where}: refers to section '{target.name}', which is neither code, a map nor "
                          "global data")
    # Calls inside one section need no relocation: imm is already relative.
    for i, insn in enumerate(insns):
        if i in relocated:
            continue
        if insn.code == 0x85 and insn.src == PSEUDO_CALL:
            calls[i] = (sec.index, i + insn.imm + 1)
        elif insn.code == 0x18 and insn.src == PSEUDO_FUNC:
            raise ObjectError(f"{section_label(sec)}: callback address at offset {8 * i} has no relocation")


def _code_section(elf: ElfFile, index: int, where: str) -> Section:
    if index >= len(elf.sections) or not elf.sections[index].is_code:
        raise ObjectError(f"{where}: call target is not in a code section")
    return elf.sections[index]


def _extern(ctx: RelocationContext, name: str, bind: int, where: str) -> ExternSpec:
    ext = ctx.externs.get(name)
    if ext is None:
        why = ctx.extern_error(name) or ("it is not declared __kconfig or __ksym"
                                         if bind in (STB_GLOBAL, STB_WEAK) else "it is a local symbol")
        raise ObjectError(f"{where}: symbol '{name}' is undefined: {why}")
    return ext


def _map_at(maps: dict[str, MapSpec], section: str, offset: int) -> MapSpec | None:
    for m in maps.values():
        if m.section == section and m.offset == offset:
            return m
    return None


# ---------------------------------------------------------------------- linking


class _ExtIndex:
    """.BTF.ext records of one section, sorted by offset, for range queries."""

    __slots__ = ("offs", "recs")

    def __init__(self, recs: list) -> None:
        recs = sorted(recs, key=lambda r: r.insn_off)
        self.recs = recs
        self.offs = [r.insn_off for r in recs]

    def between(self, lo: int, hi: int) -> list:
        a = bisect.bisect_left(self.offs, lo)
        b = bisect.bisect_left(self.offs, hi)
        return self.recs[a:b]


class ExtInfoIndex:
    def __init__(self, ext: "ExtInfo | None") -> None:
        self.func = {k: _ExtIndex(v) for k, v in ext.func_info.items()} if ext else {}
        self.line = {k: _ExtIndex(v) for k, v in ext.line_info.items()} if ext else {}
        self.core = {k: _ExtIndex(v) for k, v in ext.core_relos.items()} if ext else {}


class Linked:
    __slots__ = ("insns", "func_info", "line_info", "core_relos", "complete_func_info")

    def __init__(self) -> None:
        self.insns: list[Instruction] = []
        self.func_info: list["FuncInfo"] = []
        self.line_info: list["LineInfo"] = []
        self.core_relos: list["CoreRelo"] = []
        self.complete_func_info = True


def _clone(i: Instruction) -> Instruction:
    return Instruction(i.code, i.dst, i.src, i.off, i.imm, i.symbol, i.reference, i.source)


def link(entry: Function, find: Callable[[int, int], Function | None], ext: ExtInfoIndex) -> Linked:
    """The instructions of ``entry`` followed by every subprogram it reaches.

    ``find(section index, slot)`` returns the function containing that slot.
    """
    out = Linked()
    insns = out.insns
    placed: dict[int, int] = {}
    queue: list[Function] = []

    def place(f: Function) -> int:
        pos = len(insns)
        placed[id(f)] = pos
        insns.extend([_clone(i) for i in f.insns])
        insns[pos].symbol = f.name
        queue.append(f)
        _move_ext(f, pos, ext, out)
        return pos

    place(entry)
    q = 0
    while q < len(queue):
        f = queue[q]
        q += 1
        base = placed[id(f)]
        for local, (tsec, tslot) in sorted(f.calls.items()):
            target = find(tsec, tslot)
            at = base + local
            if target is None:
                raise ObjectError(f"section '{f.section.name}': function '{f.name}' instruction {local} "
                                  f"calls slot {tslot} of section {tsec}, which is not inside a function")
            tpos = placed.get(id(target))
            if tpos is None:
                tpos = place(target)
            dest = tpos + (tslot - target.start)
            insn = insns[at]
            insn.imm = dest - at - 1
            if dest != tpos:
                insn.reference = f"{target.name}+{tslot - target.start}"
            else:
                insn.reference = target.name
    return out


def _move_ext(f: Function, pos: int, ext: ExtInfoIndex, out: Linked) -> None:
    name = f.section.name
    lo, hi = 8 * f.start, 8 * (f.start + f.count)
    delta = 8 * pos - lo
    idx = ext.func.get(name)
    recs = idx.between(lo, hi) if idx is not None else []
    if not recs or recs[0].insn_off != lo:
        out.complete_func_info = False
    if recs:
        cls = type(recs[0])
        out.func_info.extend([cls(r.insn_off + delta, r.type_id) for r in recs])
    idx = ext.line.get(name)
    if idx is not None:
        insns = out.insns
        line_info = out.line_info
        basename = os.path.basename
        for r in idx.between(lo, hi):
            off = r.insn_off + delta
            line_info.append(type(r)(off, r.file_name, r.line_text, r.line_num, r.col))
            insns[off >> 3].source = f"{basename(r.file_name)}:{r.line_num}: {r.line_text.strip()}"
    idx = ext.core.get(name)
    if idx is not None:
        out.core_relos.extend([type(r)(r.insn_off + delta, r.type_id, r.access_str, r.kind)
                               for r in idx.between(lo, hi)])

