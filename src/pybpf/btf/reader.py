"""Parse BTF blobs (.BTF, /sys/kernel/btf/*) and .BTF.ext sections.

:meth:`Spec.parse` scans the type section once, building an offset index and
a name index; a type is decoded the first time it is asked for and then
cached, and references between types resolve lazily (see
:mod:`pybpf.btf.types`).  With ``lazy=False`` (the default) every type is
decoded and checked at parse time, so malformed input fails there; the
kernel cache parses vmlinux with ``lazy=True``, which costs about one pass
over the type section.

Split BTF (kernel module BTF) is parsed with ``base=``: its type ids and
string offsets continue after the base's.

Every malformed input raises :class:`~pybpf.errors.ObjectError` naming what
is wrong and the byte offset in the blob.

Example::

    from pybpf.btf.reader import Spec, ExtInfo
    from pybpf.btf.types import BTFKind, type_name

    spec = Spec.parse(open("/sys/kernel/btf/vmlinux", "rb").read(), lazy=True)
    task = spec.find("task_struct", BTFKind.STRUCT)
    pid = task.member("pid")
    print(pid.offset, type_name(pid.type))          # 1264 pid_t (on 6.18 x86-64)

    # an object file's .BTF and .BTF.ext sections
    prog = Spec.parse(btf_bytes)
    ext = ExtInfo.parse(btf_ext_bytes, prog)
    for rec in ext.core_relos["raw_tp/sys_enter"]:
        print(rec.insn_off // 8, rec.kind.name, rec.access_str)
"""

from __future__ import annotations

import enum
import struct
import sys
import threading
from array import array
from typing import Iterator, NamedTuple, Sequence, overload

from pybpf.errors import ObjectError
from pybpf.btf.types import (
    VOID, Array, BTFKind, Const, Datasec, DeclTag, Enum, Enum64, Float, Func, FuncLinkage,
    FuncProto, Fwd, Int, IntEncoding, Member, Param, Pointer, Restrict, Struct, Type,
    Typedef, TypeTag, Union, Var, VarLinkage, VarSecinfo, Volatile, essential_name,
)

__all__ = ["Spec", "StringTable", "ExtInfo", "FuncInfo", "LineInfo", "CoreRelo", "CoreRelocKind", "BTF_MAGIC"]

BTF_MAGIC = 0xEB9F
_HEADER_LEN = 24
_EXT_HEADER_LEN = 24          # without the CO-RE part (added in Linux 5.5 / LLVM 10)
_EXT_HEADER_LEN_CORE = 32

# Length of each type record in 32-bit words: 3 for struct btf_type, plus
# _FIXED extra words, plus _PER words for each of the vlen items.  None marks
# kinds that cannot appear (UNKNOWN and everything above ENUM64).
_FIXED: tuple = (None, 4, 3, 6, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 3, 3, 4, 3, 3) + (None,) * 12
_PER: tuple = (None, 0, 0, 0, 3, 3, 2, 0, 0, 0, 0, 0, 0, 2, 0, 3, 0, 0, 0, 3) + (None,) * 12

_U32 = "I" if array("I").itemsize == 4 else "L"
_INT_SIZES = (1, 2, 4, 8, 16)
_ENUM_SIZES = (1, 2, 4, 8)
_FLOAT_SIZES = (2, 4, 8, 12, 16)
_QUALIFIERS = {BTFKind.VOLATILE: Volatile, BTFKind.CONST: Const, BTFKind.RESTRICT: Restrict}


def _s32(v: int) -> int:
    return v - 0x100000000 if v & 0x80000000 else v


def _header(data: bytes, what: str, min_len: int) -> tuple[str, int]:
    """The byte order ("<" or ">") and header length of a BTF or .BTF.ext blob (ObjectError if bad)."""
    if len(data) < 8:
        raise ObjectError(f"{what}: truncated header ({len(data)} bytes) at byte 0")
    if data[0] == 0x9F and data[1] == 0xEB:
        order = "<"
    elif data[0] == 0xEB and data[1] == 0x9F:
        order = ">"
    else:
        raise ObjectError(f"{what}: bad magic {data[:2].hex()} at byte 0 (want {BTF_MAGIC:#x})")
    if data[2] != 1:
        raise ObjectError(f"{what}: unsupported version {data[2]} at byte 2")
    hdr_len = struct.unpack_from(order + "I", data, 4)[0]
    if hdr_len < min_len or len(data) < min_len:
        raise ObjectError(f"{what}: truncated header (hdr_len {hdr_len}, {len(data)} bytes) at byte 4")
    if hdr_len > len(data):
        raise ObjectError(f"{what}: header length {hdr_len} exceeds the {len(data)}-byte blob at byte 4")
    return order, hdr_len


