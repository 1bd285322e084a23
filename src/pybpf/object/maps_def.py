"""Map definitions in a BPF object: BTF ``.maps``, the legacy ``maps`` section, global data.

BTF-defined maps (libbpf's ``SEC(".maps")``) are anonymous structs whose
members encode the definition in their *types*: ``__uint(name, n)`` is
``int (*name)[n]``, ``__type(key, T)`` is ``T *key`` and
``__array(values, struct inner)`` is ``struct inner *values[]``.  The
legacy ``maps`` section holds ``struct bpf_map_def`` records (type,
key_size, value_size, max_entries, map_flags).  Global data sections
(``.data``, ``.rodata``, ``.bss`` and their ``.name`` variants) become
single-entry, memory-mappable arrays named the way libbpf names them.

Example::

    >>> internal_map_name("minimal", ".rodata")
    'minimal.rodata'
    >>> internal_map_name("a_long_object_name", ".kconfig")
    'a_long_.kconfig'
"""

from __future__ import annotations

import struct
from operator import itemgetter

from pybpf._sys.flags import PIN_BY_NAME, MapFlag
from pybpf._sys.uapi import MapType
from pybpf.btf.layout import COMMON_WORDS, LAYOUTS
from pybpf.btf.types import Array, BTFKind, Datasec, FuncProto, Pointer, Struct, Type, Var
from pybpf.btf.typeinfo import resolve, sizeof
from pybpf.errors import ObjectError
from pybpf.object.elffile import STT_OBJECT, STT_NOTYPE, STT_SECTION, ElfFile, Section, Symbol
from pybpf.object.parts import MapSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pybpf.btf.reader import Spec

__all__ = ["internal_map_name", "parse_btf_maps", "parse_legacy_maps", "global_data_map", "map_type",
           "variable_types"]

_OBJ_NAME_LEN = 16  # BPF_OBJ_NAME_LEN, counting the NUL
_MAP_IN_MAP = (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS)
_INT_FIELDS = ("type", "max_entries", "map_flags", "numa_node", "key_size", "value_size", "pinning",
               "map_extra")
_KV_ATTRS = {"key": ("key_size", "key_type"), "value": ("value_size", "value_type")}
_LEGACY_DEF = struct.Struct("<IIIII")  # struct bpf_map_def
_MMAPABLE, _RDONLY_PROG = int(MapFlag.MMAPABLE), int(MapFlag.RDONLY_PROG)   # plain ints: no IntFlag arithmetic


def map_type(value: int) -> MapType | int:
    try:
        return MapType(value)
    except ValueError:
        return value


def internal_map_name(object_name: str, section: str) -> str:
    """The kernel name libbpf gives the map of a global data section.

    libbpf keeps at least 7 characters for the suffix (".bss" still costs
    7), fills the rest of the 15 with the object name, and uses custom
    ``.data.x``/``.rodata.x`` names alone; characters the kernel refuses
    become ``_``.
    """
    sfx_len = min(max(7, len(section)), _OBJ_NAME_LEN - 1)
    if "." in section[1:]:
        pfx_len = 0
    else:
        pfx_len = min(_OBJ_NAME_LEN - sfx_len - 1, len(object_name))
    name = object_name[:pfx_len] + section[:sfx_len]
    if name.isascii():
        if name.replace(".", "").replace("_", "").isalnum():   # (the usual name: nothing to replace)
            return name
        return name.translate(_NAME_CHARS)
    return "".join(c if c.isalnum() or c in "_." else "_" for c in name)


_NAME_CHARS = {c: "_" for c in range(128) if not (chr(c).isalnum() or chr(c) in "_.")}


# ---------------------------------------------------------------------- BTF .maps


def _where(name: str) -> str:
    return f"map '{name}'"


def _uint_member(t: Type, map_name: str, member: str) -> int:
    ptr = resolve(t)
    if not isinstance(ptr, Pointer):
        raise ObjectError(f"{_where(map_name)}: field '{member}' is not a pointer (__uint() makes 'int (*{member})[N]')")
    arr = ptr.target
    if not isinstance(arr, Array):
        arr = resolve(arr)
    if not isinstance(arr, Array):
        raise ObjectError(f"{_where(map_name)}: field '{member}' does not point to an array (use __uint())")
    return arr.nelems


