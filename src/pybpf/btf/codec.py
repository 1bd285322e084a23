"""Convert between bytes and Python values through a BTF type.

:func:`codec_for` compiles a :class:`Codec` once per type (cached on the type)
and :func:`decode` / :func:`encode` use it.  Values:

- integers -> ``int`` (signed or not by the INT encoding; 1, 2, 4, 8 or 16
  bytes), ``_Bool`` -> ``bool``, enums -> ``int`` (encode also takes an
  enumerator's name), pointers -> ``int``, floats -> ``float``
- arrays -> ``list``; arrays of ``char`` -> ``bytes`` up to the first NUL (a
  C string; encode takes ``str`` too); arrays of other 1-byte integers
  (``__u8 buf[n]``) -> all ``n`` bytes
- structs, unions and datasecs -> a :class:`Record`: an instance of a class
  generated per type with ``__slots__`` for the field names, members of
  anonymous struct/union members flattened in, bitfields included.
  ``repr`` reads ``btf_point(x=1, y=2)``; ``._asdict()`` gives a dict.

``encode`` takes the same values, or dicts / tuples / any object with the
field attributes for records (missing or None fields are zero), or bytes of
exactly the type's size (copied as they are).  A value
that does not fit raises ``TypeError`` naming the field and the type: never
a silent truncation.  For unions, and structs with anonymous unions, the
fields written are the ones set (a fresh record or a dict), or, for a
decoded record, the ones changed since it was decoded.

The layout is assumed little-endian (bpfel and x86-64/arm64 hosts).
Compiled codecs unpack every plain scalar member of a struct with one
precomputed ``struct.Struct``.

Example::

    from pybpf.btf.codec import codec_for, decode, encode

    c = codec_for(spec.find("btf_event"))
    ev = c.decode(raw)                  # btf_event(pid=12, ts=..., comm=b'bash', ...)
    ev.pid += 1
    raw = c.encode(ev)
    c.encode({"pid": 1, "comm": "init"})
    encode(u32_type, 1 << 32)           # TypeError: ... does not fit in 4 bytes (unsigned int)
"""

from __future__ import annotations

import keyword
import struct

from pybpf.errors import ObjectError
from pybpf.btf.types import Array, Composite, Datasec, Enum, Float, Int, Pointer, Type, Union, Var
from pybpf.btf.typeinfo import resolve, sizeof, type_name

__all__ = ["Codec", "Record", "codec_for", "decode", "encode"]

_INT_FMT = {(1, False): "B", (1, True): "b", (2, False): "H", (2, True): "h",
            (4, False): "I", (4, True): "i", (8, False): "Q", (8, True): "q"}
_FLOAT_FMT = {2: "e", 4: "f", 8: "d"}
_BYTES = (bytes, bytearray, memoryview)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable

    Unpack = Callable[[Any, int], Any]
    Pack = Callable[[bytearray, int, Any], None]


