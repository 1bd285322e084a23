"""Encode BTF: types -> a blob BPF_BTF_LOAD accepts; sanitize for older kernels.

:func:`encode` takes types in id order (``spec.types`` works as is: a
leading void is skipped) and returns the blob; types referenced but not
listed are appended after the listed ones.  :class:`Builder` does the same
step by step and tells the id each type got, which the language layer needs
for func_info.  The string section can be given (:class:`StringTable`) so
that existing offsets, e.g. the line info strings of a .BTF.ext, stay valid;
it is extended in place.

:func:`sanitize` rewrites the kinds an older kernel lacks the way libbpf's
``bpf_object__sanitize_btf`` does, keeping every type id; :func:`encode_ext`
writes a .BTF.ext section.

Example::

    from pybpf.btf import Int, IntEncoding, Func, FuncProto, FuncLinkage, BTFKind
    from pybpf.btf.writer import Builder, encode, sanitize

    i32 = Int("int", 4, IntEncoding.SIGNED)
    main = Func("main", FuncProto(i32, [("ctx", i32)]), FuncLinkage.GLOBAL)
    b = Builder()
    b.add(main)
    blob = b.encode()               # main is [1]; its proto [2] and int [3] are appended
    func_type_id = b.id_of(main)    # 1

    # before loading an object's BTF into a 5.10 kernel (no FLOAT, DECL_TAG...):
    types = sanitize(spec, {k for k in BTFKind if k <= BTFKind.DATASEC})
    blob = encode(types)
"""

from __future__ import annotations

import struct
import sys
from array import array

from pybpf.errors import ObjectError
from pybpf.btf.layout import BTF_MAGIC, U32, make_info
from pybpf.btf.reader import ExtInfo, Spec, StringTable
from pybpf.btf.types import (
    VOID, Array, BTFKind, Composite, Const, Datasec, DeclTag, Enum, Enum64, Float, Func,
    FuncLinkage, FuncProto, Fwd, Int, IntEncoding, Member, Pointer,
    Struct, Type, Typedef, TypeTag, Union, Var, Void,
)

__all__ = ["Builder", "encode", "sanitize", "encode_ext", "ARRAY_INDEX_TYPE_NAME"]

#: Name of the INT clang uses as array index type; the writer adds one when an Array has none.
ARRAY_INDEX_TYPE_NAME = "__ARRAY_SIZE_TYPE__"