class _RawBTF:
    """The words of an object's BTF, to read map definitions without decoding what they are made
    of (the VAR, the struct and its members, the PTR and ARRAY records of ``__uint``/``__type``).

    Each reader answers only for a record of the plain shape libbpf's macros make, checked as
    decoding it would check it; for anything else it answers None and the caller decodes the
    record, which raises what decoding always raised or handles the unusual shape.
    """

    __slots__ = ("btf", "words", "offs", "first", "count", "strings")

    def __init__(self, btf: "Spec") -> None:
        self.btf = btf
        self.words, self.offs = btf.raw_words()
        self.first, self.count = btf.first_id, len(btf)
        self.strings = btf.strings

    def _record(self, tid: int, kind: int) -> int | None:
        """The word index of type ``tid`` if it is of ``kind``."""
        if self.first <= tid < self.count:
            i = self.offs[tid - self.first]
            if self.words[i + 1] >> 24 & 31 == kind:
                return i
        return None

    def var(self, tid: int) -> tuple[str, int] | None:
        """(name, type id) of the VAR ``tid``."""
        i = self._record(tid, _VAR)
        if i is None:
            return None
        w = self.words
        if w[i + _VAR_LINKAGE] > 2 or w[i + 2] >= self.count:
            return None
        try:
            return self.strings[w[i]], w[i + 2]
        except ObjectError:
            return None

    def members(self, tid: int) -> list[tuple[str, int]] | None:
        """(name, type id) of each member of the STRUCT ``tid``."""
        i = self._record(tid, _STRUCT)
        if i is None:
            return None
        w = self.words
        items = w[i + 3:i + 3 + 3 * (w[i + 1] & 0xFFFF)]
        types = items[1::3]
        if types and max(types) >= self.count:
            return None
        strings = self.strings
        try:
            strings[w[i]]   # (checked, as decoding checks every name)
            return list(zip(map(strings.__getitem__, items[0::3]), types))
        except ObjectError:
            return None

    def pointee(self, tid: int) -> int | None:
        """The target id of ``tid`` if that is an unnamed PTR whose target id is in range."""
        i = self._record(tid, _PTR)
        if i is None or self.words[i]:
            return None
        target = self.words[i + 2]
        return target if target < self.count else None

    def nelems(self, tid: int) -> int | None:
        """``N`` of a member type ``int (*)[N]`` when it is exactly that: an unnamed PTR straight
        to a well-formed unnamed ARRAY."""
        arr = self.pointee(tid)
        if arr is None:
            return None
        i = self._record(arr, _ARRAY)
        w = self.words
        if i is None or w[i] or w[i + _ARRAY_TYPE] >= self.count or w[i + _ARRAY_INDEX] >= self.count:
            return None
        return w[i + _ARRAY_NELEMS]


_PTR, _ARRAY, _STRUCT, _VAR = int(BTFKind.PTR), int(BTFKind.ARRAY), int(BTFKind.STRUCT), int(BTFKind.VAR)
# Positions of fixed words in a record (pybpf.btf.layout states them).
_ARRAY_TYPE, _ARRAY_INDEX, _ARRAY_NELEMS = (COMMON_WORDS + LAYOUTS[BTFKind.ARRAY].fixed.index(f)
                                            for f in ("type", "index_type", "nelems"))
_VAR_LINKAGE = COMMON_WORDS + LAYOUTS[BTFKind.VAR].fixed.index("linkage")
_DATASEC_ITEMS = COMMON_WORDS + len(LAYOUTS[BTFKind.DATASEC].fixed)
_DATASEC_ITEM = len(LAYOUTS[BTFKind.DATASEC].item)


def _type_member(raw: _RawBTF, tid: int, map_name: str, member: str) -> tuple[Type, int]:
    target_id = raw.pointee(tid)
    if target_id is not None:   # 'T *member' itself: T without decoding the pointer
        target = raw.btf.type_by_id(target_id)
    else:
        ptr = resolve(raw.btf.type_by_id(tid))
        if not isinstance(ptr, Pointer):
            raise ObjectError(f"{_where(map_name)}: field '{member}' is not a pointer "
                              f"(__type() makes 'T *{member}')")
        target = ptr.target
    try:
        size = sizeof(target)
    except ObjectError as exc:
        raise ObjectError(f"{_where(map_name)}: {member} type has no size: {exc.message}") from None
    return target, size


