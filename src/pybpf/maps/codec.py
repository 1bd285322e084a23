"""Key and value codecs: Python objects to the bytes a map stores, and back.

A codec is any object with three members (the :class:`Codec` protocol)::

    size: int                      # bytes in the kernel buffer
    encode(value) -> bytes         # exactly ``size`` bytes
    decode(buf: bytes) -> value

Maps accept a *codec spec* for ``key=`` and ``value=`` and turn it into a
codec with :func:`make_codec`:

===================================  ===========================================
spec                                 Python side
===================================  ===========================================
``4`` (an int)                       ``bytes`` of exactly that length
``"u8"`` .. ``"u64"``, ``"i8"`` ..   ``int`` (range-checked), host byte order
``"i64"``, ``"bool"``, ``"f32"``,
``"f64"``
``"<IQ"`` (a struct format)          ``tuple``; a one-field format gives a scalar
a ctypes type (Structure, array,     instances of that type (``bytes`` of the
simple type)                         right size are accepted too); simple types
                                     give their ``.value``
any object with size/encode/decode   whatever it encodes and decodes (the
                                     loader passes BTF codecs this way)
===================================  ===========================================

A value of the wrong size or type is a :class:`TypeError` naming the size the
map expects ("key must be 4 bytes (u32), got 8 bytes"); an integer out of
range is an :class:`OverflowError` naming the range.  Nothing is truncated
or padded silently.  Raw ``bytes`` of exactly the size are accepted by every
codec, as they are (a key read from elsewhere, say).

Besides the protocol, the codecs here carry the fast forms the map hot paths
use (foreign codecs are wrapped by :class:`ForeignCodec` to get them):

- ``pack_into(buf, offset, value)`` writes ``size`` bytes into a writable
  buffer;
- ``unpack_from(buf, offset)`` returns a **1-tuple** holding the decoded
  value.  The tuple is what ``struct.Struct.unpack_from`` returns, so scalar
  codecs hand the C method over directly and a map lookup costs one C call
  plus ``[0]``;
- ``decode_many(buf, n)`` / ``pack_many(buf, values)`` for batch operations;
- ``error(role, value, exc)`` builds the user-facing exception after a
  ``pack_into`` failed.

Example::

    >>> c = make_codec("u32")
    >>> c.encode(5), c.decode(b"\\x05\\x00\\x00\\x00")
    (b'\\x05\\x00\\x00\\x00', 5)
    >>> make_codec("<HH").decode(b"\\x01\\x00\\x02\\x00")
    (1, 2)
"""

from __future__ import annotations

import ctypes
import struct

from pybpf._sys.syscall import fd_of

__all__ = [
    "Codec", "make_codec", "ScalarCodec", "BoolCodec", "StructCodec", "RawCodec", "CtypesCodec",
    "ForeignCodec", "NullCodec", "PerCPUCodec", "FdCodec", "round8",
]


TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable


class Codec:
    """What a map needs to turn Python values into kernel bytes and back: ``size`` (bytes),
    ``encode(value) -> bytes`` and ``decode(buf) -> value``.  pybpf's codecs derive from this
    class; a codec of your own only needs the three members."""

    __slots__ = ()
    size: int

    def encode(self, value: Any) -> bytes:
        raise NotImplementedError

    def decode(self, buf: bytes) -> Any:
        raise NotImplementedError


def round8(n: int) -> int:
    return (n + 7) & ~7


def _bytes_len(value: Any) -> int | None:
    """Length in bytes of a bytes-like object, or None if ``value`` is not one."""
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, memoryview):
        return value.nbytes
    return None


def _nbytes(n: int) -> str:
    return "1 byte" if n == 1 else f"{n} bytes"


