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

.BTF.ext sections are parsed by :mod:`pybpf.btf.ext` (re-exported here).

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

from array import array
from collections.abc import Sequence
from itertools import compress

from pybpf.errors import ObjectError
from pybpf.btf.ext import CoreRelo, CoreRelocKind, ExtInfo, FuncInfo, LineInfo
from pybpf.btf.layout import BTF_MAGIC, U32, kinds_of, read_header, record_len, scan, type_words
from pybpf.btf.names import ScanIndex, SortedIndex
from pybpf.btf.types import (
    VOID, Array, BTFKind, Const, Datasec, DeclTag, Enum, Enum64, Float, Func, FuncLinkage, FuncProto, Fwd, Int,
    IntEncoding, Member, Param, Pointer, Restrict, Struct, Type, Typedef, TypeTag, Union, Var, VarLinkage,
    VarSecinfo, Volatile,
)
from pybpf.btf.typeinfo import essential_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator

__all__ = ["Spec", "StringTable", "ExtInfo", "FuncInfo", "LineInfo", "CoreRelo", "CoreRelocKind", "BTF_MAGIC"]

_INT_SIZES = (1, 2, 4, 8, 16)
# The enum members by value, looked up without an enum call per decoded type.
_INT_ENCODINGS = {int(e): IntEncoding(e) for e in (0, 1, 2, 4)}
_FUNC_LINKAGES = tuple(FuncLinkage)
_VAR_LINKAGES = tuple(VarLinkage)
_ENUM_SIZES = (1, 2, 4, 8)
_FLOAT_SIZES = (2, 4, 8, 12, 16)


# For each kind, the byte translation table that keeps only that kind's byte nonzero.
_ONLY = tuple(bytes(int(b == k) for b in range(256)) for k in range(32))


def _s32(v: int) -> int:
    return v - 0x100000000 if v & 0x80000000 else v


# ---------------------------------------------------------------------- strings


class StringTable(dict):
    """A BTF string section: NUL-terminated strings addressed by byte offset.

    ``table[off]`` reads a string (ObjectError when ``off`` is out of range);
    :meth:`add` appends a string unless it is already present and returns its
    offset.  A split table (module BTF) continues the offsets of ``base``.
    Strings are decoded as UTF-8 with surrogateescape, so any bytes round-trip.

    The table is the dict of the strings decoded so far, by offset: reading
    one decoded already is a plain dict lookup.  It compares and hashes by
    identity, as any object.

    >>> t = StringTable(b"\\0int\\0")
    >>> t[1], t.add("long"), t.add("int")
    ('int', 5, 1)
    """

    __slots__ = ("_data", "base", "start", "_index")
    __eq__, __ne__, __hash__, __repr__ = object.__eq__, object.__ne__, object.__hash__, object.__repr__

    def __init__(self, data: bytes = b"\0", base: "StringTable | None" = None) -> None:
        self._data: bytes | bytearray = data
        self.base = base
        self.start = 0 if base is None else base.start + len(base)
        self._index: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self._data)

    @property
    def data(self) -> bytes:
        """This table's own section bytes."""
        return bytes(self._data)

    def __missing__(self, off: int) -> str:
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
        s = self[off] = data[local:end].decode("utf-8", "surrogateescape")
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



class _Decoded(dict):
    """A spec's decoded types by id; a missing one is decoded (``Spec._decode``) when first asked for."""

    __slots__ = ("_decode",)

    def __init__(self, decode: "Callable[[int], Type]", known: dict[int, Type]) -> None:
        super().__init__(known)
        self._decode = decode

    def __missing__(self, tid: int) -> Type:
        return self._decode(tid)