class Codec:
    """Compiled conversion for one type: ``size``, ``decode(data)``, ``encode(value)``.

    ``decode`` accepts bytes, bytearray or memoryview of at least ``size``
    bytes (ValueError if shorter; extra bytes are ignored).  ``decode_from`` /
    ``encode_into`` work at an offset of a larger buffer.  ``record`` is the
    generated :class:`Record` subclass for structs, unions and datasecs.

    >>> from pybpf.btf.types import Int, IntEncoding, Member, Struct
    >>> i32 = Int("int", 4, IntEncoding.SIGNED)
    >>> c = codec_for(Struct("point", 8, [Member("x", i32, 0), Member("y", i32, 32)]))
    >>> c.size, c.decode(bytes([1, 0, 0, 0, 2, 0, 0, 0]))
    (8, point(x=1, y=2))
    >>> c.encode({"x": 3, "y": 4})
    b'\\x03\\x00\\x00\\x00\\x04\\x00\\x00\\x00'
    """

    __slots__ = ("type", "size", "label", "decode", "encode", "_unpack", "_pack", "fmt", "post",
                 "pre", "record", "unpack_from")

    def __init__(self, t: Type, size: int, unpack: Unpack, pack: Pack, *, fmt: str | None = None,
                 post: Callable | None = None, pre: Callable | None = None,
                 record: type | None = None) -> None:
        self.type = t
        self.size = size
        self.label = type_name(t)
        self._unpack = unpack
        self.unpack_from = unpack   # decode_from without the bounds check: for callers that checked
        self._pack = pack
        self.fmt = fmt          # struct format of a plain value (embeddable in a struct's format)
        self.post = post        # applied after unpacking fmt
        self.pre = pre          # applied before packing fmt (validates, raises TypeError)
        self.record = record
        label = self.label

        def decode_(data: Any) -> Any:
            if len(data) < size:
                raise ValueError(f"{label}: need {size} bytes, got {len(data)}")
            return unpack(data, 0)

        def encode_(value: Any) -> bytes:
            buf = bytearray(size)
            pack(buf, 0, value)
            return bytes(buf)

        self.decode = decode_
        self.encode = encode_

    def decode_from(self, buf: Any, offset: int = 0) -> Any:
        """Decode the value at ``offset`` of ``buf`` (ValueError if the buffer is too short there)."""
        if offset < 0 or len(buf) < offset + self.size:
            raise ValueError(f"{self.label}: need {self.size} bytes at offset {offset}, buffer has {len(buf)}")
        return self._unpack(buf, offset)

    def encode_into(self, buf: bytearray, offset: int, value: Any) -> None:
        """Encode ``value`` into ``buf`` at ``offset`` (ValueError if it does not fit there)."""
        if offset < 0 or len(buf) < offset + self.size:
            raise ValueError(f"{self.label}: need {self.size} bytes at offset {offset}, buffer has {len(buf)}")
        self._pack(buf, offset, value)

    def __repr__(self) -> str:
        return f"<Codec {self.label} size={self.size}>"


def codec_for(t: Type) -> Codec:
    """The codec of ``t`` (compiled on first use, then cached on the type).

    >>> from pybpf.btf.types import Int
    >>> codec_for(Int("unsigned int", 4)).decode(b"\\x2a\\x00\\x00\\x00")
    42
    """
    c = t._codec
    if c is None:
        c = _compile(t, set())
    return c


def decode(t: Type, data: bytes | bytearray | memoryview) -> Any:
    """Decode ``data`` as a value of type ``t``.

    >>> from pybpf.btf.types import Int, IntEncoding
    >>> decode(Int("int", 4, IntEncoding.SIGNED), b"\\xff\\xff\\xff\\xff")
    -1
    """
    return codec_for(t).decode(data)


def encode(t: Type, value: Any) -> bytes:
    """Encode ``value`` as ``sizeof(t)`` bytes (TypeError if it does not fit).

    >>> from pybpf.btf.types import Int
    >>> encode(Int("unsigned short", 2), 258)
    b'\\x02\\x01'
    """
    return codec_for(t).encode(value)


# ---------------------------------------------------------------------- records


class Record:
    """Base of the generated per-type value classes (see the module docstring).

    >>> from pybpf.btf.types import Int, Member, Struct
    >>> Point = codec_for(Struct("point", 8, [Member("x", Int("int", 4)), Member("y", Int("int", 4), 32)])).record
    >>> Point(1, y=2)._asdict()
    {'x': 1, 'y': 2}
    """

    __slots__ = ()
    _fields: tuple[str, ...] = ()
    _btf_type: Type | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        fields = self._fields
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__}() takes at most {len(fields)} values")
        for name in fields:
            setattr(self, name, None)
        for name, value in zip(fields, args):
            setattr(self, name, value)
        for name, value in kwargs.items():
            if name not in fields:
                raise TypeError(f"{type(self).__name__} has no field {name!r}")
            setattr(self, name, value)

    def _asdict(self) -> dict[str, Any]:
        """The fields as a dict; nested records (also in lists) become dicts too."""
        return {name: _plain(getattr(self, name)) for name in self._fields}

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(_same(getattr(self, n), getattr(other, n)) for n in self._fields)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n, None)!r}" for n in self._fields)
        return f"{type(self).__name__}({inner})"