def _describe(value: Any) -> str:
    n = _bytes_len(value)
    if n is not None:
        return _nbytes(n)
    if isinstance(value, ctypes._SimpleCData | ctypes.Structure | ctypes.Union | ctypes.Array):
        return f"{type(value).__name__} ({ctypes.sizeof(value)} bytes)"
    if isinstance(value, tuple):
        return f"a tuple of {len(value)}"
    return type(value).__name__


class _Base(Codec):
    """Shared behaviour of the built-in codecs."""

    __slots__ = ("size", "label")
    size: int
    label: str

    def pack_into(self, buf: Any, offset: int, value: Any) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def unpack_from(self, buf: Any, offset: int = 0) -> tuple:  # pragma: no cover - overridden
        raise NotImplementedError

    def encode(self, value: Any) -> bytes:
        buf = bytearray(self.size)
        try:
            self.pack_into(buf, 0, value)
        except Exception as exc:
            self.pack_raw(buf, 0, value, "value", exc)
        return bytes(buf)

    def pack_raw(self, buf: Any, offset: int, value: Any, role: str, exc: BaseException) -> None:
        """The slow path after ``pack_into(value)`` failed: bytes of exactly ``size`` go in as
        they are (a key read from elsewhere, say); anything else raises :meth:`error`."""
        if _bytes_len(value) == self.size:
            buf[offset:offset + self.size] = value if isinstance(value, (bytes, bytearray)) else bytes(value)
            return
        raise self.error(role, value, exc) from None

    def decode(self, buf: bytes) -> Any:
        if len(buf) != self.size:
            raise TypeError(f"{self.label} needs {self.size} bytes to decode, got {len(buf)}")
        return self.unpack_from(buf, 0)[0]

    def decode_many(self, buf: Any, n: int) -> list:
        size, unpack = self.size, self.unpack_from
        return [unpack(buf, i * size)[0] for i in range(n)]

    def pack_many(self, buf: Any, values: Iterable[Any], role: str) -> int:
        size, pack = self.size, self.pack_into
        n = 0
        for n, value in enumerate(values, 1):
            try:
                pack(buf, (n - 1) * size, value)
            except Exception as exc:
                self.pack_raw(buf, (n - 1) * size, value, f"{role} {n - 1}", exc)
        return n

    def error(self, role: str, value: Any, exc: BaseException) -> Exception:
        """The exception to raise after packing ``value`` (a ``role``, e.g. "key") failed."""
        return TypeError(f"{role} must be {_nbytes(self.size)} ({self.label}), got {_describe(value)}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label} ({self.size} bytes)>"


_SCALARS = {
    # name: (struct char, lowest, highest)
    "u8": ("B", 0, 2**8 - 1), "u16": ("H", 0, 2**16 - 1), "u32": ("I", 0, 2**32 - 1),
    "u64": ("Q", 0, 2**64 - 1), "i8": ("b", -2**7, 2**7 - 1), "i16": ("h", -2**15, 2**15 - 1),
    "i32": ("i", -2**31, 2**31 - 1), "i64": ("q", -2**63, 2**63 - 1),
    "f32": ("f", None, None), "f64": ("d", None, None),
}


class ScalarCodec(_Base):
    """A fixed-size integer or float in host byte order ("u32", "i64", "f64", ...)."""

    __slots__ = ("struct", "char", "low", "high", "pack_into", "unpack_from")

    def __init__(self, name: str) -> None:
        char, low, high = _SCALARS[name]
        self.struct = struct.Struct("=" + char)
        self.size = self.struct.size
        self.label = name
        self.char = char
        self.low, self.high = low, high
        # The C methods themselves: the hot path is one C call.
        self.pack_into = self.struct.pack_into
        self.unpack_from = self.struct.unpack_from

    def decode_many(self, buf: Any, n: int) -> list:
        return memoryview(buf).cast("B")[: n * self.size].cast(self.char).tolist()

    def pack_many(self, buf: Any, values: Iterable[Any], role: str) -> int:
        values = values if isinstance(values, (list, tuple)) else list(values)
        try:
            struct.pack_into(f"={len(values)}{self.char}", buf, 0, *values)
        except Exception:
            return _Base.pack_many(self, buf, values, role)  # finds the bad one and says which
        return len(values)

    def error(self, role: str, value: Any, exc: BaseException) -> Exception:
        if self.low is not None and isinstance(value, int):
            return OverflowError(f"{role} {value} out of range for {self.label} ({self.low}..{self.high})")
        if self.low is None and isinstance(value, (int, float)):
            return OverflowError(f"{role} {value} out of range for {self.label}")
        return _Base.error(self, role, value, exc)


class BoolCodec(_Base):
    """One byte, 0 or 1; accepts bool, 0 and 1 only (struct's "?" would take anything)."""

    __slots__ = ()

    def __init__(self) -> None:
        self.size = 1
        self.label = "bool"

    def pack_into(self, buf: Any, offset: int, value: Any) -> None:
        if value is True or value is False or (type(value) is int and value in (0, 1)):
            buf[offset] = 1 if value else 0
            return
        raise TypeError

    def unpack_from(self, buf: Any, offset: int = 0) -> tuple:
        return (buf[offset] != 0,)

    def decode_many(self, buf: Any, n: int) -> list:
        return [b != 0 for b in bytes(memoryview(buf).cast("B")[:n])]


class RawCodec(_Base):
    """Exactly ``size`` bytes; decodes to ``bytes``."""

    __slots__ = ("struct", "unpack_from")

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"codec size must be >= 0, got {size}")
        self.size = size
        self.label = "raw bytes"
        self.struct = struct.Struct(f"{size}s")
        self.unpack_from = self.struct.unpack_from

    def pack_into(self, buf: Any, offset: int, value: Any) -> None:
        n = _bytes_len(value)
        if n != self.size:
            raise TypeError
        buf[offset:offset + n] = value

    def decode_many(self, buf: Any, n: int) -> list:
        return [t[0] for t in self.struct.iter_unpack(memoryview(buf).cast("B")[: n * self.size])]