class _TypeList(Sequence[Type]):
    """``spec.types``: a read-only list indexed by type id that decodes on access."""

    __slots__ = ("_spec",)

    def __init__(self, spec: "Spec") -> None:
        self._spec = spec

    def __len__(self) -> int:
        return self._spec._count

    def __getitem__(self, i: int | slice) -> Type | list[Type]:  # type: ignore[override]
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
        self._init(bytes(data) if isinstance(data, (bytearray, memoryview)) else data, base)
        self._set_index(scan(self._words, self.first_id, self._type_start), ScanIndex(self))
        if not lazy:
            self.validate()
        return self

    @classmethod
    def from_index(cls, data: bytes, offs: array, sorted_ids: array) -> "Spec":
        """A lazy spec of ``data`` with the index :meth:`index` gave for it before, without a scan.

        The index is checked against the blob (ObjectError if it does not fit);
        a name lookup only returns types whose name it read from the blob.
        """
        self = object.__new__(cls)
        self._init(data, None)
        n = len(self._words)
        last = offs[-1] if offs else 0
        if not offs or offs[0] != 0 or last >= n or sorted_ids and (
                min(sorted_ids) < 1 or max(sorted_ids) > len(offs)):
            raise ObjectError("BTF: the index does not fit the blob")
        info = self._words[last + 1]
        if record_len(info) != n - last:
            raise ObjectError("BTF: the index does not fit the blob (last record)")
        self._set_index(offs, SortedIndex(self, sorted_ids))
        return self

    def index(self) -> tuple[array, array]:
        """``(offsets, sorted name ids)`` for :meth:`from_index` (the kernel BTF cache keeps them)."""
        names = self._names
        sorted_ids = names.sorted_ids if isinstance(names, SortedIndex) else SortedIndex.build(self)
        return array(U32, self._offs), sorted_ids

    def _init(self, data, base: "Spec | None") -> None:
        hdr = read_header(data)
        sstart = hdr.str_start
        sdata = data[sstart:sstart + hdr.str_len]
        if sdata and sdata[-1] != 0:
            raise ObjectError(f"BTF: string section does not end with NUL at byte {sstart + hdr.str_len - 1}")
        if sdata and base is None and sdata[0] != 0:
            raise ObjectError(f"BTF: string section does not start with NUL at byte {sstart}")

        self.base = base
        self.byteorder = "little" if hdr.order == "<" else "big"
        self.strings = StringTable(sdata, base.strings if base is not None else None)
        self.first_id = base._count if base is not None else 1
        self._type_start = hdr.type_start
        self._header = hdr   # (the object loader reads the string section of the same blob with it)
        self._words = type_words(data, hdr)
        self.types = _TypeList(self)

    def _set_index(self, offs: list[int] | array, names: ScanIndex | SortedIndex) -> None:
        self._offs = offs
        self._names = names
        self._count = self.first_id + len(offs)
        # Decoded types by id (and void, unless the base's type_by_id gives it).
        self._cache = _Decoded(self._decode, {} if self.base is not None else {0: VOID})
        self._kinds: bytes | None = None

    # ------------------------------------------------------------------ lookups

    def __len__(self) -> int:
        """Number of type ids, void and (for split BTF) the base's included."""
        return self._count

    def __repr__(self) -> str:
        split = f" split after {self.first_id - 1}" if self.base is not None else ""
        return f"<Spec {self._count} types{split}>"

    def type_by_id(self, tid: int) -> Type:
        """The type with id ``tid`` (0 is void); ObjectError if there is none."""
        return self._cache[tid]

    def types_by_name(self, name: str, *, include_base: bool = True) -> list[Type]:
        """Every type called ``name`` in id order (the base's first, unless ``include_base=False``)."""
        out = []
        if include_base and self.base is not None:
            out = self.base.types_by_name(name)
        out.extend(self.type_by_id(i) for i in self._names.ids(name))
        return out

    def types_by_essential_name(self, name: str, *, include_base: bool = True) -> list[Type]:
        """Types named ``name`` or ``name___flavor`` (CO-RE candidates), in id order."""
        out = []
        if include_base and self.base is not None:
            out = self.base.types_by_essential_name(name)
        ids = set(self._names.ids(name))
        for tid in self._names.prefixed(name + "___"):
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

    def raw_words(self) -> tuple[array, list[int] | array]:
        """The type section as u32 words (host order) and the word index of each own type.

        For loaders that fix records up before decoding them (an object's
        DATASEC sizes and offsets); :meth:`forget` a type decoded before.
        """
        return self._words, self._offs

    def forget(self, tid: int) -> None:
        """Drop the decoded type ``tid``: the next :meth:`type_by_id` decodes its words again."""
        if tid:   # (void stays; the base's types are in the base's cache)
            self._cache.pop(tid, None)

    def ids_by_kind(self, kind: int) -> list[int]:
        """The ids of this blob's own types of ``kind`` (a BTFKind), ascending; nothing is decoded."""
        kinds, first = self.kinds(), self.first_id
        lo = kinds.find(kind)
        if lo < 0 or kinds.find(kind, lo + 1) < 0:   # (none or one, as most kinds of most blobs)
            return [] if lo < 0 else [first + lo]
        hi = kinds.rfind(kind) + 1
        # The ids from the first to the last of the kind whose byte is that kind (its translation
        # is nonzero), without a Python step per type.
        return list(compress(range(first + lo, first + hi), kinds[lo:hi].translate(_ONLY[kind])))

    def kinds(self) -> bytes:
        """The kind of each own type, in id order from ``first_id`` (read once, on first use)."""
        kinds = self._kinds
        if kinds is None:
            kinds = self._kinds = kinds_of(self._words, self._offs)
        return kinds

    def own_ids(self) -> range:
        """The ids of the types this blob defines (not the base's)."""
        return range(self.first_id, self._count)

    # ------------------------------------------------------------------ decoding

    def _where(self, tid: int) -> str:
        return f"BTF: type [{tid}] at byte {self._type_start + 4 * self._offs[tid - self.first_id]}"

    def _bad(self, tid: int, what: str) -> ObjectError:
        return ObjectError(f"{self._where(tid)}: {what}")

    def _decode(self, tid: int) -> Type:
        """Decode type ``tid`` into the cache (a base's type from the base; ObjectError if there is none)."""
        if not self.first_id <= tid < self._count:
            if self.base is not None and 0 <= tid < self.first_id:
                return self.base.type_by_id(tid)
            if tid < self.first_id:
                raise ObjectError(f"BTF: type id {tid} out of range")
            raise ObjectError(f"BTF: type id {tid} out of range ({self._count} types)")
        w = self._words
        i = self._offs[tid - self.first_id]
        try:
            t, ref = _DECODERS[w[i + 1] >> 24 & 31](self, tid, w, i)
        except ObjectError as err:
            if err.message.startswith("BTF: type ["):
                raise
            raise self._bad(tid, err.message) from None
        if ref >= self._count:
            raise self._bad(tid, f"{BTFKind(w[i + 1] >> 24 & 31).name} refers to type id {ref}, out of range "
                            f"({self._count} types)")
        t.id = tid
        t._spec = self
        # Without a lock: two threads may both decode a type, but setdefault keeps the first for both.
        return self._cache.setdefault(tid, t)

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


