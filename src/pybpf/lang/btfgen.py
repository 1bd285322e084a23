"""BTF, func_info/line_info and the ObjectSpec of compiled programs.

The object's BTF holds: an INT per integer type used (named u8..i64), for
each program a FUNC ``int name(void *ctx)`` (global linkage, as clang
emits), a DATASEC per global data section with one VAR per variable, and
for each map with BTF (hash/array families) its key and value types.
Line info records carry the Python file name, line and column, so a
:class:`~pybpf.errors.VerifierError` shows the Python line.
"""

from __future__ import annotations

import os
from typing import Any

from pybpf._sys.uapi import MapType
from pybpf.btf import types as bt
from pybpf.btf.typeinfo import resolve as _resolve
from pybpf.btf.reader import FuncInfo, LineInfo, Spec, StringTable
from pybpf.btf.writer import Builder
from pybpf.lang.finalize import finalize
from pybpf.lang.types import INT_TYPES, BTFTypes, i64, sizeof, u8
from pybpf.object.maps_def import global_data_map
from pybpf.object.sections import parse_section
from pybpf.object.spec import MapSpec, ObjectSpec, ProgramSpec, VariableSpec

__all__ = ["build_spec"]

_NO_BTF = {MapType.RINGBUF, MapType.PERF_EVENT_ARRAY, MapType.STACK_TRACE, MapType.PROG_ARRAY,
           MapType.QUEUE, MapType.STACK}


