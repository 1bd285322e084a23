"""RecordBatch.fields(): typed per-record iteration by field name (issue 13), no root needed.

The batch is built over a buffer laid out as a ring's data area (8-byte
header, then the record, padded to 8), so the stride handling is the one
the readers use.
"""

from __future__ import annotations

import ctypes
import struct

import pytest

from pybpf.btf.types import Array, Int, IntEncoding, Member, Struct
from pybpf.errors import NameNotFoundError
from pybpf.readers._records import RecordBatch, RecordType

U64, I32, CHAR = Int("unsigned long long", 8), Int("int", 4, IntEncoding.SIGNED), Int("char", 1, IntEncoding.CHAR)
EVENT = Struct("event", 24, [Member("seq", U64, 0), Member("pid", I32, 64), Member("comm", Array(CHAR, None, 12), 96)])


class Event(ctypes.Structure):
    _fields_ = [("seq", ctypes.c_uint64), ("pid", ctypes.c_int32), ("comm", ctypes.c_char * 12)]


def batch(rtype: RecordType, n: int = 5) -> RecordBatch:
    buf = bytearray()
    for k in range(n):
        buf += struct.pack("<II", 24, 0) + struct.pack("<Qi12s", 1000 + k, -k, b"task%d" % k)
    return RecordBatch(None, 0, [(0, 8, n, 32, 24, memoryview(bytes(buf)))], len(buf), rtype)


@pytest.mark.parametrize("rtype", [RecordType(EVENT), RecordType(Event)], ids=["btf", "ctypes"])
def test_fields_by_name_in_any_order(rtype):
    assert list(batch(rtype).fields("seq")) == [1000, 1001, 1002, 1003, 1004]
    assert list(batch(rtype).fields("pid", "seq")) == [(-k, 1000 + k) for k in range(5)]
    comms = [c.rstrip(b"\0") for _seq, c in batch(rtype).fields("seq", "comm")]
    assert comms == [b"task%d" % k for k in range(5)]


def test_fields_of_a_dtype_and_of_a_single_record():
    pytest.importorskip("numpy")
    rtype = RecordType(dtype=[("seq", "<u8"), ("pid", "<i4"), ("comm", "S12")])
    assert list(batch(rtype, 1).fields("pid", "seq")) == [(0, 1000)]


def test_unknown_field_names_the_fields_there_are():
    with pytest.raises(NameNotFoundError, match=r"no field 'tgid' \(fields: seq, pid, comm\)"):
        batch(RecordType(EVENT)).fields("tgid")
    with pytest.raises(NameNotFoundError, match="give the reader record="):
        batch(RecordType("<Qi12s")).fields("seq")
