"""The parts of an :class:`~pybpf.object.spec.ObjectSpec`: programs, maps, variables, externs.

:class:`ProgramSpec` holds linked instructions, ready but for kernel file
descriptors and ids; :class:`MapSpec` a map definition and its initial
contents; :class:`VariableSpec` a global variable, whose value lives in the
``data`` of its section's map; :class:`ExternSpec` a ``__kconfig`` or
``__ksym`` symbol; :class:`StructOpsSpec` a struct_ops map's layout.  The
parser (:mod:`.elf`), the loader and :mod:`pybpf.lang` build and read these;
none of them needs :class:`ObjectSpec` itself, which sits above them.

Example::

    spec = ObjectSpec.from_file("filter.bpf.o")
    prog = spec.programs["handle"]          # a ProgramSpec
    prog.instructions[0], prog.section, spec.maps["counts"].max_entries
"""

from __future__ import annotations

import os

from pybpf._record import Record
from pybpf._sys.uapi import AttachType, MapType, ProgType
from pybpf.asm.instruction import Instruction
from pybpf.errors import BPFError, NameNotFoundError, ObjectError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Mapping

    from pybpf.btf.reader import CoreRelo, FuncInfo, LineInfo
    from pybpf.btf.types import Type
    from pybpf.object.sections import SectionInfo

__all__ = ["ProgramSpec", "MapSpec", "StructOpsSpec", "STRUCT_OPS_SECTIONS", "VariableSpec", "ExternSpec", "encode_variable", "NameTable"]


class NameTable(dict):
    """An object's programs, maps, variables or externs by name: a dict whose missing name is a
    :class:`~pybpf.errors.NameNotFoundError` (also a KeyError) saying what the object has.

    >>> maps = NameTable({"counts": 1}, kind="map", owner="object 'x.bpf.o'")
    >>> maps["count"]
    Traceback (most recent call last):
    ...
    pybpf.errors.NameNotFoundError: object 'x.bpf.o': no map 'count'; did you mean 'counts'?
    """

    __slots__ = ("kind", "owner")

    def __init__(self, items: Mapping[str, Any] | None = None, *, kind: str = "entry", owner: str = "") -> None:
        if items:
            self.update(items)
        self.kind = kind
        self.owner = owner

    def __missing__(self, name: Any) -> Any:
        import difflib   # only for this message: kept out of the load path

        names = [n for n in self if isinstance(n, str)]
        close = difflib.get_close_matches(name, names, n=1) if isinstance(name, str) else []
        text = f"no {self.kind} {name!r}"
        if close:
            text += f"; did you mean {close[0]!r}?"
        else:
            text += f" (it has {', '.join(map(repr, names[:20])) or 'none'}{', ...' if len(names) > 20 else ''})"
        err = NameNotFoundError(text)
        raise (err.add_context(self.owner) if self.owner else err)


def _type_id(t: Any) -> int | None:
    return getattr(t, "id", None) if t is not None else None