# ---------------------------------------------------------------------- strings


class StringTable:
    """A BTF string section: NUL-terminated strings addressed by byte offset.

    ``table[off]`` reads a string (ObjectError when ``off`` is out of range);
    :meth:`add` appends a string unless it is already present and returns its
    offset.  A split table (module BTF) continues the offsets of ``base``.
    Strings are decoded as UTF-8 with surrogateescape, so any bytes round-trip.

    >>> t = StringTable(b"\\0int\\0")
    >>> t[1], t.add("long"), t.add("int")
    ('int', 5, 1)
    """

    __slots__ = ("_data", "base", "start", "_cache", "_index")

    def __init__(self, data: bytes = b"\0", base: "StringTable | None" = None) -> None:
        self._data: bytes | bytearray = data
        self.base = base
        self.start = 0 if base is None else base.start + len(base)
        self._cache: dict[int, str] = {}
        self._index: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self._data)

    @property
    def data(self) -> bytes:
        """This table's own section bytes."""
        return bytes(self._data)

    def __getitem__(self, off: int) -> str:
        s = self._cache.get(off)
        if s is not None:
            return s
        local = off - self.start
        if local < 0:
            if self.base is None:
                raise ObjectError(f"string offset {off} out of range")
            return self.base[off]
        data = self._data
        end = data.find(0, local)
        if end < 0:
            if off == 0 and not data:
                return ""
            raise ObjectError(f"string offset {off} out of range (string section is {len(data)} bytes)")
        s = data[local:end].decode("utf-8", "surrogateescape")
        self._cache[off] = s
        return s

    def get(self, off: int) -> str:
        """The string at ``off`` (as ``table[off]``)."""
        return self[off]

    def offsets_of(self, s: str) -> list[int]:
        """Every offset (own and base) at which the string ``s`` can be read."""
        out = self.base.offsets_of(s) if self.base is not None else []
        if s:
            out.extend(self._find(s.encode("utf-8", "surrogateescape") + b"\0"))
        return out

    def prefix_offsets(self, prefix: str) -> list[int]:
        """Offsets of the strings that start with ``prefix`` (own and base)."""
        out = self.base.prefix_offsets(prefix) if self.base is not None else []
        out.extend(self._find(prefix.encode("utf-8", "surrogateescape")))
        return out

    def _find(self, needle: bytes) -> Iterator[int]:
        """Offsets of every occurrence of ``needle`` in this table's own bytes (callers filter)."""
        data = self._data
        pos = data.find(needle)
        while pos >= 0:
            yield self.start + pos
            pos = data.find(needle, pos + 1)

    def add(self, s: str) -> int:
        """The offset of ``s``, appending it if neither this table nor its base holds it."""
        if not s:
            return 0
        index = self._index
        if index is None:
            index = self._build_index()
        off = index.get(s)
        if off is None and self.base is not None:
            offs = self.base.offsets_of(s)
            off = offs[0] if offs else None
        if off is None:
            if not isinstance(self._data, bytearray):
                self._data = bytearray(self._data)
            if not self._data and self.base is None:
                self._data.append(0)
            off = self.start + len(self._data)
            self._data += s.encode("utf-8", "surrogateescape") + b"\0"
            index[s] = off
        return off

    def _build_index(self) -> dict[str, int]:
        index: dict[str, int] = {}
        pos = self.start
        for raw in bytes(self._data).split(b"\0"):
            if raw:
                index.setdefault(raw.decode("utf-8", "surrogateescape"), pos)
            pos += len(raw) + 1
        self._index = index
        return index

    def copy(self) -> "StringTable":
        """An independent copy (adding to it leaves this table alone)."""
        return StringTable(bytes(self._data), self.base)