class Builder:
    """Collects types, assigns ids in order of :meth:`add`, and encodes them.

    ``strings`` (extended in place) starts the string section; ``base`` makes
    split BTF whose ids continue after the base's (types of ``base`` are
    referred to by their ids and not written).

    >>> from pybpf.btf.types import FuncLinkage, Func, FuncProto, Int, IntEncoding
    >>> i32 = Int("int", 4, IntEncoding.SIGNED)
    >>> b = Builder()
    >>> b.add(Func("main", FuncProto(i32, [("ctx", i32)]), FuncLinkage.GLOBAL))
    1
    >>> blob = b.encode(); b.id_of(i32)
    3
    """

    def __init__(self, *, strings: StringTable | None = None, base: Spec | None = None,
                 byteorder: str = "little") -> None:
        self.base = base
        self.first_id = base._count if base is not None else 1
        if strings is None:
            strings = StringTable(b"" if base is not None else b"\0",
                                  base.strings if base is not None else None)
        self.strings = strings
        if byteorder not in ("little", "big"):
            raise ValueError("byteorder must be 'little' or 'big'")
        self.byteorder = byteorder
        self._types: list[Type] = []
        self._ids: dict[int, int] = {}
        self._index_type: Type | None = None

    def _base_id(self, t: Type) -> int | None:
        if isinstance(t, Void):
            return 0
        spec = self.base
        while spec is not None:
            if t._spec is spec and t.id is not None and t.id < self.first_id:
                return t.id
            spec = spec.base
        return None

    def add(self, t: Type) -> int:
        """Give ``t`` the next id (unless it has one already) and return its id."""
        tid = self._base_id(t)
        if tid is not None:
            return tid
        tid = self._ids.get(id(t))
        if tid is None:
            tid = self.first_id + len(self._types)
            self._ids[id(t)] = tid
            self._types.append(t)
        return tid

    def id_of(self, t: Type) -> int:
        """The id ``t`` got (or gets at encoding, for referenced types not added yet)."""
        tid = self._base_id(t)
        if tid is None:
            tid = self._ids.get(id(t))
        if tid is None:
            raise KeyError(f"{t!r} was not added to this Builder")
        return tid

    def _close(self) -> None:
        """Append every referenced type that was not added, in reference order."""
        i = 0
        while i < len(self._types):
            t = self._types[i]
            for r in t.refs():
                if self._base_id(r) is None and id(r) not in self._ids:
                    self.add(r)
            if isinstance(t, Array) and t._index_type is None and self._index_type is None:
                self._index_type = Int(ARRAY_INDEX_TYPE_NAME, 4)
                self.add(self._index_type)
            i += 1

    def encode(self) -> bytes:
        """The BTF blob: header, type section, string section (in that order, as the kernel wants).

        >>> from pybpf.btf.types import Int
        >>> b = Builder(); b.add(Int("unsigned int", 4))
        1
        >>> len(b.encode())      # 24-byte header, one 16-byte INT, "\\0unsigned int\\0"
        54
        """
        self._close()
        words = array(U32)
        for t in self._types:
            try:
                self._emit(t, words)
            except (OverflowError, ValueError) as err:
                tid = self._ids[id(t)]
                raise ObjectError(f"BTF: cannot encode type [{tid}] {t!r}: {err}") from None
        if (self.byteorder == "little") != (sys.byteorder == "little"):
            words.byteswap()
        type_sec = words.tobytes()
        str_sec = self.strings.data
        order = "<" if self.byteorder == "little" else ">"
        header = struct.pack(order + "HBBIIIII", BTF_MAGIC, 1, 0, 24,
                             0, len(type_sec), len(type_sec), len(str_sec))
        return header + type_sec + str_sec

    def _ref(self, t: Type | None) -> int:
        if t is None:   # an Array without an index type: the one _close added
            t = self._index_type
        tid = self._base_id(t)
        return tid if tid is not None else self._ids[id(t)]

    def _emit(self, t: Type, w: array) -> None:
        w.extend(record_words(t, self.strings.add, self._ref))


# ---------------------------------------------------------------------- per-kind encoders
#
# Each encoder returns one type's record, words in the order of pybpf.btf.layout.LAYOUTS.

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Collection, Iterable, Sequence

    _AddString = Callable[[str], int]
    _IdOf = Callable[[Type], int]


def record_words(t: Type, add_string: _AddString, id_of: _IdOf) -> list[int]:
    """The words of ``t``'s type record; ``add_string`` gives string offsets, ``id_of`` type ids.

    >>> from pybpf.btf.types import Var, VarLinkage
    >>> record_words(Var("x", VOID, VarLinkage.GLOBAL), lambda s: 1, lambda t: 0)
    [1, 234881024, 0, 1]
    """
    encode = _ENCODERS.get(type(t).kind)
    if encode is None:
        raise ValueError(f"cannot encode a {type(t).__name__}")
    return encode(t, add_string(t.name), add_string, id_of)


def _encode_int(t: Int, name: int, add: _AddString, ref: _IdOf) -> list[int]:
    if t.bits > 255 or t.offset > 255:
        raise ValueError(f"INT bits {t.bits} / offset {t.offset} do not fit in 8 bits")
    return [name, make_info(BTFKind.INT), t.size, int(t.encoding) << 24 | t.offset << 16 | t.bits]