def _same(a: Any, b: Any) -> bool:
    """Equality where a NaN equals a NaN (decoding the same bytes twice gives equal records)."""
    return a is b or a == b or (a != a and b != b)


def _plain(v: Any) -> Any:
    if isinstance(v, Record):
        return v._asdict()
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


_RESERVED = {"_fields", "_btf_type", "_btf_raw", "_asdict"}


def _record_class(name: str, fields: list[str], overlap: bool, t: Type) -> type:
    for f in fields:
        if not f.isidentifier() or f in _RESERVED or (f.startswith("__") and f.endswith("__")):
            raise ObjectError(f"{type_name(t)}: field name {f!r} cannot be a Python attribute")
    slots = list(fields) + (["_btf_raw"] if overlap else [])
    cls_name = (name or "anon").encode("utf-8", "backslashreplace").decode("utf-8")
    cls = type(cls_name, (Record,), {"__slots__": tuple(slots), "_fields": tuple(fields),
                                     "_btf_type": t, "__module__": __name__})
    # Slot names like "__pad" are mangled with the class name; expose them under the C name too.
    stripped = cls_name.lstrip("_")
    for f in fields:
        if f.startswith("__") and not f.endswith("__") and stripped:
            setattr(cls, f, cls.__dict__[f"_{stripped}{f}"])
    return cls


# ---------------------------------------------------------------------- compile


def _compile(t: Type, busy: set[int]) -> Codec:
    if id(t) in busy:
        raise ObjectError(f"{type_name(t)}: type contains itself")
    busy.add(id(t))
    try:
        r = resolve(t)
        if isinstance(t, Var):
            r = resolve(t.type)
        if r is not t:
            c = r._codec or _compile(r, busy)
        elif isinstance(r, Int):
            c = _int_codec(r)
        elif isinstance(r, Enum):
            c = _scalar(r, _INT_FMT.get((r.size, r.signed)), pre=_enum_pre(r))
        elif isinstance(r, Pointer):
            c = _scalar(r, "Q")
        elif isinstance(r, Float):
            c = _scalar(r, _FLOAT_FMT.get(r.size))
        elif isinstance(r, Array):
            c = _array_codec(r, busy)
        elif isinstance(r, (Composite, Datasec)):
            c = _record_codec(r, busy)
        else:
            raise ObjectError(f"{type_name(t)}: {r.kind.name} has no value representation")
    finally:
        busy.discard(id(t))
    t._codec = c
    return c


def _range_error(label: str, value: Any, size: int, signed: bool) -> TypeError:
    kind = "signed" if signed else "unsigned"
    if not isinstance(value, int):
        return TypeError(f"{label}: expected an int for a {size}-byte {kind} integer, "
                         f"got {type(value).__name__} {value!r}")
    return TypeError(f"{label}: {value} does not fit in {size} bytes ({kind})")


def _check_int(label: str, value: Any, nbits: int, signed: bool, size: int) -> int:
    if not isinstance(value, int):
        raise _range_error(label, value, size, signed)
    lo, hi = (-(1 << (nbits - 1)), 1 << (nbits - 1)) if signed else (0, 1 << nbits)
    if not lo <= value < hi:
        raise TypeError(f"{label}: {value} does not fit in {nbits} bits "
                        f"({'signed' if signed else 'unsigned'}, {size} bytes)")
    return value


def _bool_pre(label: str) -> Callable[[Any], int]:
    def pre(v: Any) -> int:
        if v is True or v is False or (isinstance(v, int) and v in (0, 1)):
            return int(v)
        raise TypeError(f"{label}: expected a bool, got {v!r}")
    return pre


def _enum_pre(t: Enum) -> Callable[[Any], int]:
    names = {n: v for n, v in t.values}
    label = type_name(t)

    def pre(v: Any) -> Any:
        if isinstance(v, str):
            try:
                return names[v]
            except KeyError:
                raise TypeError(f"{label} has no enumerator {v!r}") from None
        return v
    return pre