class _TypeList(Sequence[Type]):
    """``spec.types``: a read-only list indexed by type id that decodes on access."""

    __slots__ = ("_spec",)

    def __init__(self, spec: "Spec") -> None:
        self._spec = spec

    def __len__(self) -> int:
        return self._spec._count

    @overload
    def __getitem__(self, i: int) -> Type: ...
    @overload
    def __getitem__(self, i: slice) -> list[Type]: ...

    def __getitem__(self, i):  # type: ignore[override]
        n = self._spec._count
        if isinstance(i, slice):
            return [self._spec.type_by_id(j) for j in range(*i.indices(n))]
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"type id {i} out of range ({n} types)")
        return self._spec.type_by_id(i)

    def __iter__(self) -> Iterator[Type]:
        get = self._spec.type_by_id
        for i in range(self._spec._count):
            yield get(i)


class Spec:
    """A parsed BTF blob.  Build it with :meth:`Spec.parse`.

    ``types`` is indexed by type id (0 is void); for split BTF the ids below
    ``first_id`` belong to ``base``.  ``strings`` is the string section.

    >>> from pybpf.btf.types import Int, IntEncoding
    >>> from pybpf.btf.writer import encode
    >>> spec = Spec.parse(encode([Int("int", 4, IntEncoding.SIGNED)]))
    >>> len(spec), spec.find("int").size
    (2, 4)
    """

    def __init__(self) -> None:
        raise TypeError("use Spec.parse(data)")

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview, base: "Spec | None" = None, *,
              lazy: bool = False) -> "Spec":
        """Parse a BTF blob; ``base`` for split BTF; ``lazy`` to decode types on demand."""
        self = object.__new__(cls)
        self._init(bytes(data), base)
        if not lazy:
            self.validate()
        return self

    def _init(self, data: bytes, base: "Spec | None") -> None:
        order, hdr_len = _header(data, "BTF", _HEADER_LEN)
        type_off, type_len, str_off, str_len = struct.unpack_from(order + "IIII", data, 8)
        body = len(data) - hdr_len
        if type_off + type_len > body:
            raise ObjectError(f"BTF: type section [{type_off}, +{type_len}) runs past the end "
                              f"({body} bytes after the header) at byte 8")
        if str_off + str_len > body:
            raise ObjectError(f"BTF: string section [{str_off}, +{str_len}) runs past the end "
                              f"({body} bytes after the header) at byte 16")
        if type_off % 4 or type_len % 4:
            raise ObjectError(f"BTF: type section offset {type_off} / length {type_len} "
                              f"not a multiple of 4 at byte 8")
        sstart = hdr_len + str_off
        sdata = data[sstart:sstart + str_len]
        if sdata and sdata[-1] != 0:
            raise ObjectError(f"BTF: string section does not end with NUL at byte {sstart + str_len - 1}")
        if sdata and base is None and sdata[0] != 0:
            raise ObjectError(f"BTF: string section does not start with NUL at byte {sstart}")

        self.base = base
        self.byteorder = "little" if order == "<" else "big"
        self.strings = StringTable(sdata, base.strings if base is not None else None)
        self.first_id = base._count if base is not None else 1
        self._type_start = hdr_len + type_off
        words = array(_U32, data[self._type_start:self._type_start + type_len])
        if (order == "<") != (sys.byteorder == "little"):
            words.byteswap()
        self._words = words
        self._lock = threading.Lock()
        self._scan()
        self._cache: list[Type | None] = [None] * len(self._offs)
        self.types = _TypeList(self)
        self._extra_index: dict[int, list[int]] | None = None

    def _scan(self) -> None:
        words = self._words
        n = len(words)
        offs: list[int] = []
        append = offs.append
        names: dict[int, int] = {}
        setdefault = names.setdefault
        extra: list[tuple[int, int]] = []
        fixed, per = _FIXED, _PER
        i = 0
        tid = self.first_id
        try:
            while i < n:
                append(i)
                info = words[i + 1]
                k = info >> 24 & 31
                nm = words[i]
                if nm and setdefault(nm, tid) != tid:
                    extra.append((nm, tid))
                i += fixed[k] + per[k] * (info & 0xFFFF)
                tid += 1
        except TypeError:
            k = words[offs[-1] + 1] >> 24 & 31
            raise ObjectError(f"BTF: type [{tid}] has unknown kind {k} at byte "
                              f"{self._type_start + 4 * offs[-1]}") from None
        except IndexError:
            i = n + 1
        if i != n:
            raise ObjectError(f"BTF: type [{self.first_id + len(offs) - 1}] is truncated at byte "
                              f"{self._type_start + 4 * offs[-1]} (type section ends at byte "
                              f"{self._type_start + 4 * n})")
        self._offs = offs
        self._names = names
        self._extra = extra
        self._count = self.first_id + len(offs)

    # ------------------------------------------------------------------ lookups

    def __len__(self) -> int:
        """Number of type ids, void and (for split BTF) the base's included."""
        return self._count

    def __repr__(self) -> str:
        split = f" split after {self.first_id - 1}" if self.base is not None else ""
        return f"<Spec {self._count} types{split}>"

    def type_by_id(self, tid: int) -> Type:
        """The type with id ``tid`` (0 is void); ObjectError if there is none."""
        local = tid - self.first_id
        if local < 0:
            if tid == 0:
                return VOID
            if self.base is not None and tid > 0:
                return self.base.type_by_id(tid)
            raise ObjectError(f"BTF: type id {tid} out of range")
        try:
            t = self._cache[local]
        except IndexError:
            raise ObjectError(f"BTF: type id {tid} out of range ({self._count} types)") from None
        if t is None:
            with self._lock:
                t = self._cache[local]
                if t is None:
                    t = self._decode(tid)
                    self._cache[local] = t
        return t

    def _ids_for_offset(self, off: int) -> list[int]:
        first = self._names.get(off)
        if first is None:
            return []
        if not self._extra:
            return [first]
        extra = self._extra_index
        if extra is None:
            extra = {}
            for nm, tid in self._extra:
                extra.setdefault(nm, []).append(tid)
            self._extra_index = extra
        return [first, *extra.get(off, ())]

    def _own_ids_by_name(self, name: str) -> list[int]:
        ids: list[int] = []
        for off in self.strings.offsets_of(name):
            ids.extend(self._ids_for_offset(off))
        ids.sort()
        return ids

    def types_by_name(self, name: str, *, include_base: bool = True) -> list[Type]:
        """Every type called ``name`` in id order (the base's first, unless ``include_base=False``)."""
        out = []
        if include_base and self.base is not None:
            out = self.base.types_by_name(name)
        out.extend(self.type_by_id(i) for i in self._own_ids_by_name(name))
        return out

    def types_by_essential_name(self, name: str, *, include_base: bool = True) -> list[Type]:
        """Types named ``name`` or ``name___flavor`` (CO-RE candidates), in id order."""
        out = []
        if include_base and self.base is not None:
            out = self.base.types_by_essential_name(name)
        ids = set(self._own_ids_by_name(name))
        for off in self.strings.prefix_offsets(name + "___"):
            for tid in self._ids_for_offset(off):
                if essential_name(self.type_by_id(tid).name) == name:
                    ids.add(tid)
        out.extend(self.type_by_id(i) for i in sorted(ids))
        return out

    def find(self, name: str, kind: BTFKind | type | None = None, *,
             include_base: bool = True) -> Type | None:
        """The first type called ``name`` (of ``kind``: a BTFKind or a model class), or None."""
        for t in self.types_by_name(name, include_base=include_base):
            if kind is None or (t.kind == kind if isinstance(kind, int) else isinstance(t, kind)):
                return t
        return None

    def raw_words(self) -> tuple[array, list[int]]:
        """The type section as u32 words (host order) and the word index of each own type.

        For loaders that fix records up before decoding them (an object's
        DATASEC sizes and offsets); :meth:`forget` a type decoded before.
        """
        return self._words, self._offs

    def forget(self, tid: int) -> None:
        """Drop the decoded type ``tid``: the next :meth:`type_by_id` decodes its words again."""
        local = tid - self.first_id
        if 0 <= local < len(self._cache):
            with self._lock:
                self._cache[local] = None

    def ids_by_kind(self, kind: int) -> list[int]:
        """The ids of this blob's own types of ``kind`` (a BTFKind), ascending; nothing is decoded."""
        w = self._words
        return [tid for tid, i in enumerate(self._offs, self.first_id) if w[i + 1] >> 24 & 31 == kind]

    def own_ids(self) -> range:
        """The ids of the types this blob defines (not the base's)."""
        return range(self.first_id, self._count)

    # ------------------------------------------------------------------ decoding

    def _where(self, tid: int) -> str:
        return f"BTF: type [{tid}] at byte {self._type_start + 4 * self._offs[tid - self.first_id]}"

    def _bad(self, tid: int, what: str) -> ObjectError:
        return ObjectError(f"{self._where(tid)}: {what}")

    def _decode(self, tid: int) -> Type:
        w = self._words
        i = self._offs[tid - self.first_id]
        info = w[i + 1]
        kind = info >> 24 & 31
        vlen = info & 0xFFFF
        kflag = info >> 31
        st = w[i + 2]
        ref = 0
        count = self._count
        strings = self.strings
        try:
            name = strings[w[i]]
            j = i + 3
            if kind == 1:
                v = w[j]
                enc, off, bits = v >> 24 & 0xF, v >> 16 & 0xFF, v & 0xFF
                if st not in _INT_SIZES or enc not in (0, 1, 2, 4) or off + bits > 8 * st or not bits:
                    raise self._bad(tid, f"invalid INT (size {st}, encoding {enc}, offset {off}, bits {bits})")
                t: Type = Int(name, st, IntEncoding(enc), bits, off)
            elif kind == 2:
                t = Pointer(st, name)
                ref = st
            elif kind == 3:
                t = Array(w[j], w[j + 1], w[j + 2])
                if w[j] >= count or w[j + 1] >= count:
                    raise self._bad(tid, f"array type {w[j]} / index type {w[j + 1]} out of range")
            elif kind == 4 or kind == 5:
                members = []
                for m in range(j, j + 3 * vlen, 3):
                    off = w[m + 2]
                    mem = Member(strings[w[m]], w[m + 1],
                                 off & 0xFFFFFF if kflag else off, off >> 24 if kflag else 0)
                    if w[m + 1] >= count:
                        raise self._bad(tid, f"member {mem.name!r} type id {w[m + 1]} out of range")
                    mem._spec = self
                    members.append(mem)
                t = (Struct if kind == 4 else Union)(name, st, members)
            elif kind == 6 or kind == 19:
                if st not in _ENUM_SIZES:
                    raise self._bad(tid, f"invalid enum size {st}")
                if kind == 6:
                    vals = [(strings[w[m]], _s32(w[m + 1]) if kflag else w[m + 1])
                            for m in range(j, j + 2 * vlen, 2)]
                    t = Enum(name, st, vals, bool(kflag))
                else:
                    vals = []
                    for m in range(j, j + 3 * vlen, 3):
                        v = w[m + 2] << 32 | w[m + 1]
                        if kflag and v >> 63:
                            v -= 1 << 64
                        vals.append((strings[w[m]], v))
                    t = Enum64(name, st, vals, bool(kflag))
            elif kind == 7:
                t = Fwd(name, bool(kflag))
            elif kind == 8:
                t = Typedef(name, st)
                ref = st
            elif kind in _QUALIFIERS:
                t = _QUALIFIERS[kind](st, name)
                ref = st
            elif kind == 12:
                if vlen > 2:
                    raise self._bad(tid, f"invalid FUNC linkage {vlen}")
                t = Func(name, st, FuncLinkage(vlen))
                ref = st
            elif kind == 13:
                params = []
                for m in range(j, j + 2 * vlen, 2):
                    p = Param(strings[w[m]], w[m + 1])
                    if w[m + 1] >= count:
                        raise self._bad(tid, f"parameter type id {w[m + 1]} out of range")
                    p._spec = self
                    params.append(p)
                t = FuncProto(st, params)
                ref = st
            elif kind == 14:
                if w[j] > 2:
                    raise self._bad(tid, f"invalid VAR linkage {w[j]}")
                t = Var(name, st, VarLinkage(w[j]))
                ref = st
            elif kind == 15:
                secinfos = []
                for m in range(j, j + 3 * vlen, 3):
                    vs = VarSecinfo(w[m], w[m + 1], w[m + 2])
                    if w[m] >= count:
                        raise self._bad(tid, f"variable type id {w[m]} out of range")
                    vs._spec = self
                    secinfos.append(vs)
                t = Datasec(name, st, secinfos)
            elif kind == 16:
                if st not in _FLOAT_SIZES:
                    raise self._bad(tid, f"invalid FLOAT size {st}")
                t = Float(name, st)
            elif kind == 17:
                t = DeclTag(name, st, _s32(w[j]), bool(kflag))
                ref = st
            elif kind == 18:
                t = TypeTag(st, name, bool(kflag))
                ref = st
            else:  # pragma: no cover - _scan rejects unknown kinds
                raise self._bad(tid, f"unknown kind {kind}")
        except ObjectError as err:
            if err.message.startswith("BTF: type ["):
                raise
            raise self._bad(tid, err.message) from None
        if ref >= count:
            raise self._bad(tid, f"{BTFKind(kind).name} refers to type id {ref}, out of range "
                            f"({count} types)")
        t.id = tid
        t._spec = self
        return t

    # ------------------------------------------------------------------ validation

    def validate(self) -> None:
        """Decode every type and reject reference cycles that do not pass through a pointer."""
        get = self.type_by_id
        for tid in self.own_ids():
            get(tid)
        # Iterative DFS over non-pointer edges: colour 1 = on the stack, 2 = done.
        colour: dict[int, int] = {}
        first = self.first_id
        for root in self.own_ids():
            if colour.get(root):
                continue
            stack = [(root, iter(self._strong_refs(root)))]
            colour[root] = 1
            while stack:
                tid, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    colour[tid] = 2
                    stack.pop()
                    continue
                if nxt < first:
                    continue        # void or a base type: the base was checked on its own
                c = colour.get(nxt)
                if c == 1:
                    raise self._bad(nxt, "reference cycle that does not pass through a pointer "
                                    f"(via type [{tid}])")
                if c is None:
                    colour[nxt] = 1
                    stack.append((nxt, iter(self._strong_refs(nxt))))

    def _strong_refs(self, tid: int) -> list[int]:
        t = self.type_by_id(tid)
        if isinstance(t, Pointer):
            return []
        return [r for r in t.ref_ids() if r is not None]