def _encode_ref(t: Type, name: int, add: _AddString, ref: _IdOf) -> list[int]:
    """PTR, TYPEDEF and the qualifiers (VOLATILE, CONST, RESTRICT, TYPE_TAG): name, info, type."""
    target = t.target if isinstance(t, Pointer) else t.type  # type: ignore[attr-defined]
    kflag = isinstance(t, TypeTag) and t.attribute
    return [name, make_info(t.kind, 0, kflag), ref(target)]


def _encode_array(t: Array, name: int, add: _AddString, ref: _IdOf) -> list[int]:
    # the index type: a Builder gives every Array without one its __ARRAY_SIZE_TYPE__ through ref(None)
    return [name, make_info(BTFKind.ARRAY), 0, ref(t.elem), ref(t._index_type), t.nelems]  # type: ignore[arg-type]


def _encode_composite(t: Composite, name: int, add: _AddString, ref: _IdOf) -> list[int]:
    members = t.members
    kflag = any(m.bitfield_size for m in members)
    out = [name, make_info(t.kind, _vlen(members), kflag), t.size]
    for m in members:
        if kflag:
            if m.bit_offset > 0xFFFFFF or m.bitfield_size > 0xFF:
                raise ValueError(f"member {m.name!r}: bit offset {m.bit_offset} or bitfield "
                                 f"size {m.bitfield_size} too large")
            off = m.bitfield_size << 24 | m.bit_offset
        else:
            off = m.bit_offset
        out += (add(m.name), ref(m.type), off)
    return out


def _encode_enum(t: Enum, name: int, add: _AddString, ref: _IdOf) -> list[int]:
    values = t.values
    out = [name, make_info(BTFKind.ENUM, _vlen(values), t.signed), t.size]
    for n, v in values:
        if not -(1 << 31) <= v < 1 << 32:
            raise ValueError(f"enumerator {n}={v} does not fit in 32 bits (use Enum64)")
        out += (add(n), v & 0xFFFFFFFF)
    return out


def _encode_enum64(t: Enum64, name: int, add: _AddString, ref: _IdOf) -> list[int]:
    values = t.values
    out = [name, make_info(BTFKind.ENUM64, _vlen(values), t.signed), t.size]
    for n, v in values:
        if not -(1 << 63) <= v < 1 << 64:
            raise ValueError(f"enumerator {n}={v} does not fit in 64 bits")
        v &= 0xFFFFFFFFFFFFFFFF
        out += (add(n), v & 0xFFFFFFFF, v >> 32)
    return out


def _encode_fwd(t: Fwd, name: int, add: _AddString, ref: _IdOf) -> list[int]:
    return [name, make_info(BTFKind.FWD, 0, t.is_union), 0]


def _encode_func(t: Func, name: int, add: _AddString, ref: _IdOf) -> list[int]:
    return [name, make_info(BTFKind.FUNC, int(t.linkage)), ref(t.proto)]


def _encode_func_proto(t: FuncProto, name: int, add: _AddString, ref: _IdOf) -> list[int]:
    out = [name, make_info(BTFKind.FUNC_PROTO, _vlen(t.params)), ref(t.ret)]
    for p in t.params:
        out += (add(p.name), ref(p.type))
    return out


def _encode_var(t: Var, name: int, add: _AddString, ref: _IdOf) -> list[int]:
    return [name, make_info(BTFKind.VAR), ref(t.type), int(t.linkage)]


def _encode_datasec(t: Datasec, name: int, add: _AddString, ref: _IdOf) -> list[int]:
    out = [name, make_info(BTFKind.DATASEC, _vlen(t.vars)), t.size]
    for vs in t.vars:
        out += (ref(vs.var), vs.offset, vs.size)
    return out


def _encode_float(t: Float, name: int, add: _AddString, ref: _IdOf) -> list[int]:
    return [name, make_info(BTFKind.FLOAT), t.size]


def _encode_decl_tag(t: DeclTag, name: int, add: _AddString, ref: _IdOf) -> list[int]:
    return [name, make_info(BTFKind.DECL_TAG, 0, t.attribute), ref(t.type), t.component_idx & 0xFFFFFFFF]