# ---------------------------------------------------------------------- per-kind decoders
#
# Each decoder reads one record (words in the order of pybpf.btf.layout.LAYOUTS) from
# ``(spec, tid, words, index of the record)`` and returns the type and the id its size/type word
# refers to (0 if none), which _decode checks against the count.  Each reads the name first: a bad
# name offset is the error a record reports first.


def _decode_composite(spec: Spec, tid: int, w, i: int) -> tuple[Type, int]:
    info, strings, count = w[i + 1], spec.strings, spec._count
    name = strings[w[i]]
    kflag = info >> 31
    members = []
    for m in range(i + 3, i + 3 + 3 * (info & 0xFFFF), 3):
        off, ref = w[m + 2], w[m + 1]
        mem = Member(strings[w[m]], ref, off & 0xFFFFFF if kflag else off, off >> 24 if kflag else 0)
        if ref >= count:
            raise spec._bad(tid, f"member {mem.name!r} type id {ref} out of range")
        mem._spec = spec
        members.append(mem)
    cls = Struct if info >> 24 & 31 == BTFKind.STRUCT else Union
    return cls(name, w[i + 2], members), 0


def _enum_size(spec: Spec, tid: int, w, i: int) -> int:
    size = w[i + 2]
    if size not in _ENUM_SIZES:
        raise spec._bad(tid, f"invalid enum size {size}")
    return size