class NullCodec(_Base):
    """Size 0: the key of queue, stack and bloom filter maps."""

    __slots__ = ()

    def __init__(self) -> None:
        self.size = 0
        self.label = "no key"

    def pack_into(self, buf: Any, offset: int, value: Any) -> None:
        if value is not None:
            raise TypeError

    def unpack_from(self, buf: Any, offset: int = 0) -> tuple:
        return (None,)

    def error(self, role: str, value: Any, exc: BaseException) -> Exception:
        return TypeError(f"this map has no {role}s (key_size 0), got {_describe(value)}")


_FORMAT_TOKEN = r"(\d*)([xcbB?hHiIlLqQnNefdspP])"


class StructCodec(_Base):
    """A :mod:`struct` format: tuples, or a scalar when the format has one field.

    ``s`` fields must be given bytes of exactly their length (struct itself
    would pad or truncate them silently).
    """

    __slots__ = ("struct", "fields", "_sfields", "single", "pack_into", "unpack_from")

    def __init__(self, fmt: str) -> None:
        try:
            self.struct = struct.Struct(fmt)
        except struct.error as exc:
            raise TypeError(f"not a codec: {fmt!r} is neither a type name "
                            f"({', '.join(sorted(_SCALARS))}, bool) nor a struct format ({exc})") from None
        self.size = self.struct.size
        self.label = f"struct {fmt!r}"
        # Which fields are byte strings, and how long each must be.
        self._sfields: list[tuple[int, int]] = []
        index = 0
        import re   # struct formats come from users only: loading an object does not import re

        for count, char in re.findall(_FORMAT_TOKEN, fmt.lstrip("@=<>!")):
            n = int(count) if count else 1
            if char in "sp":
                self._sfields.append((index, n))
                index += 1
            elif char != "x":
                index += n
        self.fields = index
        self.single = index == 1
        if self.single and not self._sfields:
            self.pack_into = self.struct.pack_into
            self.unpack_from = self.struct.unpack_from
        elif self.single:
            self.pack_into = self._pack_one_checked
            self.unpack_from = self.struct.unpack_from
        else:
            self.pack_into = self._pack_tuple
            self.unpack_from = self._unpack_tuple

    def _check_strings(self, fields: tuple) -> None:
        for index, n in self._sfields:
            if _bytes_len(fields[index]) != n:
                raise TypeError

    def _pack_one_checked(self, buf: Any, offset: int, value: Any) -> None:
        self._check_strings((value,))
        self.struct.pack_into(buf, offset, value)

    def _pack_tuple(self, buf: Any, offset: int, value: Any) -> None:
        if self._sfields:
            if not isinstance(value, tuple) or len(value) != self.fields:
                raise TypeError
            self._check_strings(value)
        self.struct.pack_into(buf, offset, *value)

    def _unpack_tuple(self, buf: Any, offset: int = 0) -> tuple:
        return (self.struct.unpack_from(buf, offset),)

    def decode_many(self, buf: Any, n: int) -> list:
        rows = self.struct.iter_unpack(memoryview(buf).cast("B")[: n * self.size])
        return [t[0] for t in rows] if self.single else list(rows)

    def error(self, role: str, value: Any, exc: BaseException) -> Exception:
        fields = (value,) if self.single else value
        if not self.single and not (isinstance(value, tuple) and len(value) == self.fields):
            got = f"a tuple of {len(value)}" if isinstance(value, tuple) else _describe(value)
            return TypeError(f"{role} must be {_nbytes(self.size)} ({self.label}: a tuple of {self.fields} fields), "
                             f"got {got}")
        for index, n in self._sfields:
            if _bytes_len(fields[index]) != n:
                where = role if self.single else f"{role} field {index}"
                return TypeError(f"{where} must be {_nbytes(n)} ({self.label}), got {_describe(fields[index])}")
        if isinstance(exc, struct.error):
            text = str(exc)
            if "range" in text or "requires" in text:
                return OverflowError(f"{role} {value!r} out of range for {self.label}: {text}")
            return TypeError(f"{role} {value!r} does not fit {self.label}: {text}")
        return _Base.error(self, role, value, exc)