def build_spec(unit: Any, compiled: list[tuple[Any, Any]], license: str) -> ObjectSpec:
    tys = BTFTypes()
    b = Builder()
    strings: StringTable = b.strings

    # programs (each with the BPF functions it calls appended): code, FUNCs, line info
    sub_funcs: dict[str, bt.Func] = {}
    for name, sub in unit.subprogs.items():
        params = [(p, tys.of(sub.locals[p].type)) for p in sub.param_names]
        ret = i64 if sub.return_type is int else sub.return_type     # '-> int': a C long
        sub_funcs[name] = bt.Func(name, bt.FuncProto(tys.of(ret), params), bt.FuncLinkage.STATIC)
    kernel = _KernelTypes(tys)
    progs: list[tuple[Any, Any, list, list, list, list]] = []
    for p, fc in compiled:
        code, lines = list(fc.code), list(fc.lines)
        relocs = list(fc.core_relocs)
        subs = _callees(unit, fc)
        for sub in subs:
            copies = {}
            for x in sub.code:
                copies[id(x)] = y = _copy(x)
                code.append(y)
            lines.extend(sub.lines)
            relocs.extend((copies[id(insn)], st, m, kind) for insn, st, m, kind in sub.core_relocs)
        insns, ilines, labels = finalize(code, lines)
        for _insn, st, m, _kind in relocs:
            kernel.use(st, m)
        func = bt.Func(p.name, bt.FuncProto(tys.int32, [("ctx", tys.void_ptr)]), bt.FuncLinkage.GLOBAL)
        b.add(func)
        funcs = [(0, func)]
        for sub in subs:
            b.add(sub_funcs[sub.name])
            funcs.append((labels[sub.entry_label], sub_funcs[sub.name]))
        progs.append((p, fc, insns, ilines, funcs, relocs))
    for t in kernel.build():
        b.add(t)

    # global data
    datasecs: dict[str, bt.Datasec] = {}
    for section in (".rodata", ".data", ".bss"):
        size = unit.section_sizes[section]
        if not size:
            continue
        infos = []
        for name, (sec, off, t, _value) in unit.globals.items():
            if sec == section:
                var = bt.Var(name, tys.of(t), bt.VarLinkage.GLOBAL)
                infos.append(bt.VarSecinfo(var, off, t.bits // 8))
        ds = datasecs[section] = bt.Datasec(section, size, infos)
        b.add(ds)

    # the maps as libbpf BTF map definitions: a VAR per map in DATASEC .maps (what bpftool shows)
    if unit.maps:
        b.add(_maps_datasec(unit.maps, tys))

    # map key/value types
    for decl in unit.maps.values():
        if decl.map_type not in _NO_BTF and decl.key is not None:
            b.add(tys.of(decl.key))
            b.add(tys.of(decl.value))
        elif decl.map_type in (MapType.QUEUE, MapType.STACK):
            b.add(tys.of(decl.value))     # for the user side's codec (the kernel gets no BTF ids)

    # line info strings live in the same string table
    line_strings: dict[str, int] = {}
    for p, fc, insns, lines, funcs, _relocs in progs:
        for line in lines:
            if line is not None:
                line_strings.setdefault(line[2], strings.add(line[2]))
                line_strings.setdefault(line[3], strings.add(line[3]))
    blob = b.encode()
    spec_btf = Spec.parse(blob, lazy=True)

    def parsed(t: bt.Type) -> bt.Type:
        return spec_btf.types[b.id_of(t)]

    maps: dict[str, MapSpec] = {}
    variables: dict[str, VariableSpec] = {}
    for section, ds in datasecs.items():
        size = unit.section_sizes[section]
        data = bytearray(size)
        for name, (sec, off, t, value) in unit.globals.items():
            if sec == section:
                data[off:off + t.bits // 8] = int(value).to_bytes(t.bits // 8, "little", signed=t.signed)
        m = global_data_map(unit.name, section, size, bytes(data), parsed(ds), readonly=section == ".rodata")
        maps[section] = m
        for name, (sec, off, t, _value) in unit.globals.items():
            if sec == section:
                variables[name] = VariableSpec(name, section, off, t.bits // 8, parsed(tys.of(t)), m)
    for name, decl in unit.maps.items():
        if decl.map_type in _NO_BTF or decl.key is None:
            key_size, value_size = _sizes(decl)
            ms = maps[name] = MapSpec(name=name, type=decl.map_type, key_size=key_size, value_size=value_size,
                                      max_entries=decl.max_entries, flags=decl.flags, kernel_name=name[:15])
            if decl.map_type in (MapType.QUEUE, MapType.STACK):
                ms.value_type = parsed(tys.of(decl.value))
            if decl.map_type == MapType.PROG_ARRAY:
                ms.contents = [(int(k), getattr(p, "name", p)) for k, p in sorted(decl.programs.items())]
        else:
            maps[name] = MapSpec(name=name, type=decl.map_type, key_size=sizeof(decl.key),
                                 value_size=sizeof(decl.value), max_entries=decl.max_entries, flags=decl.flags,
                                 key_type=parsed(tys.of(decl.key)), value_type=parsed(tys.of(decl.value)),
                                 kernel_name=name[:15])

    programs: dict[str, ProgramSpec] = {}
    for p, fc, insns, lines, funcs, relocs in progs:
        info = parse_section(p.section)
        if info is None:  # pragma: no cover - the decorator table only has known sections
            raise ValueError(f"unknown section {p.section!r}")
        line_info: list[LineInfo] = []
        last = None
        starts = {off for off, _f in funcs}
        for i, line in enumerate(lines):
            if line is not None and (line != last or i in starts):
                line_info.append(LineInfo(8 * i, line[3], line[2], line[0], min(line[1], 0x3FF)))
                insns[i].source = f"{os.path.basename(line[3])}:{line[0]}: {line[2]}"
                last = line
        programs[p.name] = ProgramSpec(
            p.name, p.section, info.prog_type, info.attach_type, info.target, info.sleepable, info.prog_flags,
            insns, license=license, func_info=[FuncInfo(8 * off, b.id_of(f)) for off, f in funcs],
            line_info=line_info, core_relos=kernel.records(relocs, insns, b))

    spec = ObjectSpec(unit.name, programs=programs, maps=maps, variables=variables, btf=spec_btf,
                      license=license, kernel_btf=blob)
    spec._btf_strings = line_strings  # type: ignore[attr-defined]
    spec.lang_log_formats = list(unit.log_formats)  # type: ignore[attr-defined]
    return spec


class _KernelTypes:
    """Local copies of the kernel structs a program reads (only the members it uses), for CO-RE."""

    def __init__(self, tys: BTFTypes) -> None:
        self.tys = tys
        self.used: dict[str, set[str]] = {}
        self.local: dict[str, bt.Struct] = {}

    def use(self, struct: str, member: str) -> None:
        self.used.setdefault(struct, set()).add(member)

    def _struct(self, name: str) -> bt.Struct:
        found = self.local.get(name)
        if found is None:
            from pybpf.lang.kernel_types import _kernel_struct

            found = self.local[name] = bt.Struct(name, _kernel_struct(name).size)
        return found

    def _type(self, kt: Any) -> bt.Type:
        t = _resolve(kt)
        if isinstance(t, bt.Pointer):
            target = _resolve(t.target)
            if isinstance(target, bt.Composite) and target.name:
                return bt.Pointer(self._struct(target.name))
            return self.tys.void_ptr
        if isinstance(t, bt.Composite) and t.name:
            return self._struct(t.name)
        if isinstance(t, bt.Array):
            return bt.Array(self._type(t.elem), None, t.nelems)
        if isinstance(t, (bt.Int, bt.Enum)):
            signed = bool(getattr(t, "signed", False))
            size = t.size if t.size in (1, 2, 4, 8) else 8
            return self.tys.of(INT_TYPES[f"{'i' if signed else 'u'}{8 * size}"])
        return self.tys.of(u8)

    def build(self) -> list[bt.Type]:
        from pybpf.lang.kernel_types import _kernel_struct

        for name in sorted(self.used):
            ks = _kernel_struct(name)
            local = self._struct(name)
            # A member the kernel keeps in an anonymous struct or union is a direct member of the
            # local copy, at its offset: CO-RE finds it by name, descending into anonymous members.
            found = sorted((ks.find_member(member) for member in self.used[name]), key=lambda f: f[0])
            local.members = [bt.Member(m.name, self._type(m.type), off, m.bitfield_size) for off, m in found]
        return list(self.local.values())

    def records(self, relocs: list, insns: list, b: Builder) -> list[Any]:
        from pybpf.btf.reader import CoreRelo

        if not relocs:
            return []
        at = {id(x): i for i, x in enumerate(insns)}
        out = []
        for insn, struct, member, kind in relocs:
            i = at.get(id(insn))
            if i is None:
                continue   # dropped as unreachable
            local = self.local[struct]
            index = [m.name for m in local.members].index(member)
            out.append(CoreRelo(8 * i, b.id_of(local), f"0:{index}", kind))
        return out


def _maps_datasec(decls: dict[str, Any], tys: BTFTypes) -> bt.Datasec:
    """``struct { int (*type)[T]; int (*max_entries)[N]; K *key; V *value; } name SEC(".maps")`` per map."""
    infos = []
    for i, (name, decl) in enumerate(decls.items()):
        members = [bt.Member("type", bt.Pointer(bt.Array(tys.int32, None, int(decl.map_type)))),
                   bt.Member("max_entries", bt.Pointer(bt.Array(tys.int32, None, decl.max_entries)), 64)]
        off = 128
        if decl.map_type not in _NO_BTF and decl.key is not None:
            members.append(bt.Member("key", bt.Pointer(tys.of(decl.key)), off))
            members.append(bt.Member("value", bt.Pointer(tys.of(decl.value)), off + 64))
            off += 128
        if decl.flags:
            members.append(bt.Member("map_flags", bt.Pointer(bt.Array(tys.int32, None, decl.flags)), off))
            off += 64
        var = bt.Var(name, bt.Struct("", off // 8, members), bt.VarLinkage.GLOBAL)
        infos.append(bt.VarSecinfo(var, 32 * i, off // 8))
    size = max((v.offset + v.size for v in infos), default=0)
    return bt.Datasec(".maps", size, infos)


def _sizes(decl: Any) -> tuple[int, int]:
    """(key size, value size) of the maps without BTF key/value types."""
    t = decl.map_type
    if t in (MapType.PERF_EVENT_ARRAY, MapType.PROG_ARRAY):
        return 4, 4
    if t == MapType.STACK_TRACE:
        return 4, 8 * decl.depth
    if t in (MapType.QUEUE, MapType.STACK):
        return 0, sizeof(decl.value)
    return 0, 0


def _callees(unit: Any, fc: Any) -> list[Any]:
    """The BPF functions ``fc`` reaches, each once, in call order."""
    out: list[Any] = []
    seen: set[str] = set()
    todo = sorted(fc.callees)
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen.add(name)
        sub = unit.subprogs[name]
        out.append(sub)
        todo.extend(sorted(sub.callees))
    return out


def _copy(x: Any) -> Any:
    """A fresh Instruction (finalize() writes jump offsets into them), labels as they are."""
    if isinstance(x, str):
        return x
    from pybpf.asm.instruction import Instruction

    return Instruction(x.code, x.dst, x.src, x.off, x.imm, None, x.reference)
