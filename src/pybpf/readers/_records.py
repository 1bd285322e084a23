"""Record types for the stream readers: decoders, NumPy dtypes, :class:`RecordBatch`, :class:`RecordError`.

A reader hands records over as zero-copy ``memoryview`` objects unless it is
told their type:

- ``record=`` a codec spec (what :func:`pybpf.maps.codec.make_codec` takes: a
  struct format such as ``"<QQ"``, a ctypes type, an int size, an object with
  ``size``/``decode``), a BTF codec (:func:`pybpf.btf.codec_for`) or a BTF
  type: each record is decoded into a Python value;
- ``record=`` the name of a type in the BTF of the object the map comes
  from: ``"struct event"`` or just ``"event"``; a name that is not there is
  a :class:`pybpf.NameNotFoundError` saying why (a struct reaches BTF only
  when the C code uses it);
- ``dtype=`` anything ``numpy.dtype()`` accepts: batches become structured
  arrays; per-record reads give ``numpy.void`` copies.

When only ``record=`` is given, the dtype is derived from it where that is
possible (BTF structs, ctypes structures, struct formats), so
``RecordBatch.array`` works too.  NumPy is imported only when a dtype is
needed.  A record shorter than the declared type is never decoded: it is
reported (see ``on_error`` of the readers) and skipped.
"""

from __future__ import annotations

import bisect
import operator
import re
import struct
from itertools import chain, repeat

from pybpf.errors import BPFError, NameNotFoundError, RecordError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator

__all__ = ["RecordError", "RecordBatch", "RecordType", "btf_dtype"]


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:  # pragma: no cover - numpy is an optional dependency
        raise ImportError("NumPy is needed for dtype= and RecordBatch.array: pip install 'pybpf[numpy]'") from None
    return numpy


# ---------------------------------------------------------------------- dtypes

def btf_dtype(t: Any) -> Any:
    """A NumPy dtype with the layout of BTF type ``t`` (little-endian, offsets and size kept).

    Integers, enums, pointers (u64), floats, ``_Bool``, arrays (char arrays
    become ``S<n>`` bytes), structs and unions (overlapping fields) are
    supported; bitfields are left out (their bytes are still in the record).
    Raises TypeError for what has no dtype (functions, void).

    >>> from pybpf.btf.types import Array, Int, IntEncoding, Member, Struct
    >>> ev = Struct("event", 24, [Member("pid", Int("int", 4, IntEncoding.SIGNED)),
    ...                           Member("comm", Array(Int("char", 1, IntEncoding.CHAR), None, 16), 32)])
    >>> btf_dtype(ev).names, btf_dtype(ev).itemsize                     # doctest: +SKIP
    (('pid', 'comm'), 24)
    """
    from pybpf.btf import types as bt
    from pybpf.btf import typeinfo

    np = _numpy()
    t = typeinfo.resolve(t)
    if isinstance(t, bt.Int):
        if t.is_bool:
            return np.dtype("?")
        if t.size in (1, 2, 4, 8):
            return np.dtype(f"<{'i' if t.signed else 'u'}{t.size}")
        return np.dtype(f"V{t.size}")
    if isinstance(t, bt.Enum):
        signed = bool(getattr(t, "signed", False))
        return np.dtype(f"<{'i' if signed else 'u'}{t.size}")
    if isinstance(t, bt.Pointer):
        return np.dtype("<u8")
    if isinstance(t, bt.Float):
        return np.dtype(f"<f{t.size}")
    if isinstance(t, bt.Array):
        elem = typeinfo.resolve(t.elem)
        if isinstance(elem, bt.Int) and elem.size == 1 and elem.is_char:
            return np.dtype(f"S{t.nelems}")
        return np.dtype((btf_dtype(elem), (t.nelems,)))
    if isinstance(t, bt.Composite):
        names, formats, offsets = [], [], []
        _btf_fields(t, 0, "", names, formats, offsets)
        return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": t.size})
    raise TypeError(f"BTF type {typeinfo.type_name(t)!r} has no NumPy dtype")