class ProgramSpec:
    """One entry-point program with its subprograms appended (libbpf style).

    ``func_info``/``line_info``/``core_relos`` are the .BTF.ext records of
    the program and its appended subprograms, with ``insn_off`` in **bytes**
    from the first instruction of ``instructions`` (divide by 8 for the
    kernel).  ``autoload`` is False for ``SEC("?name")`` programs, which
    :meth:`ObjectSpec.load` skips unless they are asked for by name.

    A spec parsed from ELF keeps the linked program as bytes (relocated, but
    for the map fds and extern ids filled in at load) and its func_info and
    line_info records in the kernel's layout, which is what loading needs.
    ``instructions``, ``func_info`` and ``line_info`` decode them on first
    access into the lists above; from then on those lists are what a load
    uses, so changing them (or assigning new ones) changes what is loaded.

    ``attach_program`` is the loaded BPF program that a freplace program (or
    an fentry/fexit on a BPF program) attaches to: see :meth:`set_attach_target`.
    """

    #: the target program of a freplace / fentry-on-BPF program (a Program or an fd), or None
    attach_program: Any = None

    def __init__(self, name: str, section: str, type: ProgType | int, attach_type: AttachType | int | None,
                 attach_target: str | None, sleepable: bool, flags: int, instructions: list[Instruction],
                 license: str = "", kern_version: int = 0, autoload: bool = True,
                 func_info: list["FuncInfo"] | None = None, line_info: list["LineInfo"] | None = None,
                 core_relos: list["CoreRelo"] | None = None) -> None:
        self.name = name
        self.section = section
        self.type = type
        self.attach_type = attach_type
        self.attach_target = attach_target
        self.sleepable = sleepable
        self.flags = flags
        self.license = license
        self.kern_version = kern_version
        self.autoload = autoload
        self.core_relos: list["CoreRelo"] = core_relos if core_relos is not None else []
        self._insns: list[Instruction] | None = instructions
        self._func_info: list["FuncInfo"] | None = func_info if func_info is not None else []
        self._line_info: list["LineInfo"] | None = line_info if line_info is not None else []
        # The raw form (ELF specs, see pybpf.object.linker.link): None once decoded.
        self._code: bytes | None = None
        self._fixups: tuple[tuple[int, int, str], ...] = ()
        self._labels: tuple[tuple[int, str], ...] = ()
        self._call_refs: tuple[tuple[int, str], ...] = ()
        self._fi_raw: Any = None        # array of (insn_off, type_id): bpf_func_info, insn_off in instructions
        self._li_raw: Any = None        # array of (insn_off, file_name_off, line_off, line_col): bpf_line_info
        self._li_all: Any = None        # the line records, also when line_info was dropped (sources)
        self._strings: Any = None       # the object's BTF string table (line_info names)
        self._kernel_records: tuple[bytes | None, bytes | None] | None = None

    @classmethod
    def _from_linked(cls, linked: Any, strings: Any, keep_ext: bool, name: str, section: str, info: Any,
                     license: str, kern_version: int, autoload: bool) -> "ProgramSpec":
        """A spec in raw form from what :func:`pybpf.object.linker.link` returns and the section's
        :class:`~pybpf.object.sections.SectionInfo` (the parser makes one per program)."""
        code, fixups, labels, call_refs, func_info, line_info, core_relos, _complete = linked
        self = cls.__new__(cls)
        self.name = name
        self.section = section
        self.type = info.prog_type
        self.attach_type = info.attach_type
        self.attach_target = info.target
        self.sleepable = info.sleepable
        self.flags = info.prog_flags
        self.license = license
        self.kern_version = kern_version
        self.autoload = autoload
        self.core_relos = core_relos
        self._insns = None
        self._code = code
        self._fixups = fixups
        self._labels = labels
        self._call_refs = call_refs
        self._li_all = line_info
        self._strings = strings
        self._kernel_records = None
        if keep_ext:
            self._func_info = self._line_info = None
            self._fi_raw = func_info
            self._li_raw = line_info
        else:
            self._func_info, self._line_info = [], []
            self._fi_raw = self._li_raw = None
        return self

    # -- the lists, decoded on first access ------------------------------------------------

    @property
    def instructions(self) -> list[Instruction]:
        if self._insns is None:
            self._insns = self._decode_instructions()
            self._code = None
        return self._insns

    @instructions.setter
    def instructions(self, value: list[Instruction]) -> None:
        self._insns = value
        self._code = None

    @property
    def func_info(self) -> list["FuncInfo"]:
        if self._func_info is None:
            self._func_info = self._decode_func_info()
            self._fi_raw = None
            self._kernel_records = None
        return self._func_info

    @func_info.setter
    def func_info(self, value: list["FuncInfo"]) -> None:
        self._func_info = value
        self._fi_raw = None
        self._kernel_records = None

    @property
    def line_info(self) -> list["LineInfo"]:
        if self._line_info is None:
            self._line_info = self._decode_line_info()
            self._li_raw = None
            self._kernel_records = None
        return self._line_info

    @line_info.setter
    def line_info(self, value: list["LineInfo"]) -> None:
        self._line_info = value
        self._li_raw = None
        self._kernel_records = None

    def _instruction_list(self) -> list[Instruction]:
        return self._insns if self._insns is not None else self._decode_instructions()

    def _decode_instructions(self) -> list[Instruction]:
        from pybpf.asm.instruction import decode_all

        insns = decode_all(self._code or b"")
        for slot, name in self._labels:
            insns[slot].symbol = name
        for slot, _kind, ref in self._fixups:
            insns[slot].reference = ref
        for slot, ref in self._call_refs:
            insns[slot].reference = ref
        for slot, text in self._sources().items():
            if slot < len(insns):
                insns[slot].source = text
        return insns

    def _sources(self) -> dict[int, str]:
        """Instruction index -> "file.c:line: text" from the line records (raw form)."""
        recs = self._li_all
        if not recs or self._strings is None:
            return {}
        strings = self._strings
        basename = os.path.basename
        out: dict[int, str] = {}
        for k in range(0, len(recs), 4):
            out[recs[k]] = f"{basename(strings[recs[k + 1]])}:{recs[k + 3] >> 10}: {strings[recs[k + 2]].strip()}"
        return out

    def _decode_func_info(self) -> list["FuncInfo"]:
        from pybpf.btf.reader import FuncInfo

        recs = self._fi_raw
        if recs is None:
            return list(self._func_info or [])
        return [FuncInfo(8 * recs[k], recs[k + 1]) for k in range(0, len(recs), 2)]

    def _decode_line_info(self) -> list["LineInfo"]:
        from pybpf.btf.reader import LineInfo

        recs = self._li_raw
        if recs is None:
            return list(self._line_info or [])
        strings = self._strings
        return [LineInfo(8 * recs[k], strings[recs[k + 1]], strings[recs[k + 2]], recs[k + 3] >> 10,
                         recs[k + 3] & 0x3FF) for k in range(0, len(recs), 4)]

    def _kernel_ext(self) -> tuple[bytes | None, bytes | None] | None:
        """(func_info, line_info) in the kernel's layout from the raw records (None: decoded)."""
        if self._fi_raw is None or self._li_raw is None:
            return None
        cached = self._kernel_records
        if cached is None:
            cached = self._kernel_records = (self._fi_raw.tobytes() or None, self._li_raw.tobytes() or None)
        return cached

    def set_attach_target(self, program: Any, function: str | None = None) -> None:
        """Choose what this program attaches to, before :meth:`ObjectSpec.load`.

        For a freplace program (``SEC("freplace/func")``, BPF_PROG_TYPE_EXT,
        Linux 5.6), ``program`` is the loaded BPF program (a
        :class:`pybpf.Program` or its fd) whose global function ``function``
        it replaces; ``function`` defaults to the name after ``freplace/``.
        The loader finds the function's BTF id in ``program``'s BTF.  For an
        fentry/fexit program, ``program`` attaches it to a function of a BPF
        program the same way, and ``program=None`` with ``function`` names a
        kernel function instead of the section's.  Like libbpf's
        ``bpf_program__set_attach_target``.

        >>> spec.programs["new_verdict"].set_attach_target(target_prog, "verdict")   # doctest: +SKIP
        """
        kinds = (ProgType.EXT, ProgType.TRACING, ProgType.LSM)
        if self.type not in kinds:
            kind = self.type.name if isinstance(self.type, ProgType) else str(self.type)
            raise ObjectError(f"program '{self.name}': set_attach_target() is for freplace, fentry/fexit/fmod_ret "
                              f"and lsm programs, not {kind} programs (section '{self.section}')")
        if program is None and not function:
            raise ObjectError(f"program '{self.name}': set_attach_target() needs a target program, "
                              "a function name, or both")
        if program is not None and self.type == ProgType.LSM:
            raise ObjectError(f"program '{self.name}': lsm programs attach to kernel hooks, not to BPF programs")
        if function is not None and not isinstance(function, str):
            raise TypeError(f"set_attach_target(): function must be a str, not {type(function).__name__}")
        self.attach_program = program
        if function:
            self.attach_target = function

    @property
    def section_info(self) -> "SectionInfo | None":
        """What the section name says (kind, target, retprobe...), see :mod:`pybpf.object.sections`."""
        from pybpf.object.sections import parse_section

        return parse_section(self.section.lstrip("?"))

    def _key(self) -> tuple:
        func_info = self._func_info if self._func_info is not None else self._decode_func_info()
        line_info = self._line_info if self._line_info is not None else self._decode_line_info()
        return (self.name, self.section, int(self.type), self.attach_type, self.attach_target,
                self.sleepable, self.flags, self.license, self.kern_version, self.autoload,
                [(i.code, i.dst, i.src, i.off, i.imm, i.reference) for i in self._instruction_list()],
                list(func_info), list(line_info), list(self.core_relos))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProgramSpec):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        kind = self.type.name if isinstance(self.type, ProgType) else str(self.type)
        count = len(self._insns) if self._insns is not None else len(self._code or b"") // 8
        return f"<ProgramSpec {self.name!r} section={self.section!r} type={kind} insns={count}>"