def _decode_enum(spec: Spec, tid: int, w, i: int) -> tuple[Type, int]:
    info, strings = w[i + 1], spec.strings
    name = strings[w[i]]
    size = _enum_size(spec, tid, w, i)
    kflag = info >> 31
    vals = [(strings[w[m]], _s32(w[m + 1]) if kflag else w[m + 1])
            for m in range(i + 3, i + 3 + 2 * (info & 0xFFFF), 2)]
    return Enum(name, size, vals, bool(kflag)), 0


def _decode_enum64(spec: Spec, tid: int, w, i: int) -> tuple[Type, int]:
    info, strings = w[i + 1], spec.strings
    name = strings[w[i]]
    size = _enum_size(spec, tid, w, i)
    kflag = info >> 31
    vals = []
    for m in range(i + 3, i + 3 + 3 * (info & 0xFFFF), 3):
        v = w[m + 2] << 32 | w[m + 1]
        if kflag and v >> 63:
            v -= 1 << 64
        vals.append((strings[w[m]], v))
    return Enum64(name, size, vals, bool(kflag)), 0


def _decode_fwd(spec: Spec, tid: int, w, i: int) -> tuple[Type, int]:
    return Fwd(spec.strings[w[i]], bool(w[i + 1] >> 31)), 0


def _decode_func_proto(spec: Spec, tid: int, w, i: int) -> tuple[Type, int]:
    strings, count = spec.strings, spec._count
    strings[w[i]]   # unused, but checked like every name
    params = []
    for m in range(i + 3, i + 3 + 2 * (w[i + 1] & 0xFFFF), 2):
        pname, ref = strings[w[m]], w[m + 1]
        if ref >= count:
            raise spec._bad(tid, f"parameter type id {ref} out of range")
        p = Param(pname, ref)
        p._spec = spec
        params.append(p)
    return FuncProto(w[i + 2], params), w[i + 2]


def _decode_datasec(spec: Spec, tid: int, w, i: int) -> tuple[Type, int]:
    name, count = spec.strings[w[i]], spec._count
    secinfos = []
    for m in range(i + 3, i + 3 + 3 * (w[i + 1] & 0xFFFF), 3):
        ref = w[m]
        if ref >= count:
            raise spec._bad(tid, f"variable type id {ref} out of range")
        vs = VarSecinfo(ref, w[m + 1], w[m + 2])
        vs._spec = spec
        secinfos.append(vs)
    return Datasec(name, w[i + 2], secinfos), 0


def _decode_float(spec: Spec, tid: int, w, i: int) -> tuple[Type, int]:
    name, size = spec.strings[w[i]], w[i + 2]
    if size not in _FLOAT_SIZES:
        raise spec._bad(tid, f"invalid FLOAT size {size}")
    return Float(name, size), 0


def _decode_decl_tag(spec: Spec, tid: int, w, i: int) -> tuple[Type, int]:
    st = w[i + 2]
    return DeclTag(spec.strings[w[i]], st, _s32(w[i + 3]), bool(w[i + 1] >> 31)), st


def _decode_type_tag(spec: Spec, tid: int, w, i: int) -> tuple[Type, int]:
    st = w[i + 2]
    return TypeTag(st, spec.strings[w[i]], bool(w[i + 1] >> 31)), st