class CtypesCodec(_Base):
    """A ctypes type: decodes to instances (simple types such as c_uint32 to their value)."""

    __slots__ = ("ctype", "simple")

    def __init__(self, ctype: type) -> None:
        self.ctype = ctype
        self.size = ctypes.sizeof(ctype)
        self.label = f"ctypes {ctype.__name__}"
        self.simple = issubclass(ctype, ctypes._SimpleCData)

    def pack_into(self, buf: Any, offset: int, value: Any) -> None:
        if type(value) is not self.ctype:
            if self.simple and isinstance(value, (int, float)) and not isinstance(value, bool):
                obj = self.ctype(value)
                if obj.value != value:  # ctypes wraps around silently; we do not
                    raise OverflowError
                value = obj
            elif _bytes_len(value) != self.size:
                raise TypeError
        buf[offset:offset + self.size] = bytes(value)

    def error(self, role: str, value: Any, exc: BaseException) -> Exception:
        if isinstance(exc, OverflowError):
            return OverflowError(f"{role} {value!r} out of range for {self.label}")
        return _Base.error(self, role, value, exc)

    def unpack_from(self, buf: Any, offset: int = 0) -> tuple:
        obj = self.ctype.from_buffer_copy(buf, offset)
        return (obj.value,) if self.simple else (obj,)