#: The sections of struct_ops variables, and whether each registers through a BPF link.
STRUCT_OPS_SECTIONS = {".struct_ops": False, ".struct_ops.link": True}


class StructOpsSpec(Record):
    """The value of a struct_ops map: a kernel struct of function pointers filled with programs.

    ``SEC(".struct_ops")`` / ``SEC(".struct_ops.link")`` variables (libbpf's
    convention) such as ``struct tcp_congestion_ops cc = {.ssthresh = (void
    *)prog, .name = "x"}``.  ``type`` is the struct in the *object's* BTF (its
    name, less any ``___flavor``, names the kernel struct); ``data`` its
    bytes in the object's layout (data members such as ``name``; function
    pointers are zero); ``programs`` maps a function-pointer member to the
    name of the ``SEC("struct_ops/...")`` program that implements it (from
    the section's relocations).  ``link`` is True for ``.struct_ops.link``
    (registered through a BPF link, Linux 6.4) and False for ``.struct_ops``
    (registered by the map update itself).  The loader translates ``data``
    to the kernel's layout by member name (:mod:`pybpf.object.struct_ops`).
    """

    __slots__ = ("type", "data", "programs", "link")

    def __init__(self, type: Type, data: bytes, programs: dict[str, str] | None = None, link: bool = False) -> None:
        self.type = type
        self.data = data
        self.programs = {} if programs is None else programs
        self.link = link

    @property
    def type_name(self) -> str:
        return self.type.name

    def _member(self, name: str) -> Any:
        from pybpf.btf.types import Composite
        from pybpf.btf.typeinfo import resolve

        t = resolve(self.type)
        m = t.member(name) if isinstance(t, Composite) else None
        if m is None:
            known = ", ".join(x.name for x in getattr(t, "members", ())) or "none"
            raise ObjectError(f"struct {self.type.name}: no member '{name}' (members: {known})")
        return m

    def _is_func_pointer(self, member: Any) -> bool:
        from pybpf.btf.types import FuncProto, Pointer
        from pybpf.btf.typeinfo import resolve

        t = resolve(member.type)
        return isinstance(t, Pointer) and isinstance(resolve(t.target), FuncProto)

    def get(self, member: str) -> Any:
        """A member's value: the program name of a function pointer (None if unset), else
        the data member decoded through BTF (``name`` reads as bytes)."""
        m = self._member(member)
        if self._is_func_pointer(m):
            return self.programs.get(member)
        from pybpf.btf.codec import codec_for
        from pybpf.btf.typeinfo import sizeof

        size = sizeof(m.type)
        raw = self.data[m.offset:m.offset + size]
        if m.bitfield_size:
            raise ObjectError(f"struct {self.type.name}: member '{member}' is a bitfield")
        try:
            return codec_for(m.type).decode(raw)
        except (BPFError, TypeError, ValueError):
            return bytes(raw)

    def set(self, member: str, value: Any) -> None:
        """Change a member before load: a program name (or None) for a function pointer,
        else a value the member's BTF type encodes (bytes for ``char name[16]``)."""
        m = self._member(member)
        if self._is_func_pointer(m):
            if value is not None and not isinstance(value, str):
                raise ObjectError(f"struct {self.type.name}: member '{member}' is a function pointer: give the "
                                  f"name of a struct_ops program, not {type(value).__name__}")
            if value is None:
                self.programs.pop(member, None)
            else:
                self.programs[member] = value
            return
        if m.bitfield_size:
            raise ObjectError(f"struct {self.type.name}: member '{member}' is a bitfield")
        from pybpf.btf.codec import codec_for
        from pybpf.btf.typeinfo import sizeof

        size = sizeof(m.type)
        try:
            raw = codec_for(m.type).encode(value)
        except (BPFError, TypeError, ValueError, OverflowError) as exc:
            raise ObjectError(f"struct {self.type.name}: member '{member}': {exc}") from None
        if len(raw) != size:
            raise ObjectError(f"struct {self.type.name}: member '{member}': {len(raw)} bytes for a {size}-byte member")
        self.data = self.data[:m.offset] + raw + self.data[m.offset + size:]

    def copy(self) -> "StructOpsSpec":
        return StructOpsSpec(self.type, self.data, dict(self.programs), self.link)

    def _key(self) -> tuple:
        return (_type_id(self.type), self.data, sorted(self.programs.items()), self.link)