def _scalar(t: Type, fmt: str | None, post: Callable | None = None,
            pre: Callable | None = None) -> Codec:
    size = sizeof(t)
    if fmt is None:  # odd sizes: 16-byte ints, long double...
        return _wide(t, size, signed=isinstance(t, (Int, Enum)) and t.signed, pre=pre)
    st = struct.Struct("<" + fmt)
    label = type_name(t)
    signed = fmt in "bhiq"
    unpack_from, pack_into = st.unpack_from, st.pack_into

    if post is None:
        def unpack(buf: Any, off: int) -> Any:
            return unpack_from(buf, off)[0]
    else:
        def unpack(buf: Any, off: int) -> Any:
            return post(unpack_from(buf, off)[0])

    raw_ok = not fmt.endswith("s")

    def pack(buf: bytearray, off: int, v: Any) -> None:
        if v is None:
            return
        if raw_ok and isinstance(v, _BYTES):
            return _raw_bytes(label, buf, off, v, size)
        if pre is not None:
            v = pre(v)
        try:
            pack_into(buf, off, v)
        except (struct.error, OverflowError):
            if fmt in "efd":
                raise TypeError(f"{label}: cannot encode {v!r} as a {size}-byte float") from None
            raise _range_error(label, v, size, signed) from None

    return Codec(t, size, unpack, pack, fmt=fmt, post=post, pre=pre)


def _wide(t: Type, size: int, signed: bool, pre: Callable | None = None) -> Codec:
    label = type_name(t)
    if isinstance(t, Float):
        def unpack_raw(buf: Any, off: int) -> bytes:
            return bytes(buf[off:off + size])

        def pack_raw(buf: bytearray, off: int, v: Any) -> None:
            if v is None:
                return
            if not isinstance(v, _BYTES) or len(v) != size:
                raise TypeError(f"{label}: expected {size} bytes, got {v!r}")
            buf[off:off + size] = v
        return Codec(t, size, unpack_raw, pack_raw)

    def unpack(buf: Any, off: int) -> int:
        return int.from_bytes(buf[off:off + size], "little", signed=signed)

    def pack(buf: bytearray, off: int, v: Any) -> None:
        if v is None:
            return
        if pre is not None:
            v = pre(v)
        if isinstance(v, _BYTES):
            return _raw_bytes(label, buf, off, v, size)
        _check_int(label, v, 8 * size, signed, size)
        buf[off:off + size] = v.to_bytes(size, "little", signed=signed)
    return Codec(t, size, unpack, pack)


def _int_codec(t: Int) -> Codec:
    if t.bits != 8 * t.size or t.offset:
        get, put = _bitfield(type_name(t), t.offset, t.bits, t.signed, t.is_bool, None, t.size)
        return Codec(t, t.size, get, put)
    if t.is_bool:
        return _scalar(t, _INT_FMT.get((t.size, False)), post=bool, pre=_bool_pre(type_name(t)))
    return _scalar(t, _INT_FMT.get((t.size, t.signed)))


def _bitfield(label: str, bit_off: int, nbits: int, signed: bool, is_bool: bool,
              pre: Callable | None, size: int) -> tuple[Unpack, Pack]:
    start = bit_off // 8
    end = (bit_off + nbits + 7) // 8
    shift = bit_off - 8 * start
    mask = (1 << nbits) - 1
    sign = 1 << (nbits - 1)
    nbytes = end - start
    check_bool = _bool_pre(label) if is_bool else None

    def get(buf: Any, off: int) -> Any:
        v = int.from_bytes(buf[off + start:off + end], "little") >> shift & mask
        if signed and v & sign:
            v -= 1 << nbits
        return bool(v) if is_bool else v

    def put(buf: bytearray, off: int, v: Any) -> None:
        if v is None:
            return
        if pre is not None:
            v = pre(v)
        if check_bool is not None:
            v = check_bool(v)
        _check_int(label, v, nbits, signed, size)
        raw = int.from_bytes(buf[off + start:off + end], "little")
        raw = raw & ~(mask << shift) | (v & mask) << shift
        buf[off + start:off + end] = raw.to_bytes(nbytes, "little")
    return get, put


