"""A disk cache of the kernel BTF's index, so a fresh process need not scan vmlinux.

Parsing vmlinux BTF means walking its ~150,000 records once to learn where
each starts (:func:`pybpf.btf.layout.scan`), about 40 ms of Python; a CO-RE
load in a fresh process paid it every time.  The walk's result — each record's
word offset, and the named type ids sorted by name
(:class:`pybpf.btf.names.SortedIndex`) — depends only on the blob, so it is
kept in one file, ``vmlinux.btfidx`` under ``$XDG_CACHE_HOME/pybpf`` (default
``~/.cache/pybpf``), and used by the next process.

The file is checked, never trusted: it names the blob it was made from (its
length and CRC-32, computed again from the running kernel's BTF each time),
carries a CRC-32 of its own contents, and :meth:`Spec.from_index` checks that
the offsets fit the blob; a lookup by name only returns types whose name it
read from the blob.  A file that fails any check is ignored and rewritten.
Writing is best effort (an unwritable cache only costs the scan) and atomic
(a temporary file renamed into place), so concurrent processes never read
half a file.

Example::

    from pybpf.btf import kcache
    spec = kcache.load(open("/sys/kernel/btf/vmlinux", "rb").read())
"""

from __future__ import annotations

import os
import struct
import sys
import zlib
from array import array

from pybpf.btf.layout import U32
from pybpf.btf.reader import Spec
from pybpf.errors import ObjectError

__all__ = ["load", "cache_file"]

_MAGIC = b"PYBPFIDX"
_VERSION = 1
# magic, version, blob length, blob crc32, type count, named count, payload crc32
_HEADER = struct.Struct("<8sIQIIII")


def cache_file() -> str:
    """Where the index is kept: ``$XDG_CACHE_HOME/pybpf/vmlinux.btfidx`` (``~/.cache`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pybpf", "vmlinux.btfidx")


def load(data: bytes) -> Spec:
    """A lazy :class:`Spec` of the kernel BTF ``data``, with the cached index when it is valid.

    Without a valid cache the blob is scanned and the index written for the
    next process.  Malformed BTF raises ObjectError as :meth:`Spec.parse` does.
    """
    key = (len(data), zlib.crc32(data))
    path = cache_file()
    index = _read(path, key)
    if index is not None:
        try:
            return Spec.from_index(data, *index)
        except ObjectError:
            pass        # made for other BTF, or damaged: scan and write it again
    spec = Spec.parse(data, lazy=True)
    _write(path, key, *spec.index())
    return spec


def _read(path: str, key: tuple[int, int]) -> tuple[array, array] | None:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError:
        return None
    if len(raw) < _HEADER.size:
        return None
    magic, version, blob_len, blob_crc, ntypes, nnamed, crc = _HEADER.unpack_from(raw)
    payload = memoryview(raw)[_HEADER.size:]
    if (magic != _MAGIC or version != _VERSION or (blob_len, blob_crc) != key
            or len(payload) != 4 * (ntypes + nnamed) or zlib.crc32(payload) != crc):
        return None
    words = array(U32)
    words.frombytes(payload)
    if sys.byteorder != "little":  # pragma: no cover
        words.byteswap()
    return words[:ntypes], words[ntypes:]


def _write(path: str, key: tuple[int, int], offs: array, sorted_ids: array) -> None:
    words = offs + sorted_ids
    if sys.byteorder != "little":  # pragma: no cover
        words.byteswap()
    payload = words.tobytes()
    header = _HEADER.pack(_MAGIC, _VERSION, key[0], key[1], len(offs), len(sorted_ids), zlib.crc32(payload))
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}")
    try:
        os.makedirs(directory, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(header + payload)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