_COMPOUND_DECODERS: dict[int, Callable[[Spec, int, Any, int], tuple[Type, int]]] = {
    BTFKind.STRUCT: _decode_composite,
    BTFKind.UNION: _decode_composite,
    BTFKind.ENUM: _decode_enum,
    BTFKind.FWD: _decode_fwd,
    BTFKind.FUNC_PROTO: _decode_func_proto,
    BTFKind.DATASEC: _decode_datasec,
    BTFKind.FLOAT: _decode_float,
    BTFKind.DECL_TAG: _decode_decl_tag,
    BTFKind.TYPE_TAG: _decode_type_tag,
    BTFKind.ENUM64: _decode_enum64,
}


# The kinds met on every type walk: pointers, typedefs, qualifiers, arrays, ints, vars, funcs.

def _decode_int(spec: Spec, tid: int, w, i: int) -> tuple[Type, int]:
    st, v = w[i + 2], w[i + 3]
    enc, off, bits = v >> 24 & 0xF, v >> 16 & 0xFF, v & 0xFF
    if st not in _INT_SIZES or enc not in _INT_ENCODINGS or off + bits > 8 * st or not bits:
        raise spec._bad(tid, f"invalid INT (size {st}, encoding {enc}, offset {off}, bits {bits})")
    return Int(spec.strings[w[i]], st, _INT_ENCODINGS[enc], bits, off), 0


def _decode_ptr(spec: Spec, tid: int, w, i: int) -> tuple[Type, int]:
    st = w[i + 2]
    return Pointer(st, spec.strings[w[i]]), st


def _decode_array(spec: Spec, tid: int, w, i: int) -> tuple[Type, int]:
    elem, index, count = w[i + 3], w[i + 4], spec._count
    if elem >= count or index >= count:
        raise spec._bad(tid, f"array type {elem} / index type {index} out of range")
    return Array(elem, index, w[i + 5]), 0


def _decode_typedef(spec: Spec, tid: int, w, i: int) -> tuple[Type, int]:
    st = w[i + 2]
    return Typedef(spec.strings[w[i]], st), st


def _qualifier(cls: type) -> Callable[[Spec, int, Any, int], tuple[Type, int]]:
    def decode(spec: Spec, tid: int, w, i: int) -> tuple[Type, int]:
        st = w[i + 2]
        return cls(st, spec.strings[w[i]]), st
    return decode


def _decode_func(spec: Spec, tid: int, w, i: int) -> tuple[Type, int]:
    linkage, st = w[i + 1] & 0xFFFF, w[i + 2]   # a FUNC's vlen is its linkage
    if linkage > 2:
        raise spec._bad(tid, f"invalid FUNC linkage {linkage}")
    return Func(spec.strings[w[i]], st, _FUNC_LINKAGES[linkage]), st


def _decode_var(spec: Spec, tid: int, w, i: int) -> tuple[Type, int]:
    linkage, st = w[i + 3], w[i + 2]
    if linkage > 2:
        raise spec._bad(tid, f"invalid VAR linkage {linkage}")
    return Var(spec.strings[w[i]], st, _VAR_LINKAGES[linkage]), st


_SIMPLE_DECODERS: dict[int, Callable[[Spec, int, Any, int], tuple[Type, int]]] = {
    BTFKind.INT: _decode_int,
    BTFKind.PTR: _decode_ptr,
    BTFKind.ARRAY: _decode_array,
    BTFKind.TYPEDEF: _decode_typedef,
    BTFKind.VOLATILE: _qualifier(Volatile),
    BTFKind.CONST: _qualifier(Const),
    BTFKind.RESTRICT: _qualifier(Restrict),
    BTFKind.FUNC: _decode_func,
    BTFKind.VAR: _decode_var,
}

# Every kind's decoder, by the 5-bit kind (None where scan() refuses the kind).
_DECODERS: tuple = tuple({**_COMPOUND_DECODERS, **_SIMPLE_DECODERS}.get(k) for k in range(32))