def _bytes_pre(label: str, n: int) -> Callable[[Any], bytes]:
    def pre(v: Any) -> bytes:
        if isinstance(v, str):
            v = v.encode()
        elif isinstance(v, _BYTES):
            v = bytes(v)
        elif isinstance(v, (list, tuple)):
            try:
                v = bytes(v)
            except (ValueError, TypeError):
                raise TypeError(f"{label}: expected bytes, got {v!r}") from None
        else:
            raise TypeError(f"{label}: expected bytes or str, got {type(v).__name__} {v!r}")
        if len(v) > n:
            raise TypeError(f"{label}: {len(v)} bytes do not fit in {n}")
        return v
    return pre


def _raw_bytes(label: str, buf: bytearray, off: int, v: Any, size: int) -> None:
    """Copy ``v`` (already-encoded bytes) into place; it must be exactly ``size`` bytes."""
    if len(v) != size:
        raise TypeError(f"{label}: expected {size} bytes, got {len(v)}")
    buf[off:off + size] = v


def _cstring(v: bytes) -> bytes:
    i = v.find(0)
    return v if i < 0 else v[:i]


def _array_codec(t: Array, busy: set[int]) -> Codec:
    elem = resolve(t.elem)
    n = t.nelems
    label = type_name(t)
    if isinstance(elem, Int) and elem.size == 1 and not elem.is_bool and elem.bits == 8:
        return _scalar(t, f"{n}s", post=_cstring if elem.is_char else None, pre=_bytes_pre(label, n))
    ec = elem._codec or _compile(elem, busy)
    esize = ec.size
    size = n * esize

    def seq(v: Any) -> list:
        if not isinstance(v, (list, tuple)) and not hasattr(v, "__len__"):
            raise TypeError(f"{label}: expected a sequence of {n}, got {type(v).__name__} {v!r}")
        if isinstance(v, (str, dict)) or len(v) > n:
            raise TypeError(f"{label}: expected at most {n} elements, got {v!r}")
        return list(v)

    if ec.fmt is not None and len(ec.fmt) == 1:
        st = struct.Struct(f"<{n}{ec.fmt}")
        post, pre = ec.post, ec.pre

        def unpack(buf: Any, off: int) -> list:
            vals = list(st.unpack_from(buf, off))
            return [post(x) for x in vals] if post is not None else vals

        def pack(buf: bytearray, off: int, v: Any) -> None:
            if v is None:
                return
            if isinstance(v, _BYTES):
                return _raw_bytes(label, buf, off, v, size)
            vals = [0 if x is None else x for x in seq(v)]
            if pre is not None:
                vals = [pre(x) for x in vals]
            vals.extend([0] * (n - len(vals)))
            try:
                st.pack_into(buf, off, *vals)
            except (struct.error, OverflowError):
                for i, x in enumerate(vals):  # find the culprit for the message
                    try:
                        ec._pack(bytearray(esize), 0, x)
                    except TypeError as err:
                        raise TypeError(f"{label}[{i}]: {err}") from None
                raise TypeError(f"{label}: cannot encode {v!r}") from None
        return Codec(t, size, unpack, pack)

    eunpack, epack = ec._unpack, ec._pack

    def unpack_list(buf: Any, off: int) -> list:
        if not esize:   # arrays of empty structs
            return [eunpack(buf, off) for _ in range(n)]
        return [eunpack(buf, o) for o in range(off, off + size, esize)]

    def pack_list(buf: bytearray, off: int, v: Any) -> None:
        if v is None:
            return
        if isinstance(v, _BYTES):
            return _raw_bytes(label, buf, off, v, size)
        for i, x in enumerate(seq(v)):
            try:
                epack(buf, off + i * esize, x)
            except TypeError as err:
                raise TypeError(f"{label}[{i}]: {err}") from None
    return Codec(t, size, unpack_list, pack_list)


class _Field:
    """One (flattened) field of a record: where it is and how to read/write it."""

    __slots__ = ("name", "get", "put", "start", "end")

    def __init__(self, name: str, get: Unpack, put: Pack, start: int, end: int) -> None:
        self.name, self.get, self.put, self.start, self.end = name, get, put, start, end