# ---------------------------------------------------------------------- .BTF.ext


class CoreRelocKind(enum.IntEnum):
    """``enum bpf_core_relo_kind`` (CO-RE relocation kinds).

    >>> CoreRelocKind(0).name
    'FIELD_BYTE_OFFSET'
    """

    FIELD_BYTE_OFFSET = 0
    FIELD_BYTE_SIZE = 1
    FIELD_EXISTS = 2
    FIELD_SIGNED = 3
    FIELD_LSHIFT_U64 = 4
    FIELD_RSHIFT_U64 = 5
    TYPE_ID_LOCAL = 6
    TYPE_ID_TARGET = 7
    TYPE_EXISTS = 8
    TYPE_SIZE = 9
    ENUMVAL_EXISTS = 10
    ENUMVAL_VALUE = 11
    TYPE_MATCHES = 12


class FuncInfo(NamedTuple):
    """``bpf_func_info``: the function (FUNC ``type_id``) starting at byte ``insn_off`` of its section.

    >>> FuncInfo(insn_off=0, type_id=5).insn_off // 8     # instruction index
    0
    """

    insn_off: int
    type_id: int


class LineInfo(NamedTuple):
    """``bpf_line_info``: source position of the instruction at byte ``insn_off``.

    >>> LineInfo(16, "prog.bpf.c", "return 0;", 12, 5).line_num
    12
    """

    insn_off: int
    file_name: str
    line_text: str
    line_num: int
    col: int