def parse_map_def(name: str, raw: _RawBTF, struct_id: int, *, inner: bool = False
                  ) -> tuple[MapSpec, Type | None]:
    """A MapSpec from the BTF map definition struct ``struct_id`` (through typedefs and qualifiers);
    also returns the inner map struct if any.

    For prog arrays the second value is the FUNC_PROTO of ``values``.
    """
    members = raw.members(struct_id)
    if members is None:
        t = resolve(raw.btf.type_by_id(struct_id))
        if not isinstance(t, Struct):
            raise ObjectError(f"{_where(name)}: definition is a {t.kind.name}, not a struct")
        members = [(m.name, m.type_id) for m in t.members]
    spec = MapSpec(name, MapType.UNSPEC, 0, 0, 0, 0, None, 0, 0, None, None, None, None, None, False, ".maps")
    values_elem: Type | None = None
    has: set[str] = set()
    for i, (mname, mtype) in enumerate(members):
        if mname in has:
            raise ObjectError(f"{_where(name)}: field '{mname}' given twice")
        has.add(mname)
        if mname in _INT_FIELDS:
            value = raw.nelems(mtype)
            if value is None:
                value = _uint_member(raw.btf.type_by_id(mtype), name, mname)
            if mname == "type":
                spec.type = map_type(value)
            elif mname == "map_flags":
                spec.flags = value
            elif mname == "numa_node":
                spec.numa_node = value
            elif mname == "pinning":
                if inner:
                    raise ObjectError(f"{_where(name)}: an inner map definition cannot be pinned")
                if value not in (0, PIN_BY_NAME):
                    raise ObjectError(f"{_where(name)}: pinning {value} is not supported "
                                      f"(0 or LIBBPF_PIN_BY_NAME={PIN_BY_NAME})")
                spec.pinning = value
            elif mname in ("key_size", "value_size"):
                current = getattr(spec, mname)
                if current and current != value:
                    raise ObjectError(f"{_where(name)}: {mname} {value} conflicts with the "
                                      f"{mname.split('_')[0]} type's size {current}")
                setattr(spec, mname, value)
            else:
                setattr(spec, mname, value)
        elif mname in _KV_ATTRS:
            typ, size = _type_member(raw, mtype, name, mname)
            size_attr, type_attr = _KV_ATTRS[mname]
            current = getattr(spec, size_attr)
            if current and current != size:
                raise ObjectError(f"{_where(name)}: {mname} type size {size} conflicts with "
                                  f"{size_attr} {current}")
            setattr(spec, size_attr, size)
            setattr(spec, type_attr, typ)
        elif mname == "values":
            if inner:
                raise ObjectError(f"{_where(name)}: multi-level inner maps are not supported")
            if i != len(members) - 1:
                raise ObjectError(f"{_where(name)}: 'values' must be the last field")
            arr = raw.btf.type_by_id(mtype)
            if not isinstance(arr, Array):
                raise ObjectError(f"{_where(name)}: 'values' must be an array (use __array())")
            if arr.nelems:
                raise ObjectError(f"{_where(name)}: 'values' must be a zero-sized array, not [{arr.nelems}]")
            ptr = resolve(arr.elem)
            if not isinstance(ptr, Pointer):
                raise ObjectError(f"{_where(name)}: 'values' must be an array of pointers")
            values_elem = resolve(ptr.target)
        else:
            raise ObjectError(f"{_where(name)}: unknown field '{mname}' in the map definition")
    if spec.type == MapType.UNSPEC and not inner:
        raise ObjectError(f"{_where(name)}: map type is missing (__uint(type, BPF_MAP_TYPE_...))")
    if values_elem is not None:
        if spec.type in _MAP_IN_MAP:
            if not isinstance(values_elem, Struct):
                raise ObjectError(f"{_where(name)}: map-in-map 'values' must point to a map definition struct")
        elif spec.type == MapType.PROG_ARRAY:
            if not isinstance(values_elem, FuncProto):
                raise ObjectError(f"{_where(name)}: prog-array 'values' must point to a function type")
        else:
            raise ObjectError(f"{_where(name)}: 'values' is only for map-in-map and prog-array maps")
        if spec.value_size and spec.value_size != 4:
            raise ObjectError(f"{_where(name)}: value_size {spec.value_size} conflicts with 'values' (4)")
        spec.value_size = 4
    _defaults(spec)
    return spec, values_elem