def _flatten(t: Composite | Datasec, base_bits: int, out: list[tuple[str, int, int, Type]]) -> None:
    """(name, bit offset, bitfield size, type) of every field, anonymous members flattened."""
    if isinstance(t, Datasec):
        for vs in t.vars:
            var = vs.var
            out.append((var.name, 8 * vs.offset, 0, var.type if isinstance(var, Var) else var))
        return
    for m in t.members:
        mt = m.type
        if not m.name:
            r = resolve(mt)
            if isinstance(r, Composite):
                _flatten(r, base_bits + m.bit_offset, out)
            continue        # unnamed non-composite member: padding
        out.append((m.name, base_bits + m.bit_offset, m.bitfield_size, mt))


def _straight_unpack(cls: type, names: list[str], posts: list[tuple[int, Callable]],
                     unpack_from: Callable) -> Callable[[Any, int], Any] | None:
    """``unpack(buf, off)`` of a record whose fields all come from one struct format, as
    straight-line code: one attribute store per field, as namedtuple's generated ``__new__``
    does.  The generic loop of setattr calls takes twice as long, and decoding a record is what
    a ring-buffer reader does for every event.  None when a field name is a Python keyword."""
    if any(keyword.iskeyword(n) for n in names):
        return None
    post = dict(posts)
    values = [f"v{i}" for i in range(len(names))]
    lines = ["def unpack(buf, off):",
             f"    {', '.join(values)}, = unpack_from(buf, off)",
             "    obj = new(cls)"]
    lines += [f"    obj.{name} = {f'post{i}(v{i})' if i in post else f'v{i}'}" for i, name in enumerate(names)]
    lines.append("    return obj")
    scope = {"unpack_from": unpack_from, "new": cls.__new__, "cls": cls, **{f"post{i}": fn for i, fn in posts}}
    exec("\n".join(lines), scope)   # names are identifiers, checked by _record_class
    return scope["unpack"]