class CoreRelo(NamedTuple):
    """``bpf_core_relo``: instruction at byte ``insn_off`` needs ``kind`` for ``type_id``/``access_str``.

    >>> CoreRelo(8, 3, "0:1", CoreRelocKind.FIELD_BYTE_OFFSET).access_str
    '0:1'
    """

    insn_off: int
    type_id: int
    access_str: str
    kind: CoreRelocKind


class ExtInfo:
    """A parsed .BTF.ext section.

    ``func_info``, ``line_info`` and ``core_relos`` map an ELF section name
    ("tracepoint/syscalls/sys_enter_getpid", ".text") to its records.  Every
    ``insn_off`` is in **bytes** from the start of that section, as in the
    file (the kernel's BPF_PROG_LOAD wants instruction indexes: divide by 8).

    >>> ext = ExtInfo.parse(btf_ext_section, spec)          # doctest: +SKIP
    >>> [r.line_num for r in ext.line_info[".text"]][:3]    # doctest: +SKIP
    [10, 11, 13]
    """

    func_info: dict[str, list[FuncInfo]]
    line_info: dict[str, list[LineInfo]]
    core_relos: dict[str, list[CoreRelo]]

    def __init__(self, func_info: dict[str, list[FuncInfo]] | None = None,
                 line_info: dict[str, list[LineInfo]] | None = None,
                 core_relos: dict[str, list[CoreRelo]] | None = None) -> None:
        self.func_info = func_info or {}
        self.line_info = line_info or {}
        self.core_relos = core_relos or {}

    def __repr__(self) -> str:
        n = lambda d: sum(len(v) for v in d.values())  # noqa: E731
        return (f"<ExtInfo func_info={n(self.func_info)} line_info={n(self.line_info)} "
                f"core_relos={n(self.core_relos)}>")

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview, spec: Spec) -> "ExtInfo":
        """Parse .BTF.ext ``data`` whose strings and type ids refer to ``spec``."""
        data = bytes(data)
        order, hdr_len = _header(data, "BTF.ext", _EXT_HEADER_LEN)
        fi_off, fi_len, li_off, li_len = struct.unpack_from(order + "IIII", data, 8)
        cr_off = cr_len = 0
        if hdr_len >= _EXT_HEADER_LEN_CORE:
            cr_off, cr_len = struct.unpack_from(order + "II", data, 24)
        self = cls()
        reader = _ExtReader(data, order, hdr_len, spec)
        self.func_info = reader.section("func_info", fi_off, fi_len, 8, reader.func_info)
        self.line_info = reader.section("line_info", li_off, li_len, 16, reader.line_info)
        self.core_relos = reader.section("core_relo", cr_off, cr_len, 16, reader.core_relo)
        return self