def _defaults(spec: MapSpec) -> None:
    """libbpf's defaults: perf event arrays take 4-byte keys and values when none are given."""
    if spec.type in (MapType.PERF_EVENT_ARRAY, MapType.CGROUP_ARRAY, MapType.PROG_ARRAY) or \
            spec.type in _MAP_IN_MAP:
        spec.key_size = spec.key_size or 4
        spec.value_size = spec.value_size or 4


def _datasec_id(btf: "Spec", sec: Section, datasec_id: int | None) -> int | None:
    if datasec_id is None:
        datasec = btf.find(sec.name, BTFKind.DATASEC)
        datasec_id = datasec.id if isinstance(datasec, Datasec) else None
    return datasec_id


def parse_btf_maps(elf: ElfFile, sec: Section, btf: "Spec | None", datasec_id: int | None = None
                   ) -> dict[str, MapSpec]:
    """MapSpecs of the ``.maps`` section, in definition order (``datasec_id``: its DATASEC, if known:
    one :func:`pybpf.object.btf_fixup.fix_datasecs` checked)."""
    if btf is None:
        raise ObjectError("BTF is required for maps in '.maps' (build with clang -g)")
    datasec_id = _datasec_id(btf, sec, datasec_id)
    if datasec_id is None:
        raise ObjectError(f"section '{sec.name}': no DATASEC in the BTF describes it")
    raw = _RawBTF(btf)
    words = raw.words
    at = raw.offs[datasec_id - raw.first] + _DATASEC_ITEMS
    var_ids = words[at:at + _DATASEC_ITEM * (words[at - _DATASEC_ITEMS + 1] & 0xFFFF):_DATASEC_ITEM]
    syms = {s.name: s for s in elf.symbols_in(sec.index)
            if s.name and s.type in (STT_OBJECT, STT_NOTYPE)}
    out: list[MapSpec] = []
    for var_id in var_ids:
        var = raw.var(var_id)
        if var is None:
            t = btf.type_by_id(var_id)
            if not isinstance(t, Var):
                raise ObjectError(f"section '{sec.name}': DATASEC member {t.name!r} is a {t.kind.name}, not a VAR")
            var = t.name, t.type_id
        name, type_id = var
        sym = syms.get(name)
        if sym is None:
            raise ObjectError(f"section '{sec.name}': map '{name}' has no ELF symbol")
        if sym.value + sym.size > sec.size:
            raise ObjectError(f"section '{sec.name}': map '{name}' at offset {sym.value} (+{sym.size}) is "
                              f"past the end of the section ({sec.size} bytes)")
        spec, elem = parse_map_def(name, raw, type_id)
        spec.offset = sym.value
        if isinstance(elem, Struct):
            inner, _ = parse_map_def(f"{name}.inner", raw, elem.id, inner=True)
            if inner.type == MapType.UNSPEC:
                raise ObjectError(f"{_where(name)}: inner map definition has no type")
            spec.inner = inner
        out.append(spec)
    out.sort(key=lambda m: m.offset)
    maps: dict[str, MapSpec] = {}
    for m in out:
        if m.name in maps:
            raise ObjectError(f"section '{sec.name}': map '{m.name}' is defined twice")
        maps[m.name] = m
    return maps


def variable_types(btf: "Spec", datasec: Datasec) -> dict[tuple[str, int], Type]:
    """The type of each VAR of ``datasec`` (a DATASEC of ``btf``) by its name and offset, the VARs
    read from the raw words (checked as decoding them checks them)."""
    raw = _RawBTF(btf)
    types: dict[tuple[str, int], Type] = {}
    for vs in datasec.vars:
        var = raw.var(vs.var_id)
        if var is None:
            t = vs.var
            if not isinstance(t, Var):
                continue
            var = t.name, t.type_id
        types[(var[0], vs.offset)] = btf.type_by_id(var[1])
    return types