class MapSpec(Record):
    """A map to create.

    ``key_type``/``value_type`` are BTF types (None without BTF) that make
    the loaded map typed.  ``inner`` is the template of the maps stored in a
    map-in-map.  ``contents`` are initial entries ``(key, value)``; for
    prog arrays and map-in-maps the value is the *name* of a program or map
    of the same object (from ``.values = { ... }`` in C).  ``data`` is the
    initial value of a global data section (``.data``, ``.rodata``, ``.bss``,
    ``.kconfig``); ``freeze`` makes the map read-only for user space once
    written.  ``kernel_name`` is the name given to the kernel (libbpf's,
    e.g. ``"minimal.rodata"``); ``pinning`` is 1 (LIBBPF_PIN_BY_NAME) to
    pin the map under the load's ``pin_path``.  ``struct_ops`` describes the
    value of a STRUCT_OPS map (:class:`StructOpsSpec`), None for other maps.
    """

    __slots__ = ("name", "type", "key_size", "value_size", "max_entries", "flags", "numa_node", "map_extra",
                 "pinning", "key_type", "value_type", "inner", "contents", "data", "freeze", "section",
                 "kernel_name", "offset", "struct_ops", "_codec_cache")

    def __init__(self, name: str, type: MapType | int, key_size: int = 0, value_size: int = 0,
                 max_entries: int = 0, flags: int = 0, numa_node: int | None = None, map_extra: int = 0,
                 pinning: int = 0, key_type: Type | None = None, value_type: Type | None = None,
                 inner: MapSpec | None = None, contents: list[tuple[Any, Any]] | None = None,
                 data: bytes | None = None, freeze: bool = False, section: str = "", kernel_name: str = "",
                 offset: int = 0, struct_ops: StructOpsSpec | None = None) -> None:
        self.name = name
        self.type = type
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.flags = flags
        self.numa_node = numa_node
        self.map_extra = map_extra
        self.pinning = pinning
        self.key_type = key_type
        self.value_type = value_type
        self.inner = inner
        self.contents = [] if contents is None else contents
        self.data = data
        self.freeze = freeze
        self.section = section
        self.kernel_name = kernel_name
        self.offset = offset          # byte offset of the definition in its section (relocations)
        self.struct_ops = struct_ops
        self._codec_cache: tuple | None = None   # the loader's typed codecs, by key and value type

    @property
    def is_global_data(self) -> bool:
        return self.data is not None

    def _key(self) -> tuple:
        return (self.name, int(self.type), self.key_size, self.value_size, self.max_entries, self.flags,
                self.numa_node, self.map_extra, self.pinning, _type_id(self.key_type),
                _type_id(self.value_type), self.inner._key() if self.inner is not None else None,
                list(self.contents), self.data, self.freeze, self.section, self.kernel_name, self.offset,
                self.struct_ops._key() if self.struct_ops is not None else None)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MapSpec):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]

    def copy(self) -> "MapSpec":
        return MapSpec(self.name, self.type, self.key_size, self.value_size, self.max_entries, self.flags,
                       self.numa_node, self.map_extra, self.pinning, self.key_type, self.value_type,
                       self.inner.copy() if self.inner is not None else None, list(self.contents),
                       self.data, self.freeze, self.section, self.kernel_name, self.offset,
                       self.struct_ops.copy() if self.struct_ops is not None else None)

    def __repr__(self) -> str:
        kind = self.type.name if isinstance(self.type, MapType) else str(self.type)
        return (f"<MapSpec {self.name!r} {kind} key_size={self.key_size} value_size={self.value_size} "
                f"max_entries={self.max_entries}>")