class _ExtReader:
    def __init__(self, data: bytes, order: str, hdr_len: int, spec: Spec) -> None:
        self.data = data
        self.order = order
        self.hdr_len = hdr_len
        self.spec = spec
        self.u32 = struct.Struct(order + "I")
        self.rec4 = struct.Struct(order + "IIII")

    def string(self, off: int, at: int, what: str) -> str:
        try:
            return self.spec.strings[off]
        except ObjectError:
            raise ObjectError(f"BTF.ext: {what} string offset {off} out of range at byte {at}") from None

    def type_id(self, tid: int, at: int, what: str) -> int:
        if not 0 <= tid < len(self.spec):
            raise ObjectError(f"BTF.ext: {what} type id {tid} out of range at byte {at}")
        return tid

    def func_info(self, at: int) -> FuncInfo:
        insn_off, tid = struct.unpack_from(self.order + "II", self.data, at)
        return FuncInfo(insn_off, self.type_id(tid, at + 4, "func_info"))

    def line_info(self, at: int) -> LineInfo:
        insn_off, file_off, line_off, line_col = self.rec4.unpack_from(self.data, at)
        return LineInfo(insn_off, self.string(file_off, at + 4, "line_info file name"),
                        self.string(line_off, at + 8, "line_info line"),
                        line_col >> 10, line_col & 0x3FF)

    def core_relo(self, at: int) -> CoreRelo:
        insn_off, tid, access_off, kind = self.rec4.unpack_from(self.data, at)
        try:
            k = CoreRelocKind(kind)
        except ValueError:
            raise ObjectError(f"BTF.ext: unknown CO-RE relocation kind {kind} at byte {at + 12}") from None
        return CoreRelo(insn_off, self.type_id(tid, at + 4, "core_relo"),
                        self.string(access_off, at + 8, "core_relo access"), k)

    def section(self, what: str, off: int, length: int, min_rec: int, read) -> dict:
        out: dict[str, list] = {}
        if length == 0:
            return out
        start = self.hdr_len + off
        end = start + length
        if end > len(self.data):
            raise ObjectError(f"BTF.ext: {what} [{off}, +{length}) runs past the end of the "
                              f"{len(self.data)}-byte section at byte {self.hdr_len}")
        if length < 4:
            raise ObjectError(f"BTF.ext: {what} truncated at byte {start}")
        rec_size = self.u32.unpack_from(self.data, start)[0]
        if rec_size < min_rec or rec_size % 4:
            raise ObjectError(f"BTF.ext: {what} record size {rec_size} invalid at byte {start}")
        pos = start + 4
        while pos < end:
            if pos + 8 > end:
                raise ObjectError(f"BTF.ext: {what} section header truncated at byte {pos}")
            name_off, num = struct.unpack_from(self.order + "II", self.data, pos)
            name = self.string(name_off, pos, f"{what} section name")
            recs_end = pos + 8 + num * rec_size
            if recs_end > end:
                raise ObjectError(f"BTF.ext: {what} of section {name!r}: {num} records of "
                                  f"{rec_size} bytes run past the end at byte {pos + 4}")
            out.setdefault(name, []).extend(read(at) for at in range(pos + 8, recs_end, rec_size))
            pos = recs_end
        return out
