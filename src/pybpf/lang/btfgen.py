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
from pybpf.btf.reader import FuncInfo, LineInfo, Spec, StringTable
from pybpf.btf.writer import Builder
from pybpf.lang.finalize import finalize
from pybpf.lang.types import Fixed
from pybpf.object.maps_def import global_data_map
from pybpf.object.sections import parse_section
from pybpf.object.spec import MapSpec, ObjectSpec, ProgramSpec, VariableSpec

__all__ = ["build_spec", "int_btf"]

_NO_BTF = {MapType.RINGBUF, MapType.PERF_EVENT_ARRAY, MapType.STACK_TRACE, MapType.PROG_ARRAY,
           MapType.QUEUE, MapType.STACK}


class _Types:
    """One BTF type object per Python type, so each is written once."""

    def __init__(self) -> None:
        self.ints: dict[type, bt.Type] = {}
        self.int32 = bt.Int("int", 4, bt.IntEncoding.SIGNED)
        self.void_ptr = bt.Pointer(bt.VOID)

    def of(self, t: Any) -> bt.Type:
        if isinstance(t, type) and issubclass(t, Fixed):
            found = self.ints.get(t)
            if found is None:
                found = self.ints[t] = bt.Int(t.__name__, t.bits // 8,
                                              bt.IntEncoding.SIGNED if t.signed else bt.IntEncoding.NONE)
            return found
        raise TypeError(f"no BTF for {t!r}")


def int_btf(t: type) -> bt.Type:
    return _Types().of(t)


def build_spec(unit: Any, compiled: list[tuple[Any, Any]], license: str) -> ObjectSpec:
    tys = _Types()
    b = Builder()
    strings: StringTable = b.strings

    # programs: code, func, line info
    progs: list[tuple[Any, Any, list, list, bt.Func]] = []
    for p, fc in compiled:
        insns, lines = finalize(fc.code, fc.lines)
        proto = bt.FuncProto(tys.int32, [("ctx", tys.void_ptr)])
        func = bt.Func(p.name, proto, bt.FuncLinkage.GLOBAL)
        b.add(func)
        progs.append((p, fc, insns, lines, func))

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

    # map key/value types
    for decl in unit.maps.values():
        if decl.map_type not in _NO_BTF and decl.key is not None:
            b.add(tys.of(decl.key))
            b.add(tys.of(decl.value))

    # line info strings live in the same string table
    line_strings: dict[str, int] = {}
    file_names: dict[str, str] = {}
    for p, fc, insns, lines, func in progs:
        fname = fc.src.file
        file_names[fname] = fname
        line_strings.setdefault(fname, strings.add(fname))
        for line in lines:
            if line is not None:
                line_strings.setdefault(line[2], strings.add(line[2]))
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
            maps[name] = MapSpec(name=name, type=decl.map_type, key_size=0, value_size=0,
                                 max_entries=decl.max_entries, flags=decl.flags, kernel_name=name[:15])
        else:
            maps[name] = MapSpec(name=name, type=decl.map_type, key_size=decl.key.bits // 8,
                                 value_size=decl.value.bits // 8, max_entries=decl.max_entries, flags=decl.flags,
                                 key_type=parsed(tys.of(decl.key)), value_type=parsed(tys.of(decl.value)),
                                 kernel_name=name[:15])

    programs: dict[str, ProgramSpec] = {}
    for p, fc, insns, lines, func in progs:
        info = parse_section(p.section)
        if info is None:  # pragma: no cover - the decorator table only has known sections
            raise ValueError(f"unknown section {p.section!r}")
        line_info: list[LineInfo] = []
        last = None
        base = os.path.basename(fc.src.file)
        for i, line in enumerate(lines):
            if line is not None and line != last:
                line_info.append(LineInfo(8 * i, fc.src.file, line[2], line[0], min(line[1], 0x3FF)))
                insns[i].source = f"{base}:{line[0]}: {line[2]}"
                last = line
        programs[p.name] = ProgramSpec(
            p.name, p.section, info.prog_type, info.attach_type, info.target, info.sleepable, info.prog_flags,
            insns, license=license, func_info=[FuncInfo(0, b.id_of(func))], line_info=line_info)

    spec = ObjectSpec(unit.name, programs=programs, maps=maps, variables=variables, btf=spec_btf,
                      license=license, kernel_btf=blob)
    spec._btf_strings = line_strings  # type: ignore[attr-defined]
    return spec