class VariableSpec:
    """A global variable: ``size`` bytes at ``offset`` of section ``section``'s map data.

    ``value`` decodes (and assigning it encodes) through the BTF type: ints
    as int, structs as records, ``char[]`` as bytes; raw bytes without BTF.
    Assigning before :meth:`ObjectSpec.load` changes what the map starts
    with, which for ``const volatile`` variables in ``.rodata`` lets the
    verifier prune code that the value disables.
    """

    __slots__ = ("name", "section", "offset", "size", "type", "_map", "_codec_cache")

    def __init__(self, name: str, section: str, offset: int, size: int, type: "Type | None",
                 map_spec: MapSpec) -> None:
        self.name = name
        self.section = section
        self.offset = offset
        self.size = size
        self.type = type
        self._map = map_spec
        self._codec_cache: tuple[Any, int, Any] | None = None

    @property
    def map(self) -> MapSpec:
        """The MapSpec whose data holds this variable."""
        return self._map

    @property
    def codec(self) -> Any:
        """The BTF codec of the variable's type (None without BTF)."""
        if self.type is None:
            return None
        cached = self._codec_cache
        if cached is not None and cached[0] is self.type and cached[1] == self.size:
            return cached[2]
        from pybpf.btf.codec import codec_for

        try:
            codec = codec_for(self.type)
        except (ObjectError, TypeError, ValueError):
            codec = None
        if codec is not None and codec.size != self.size:
            codec = None
        self._codec_cache = (self.type, self.size, codec)
        return codec

    @property
    def value(self) -> Any:
        data = self._map.data or b""
        codec = self.codec
        raw = data[self.offset:self.offset + self.size]
        if codec is None:
            return bytes(raw)
        try:
            return codec.decode(raw)
        except (ValueError, TypeError) as exc:
            raise BPFError(f"variable '{self.name}': {exc}") from None

    @value.setter
    def value(self, value: Any) -> None:
        self._map.data = encode_variable(self, bytes(self._map.data or bytes(self._map.value_size)), value)

    def _key(self) -> tuple:
        return (self.name, self.section, self.offset, self.size, _type_id(self.type))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VariableSpec):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<VariableSpec {self.name!r} section={self.section!r} offset={self.offset} size={self.size}>"