def _record_codec(t: Composite | Datasec, busy: set[int]) -> Codec:
    label = type_name(t)
    size = t.size
    if isinstance(t, Datasec) and not size and t.vars:
        size = max(vs.offset + vs.size for vs in t.vars)
    flat: list[tuple[str, int, int, Type]] = []
    _flatten(t, 0, flat)
    fields: list[_Field] = []
    fmt_parts = ["<"]
    fmt_names: list[str] = []
    defaults: list[Any] = []
    posts: list[tuple[int, Callable]] = []
    pres: list[tuple[int, Callable]] = []
    slow: list[_Field] = []
    pos = 0
    seen: set[str] = set()
    for name, bit_off, bf_size, mt in flat:
        if name in seen:
            continue
        seen.add(name)
        r = resolve(mt)
        flabel = f"{label}.{name}"
        if bf_size or bit_off % 8 or (isinstance(r, Int) and (r.bits != 8 * r.size or r.offset)):
            if not isinstance(r, (Int, Enum)):
                raise ObjectError(f"{flabel}: bitfield of non-integer type {type_name(mt)}")
            nbits = bf_size or (r.bits if isinstance(r, Int) else 8 * r.size)
            extra = r.offset if isinstance(r, Int) and not bf_size else 0
            get, put = _bitfield(flabel, bit_off + extra, nbits, r.signed,
                                 isinstance(r, Int) and r.is_bool,
                                 _enum_pre(r) if isinstance(r, Enum) else None, r.size)
            f = _Field(name, get, put, bit_off // 8, (bit_off + extra + nbits + 7) // 8)
            fields.append(f)
            slow.append(f)
            continue
        c = r._codec or _compile(r, busy)
        off = bit_off // 8
        f = _Field(name, _at(c._unpack, off), _at(c._pack, off, flabel), off, off + c.size)
        fields.append(f)
        if c.fmt is not None and off >= pos:
            if off > pos:
                fmt_parts.append(f"{off - pos}x")
            if c.post is not None:
                posts.append((len(fmt_names), c.post))
            if c.pre is not None:
                pres.append((len(fmt_names), c.pre))
            fmt_parts.append(c.fmt)
            fmt_names.append(name)
            defaults.append(b"" if c.fmt.endswith("s") else 0)
            pos = off + c.size
        else:
            slow.append(f)
    for f in fields:
        if f.end > size:
            raise ObjectError(f"{label}: field {f.name!r} (bytes {f.start}..{f.end}) exceeds the "
                              f"{size}-byte {t.kind.name.lower()}")
    overlap = isinstance(t, Union) or any(
        a.start < b.end and b.start < a.end and a is not b
        for i, a in enumerate(fields) for b in fields[i + 1:])
    names = [f.name for f in fields]
    cls = _record_class(t.name, names, overlap, t)
    st = struct.Struct("".join(fmt_parts))
    unpack_from, pack_into = st.unpack_from, st.pack_into
    new = cls.__new__
    pairs = [(f.name, f.get) for f in slow]
    all_plain = not slow and fmt_names == names

    def unpack(buf: Any, off: int) -> Any:
        obj = new(cls)
        vals = unpack_from(buf, off)
        if posts:
            vals = list(vals)
            for i, fn in posts:
                vals[i] = fn(vals[i])
        for name, v in zip(fmt_names, vals):
            setattr(obj, name, v)
        for name, get in pairs:
            setattr(obj, name, get(buf, off))
        if overlap:
            obj._btf_raw = bytes(buf[off:off + size])
        return obj

    if not slow and not overlap and fmt_names:
        unpack = _straight_unpack(cls, fmt_names, posts, unpack_from) or unpack

    def pack(buf: bytearray, off: int, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, _BYTES):
            return _raw_bytes(label, buf, off, value, size)
        if type(value) is cls and not overlap:         # fast path: our own record
            vals = [getattr(value, n) for n in fmt_names]
            getter = value.__getattribute__
        elif all_plain and type(value) is tuple and len(value) == len(fmt_names):
            vals = list(value)
            getter = _getter(value, names, label)
        else:
            getter = _getter(value, names, label)
            if overlap:
                _pack_overlapping(buf, off, value, getter)
                return
            vals = [getter(n) for n in fmt_names]
        for i, fn in pres:
            if vals[i] is not None:
                vals[i] = fn(vals[i])
        for i, v in enumerate(vals):
            if v is None:
                vals[i] = defaults[i]
        try:
            pack_into(buf, off, *vals)
        except (struct.error, OverflowError):
            by_name = {f.name: f for f in fields}
            for n, v in zip(fmt_names, vals):  # pin the field for the message
                by_name[n].put(bytearray(size), 0, v)
            raise TypeError(f"{label}: cannot encode {value!r}") from None
        for f in slow:
            f.put(buf, off, getter(f.name))

    def _pack_overlapping(buf: bytearray, off: int, value: Any, getter: Callable[[str], Any]) -> None:
        raw = getattr(value, "_btf_raw", None) if isinstance(value, cls) else None
        if raw is None:
            for f in fields:
                f.put(buf, off, getter(f.name))
            return
        buf[off:off + size] = raw
        old = unpack(raw, 0)
        for f in fields:
            v = getter(f.name)
            if not _same(v, getattr(old, f.name)):
                f.put(buf, off, v)

    return Codec(t, size, unpack, pack, record=cls)


def _at(fn: Callable, delta: int, label: str | None = None) -> Callable:
    if label is None:
        return lambda buf, off: fn(buf, off + delta)

    def put(buf: bytearray, off: int, v: Any) -> None:
        try:
            fn(buf, off + delta, v)
        except TypeError as err:
            msg = str(err)
            raise TypeError(msg if msg.startswith(label) else f"{label}: {msg}") from None
    return put


def _getter(value: Any, names: Iterable[str], label: str) -> Callable[[str], Any]:
    if isinstance(value, dict):
        unknown = set(value) - set(names)
        if unknown:
            raise TypeError(f"{label} has no field {sorted(unknown)[0]!r}")
        return value.get
    if isinstance(value, (tuple, list)):
        names = list(names)
        if len(value) > len(names):
            raise TypeError(f"{label}: {len(value)} values for {len(names)} fields")
        by_name = dict(zip(names, value))
        return by_name.get
    if isinstance(value, (int, float, str, bytes)):
        raise TypeError(f"{label}: expected a record, dict or tuple, got {type(value).__name__} {value!r}")
    return lambda n: getattr(value, n, None)