class ForeignCodec(_Base):
    """Adapts any object with ``size``/``encode``/``decode`` (a BTF codec, say) to the fast form."""

    __slots__ = ("codec",)

    def __init__(self, codec: Any, size: int | None = None, label: str | None = None) -> None:
        """``size``/``label``, when given, are not asked of ``codec``."""
        self.codec = codec
        self.size = int(codec.size) if size is None else size
        self.label = label or getattr(codec, "label", None) or getattr(codec, "name", None) or type(codec).__name__

    def pack_into(self, buf: Any, offset: int, value: Any) -> None:
        data = self.codec.encode(value)
        if _bytes_len(data) != self.size:
            raise _SizeMismatch(_bytes_len(data))
        buf[offset:offset + self.size] = data

    def unpack_from(self, buf: Any, offset: int = 0) -> tuple:
        return (self.codec.decode(bytes(memoryview(buf).cast("B")[offset:offset + self.size])),)

    def encode(self, value: Any) -> bytes:
        return self.codec.encode(value)

    def decode(self, buf: bytes) -> Any:
        return self.codec.decode(buf)

    def error(self, role: str, value: Any, exc: BaseException) -> Exception:
        if isinstance(exc, _SizeMismatch):
            return TypeError(f"{role} must be {self.size} bytes ({self.label}), "
                             f"but the codec encoded {exc.args[0]} bytes")
        if isinstance(exc, (TypeError, ValueError, OverflowError)):
            return type(exc)(f"{role}: {exc}")
        return _Base.error(self, role, value, exc)


class _SizeMismatch(Exception):
    pass


class FdCodec(_Base):
    """Values of fd maps (prog arrays, maps of maps): an fd goes in, a kernel object id comes out.

    Encoding accepts an int fd or any object with an ``fd`` attribute
    (a Program, a Map) or a ``fileno()`` method; decoding gives the u32 id
    of the object stored there, which is what the kernel returns.
    """

    __slots__ = ("_u32", "unpack_from")

    def __init__(self, what: str) -> None:
        self.size = 4
        self.label = f"{what} fd in, {what} id out"
        self._u32 = struct.Struct("=I")
        self.unpack_from = self._u32.unpack_from

    def pack_into(self, buf: Any, offset: int, value: Any) -> None:
        value = fd_of(value)
        if value < 0:
            raise TypeError
        self._u32.pack_into(buf, offset, value)

    def decode_many(self, buf: Any, n: int) -> list:
        return memoryview(buf).cast("B")[: n * 4].cast("I").tolist()

    def error(self, role: str, value: Any, exc: BaseException) -> Exception:
        return TypeError(f"{role} must be a file descriptor (an int, or an object with .fd), "
                         f"got {_describe(value)}")


class PerCPUCodec(_Base):
    """The value of a per-CPU map: one value per possible CPU, each in an 8-byte aligned slot.

    Encoding takes a ``list`` with one entry per possible CPU, or any other
    single value, which is written to every CPU.  Decoding gives a list.
    """

    __slots__ = ("inner", "ncpus", "stride", "_whole")

    def __init__(self, inner: _Base, ncpus: int) -> None:
        self.inner = inner
        self.ncpus = ncpus
        self.stride = round8(inner.size)
        self.size = self.stride * ncpus
        self.label = f"per-CPU {inner.label} x{ncpus}"
        # Scalars get one struct covering every CPU slot: decoding is one C call.
        self._whole: struct.Struct | None = None
        if isinstance(inner, ScalarCodec):
            pad = self.stride - inner.size
            self._whole = struct.Struct("=" + (inner.char + (f"{pad}x" if pad else "")) * ncpus)

    def pack_into(self, buf: Any, offset: int, value: Any) -> None:
        values = value if type(value) is list else [value] * self.ncpus
        if len(values) != self.ncpus:
            raise _CPUCount(len(values))
        if self._whole is not None:
            self._whole.pack_into(buf, offset, *values)
            return
        stride, pack = self.stride, self.inner.pack_into
        buf[offset:offset + self.size] = bytes(self.size)  # zero the padding
        for i, v in enumerate(values):
            pack(buf, offset + i * stride, v)

    def unpack_from(self, buf: Any, offset: int = 0) -> tuple:
        if self._whole is not None:
            return (list(self._whole.unpack_from(buf, offset)),)
        stride, unpack = self.stride, self.inner.unpack_from
        return ([unpack(buf, offset + i * stride)[0] for i in range(self.ncpus)],)

    def decode_many(self, buf: Any, n: int) -> list:
        if self._whole is not None:
            return [list(t) for t in self._whole.iter_unpack(memoryview(buf).cast("B")[: n * self.size])]
        return _Base.decode_many(self, buf, n)

    def error(self, role: str, value: Any, exc: BaseException) -> Exception:
        if isinstance(exc, _CPUCount):
            return TypeError(f"{role} must be a list of {self.ncpus} values (one per possible CPU) "
                             f"or a single value for all CPUs, got a list of {exc.args[0]}")
        if type(value) is list:
            scratch = bytearray(self.inner.size)
            for i, v in enumerate(value):
                try:
                    self.inner.pack_into(scratch, 0, v)
                except Exception as inner_exc:
                    return self.inner.error(f"{role}[cpu {i}]", v, inner_exc)
        return self.inner.error(role, value, exc)