def encode_variable(var: VariableSpec, data: bytes, value: Any) -> bytes:
    """``data`` with ``var`` set to ``value`` (BPFError naming the variable when it does not fit)."""
    codec = var.codec
    if codec is None:
        if not isinstance(value, (bytes, bytearray, memoryview)) or len(value) != var.size:
            raise BPFError(f"variable '{var.name}': without BTF the value must be {var.size} raw bytes, "
                           f"got {type(value).__name__}")
        raw = bytes(value)
    else:
        try:
            raw = codec.encode(value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise BPFError(f"variable '{var.name}': {exc}") from None
    if var.offset + var.size > len(data):
        raise BPFError(f"variable '{var.name}': offset {var.offset} + size {var.size} is past the end of "
                       f"section {var.section!r} ({len(data)} bytes)")
    return data[:var.offset] + raw + data[var.offset + var.size:]


class ExternSpec(Record):
    """An ``extern`` the loader resolves: ``kind`` is "kconfig", "ksym" or "kfunc".

    kconfig: ``offset``/``size`` in the ``.kconfig`` map and ``kcfg_type``
    (bool, char, tristate, int, char_arr); ksym: ``typed`` (False for
    ``extern const void x __ksym``, resolved through /proc/kallsyms).
    ``weak`` externs that cannot be resolved become 0.
    """

    __slots__ = ("name", "kind", "weak", "btf_id", "kcfg_type", "offset", "size", "align", "signed", "typed")

    def __init__(self, name: str, kind: str, weak: bool = False, btf_id: int = 0, kcfg_type: str = "",
                 offset: int = 0, size: int = 0, align: int = 1, signed: bool = False, typed: bool = True) -> None:
        self.name = name
        self.kind = kind
        self.weak = weak
        self.btf_id = btf_id          # VAR or FUNC in the object's BTF
        self.kcfg_type = kcfg_type
        self.offset = offset
        self.size = size
        self.align = align
        self.signed = signed
        self.typed = typed