_ENCODERS: dict[int, Callable[..., list[int]]] = {
    BTFKind.INT: _encode_int,
    BTFKind.PTR: _encode_ref,
    BTFKind.ARRAY: _encode_array,
    BTFKind.STRUCT: _encode_composite,
    BTFKind.UNION: _encode_composite,
    BTFKind.ENUM: _encode_enum,
    BTFKind.FWD: _encode_fwd,
    BTFKind.TYPEDEF: _encode_ref,
    BTFKind.VOLATILE: _encode_ref,
    BTFKind.CONST: _encode_ref,
    BTFKind.RESTRICT: _encode_ref,
    BTFKind.FUNC: _encode_func,
    BTFKind.FUNC_PROTO: _encode_func_proto,
    BTFKind.VAR: _encode_var,
    BTFKind.DATASEC: _encode_datasec,
    BTFKind.FLOAT: _encode_float,
    BTFKind.DECL_TAG: _encode_decl_tag,
    BTFKind.TYPE_TAG: _encode_ref,
    BTFKind.ENUM64: _encode_enum64,
}


def _vlen(items: Sequence) -> int:
    if len(items) > 0xFFFF:
        raise ValueError(f"{len(items)} members/values/params exceed the BTF limit of 65535")
    return len(items)


def encode(types: Iterable[Type], *, strings: StringTable | None = None, base: Spec | None = None,
           byteorder: str = "little") -> bytes:
    """Encode ``types`` (in id order; a leading void is skipped) into a BTF blob.

    The n-th non-void type gets id n (after the base's for split BTF);
    referenced types missing from ``types`` are appended after them.
    ``strings`` is used and extended in place when given.

    >>> from pybpf.btf.types import Int
    >>> Spec.parse(encode([Int("unsigned int", 4)])).find("unsigned int").size
    4
    """
    b = Builder(strings=strings, base=base, byteorder=byteorder)
    for t in types:
        if isinstance(t, Void):
            continue
        b.add(t)
    return b.encode()


# ---------------------------------------------------------------------- sanitize