def map_at(maps: dict[str, MapSpec], section: str, offset: int) -> MapSpec | None:
    for m in maps.values():
        if m.section == section and m.offset == offset:
            return m
    return None


def collect_values(elf: ElfFile, sec: Section, maps: dict[str, MapSpec],
                   program_at: dict[tuple[int, int], str], values_offsets: dict[str, int]) -> None:
    """Fill ``contents`` of map-in-maps and prog arrays from the relocations of ``.maps``.

    ``program_at`` maps (section index, byte offset) of each entry function
    to its program name; ``values_offsets`` is :func:`values_offsets`.
    """
    relocations = elf.relocations_for(sec.index)
    if not relocations:   # (most objects: no map holds initial values)
        return
    data = sec.data
    by_offset = sorted((m.offset, m) for m in maps.values() if m.section == sec.name)
    for rel in relocations:
        sym = elf.symbols[rel.symbol]
        where = f"section '{sec.name}': relocation at offset {rel.offset}"
        owner = None
        for off, m in by_offset:
            if off <= rel.offset:
                owner = m
        if owner is None:
            raise ObjectError(f"{where}: not inside any map definition")
        if rel.offset + 8 > len(data):
            raise ObjectError(f"{where}: past the end of the section")
        addend = struct.unpack_from("<q", data, rel.offset)[0]
        if owner.inner is None and owner.type != MapType.PROG_ARRAY:
            raise ObjectError(f"{where}: map '{owner.name}' has no 'values' to initialize")
        values_off = values_offsets.get(owner.name)
        if values_off is None:
            raise ObjectError(f"{where}: map '{owner.name}' has no 'values' field")
        slot = rel.offset - owner.offset - values_off
        if slot < 0 or slot % 8:
            raise ObjectError(f"{where}: not a slot of map '{owner.name}' .values")
        index = slot // 8
        if index >= owner.max_entries:
            raise ObjectError(f"{where}: map '{owner.name}' .values[{index}] is beyond max_entries "
                              f"{owner.max_entries}")
        if owner.type == MapType.PROG_ARRAY:
            if sym.shndx == 0 or not elf.sections[sym.shndx].is_code:
                raise ObjectError(f"{where}: prog-array '{owner.name}' value refers to '{sym.name}', "
                                  "which is not a program")
            target = sym.value + (addend if sym.type == STT_SECTION else 0)
            prog = program_at.get((sym.shndx, target))
            if prog is None:
                raise ObjectError(f"{where}: prog-array '{owner.name}' value '{sym.name}' is not an entry "
                                  "program (subprograms cannot be tail-called)")
            owner.contents.append((index, prog))
        else:
            if sym.shndx != sec.index:
                raise ObjectError(f"{where}: map-in-map '{owner.name}' value refers to '{sym.name}', "
                                  "which is not a map in '.maps'")
            target = map_at(maps, sec.name, sym.value + (addend if sym.type == STT_SECTION else 0))
            if target is None:
                raise ObjectError(f"{where}: map-in-map '{owner.name}' value refers to '{sym.name}', "
                                  "which is not a map definition")
            owner.contents.append((index, target.name))
    for m in maps.values():
        m.contents.sort()


def values_offsets(btf: "Spec", sec: Section, maps: dict[str, MapSpec], datasec_id: int | None = None
                   ) -> dict[str, int]:
    """The byte offset of 'values' in each map definition that has one."""
    out: dict[str, int] = {}
    if not any(m.inner is not None or m.type == MapType.PROG_ARRAY for m in maps.values()):
        return out  # only map-in-maps and prog arrays have 'values'
    datasec_id = _datasec_id(btf, sec, datasec_id)
    if datasec_id is None:
        return out
    datasec = btf.type_by_id(datasec_id)
    for vs in datasec.vars:
        var = vs.var
        t = resolve(var.type) if isinstance(var, Var) else None
        if isinstance(t, Struct) and t.members and t.members[-1].name == "values":
            out[var.name] = t.members[-1].offset
    return out


# ---------------------------------------------------------------------- legacy maps section


