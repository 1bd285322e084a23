"""ELF → :class:`~pybpf.object.spec.ObjectSpec`: pure parsing, no system calls.

The steps, in order:

1. read sections, symbols and relocations (:mod:`.elffile`);
2. parse ``.BTF``/``.BTF.ext`` (:mod:`pybpf.btf.reader`);
3. collect externs and lay out ``.kconfig`` (:mod:`.externs`);
4. fix DATASEC sizes and offsets from the symbol table (:mod:`.btf_fixup`);
5. build maps: ``.maps``, legacy ``maps``, global data (:mod:`.maps_def`),
   ``.struct_ops``/``.struct_ops.link`` variables (:mod:`.struct_ops`);
6. split code sections into functions, apply relocations, link each
   entry program with the subprograms it reaches (:mod:`.linker`);
7. fill map-in-map and prog-array initial values from ``.rel.maps``, and
   struct_ops function pointers from ``.rel.struct_ops*``;
8. variables of the global data sections, and the kernel-ready BTF blob.

Any malformed input raises :class:`~pybpf.errors.ObjectError` prefixed
with ``object '<name>'``.
"""

from __future__ import annotations

import bisect
import struct

from pybpf.btf.types import Datasec, Var
from pybpf.errors import BPFError, ObjectError
from pybpf.object import btf_fixup, externs as _externs, linker, maps_def
from pybpf.object.elffile import (
    SHT_NOBITS, SHT_PROGBITS, STB_GLOBAL, STB_WEAK, STT_FUNC, STV_HIDDEN, STV_INTERNAL, ElfFile, Section,
)
from pybpf.object.parts import STRUCT_OPS_SECTIONS, MapSpec, ProgramSpec, VariableSpec
from pybpf.object.sections import parse_section, unknown_section

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pybpf.object.spec import ObjectSpec

__all__ = ["parse"]

_IGNORED = (".BTF", ".BTF.ext", ".llvm_addrsig", ".symtab", ".strtab", ".shstrtab")


def parse(data: bytes, into: type[ObjectSpec], *, name: str = "object", path: str | None = None) -> ObjectSpec:
    """The object in ``data`` as an ``into`` (:class:`ObjectSpec` or a subclass: it passes itself,
    so this module needs no import of the class that calls it)."""
    try:
        return _Parser(data, into, name, path).run()
    except BPFError as exc:
        raise exc.add_context(f"object '{name}'")
    except (IndexError, KeyError, struct.error, ValueError, TypeError, UnicodeDecodeError, OverflowError,
            RecursionError) as exc:
        # Every check above should have caught bad input; never let an internal error out.
        raise ObjectError(f"malformed object: {type(exc).__name__}: {exc}").add_context(f"object '{name}'") \
            from None


def _is_subprog_section(name: str) -> bool:
    return name == ".text" or name.startswith(".text.")