def _btf_fields(t: Any, base: int, prefix: str, names: list, formats: list, offsets: list) -> None:
    from pybpf.btf import types as bt
    from pybpf.btf import typeinfo

    for i, m in enumerate(t.members):
        if m.bitfield_size or m.bit_offset % 8:
            continue
        mt = typeinfo.resolve(m.type)
        if not m.name and isinstance(mt, bt.Composite):  # anonymous struct/union: flatten
            _btf_fields(mt, base + m.bit_offset // 8, prefix, names, formats, offsets)
            continue
        try:
            dt = btf_dtype(mt)
        except TypeError:
            continue
        names.append(prefix + (m.name or f"_{i}"))
        formats.append(dt)
        offsets.append(base + m.bit_offset // 8)


_chain = chain.from_iterable


def _picker(indexes: list[int]) -> Callable[[tuple], tuple]:
    """Reorders a tuple into the caller's order of names (always a tuple, also for one index)."""
    get = operator.itemgetter(*indexes)
    return get if len(indexes) > 1 else (lambda row: (get(row),))


_INT_CODES = {(1, False): "B", (1, True): "b", (2, False): "H", (2, True): "h", (4, False): "I", (4, True): "i",
              (8, False): "Q", (8, True): "q"}


def _btf_codes(t: Any, base: int, prefix: str, out: dict[str, tuple[int, str]]) -> None:
    """Name -> (byte offset, struct code) of the members of BTF composite ``t`` (bitfields left out)."""
    from pybpf.btf import types as bt
    from pybpf.btf import typeinfo
    from pybpf.btf.typeinfo import sizeof

    for i, m in enumerate(t.members):
        if m.bitfield_size or m.bit_offset % 8:
            continue
        mt, off = typeinfo.resolve(m.type), base + m.bit_offset // 8
        if not m.name and isinstance(mt, bt.Composite):  # anonymous struct/union: flatten
            _btf_codes(mt, off, prefix, out)
            continue
        if isinstance(mt, (bt.Int, bt.Enum)) and (mt.size, bool(getattr(mt, "signed", False))) in _INT_CODES:
            code = "?" if isinstance(mt, bt.Int) and mt.is_bool else _INT_CODES[mt.size, bool(mt.signed)]
        elif isinstance(mt, bt.Pointer):
            code = "Q"
        elif isinstance(mt, bt.Float) and mt.size in (4, 8):
            code = "f" if mt.size == 4 else "d"
        else:
            try:
                code = f"{sizeof(mt)}s"  # arrays, nested structs: their bytes
            except (BPFError, TypeError, ValueError):
                continue
        out[prefix + (m.name or f"_{i}")] = (off, code)


def _dtype_code(dt: Any) -> str:
    """The struct code of a NumPy field (little-endian scalars; anything else is bytes)."""
    if dt.shape == () and dt.byteorder in "<=|":
        if dt.kind in "iu" and (dt.itemsize, dt.kind == "i") in _INT_CODES:
            return _INT_CODES[dt.itemsize, dt.kind == "i"]
        if dt.kind == "f" and dt.itemsize in (4, 8):
            return "f" if dt.itemsize == 4 else "d"
        if dt.kind == "b":
            return "?"
    return f"{dt.itemsize}s"


def _ctypes_codes(cls: type) -> dict[str, tuple[int, str]]:
    import ctypes

    out = {}
    for name, ctype, *bits in getattr(cls, "_fields_", ()):
        if bits:
            continue
        size = ctypes.sizeof(ctype)
        code = getattr(ctype, "_type_", None)
        if not (isinstance(code, str) and len(code) == 1 and struct.calcsize(code) == size):
            code = f"{size}s"
        out[name] = (getattr(cls, name).offset, code)
    return out


_TOKEN = re.compile(r"\s*(\d*)([xcbB?hHiIlLqQnNefdspP])")
_NP_CHAR = {"b": "i1", "B": "u1", "?": "?", "h": "i2", "H": "u2", "i": "i4", "I": "u4", "l": "i8", "L": "u8",
            "q": "i8", "Q": "u8", "n": "i8", "N": "u8", "e": "f2", "f": "f4", "d": "f8", "P": "u8"}


def _struct_dtype(fmt: str) -> Any:
    """dtype of a struct format: fields f0, f1, ... at the offsets struct uses (one field: its own dtype)."""
    np = _numpy()
    order = fmt[0] if fmt[:1] in "@=<>!" else "@"
    body = fmt[1:] if fmt[:1] in "@=<>!" else fmt
    endian = ">" if order in ">!" else "<"
    names: list[str] = []
    formats: list[Any] = []
    offsets: list[int] = []
    done = ""
    for count, char in _TOKEN.findall(body):
        n = int(count) if count else 1
        # A zero-count item aligns like the item without adding to the size: its offset.
        start = struct.calcsize(order + done + "0" + char)
        done += f"{count}{char}"
        if char == "x":
            continue
        if char in "spc":
            formats.append(np.dtype(f"S{n}"))
        else:
            base = np.dtype(endian + _NP_CHAR[char])
            formats.append(base if n == 1 else np.dtype((base, (n,))))
        names.append(f"f{len(names)}")
        offsets.append(start)
    itemsize = struct.calcsize(fmt)
    if len(names) == 1 and offsets[0] == 0 and formats[0].itemsize == itemsize:
        return formats[0]  # one field ("<Q", "u32"): a plain array, as decode gives a plain value
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": itemsize})


class RecordType:
    """How one ring's records are decoded: ``size`` (bytes needed), ``decode(buf, off)``, ``dtype``.

    Built from a reader's ``record=`` / ``dtype=`` options; ``RecordType()``
    means raw memoryviews.

    >>> rt = RecordType("<QI")
    >>> rt.size, rt.decode(bytes(range(16)), 0)
    (12, (506097522914230528, 185207048))
    """

    __slots__ = ("size", "decode", "_dtype", "_dtype_from", "label")

    def __init__(self, record: Any = None, dtype: Any = None, *, btf: Any = None, where: str = "") -> None:
        """``btf``: where a type name given as ``record`` is looked up (the map's object's BTF),
        ``where`` names that object in errors."""
        self.size = 0
        self.decode: Callable[[Any, int], Any] | None = None
        self._dtype: Any = None
        self._dtype_from: Any = None
        self.label = "bytes"
        if isinstance(record, str):
            record = _btf_type_named(record, btf, where) or record
        if record is not None:
            self._set_record(record)
        if dtype is not None:
            np = _numpy()
            self._dtype = np.dtype(dtype)
            self.size = max(self.size, self._dtype.itemsize)
            if record is None:
                self.label = f"dtype {self._dtype}"
                dt = self._dtype

                def decode_np(buf: Any, off: int, _dt: Any = dt, _np: Any = np) -> Any:
                    return _np.frombuffer(buf, _dt, 1, off)[0].copy()

                self.decode = decode_np

    def _set_record(self, record: Any) -> None:
        from pybpf.btf import types as bt
        from pybpf.btf import typeinfo

        if isinstance(record, bt.Type):
            from pybpf.btf.codec import codec_for

            record = codec_for(record)
        btf_type = getattr(record, "type", None)
        if hasattr(record, "decode_from") and isinstance(btf_type, bt.Type):
            # A BTF codec: decodes straight from a buffer at an offset (the readers hand over only
            # records at least as long as the type: shorter ones are reported and skipped).
            self.size = int(record.size)
            self.decode = record.unpack_from
            self._dtype_from = ("btf", btf_type)
            self.label = str(getattr(record, "label", "") or typeinfo.type_name(btf_type))
            return
        from pybpf.maps.codec import make_codec

        codec = make_codec(record, role="record")
        self.size = codec.size
        self.label = codec.label
        unpack = codec.unpack_from

        def decode(buf: Any, off: int, _unpack: Any = unpack) -> Any:
            return _unpack(buf, off)[0]

        self.decode = decode
        if isinstance(record, str):
            self._dtype_from = ("struct", codec.struct.format if hasattr(codec, "struct") else record)
        elif isinstance(record, type):
            self._dtype_from = ("ctypes", record)

    def field_codes(self) -> dict[str, tuple[int, str]]:
        """Field name -> (byte offset, struct code), from the BTF type, ctypes type or dtype; {} if unnamed."""
        kind, what = self._dtype_from or (None, None)
        if kind == "btf":
            from pybpf.btf import types as bt
            from pybpf.btf import typeinfo

            out: dict[str, tuple[int, str]] = {}
            t = typeinfo.resolve(what)
            if isinstance(t, bt.Composite):
                _btf_codes(t, 0, "", out)
            return out
        if kind == "ctypes":
            return _ctypes_codes(what)
        if self._dtype is not None and self._dtype.names:
            return {name: (off, _dtype_code(dt)) for name, (dt, off, *_t) in self._dtype.fields.items()}
        return {}

    @property
    def dtype(self) -> Any:
        """The NumPy dtype of a record (None when it cannot be known)."""
        if self._dtype is None and self._dtype_from is not None:
            kind, what = self._dtype_from
            np = _numpy()
            try:
                if kind == "btf":
                    self._dtype = btf_dtype(what)
                elif kind == "struct":
                    self._dtype = _struct_dtype(what if isinstance(what, str) else what.decode())
                else:
                    self._dtype = np.dtype(what)
            except (TypeError, ValueError, struct.error):
                self._dtype_from = None
        return self._dtype


_C_TAGS = {"struct": "Struct", "union": "Union", "enum": "Enum"}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _btf_type_named(text: str, btf: Any, where: str) -> Any:
    """The BTF type ``text`` names ("struct event", "event"), None when ``text`` is a codec spec.

    Raises NameNotFoundError when it names a C type that ``btf`` lacks.
    """
    from pybpf.btf import types as bt
    from pybpf.maps.codec import make_codec

    tag, _, name = text.strip().partition(" ")
    if tag not in _C_TAGS:
        tag, name = "", text.strip()
        if not _IDENT.fullmatch(name):
            return None
        try:
            make_codec(name, role="record")
            return None  # "u32", "i64"...: a codec
        except (TypeError, ValueError):
            pass
    name = name.strip()
    found = []
    if btf is not None and hasattr(btf, "types_by_name"):
        found = btf.types_by_name(name)
    if tag:
        found = [t for t in found if type(t).__name__ == _C_TAGS[tag]]
    else:  # a bare name: a struct or union first, then a typedef, then anything else
        found.sort(key=lambda t: (not isinstance(t, bt.Composite), not isinstance(t, bt.Typedef)))
    if found:
        return found[0]
    source = f"the BTF of the object {where} was loaded from" if where else "the map's BTF"
    if btf is None:
        raise NameNotFoundError(
            f"record {text!r}: the map has no BTF to look {name!r} up in (it was not made by loading an "
            "object file): give the type itself, e.g. record=obj.btf.find('event'), a ctypes structure or a "
            "struct format")
    raise NameNotFoundError(
        f"record {text!r}: no {tag + ' ' if tag else ''}{name!r} in {source}{_close_names(btf, name)}. "
        "A type reaches BTF only when something global uses it (a local variable is not enough): a map "
        "definition (__type(value, struct event)), a global function's argument, or a global variable such as "
        f"`{tag or 'struct'} {name} *unused_{name} __attribute__((unused));`")


def _close_names(btf: Any, name: str) -> str:
    import difflib

    from pybpf.btf import types as bt

    try:
        names = {t.name for t in btf.types if isinstance(t, bt.Composite) and t.name}
    except (AttributeError, TypeError):
        return ""
    close = difflib.get_close_matches(name, sorted(names), n=5)
    return f" (did you mean {', '.join(close)}?)" if close else ""


# ---------------------------------------------------------------------- batches

# A run: records of the same length at a fixed stride in one buffer.
# (pos0, off0, n, stride, size, buf): ring position of the first record,
# offset of its payload in ``buf``, count, stride, payload length.


class RecordBatch:
    """All the records a reader had for one ring, handed over at once, without copies.

    ``len(batch)``; ``batch[i]`` and iteration give ``memoryview`` objects of
    the records (made on access); ``batch.array`` is a NumPy structured array
    of the reader's dtype (a zero-copy strided view of the ring when the
    records lie back to back, which they do when they are all of one size; a
    copy otherwise); ``batch.numpy(dtype)`` the same with another dtype;
    ``batch.decode()`` a list of decoded records.  ``batch.nbytes`` counts
    payload bytes, ``batch.ring`` is the ring (CPU for perf buffers).

    The records stay in the ring, and the producer cannot overwrite them,
    until the batch is released: :meth:`release`, the end of a ``with``
    block, the next read on the same ring, or :meth:`Reader.close`.  After
    that, views and arrays taken from the batch read memory the kernel may
    reuse: copy what you keep (``batch.array.copy()``).  They stay safe to
    read, even after the reader and the map are closed: the mapping is
    unmapped only when the last of them is gone.

    Example::

        with reader.read_batch(timeout=1.0) as batch:
            arr = batch.array                     # no copy, no per-record objects
            total = int(arr["bytes"].sum())
    """

    __slots__ = ("ring", "_owner", "_runs", "_starts", "_count", "_type", "_end", "_released", "nbytes")

    def __init__(self, owner: Any, ring: int, runs: list, end: int, rtype: RecordType) -> None:
        self._owner = owner
        self.ring = ring
        self._runs = runs
        self._type = rtype
        self._end = end
        self._released = False
        count = 0
        nbytes = 0
        starts = []
        for run in runs:
            starts.append(count)
            count += run[2]
            nbytes += run[2] * run[4]
        self._starts = starts
        self._count = count
        self.nbytes = nbytes

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    @property
    def runs(self) -> int:
        """How many back-to-back stretches of equal-sized records the batch has (1: ``array`` is zero-copy)."""
        return len(self._runs)

    def _check(self) -> None:
        if self._released:
            raise ValueError("this RecordBatch was released: its records may be overwritten")

    def __getitem__(self, i: int) -> memoryview:
        self._check()
        if i < 0:
            i += self._count
        if not 0 <= i < self._count:
            raise IndexError(f"record {i} out of range (batch of {self._count})")
        k = bisect.bisect_right(self._starts, i) - 1
        _pos0, off0, _n, stride, size, buf = self._runs[k]
        off = off0 + (i - self._starts[k]) * stride
        return buf[off:off + size]

    def __iter__(self) -> Iterator[memoryview]:
        self._check()
        for _pos0, off0, n, stride, size, buf in self._runs:
            for off in range(off0, off0 + n * stride, stride):
                yield buf[off:off + size]

    def decode(self) -> list:
        """Every record decoded with the reader's ``record=``/``dtype=`` type (a list)."""
        self._check()
        decode = self._type.decode
        if decode is None:
            return [bytes(v) for v in self]
        out: list = []
        for _pos0, off0, n, stride, _size, buf in self._runs:
            out.extend(map(decode, repeat(buf, n), range(off0, off0 + n * stride, stride)))
        return out

    def fields(self, *names: str) -> Iterator[Any]:
        """Each record's fields ``names``, by name: a tuple per record, or the value for one name.

        The typed per-record iteration that keeps up with a ring: one
        ``struct`` format made of the named fields (the others skipped) unpacks
        every record of a run in C; no object per record but the tuple.  The
        names come from the reader's ``record=`` (a BTF type, by name too, or a
        ctypes Structure) or ``dtype=``.

        >>> with reader.read_batch() as batch:                  # doctest: +SKIP
        ...     for pid, nbytes in batch.fields("pid", "bytes"):
        ...         totals[pid] += nbytes
        """
        self._check()
        if not names:
            raise ValueError("fields(): name at least one field")
        codes = self._type.field_codes()
        missing = [n for n in names if n not in codes]
        if missing:
            known = ", ".join(codes) or "none: give the reader record= a BTF or ctypes struct type, or dtype="
            raise NameNotFoundError(f"record {self._type.label}: no field {missing[0]!r} (fields: {known})")
        order = sorted(set(names), key=lambda n: codes[n][0])
        fmt, end = "<", 0
        for name in order:
            off, code = codes[name]
            if off < end:
                raise ValueError(f"fields(): {name!r} overlaps the field before it (a union): read them apart")
            fmt += f"{off - end}x{code}" if off > end else code
            end = off + struct.calcsize("<" + code)
        record = struct.Struct(fmt)
        pick = None if tuple(order) == names else _picker([order.index(n) for n in names])
        return self._unpack_fields(record, pick, single=len(names) == 1)

    def _unpack_fields(self, record: struct.Struct, pick: Any, single: bool) -> Iterator[Any]:
        for _pos0, off0, n, stride, size, buf in self._runs:
            if size < record.size:
                raise RecordError(f"ring {self.ring}: records of {size} bytes are shorter than the fields read "
                                  f"({record.size} bytes)", ring=self.ring, length=size, needed=record.size,
                                  data=bytes(buf[off0:off0 + size]))
            # One struct the stride long reads n - 1 records in one pass; the last one alone (the
            # stride after it may run past the end of the mapping).
            step = struct.Struct(record.format + f"{stride - record.size}x")
            rows: Any = step.iter_unpack(buf[off0:off0 + (n - 1) * stride])
            last = record.unpack_from(buf, off0 + (n - 1) * stride)
            if pick is not None:
                rows = map(pick, rows)
                last = pick(last)
            if single:
                yield from _chain(rows)
                yield last[0]
            else:
                yield from rows
                yield last

    @property
    def array(self) -> Any:
        """The records as a NumPy structured array of the reader's dtype (see the class doc)."""
        dtype = self._type.dtype
        if dtype is None:
            raise TypeError("the reader has no record dtype: give dtype= (or a record= type with a known "
                            "layout) to the reader, or call batch.numpy(dtype)")
        return self.numpy(dtype)

    def numpy(self, dtype: Any = None) -> Any:
        """The records as an array of ``dtype`` (default: the reader's); zero-copy for a single run.

        Records shorter than ``dtype.itemsize`` make this a :class:`RecordError`
        (the reader's own type was checked when the records were read).
        """
        self._check()
        np = _numpy()
        dt = np.dtype(dtype) if dtype is not None else self._type.dtype
        if dt is None:
            raise TypeError("give a dtype")
        parts = []
        for pos0, off0, n, stride, size, buf in self._runs:
            if size < dt.itemsize:
                raise RecordError(f"ring {self.ring}: records of {size} bytes are shorter than dtype {dt} "
                                  f"({dt.itemsize} bytes)", ring=self.ring, length=size, needed=dt.itemsize,
                                  data=bytes(buf[off0:off0 + size]))
            # ndarray(buffer=memoryview) keeps a reference to the mmap behind the view but no
            # buffer export, so closing the reader would unmap memory the array points at.
            # frombuffer's base is a memoryview that holds an export: while the array lives
            # the mapping cannot be unmapped (mmap.close raises BufferError, see unmap()).
            raw = np.frombuffer(buf, np.uint8, (n - 1) * stride + dt.itemsize, off0)
            parts.append(np.ndarray((n,), dt, buffer=raw, strides=(stride,)))
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return np.empty(0, dt)
        return np.concatenate(parts)

    def release(self) -> None:
        """Give the records back to the ring (the consumer position moves past them)."""
        if not self._released:
            self._released = True
            owner, self._owner = self._owner, None
            if owner is not None:
                owner._release_batch(self, self._end)

    def __enter__(self) -> "RecordBatch":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        state = " released" if self._released else ""
        return f"<RecordBatch ring={self.ring} records={self._count} runs={len(self._runs)}{state}>"