def parse_legacy_maps(elf: ElfFile, sec: Section, btf: "Spec | None") -> dict[str, MapSpec]:
    """MapSpecs from ``struct bpf_map_def`` records in the legacy ``maps`` section."""
    syms = sorted((s for s in elf.symbols_in(sec.index) if s.name and s.type != STT_SECTION
                   and s.type in (STT_OBJECT, STT_NOTYPE)), key=lambda s: (s.value, s.name))
    if not syms:
        raise ObjectError(f"section '{sec.name}': no map symbols")
    if sec.size % len(syms):
        raise ObjectError(f"section '{sec.name}': {sec.size} bytes do not divide into {len(syms)} map definitions")
    def_size = sec.size // len(syms)
    if def_size < _LEGACY_DEF.size:
        raise ObjectError(f"section '{sec.name}': map definitions of {def_size} bytes are smaller than "
                          f"struct bpf_map_def ({_LEGACY_DEF.size})")
    data = sec.data
    maps: dict[str, MapSpec] = {}
    for sym in syms:
        if sym.value % def_size or sym.value + def_size > sec.size:
            raise ObjectError(f"section '{sec.name}': map '{sym.name}' at offset {sym.value} is not aligned "
                              f"to its {def_size}-byte definition")
        mtype, ksize, vsize, maxent, flags = _LEGACY_DEF.unpack_from(data, sym.value)
        extra = data[sym.value + _LEGACY_DEF.size:sym.value + def_size]
        if any(extra):
            raise ObjectError(f"section '{sec.name}': map '{sym.name}' uses bpf_map_def fields beyond "
                              "map_flags, which are not supported")
        spec = MapSpec(name=sym.name, type=map_type(mtype), key_size=ksize, value_size=vsize,
                       max_entries=maxent, flags=flags, section=sec.name, kernel_name=sym.name,
                       offset=sym.value)
        if btf is not None:
            _annotate_kv(spec, btf)
        _defaults(spec)
        if sym.name in maps:
            raise ObjectError(f"section '{sec.name}': map '{sym.name}' is defined twice")
        maps[sym.name] = spec
    return maps


def _annotate_kv(spec: MapSpec, btf: "Spec") -> None:
    """BPF_ANNOTATE_KV_PAIR: ``struct ____btf_map_<name> { key; value; }`` types the map."""
    t = btf.find(f"____btf_map_{spec.name}", BTFKind.STRUCT)
    if not isinstance(t, Struct):
        return
    key, value = t.member("key"), t.member("value")
    if key is None or value is None:
        return
    try:
        if sizeof(key.type) == spec.key_size and sizeof(value.type) == spec.value_size:
            spec.key_type, spec.value_type = key.type, value.type
    except ObjectError:
        pass


# ---------------------------------------------------------------------- global data


def global_data_map(object_name: str, section: str, size: int, data: bytes, datasec: Type | None,
                    *, readonly: bool) -> MapSpec:
    """The single-entry array holding a global data section (libbpf's internal maps).

    Flags: BPF_F_MMAPABLE so user space reads and writes it without system
    calls (Linux 5.5); ``.rodata`` and ``.kconfig`` add BPF_F_RDONLY_PROG and
    are frozen after their contents are written.
    """
    flags = _MMAPABLE | (_RDONLY_PROG if readonly else 0)
    # (by position: a call with a dozen keywords costs twice as much)
    return MapSpec(section, MapType.ARRAY, 4, size, 1, flags, None, 0, 0, None, datasec, None, None, bytes(data),
                   readonly, section, internal_map_name(object_name, section))


def data_section_kind(sec: Section) -> str | None:
    """"data", "rodata" or "bss" for a global data section, else None."""
    name = sec.name
    if sec.size == 0 or sec.is_code:
        return None
    if sec.type == 8:  # NOBITS
        return "bss" if name == ".bss" or name.startswith(".bss.") else None
    if sec.type != 1:
        return None
    if name == ".data" or name.startswith(".data."):
        return "data"
    if name == ".rodata" or name.startswith(".rodata."):
        return "rodata"
    return None


def data_symbols(elf: ElfFile, sec: Section) -> list[Symbol]:
    """Named variables (OBJECT symbols) of a data section, by offset."""
    out = [s for s in elf.symbols_in(sec.index) if s.type == STT_OBJECT and s.name
           and not s.name.startswith(".")]
    out.sort(key=_BY_VALUE_NAME)
    return out


_BY_VALUE_NAME = itemgetter(2, 1)   # a symbol's (value, name)

