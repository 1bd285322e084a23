"""The BTF wire format: the blob header and the word layout of each kind's type record.

A type section is a run of records made of 32-bit words.  Each record is the
three words of ``struct btf_type`` (``name_off``, ``info``, ``size``/``type``),
then the kind's fixed words, then ``vlen`` items of the kind's item words
(include/uapi/linux/btf.h).  :data:`LAYOUTS` states these words once, by their
UAPI field names; the reader decodes with it, the writer encodes in the same
order, and the loader's fix-ups edit raw records through :class:`Records`.

Example::

    from pybpf.btf.layout import LAYOUTS, Records, read_header, scan, type_words
    from pybpf.btf.types import BTFKind

    LAYOUTS[BTFKind.STRUCT].item            # ('name_off', 'type', 'offset')
    blob = open("/sys/kernel/btf/vmlinux", "rb").read()
    hdr = read_header(blob)
    words = type_words(blob, hdr)
    recs = Records(words, scan(words))
    recs.kind(1), recs.name_off(1)
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections import namedtuple
from operator import itemgetter

from pybpf.btf.types import BTFKind
from pybpf.errors import ObjectError

__all__ = ["BTF_MAGIC", "HEADER_LEN", "Header", "Layout", "LAYOUTS", "Records", "U32",
           "read_header", "type_words", "record_len", "scan", "kinds_of", "make_info"]

BTF_MAGIC = 0xEB9F
#: ``struct btf_header``: magic, version, flags, hdr_len, type_off, type_len, str_off, str_len.
HEADER_LEN = 24
_HEADER = struct.Struct("HBBIIIII")
#: The array typecode of an unsigned 32-bit word.
U32 = "I" if array("I").itemsize == 4 else "L"
#: Words of ``struct btf_type`` that start every record.
COMMON_WORDS = 3


class Layout(namedtuple("Layout", ("fixed", "item"), defaults=((), ()))):
    """The words a kind adds after ``struct btf_type``: ``fixed`` ones, then ``item`` ones per vlen."""

    __slots__ = ()
    fixed: tuple[str, ...]
    item: tuple[str, ...]


#: Every kind's record layout, by the UAPI field names of its trailing structs.
LAYOUTS: dict[BTFKind, Layout] = {
    BTFKind.INT: Layout(fixed=("encoding",)),                          # u32: encoding<<24 | offset<<16 | bits
    BTFKind.PTR: Layout(),
    BTFKind.ARRAY: Layout(fixed=("type", "index_type", "nelems")),     # struct btf_array
    BTFKind.STRUCT: Layout(item=("name_off", "type", "offset")),       # struct btf_member
    BTFKind.UNION: Layout(item=("name_off", "type", "offset")),
    BTFKind.ENUM: Layout(item=("name_off", "val")),                   # struct btf_enum
    BTFKind.FWD: Layout(),
    BTFKind.TYPEDEF: Layout(),
    BTFKind.VOLATILE: Layout(),
    BTFKind.CONST: Layout(),
    BTFKind.RESTRICT: Layout(),
    BTFKind.FUNC: Layout(),                                           # vlen is the linkage
    BTFKind.FUNC_PROTO: Layout(item=("name_off", "type")),            # struct btf_param
    BTFKind.VAR: Layout(fixed=("linkage",)),                          # struct btf_var
    BTFKind.DATASEC: Layout(item=("type", "offset", "size")),         # struct btf_var_secinfo
    BTFKind.FLOAT: Layout(),
    BTFKind.DECL_TAG: Layout(fixed=("component_idx",)),               # struct btf_decl_tag
    BTFKind.TYPE_TAG: Layout(),
    BTFKind.ENUM64: Layout(item=("name_off", "val_lo32", "val_hi32")),  # struct btf_enum64
}

# Indexed by the 5-bit kind field: a record's words are _BASE[k] + _PER[k] * vlen; None marks
# the kinds that cannot appear (UNKNOWN and everything above ENUM64), for the scan's TypeError.
_BASE: tuple = tuple(COMMON_WORDS + len(LAYOUTS[BTFKind(k)].fixed) if BTFKind(k) in LAYOUTS else None
                     for k in range(len(BTFKind))) + (None,) * (32 - len(BTFKind))
_PER: tuple = tuple(len(LAYOUTS[BTFKind(k)].item) if BTFKind(k) in LAYOUTS else None
                    for k in range(len(BTFKind))) + (None,) * (32 - len(BTFKind))
# The same by the top byte of the info word (kind_flag, two unused bits, the kind): the scan's tables.
_BASE_BY_TOP: tuple = tuple(_BASE[top & 31] for top in range(256))
_PER_BY_TOP: tuple = tuple(_PER[top & 31] for top in range(256))
# BTFKind by its 5-bit value without an enum call (None past ENUM64: scan() refuses those).
_KIND: tuple = tuple(BTFKind(k) for k in range(len(BTFKind))) + (None,) * (32 - len(BTFKind))
_FIXED_POS = {k: {f: COMMON_WORDS + i for i, f in enumerate(lay.fixed)} for k, lay in LAYOUTS.items()}
_ITEM_POS = {k: {f: i for i, f in enumerate(lay.item)} for k, lay in LAYOUTS.items()}


def make_info(kind: int, vlen: int = 0, kflag: bool | int = 0) -> int:
    """The ``info`` word: kind_flag in bit 31, kind in bits 24-28, vlen in bits 0-15.

    >>> hex(make_info(BTFKind.STRUCT, 2, 1))
    '0x84000002'
    """
    return int(bool(kflag)) << 31 | int(kind) << 24 | vlen


class Header(namedtuple("Header", ("order", "hdr_len", "type_off", "type_len", "str_off", "str_len"))):
    """A parsed ``struct btf_header``; ``order`` is "<" or ">" (struct module byte order)."""

    __slots__ = ()
    order: str
    hdr_len: int
    type_off: int
    type_len: int
    str_off: int
    str_len: int

    @property
    def type_start(self) -> int:
        """Byte offset of the type section in the blob."""
        return self.hdr_len + self.type_off

    @property
    def str_start(self) -> int:
        """Byte offset of the string section in the blob."""
        return self.hdr_len + self.str_off

    def pack(self) -> bytes:
        return struct.pack(self.order + "HBBIIIII", BTF_MAGIC, 1, 0, self.hdr_len,
                           self.type_off, self.type_len, self.str_off, self.str_len)


def blob_order(data: bytes, what: str, min_len: int) -> tuple[str, int]:
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


def read_header(data: bytes) -> Header:
    """The checked header of the BTF blob ``data`` (ObjectError naming the byte if bad).

    >>> read_header(bytes.fromhex("9feb0100180000000000000000000000000000000100000000")).str_len
    1
    """
    order, hdr_len = blob_order(data, "BTF", HEADER_LEN)
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
    return Header(order, hdr_len, type_off, type_len, str_off, str_len)


def type_words(data, hdr: Header) -> array | memoryview:
    """The type section of ``data`` as u32 words in host byte order.

    A copy in an array, except for a read-only mapping (kernel BTF, mapped
    since Linux 6.15) in host order: a view of it, without copying.
    """
    start = hdr.type_start
    native = (hdr.order == "<") == (sys.byteorder == "little")
    if native and not isinstance(data, bytes) and start % 4 == 0:
        return memoryview(data)[start:start + hdr.type_len].cast(U32)
    words = array(U32, data[start:start + hdr.type_len])
    if not native:
        words.byteswap()
    return words


def record_len(info: int) -> int | None:
    """How many words a record with this ``info`` word has (None for an unknown kind)."""
    k = info >> 24 & 31
    base = _BASE[k]
    return None if base is None else base + _PER[k] * (info & 0xFFFF)


class _RecordLengths(dict):
    """Record length in words by info word, each worked out on first use (a scan's own table:
    most records of a blob share a handful of info words)."""

    __slots__ = ()

    def __missing__(self, info: int) -> int:
        top = info >> 24
        n = self[info] = _BASE_BY_TOP[top] + _PER_BY_TOP[top] * (info & 0xFFFF)   # TypeError: unknown kind
        return n


# The info words most records have (kind_flag 0, vlen below 8), worked out once: a scan starts with them.
_COMMON_LENGTHS = {k << 24 | vlen: _BASE[k] + _PER[k] * vlen
                   for k in range(32) if _BASE[k] is not None for vlen in range(8)}


def scan(words: array | list[int], first_id: int = 1, type_start: int = 0) -> list[int]:
    """Walk the records once: the word index of each (``offs[i]`` is where type ``first_id + i``
    starts).  ``type_start`` (the section's byte offset) only places the errors."""
    n = len(words)
    offs: list[int] = []
    append = offs.append
    length = _RecordLengths(_COMMON_LENGTHS)
    i = 0
    try:
        while i < n:   # the fewest steps per record: this loop is most of a small object's BTF parse
            append(i)
            i += length[words[i + 1]]
    except TypeError:
        k = words[offs[-1] + 1] >> 24 & 31
        raise ObjectError(f"BTF: type [{first_id + len(offs) - 1}] has unknown kind {k} at byte "
                          f"{type_start + 4 * offs[-1]}") from None
    except IndexError:
        i = n + 1
    if i != n:
        raise ObjectError(f"BTF: type [{first_id + len(offs) - 1}] is truncated at byte "
                          f"{type_start + 4 * offs[-1]} (type section ends at byte {type_start + 4 * n})")
    return offs


def kinds_of(words: array | memoryview, offs: list[int] | array) -> bytes:
    """The kind of each record (byte ``k`` for the record at ``offs[k]``).

    >>> kinds_of(array(U32, [0, 0x84000000, 8, 0, 0x02000000, 1]), [0, 3])
    b'\\x04\\x02'
    """
    if len(offs) < 2:   # (itemgetter of one index gives the item, not a tuple)
        return bytes([words[offs[0] + 1] >> 24 & 31]) if offs else b""
    # Without a Python step per record: the top byte (kind_flag, two unused bits, the kind) of
    # the info word of a record starting at each word index, those of the records, their kinds.
    top = words.tobytes()[_TOP_BYTE + 4::4]
    return bytes(itemgetter(*offs)(top)).translate(_KIND_OF_TOP)


_TOP_BYTE = 3 if sys.byteorder == "little" else 0   # where a native u32's top byte is
_KIND_OF_TOP = bytes(top & 31 for top in range(256))


class Records:
    """Raw type records (host-order u32 words) read and edited by field name, for in-place fix-ups.

    Type ids and string offsets stay as they are: a fix-up changes words, it
    never moves a record.

    >>> from pybpf.btf.writer import encode
    >>> from pybpf.btf.types import Int, Var, VarLinkage
    >>> blob = encode([Var("x", Int("int", 4), VarLinkage.EXTERN)])
    >>> hdr = read_header(blob); words = type_words(blob, hdr)
    >>> recs = Records(words, scan(words))
    >>> recs.kind(1).name, recs.field(1, "linkage")
    ('VAR', 2)
    >>> recs.set_field(1, "linkage", int(VarLinkage.GLOBAL)); recs.field(1, "linkage")
    1
    """

    __slots__ = ("words", "offs", "first_id")

    def __init__(self, words: array, offs: list[int], first_id: int = 1) -> None:
        self.words = words
        self.offs = offs
        self.first_id = first_id

    def ids(self) -> range:
        """The ids of these records."""
        return range(self.first_id, self.first_id + len(self.offs))

    def _at(self, tid: int) -> int:
        local = tid - self.first_id
        if not 0 <= local < len(self.offs):
            raise ObjectError(f"BTF: type id {tid} out of range")
        return self.offs[local]

    def kind(self, tid: int) -> BTFKind:
        return _KIND[self.words[self._at(tid) + 1] >> 24 & 31]

    def name_off(self, tid: int) -> int:
        return self.words[self._at(tid)]

    def vlen(self, tid: int) -> int:
        return self.words[self._at(tid) + 1] & 0xFFFF

    def set_vlen(self, tid: int, vlen: int) -> None:
        i = self._at(tid) + 1
        self.words[i] = self.words[i] & ~0xFFFF | vlen

    def size_type(self, tid: int) -> int:
        """The ``size``/``type`` word of ``struct btf_type``."""
        return self.words[self._at(tid) + 2]

    def set_size_type(self, tid: int, value: int) -> None:
        self.words[self._at(tid) + 2] = value

    def _field_at(self, tid: int, name: str) -> int:
        i = self._at(tid)
        kind = _KIND[self.words[i + 1] >> 24 & 31]
        pos = _FIXED_POS[kind].get(name)
        if pos is None:
            raise ObjectError(f"BTF: type [{tid}] is a {kind.name}, which has no {name!r}")
        return i + pos

    def field(self, tid: int, name: str) -> int:
        """A fixed field of the record (``"linkage"`` of a VAR, ``"encoding"`` of an INT...)."""
        return self.words[self._field_at(tid, name)]

    def set_field(self, tid: int, name: str, value: int) -> None:
        self.words[self._field_at(tid, name)] = value

    def _item_at(self, tid: int, j: int) -> tuple[int, dict[str, int]]:
        i = self._at(tid)
        kind = _KIND[self.words[i + 1] >> 24 & 31]
        if not 0 <= j < self.words[i + 1] & 0xFFFF:
            raise ObjectError(f"BTF: type [{tid}] has no item {j}")
        lay = LAYOUTS[kind]
        return i + COMMON_WORDS + len(lay.fixed) + len(lay.item) * j, _ITEM_POS[kind]

    def item(self, tid: int, j: int) -> list[int]:
        """The words of item ``j`` (a member, a param, a DATASEC entry...) in layout order."""
        at, pos = self._item_at(tid, j)
        return list(self.words[at:at + len(pos)])

    def items(self, tid: int) -> list[list[int]]:
        """The words of every item of the record, as :meth:`item` gives each."""
        i = self._at(tid)
        info = self.words[i + 1]
        lay = LAYOUTS[_KIND[info >> 24 & 31]]
        width = len(lay.item)
        at = i + COMMON_WORDS + len(lay.fixed)
        flat = self.words[at:at + width * (info & 0xFFFF)].tolist()
        return [flat[k:k + width] for k in range(0, len(flat), width)]

    def set_items(self, tid: int, items: list[list[int]]) -> None:
        """Replace the words of the first ``len(items)`` items (each in layout order)."""
        i = self._at(tid)
        info = self.words[i + 1]
        lay = LAYOUTS[_KIND[info >> 24 & 31]]
        width = len(lay.item)
        if len(items) > info & 0xFFFF:
            raise ValueError(f"{len(items)} items do not fit type [{tid}] ({info & 0xFFFF})")
        for item in items:
            if len(item) != width:
                raise ValueError(f"item of {width} words, got {len(item)}")
        words = self.words
        at = i + COMMON_WORDS + len(lay.fixed)
        for item in items:   # in place: a new array per call costs more than a DATASEC's few words
            for value in item:
                words[at] = value
                at += 1

    def item_field(self, tid: int, j: int, name: str) -> int:
        at, pos = self._item_at(tid, j)
        return self.words[at + pos[name]]

    def set_item(self, tid: int, j: int, values: list[int] | tuple[int, ...]) -> None:
        """Replace item ``j``'s words (in layout order)."""
        at, pos = self._item_at(tid, j)
        if len(values) != len(pos):
            raise ValueError(f"item of {len(pos)} words, got {len(values)}")
        self.words[at:at + len(pos)] = array(U32, values)

    def set_item_field(self, tid: int, j: int, name: str, value: int) -> None:
        at, pos = self._item_at(tid, j)
        self.words[at + pos[name]] = value