class _CPUCount(Exception):
    pass


_CTYPES_BASES = (ctypes.Structure, ctypes.Union, ctypes.Array, ctypes._SimpleCData)


_SCALAR_CODECS: dict[str, "ScalarCodec"] = {}


def scalar_codec(name: str) -> "ScalarCodec":
    """The codec of scalar type ``name`` ("u32", "i64"...; KeyError for another name).

    Scalar codecs hold nothing but their struct: one per name serves every map.

    >>> scalar_codec("u32").size, scalar_codec("u32") is scalar_codec("u32")
    (4, True)
    """
    codec = _SCALAR_CODECS.get(name)
    if codec is None:
        if name not in _SCALARS:
            raise KeyError(name)
        codec = _SCALAR_CODECS[name] = ScalarCodec(name)
    return codec


def make_codec(spec: Any, *, size: int | None = None, role: str = "value") -> _Base:
    """Turn a codec spec (see the module docstring) into a codec.

    ``size``, when given, is the size the kernel uses; a spec of another
    size is a TypeError.  ``None`` as the spec means raw bytes of ``size``.
    """
    codec = spec if isinstance(spec, _Base) else _build(spec, size, role)
    if size is not None and codec.size != size:
        raise TypeError(f"{role} codec {codec.label} is {codec.size} bytes, but the map's {role}_size is {size}")
    return codec


def _build(spec: Any, size: int | None, role: str) -> _Base:
    if spec is None:
        if size is None:
            raise TypeError(f"give {role}= (a codec spec) or {role}_size=")
        return RawCodec(size)
    if isinstance(spec, _Base):
        return spec
    if isinstance(spec, bool):
        raise TypeError(f"{role}={spec!r} is not a codec spec")
    if isinstance(spec, int):
        return RawCodec(spec)
    if isinstance(spec, str):
        if spec in _SCALARS:
            return scalar_codec(spec)
        if spec == "bool":
            return BoolCodec()
        return StructCodec(spec)
    if isinstance(spec, type) and issubclass(spec, _CTYPES_BASES):
        if issubclass(spec, ctypes._SimpleCData):
            char = getattr(spec, "_type_", "")
            for name, (c, _lo, _hi) in _SCALARS.items():
                if c == char and struct.calcsize("=" + c) == ctypes.sizeof(spec):
                    return ScalarCodec(name)
        return CtypesCodec(spec)
    if all(hasattr(spec, attr) for attr in ("size", "encode", "decode")):
        return ForeignCodec(spec)
    raise TypeError(f"{role}={spec!r} is not a codec spec: give an int (bytes), a type name such as "
                    f"'u32', a struct format, a ctypes type, or an object with size/encode/decode")