class _Parser:
    def __init__(self, data: bytes, into: type[ObjectSpec], name: str, path: str | None) -> None:
        self.data = data
        self.into = into
        self.name = name
        self.path = path
        self.notes: list[str] = []
        self.object_name = name.split(".", 1)[0] or name

    def run(self) -> ObjectSpec:
        elf = self.elf = ElfFile(self.data)
        btf, ext, raw_btf = self._btf()
        self._btf_spec = btf
        license, kern_version = self._license_version()
        externs, extern_problems = _externs.collect_externs(elf, btf)
        kconfig_size = _externs.kconfig_layout(externs)
        datasecs = btf_fixup.DatasecsByName(None, {})
        if btf is not None:
            datasecs = btf_fixup.fix_datasecs(btf, elf, externs, kconfig_size)

        maps: dict[str, MapSpec] = {}
        map_sections: set[int] = set()
        data_sections: dict[int, str] = {}
        code: list[Section] = []
        maps_sec: Section | None = None
        struct_ops_secs: list[Section] = []
        for sec in elf.sections:
            name = sec[1]
            if not name or name in _IGNORED or name.startswith((".rel", ".debug")):
                continue
            if sec.is_code:
                if sec.size:
                    code.append(sec)
                continue
            if name == ".maps":
                maps_sec = sec
                map_sections.add(sec.index)
                self._add_maps(maps, maps_def.parse_btf_maps(elf, sec, btf, datasecs.id_of(sec.name)))
                continue
            if sec.name == "maps":
                map_sections.add(sec.index)
                self._add_maps(maps, maps_def.parse_legacy_maps(elf, sec, btf))
                continue
            if sec.name in STRUCT_OPS_SECTIONS:
                from pybpf.object import struct_ops   # only objects with struct_ops maps need it

                self._add_maps(maps, struct_ops.parse_struct_ops(elf, sec, btf, datasecs.get(sec.name)))
                struct_ops_secs.append(sec)
                continue
            kind = maps_def.data_section_kind(sec)
            if kind is not None:
                m = maps_def.global_data_map(self.object_name, sec.name, sec.size, sec.data,
                                             datasecs.get(sec.name), readonly=kind == "rodata")
                self._add_maps(maps, {m.name: m})
                data_sections[sec.index] = m.name
            elif sec.type in (SHT_PROGBITS, SHT_NOBITS) and sec.name not in ("license", "version") \
                    and sec.size:
                self.notes.append(f"section '{sec.name}' skipped: not a program, map or global data section")
        if kconfig_size:
            m = maps_def.global_data_map(self.object_name, ".kconfig", kconfig_size, bytes(kconfig_size),
                                         datasecs.get(".kconfig"), readonly=True)
            self._add_maps(maps, {m.name: m})

        programs, program_at = self._programs(code, maps, map_sections, data_sections, externs,
                                              extern_problems, ext, license, kern_version)
        if maps_sec is not None and btf is not None:
            maps_def.collect_values(elf, maps_sec, maps, program_at,
                                    maps_def.values_offsets(btf, maps_sec, maps, datasecs.id_of(maps_sec.name)))
        for sec in struct_ops_secs:   # struct_ops is imported: the section loop met these
            struct_ops.assign_programs(elf, sec, maps, program_at, programs)
        variables = self._variables(maps, data_sections, btf, externs)

        spec = self.into(self.name, programs=programs, maps=maps, variables=variables, btf=btf,
                          license=license, kern_version=kern_version, externs=externs, path=self.path,
                          notes=self.notes)
        if raw_btf is not None and btf is not None:
            # symbols as tuples: [1] name, [4] type, [5] bind, [6] visibility (default, 0, for most)
            hidden = {sym[1] for sym in elf.symbols if sym[6] and sym[6] in (STV_HIDDEN, STV_INTERNAL)
                      and sym[4] == STT_FUNC and sym[5] in (STB_GLOBAL, STB_WEAK)}
            # Line info keeps its string offsets into .BTF, which the kernel blob keeps.
            kinds: set = set()
            spec._kernel_btf, _ = btf_fixup.kernel_blob(raw_btf, btf, externs, (), hidden, kinds)
            spec._btf_kinds = (spec._kernel_btf, frozenset(kinds))  # type: ignore[attr-defined]
        return spec

    # -- pieces ---------------------------------------------------------------------------

    def _add_maps(self, maps: dict[str, MapSpec], new: dict[str, MapSpec]) -> None:
        for name, m in new.items():
            if name in maps:
                raise ObjectError(f"map '{name}' is defined twice (sections '{maps[name].section}' and "
                                  f"'{m.section}')")
            maps[name] = m

    def _btf(self):
        from pybpf.btf.reader import Spec
        from pybpf.object.btf_ext import RawExtInfo

        sec = self.elf.section_by_name(".BTF")
        if sec is None:
            return None, None, None
        raw = sec.data
        try:
            btf = Spec.parse(raw, lazy=True)  # types decode on use; the kernel checks the rest
        except ObjectError as exc:
            raise exc.add_context("section '.BTF'")
        ext = None
        ext_sec = self.elf.section_by_name(".BTF.ext")
        if ext_sec is not None:
            try:
                ext = RawExtInfo.parse(ext_sec.data, btf)
            except ObjectError as exc:
                raise exc.add_context("section '.BTF.ext'")
        return btf, ext, raw

    def _license_version(self) -> tuple[str, int]:
        license = ""
        sec = self.elf.section_by_name("license")
        if sec is not None:
            license = sec.data.split(b"\0", 1)[0].decode("utf-8", "replace")
        version = 0
        sec = self.elf.section_by_name("version")
        if sec is not None:
            if sec.size != 4:
                raise ObjectError(f"section 'version': {sec.size} bytes, expected a 4-byte kernel version")
            version = struct.unpack("<I", sec.data)[0]
        return license, version

    def _programs(self, code: list[Section], maps, map_sections, data_sections, externs, extern_problems,
                  ext, license: str, kern_version: int):
        elf = self.elf
        ctx = linker.RelocationContext(elf, maps, map_sections, data_sections, externs,
                                       extern_problems.get)
        funcs_by_sec: dict[int, list[linker.Function]] = {}
        at_start: dict[tuple[int, int], linker.Function] = {}
        entries: list[tuple[linker.Function, str, object, bool]] = []
        for sec in code:
            data = linker.section_code(sec)
            calls: dict[int, tuple[int, int]] = {}
            fixups: dict[int, tuple[int, str]] = {}
            linker.apply_relocations(ctx, sec, data, calls, fixups)
            sub = _is_subprog_section(sec.name)
            info = None
            autoload = True
            if not sub:
                sec_name = sec.name
                if sec_name.startswith("?"):
                    sec_name, autoload = sec_name[1:], False
                info = parse_section(sec_name)
                if info is None:
                    raise ObjectError(f"section '{sec.name}' holds code but its name is not a known program "
                                      f"type: {unknown_section(sec_name)}")
            fallback = sec.name.lstrip("?").replace("/", "_").replace(".", "_")
            funcs = linker.split_functions(elf, sec, data, entry=not sub, fallback_name=fallback)
            linker.assign(funcs, calls, fixups, ext)
            if not sub:
                entries.extend((f, sec.name, info, autoload) for f in funcs)
            funcs_by_sec[sec.index] = funcs
            for f in funcs:
                at_start[(sec.index, f.start)] = f

        def find(sec_index: int, slot: int):
            f = at_start.get((sec_index, slot))   # (calls target a function's first instruction)
            if f is not None:
                return f
            funcs = funcs_by_sec.get(sec_index)
            if not funcs:
                return None
            i = bisect.bisect_right([f.start for f in funcs], slot) - 1
            if i < 0:
                return None
            f = funcs[i]
            return f if slot < f.start + f.count else None

        strings = self._btf_spec.strings if self._btf_spec is not None else None
        programs: dict[str, ProgramSpec] = {}
        program_at: dict[tuple[int, int], str] = {}
        for f, sec_name, info, autoload in entries:
            if f.name in programs:
                raise ObjectError(f"program '{f.name}' is defined twice (sections '{programs[f.name].section}' "
                                  f"and '{sec_name}')")
            try:
                linked = linker.link(f, find)
            except ObjectError as exc:
                raise exc.add_context(f"program '{f.name}'")
            keep = linked[7]   # func_info covers every function
            if not keep and len(linked[4]):
                self.notes.append(f"program '{f.name}': func_info does not cover every function; "
                                  "loaded without func_info/line_info")
            programs[f.name] = ProgramSpec._from_linked(linked, strings, keep, f.name, sec_name, info, license,
                                                        kern_version, autoload)
            program_at[(f.section.index, 8 * f.start)] = f.name
        return programs, program_at

    def _variables(self, maps: dict[str, MapSpec], data_sections: dict[int, str], btf, externs):
        elf = self.elf
        variables: dict[str, VariableSpec] = {}
        for index, map_name in data_sections.items():
            sec = elf.sections[index]
            m = maps[map_name]
            ds = m.value_type
            types = maps_def.variable_types(btf, ds) if isinstance(ds, Datasec) else {}
            for sym in maps_def.data_symbols(elf, sec):
                if sym.size == 0 or sym.value + sym.size > sec.size or sym.name in variables:
                    continue
                variables[sym.name] = VariableSpec(sym.name, sec.name, sym.value, sym.size,
                                                   types.get((sym.name, sym.value)), m)
        kconfig = maps.get(".kconfig")
        if kconfig is not None:
            types = {}
            ds = kconfig.value_type
            if isinstance(ds, Datasec):
                types = {vs.var.name: vs.var.type for vs in ds.vars if isinstance(vs.var, Var)}
            for e in sorted(externs.values(), key=lambda e: e.offset):
                if e.kind == "kconfig" and e.name not in variables:
                    variables[e.name] = VariableSpec(e.name, ".kconfig", e.offset, e.size, types.get(e.name),
                                                     kconfig)
        return variables