def sanitize(spec: Spec | Sequence[Type], supported: Collection[BTFKind], *,
             func_global: bool = True, qmark_datasec: bool = True) -> list[Type]:
    """Rewrite the kinds missing from ``supported`` so an older kernel accepts the BTF.

    Returns new types in id order (index = id, index 0 is void) for
    :func:`encode`; the spec is not modified.  Replacements follow libbpf:

    - no DATASEC (5.2): VAR -> INT 'name' of 1 byte; DATASEC -> STRUCT with '.'/'?' in its
      name replaced by '_' and one member per variable
    - no FUNC (5.0): FUNC_PROTO -> ENUM of its params; FUNC -> TYPEDEF
    - ``func_global=False`` (before 5.6): global FUNC -> static
    - no FLOAT (5.13): FLOAT -> anonymous empty STRUCT of the same size
    - no DECL_TAG (5.16): DECL_TAG -> INT of 1 byte
    - no TYPE_TAG (5.17): TYPE_TAG -> CONST
    - no ENUM64 (6.0): signed ENUM -> unsigned; ENUM64 -> UNION of 1-byte
      'enum64_placeholder' INT members (the placeholder is appended)
    - ``qmark_datasec=False`` (before 5.19): DATASEC '?name' -> '_name'

    DATASEC sizes and offsets must be fixed before this (the loader does it in the raw
    records, :func:`pybpf.object.btf_fixup.fix_datasecs`; :meth:`Datasec.fixup` on a model).

    >>> from pybpf.btf.types import Float
    >>> [type(t).__name__ for t in sanitize([Float("float", 4)], set(BTFKind) - {BTFKind.FLOAT})]
    ['Void', 'Struct']
    """
    src: list[Type] = list(spec.types) if isinstance(spec, Spec) else list(spec)
    if not src or not isinstance(src[0], Void):
        src.insert(0, VOID)
    has = set(supported)
    has_datasec = BTFKind.DATASEC in has and BTFKind.VAR in has
    has_func = BTFKind.FUNC in has and BTFKind.FUNC_PROTO in has
    placeholder: Int | None = None
    out: list[Type] = [VOID]
    for t in src[1:]:
        new: Type
        if isinstance(t, Var) and not has_datasec or isinstance(t, DeclTag) and BTFKind.DECL_TAG not in has:
            new = Int(t.name, 1, IntEncoding.NONE, 8)
        elif isinstance(t, Datasec) and not has_datasec:
            name = t.name.replace(".", "_").replace("?", "_")
            new = Struct(name, t.size, [Member(vs.var.name, vs.var, 8 * vs.offset) for vs in t.vars])
        elif isinstance(t, Datasec) and not qmark_datasec and t.name.startswith("?"):
            new = t.copy()
            new.name = "_" + t.name[1:]
        elif isinstance(t, FuncProto) and not has_func:
            new = Enum("", 4, [(p.name, p.type_id or 0) for p in t.params])
        elif isinstance(t, Func) and not has_func:
            new = Typedef(t.name, t.proto)
        elif isinstance(t, Func) and not func_global and t.linkage == FuncLinkage.GLOBAL:
            new = t.copy()
            new.linkage = FuncLinkage.STATIC  # type: ignore[attr-defined]
        elif isinstance(t, Float) and BTFKind.FLOAT not in has:
            new = Struct("", t.size, [])
        elif isinstance(t, TypeTag) and BTFKind.TYPE_TAG not in has:
            new = Const(t.type)
        elif isinstance(t, Enum64) and BTFKind.ENUM64 not in has:
            if placeholder is None:
                placeholder = Int("enum64_placeholder", 1)
            new = Union(t.name, t.size, [Member(n, placeholder, 0) for n, _ in t.values])
        elif isinstance(t, Enum) and t.signed and BTFKind.ENUM64 not in has:
            new = t.copy()
            new.signed = False  # type: ignore[attr-defined]
        else:
            new = t.copy()
        out.append(new)
    if placeholder is not None:
        out.append(placeholder)
    mapping = {id(old): new for old, new in zip(src, out)}
    for new in out[1:]:
        new.map_refs(lambda r: mapping.get(id(r), r))
    return out


# ---------------------------------------------------------------------- .BTF.ext


def encode_ext(ext: ExtInfo, strings: StringTable, *, byteorder: str = "little") -> bytes:
    """Encode ``ext`` as a .BTF.ext section; its strings are added to ``strings``.

    Encode the BTF after this call (with the same ``strings``) so it holds them.

    >>> from pybpf.btf.reader import FuncInfo
    >>> strings = StringTable()
    >>> len(encode_ext(ExtInfo(func_info={".text": [FuncInfo(0, 1)]}), strings))
    52
    """
    order = "<" if byteorder == "little" else ">"
    add = strings.add

    def section(recs: dict, rec_size: int, pack) -> bytes:
        if not recs:
            return b""
        parts = [struct.pack(order + "I", rec_size)]
        for name, items in recs.items():
            parts.append(struct.pack(order + "II", add(name), len(items)))
            parts.extend(pack(r) for r in items)
        return b"".join(parts)

    fi = section(ext.func_info, 8, lambda r: struct.pack(order + "II", r.insn_off, r.type_id))
    li = section(ext.line_info, 16, lambda r: struct.pack(
        order + "IIII", r.insn_off, add(r.file_name), add(r.line_text), r.line_num << 10 | r.col))
    cr = section(ext.core_relos, 16, lambda r: struct.pack(
        order + "IIII", r.insn_off, r.type_id, add(r.access_str), int(r.kind)))
    header = struct.pack(order + "HBBIIIIIII", BTF_MAGIC, 1, 0, 32,
                         0, len(fi), len(fi), len(li), len(fi) + len(li), len(cr))
    return header + fi + li + cr
