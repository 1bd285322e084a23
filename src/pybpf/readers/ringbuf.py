"""Read BPF ring buffers (``BPF_MAP_TYPE_RINGBUF``, Linux 5.8) from Python, zero-copy.

Memory layout (``kernel/bpf/ringbuf.c``): page 0 of the map's mmap space is
the consumer position (user space writes it), page 1 the producer position
(read-only), and from page 2 on the data area, which the kernel maps twice
back to back.  We map page 0 read-write and pages 1.. read-only with a data
length of twice the ring size, so a record that wraps around the end of the
ring is still one contiguous block of memory.

Each record starts with an 8-byte header: a u32 length whose bit 31 says
"busy" (reserved, not yet committed) and bit 30 "discarded", and a u32 page
offset used by the kernel.  Records are padded to 8 bytes.  The reader walks
from the consumer position to the producer position, stops at the first
busy record (records are committed out of order across CPUs but must be
consumed in order), skips discarded ones, and moves the consumer position
only after the records before it were handed over.

Speed.  Records of one size lie at a fixed stride, so instead of decoding
every header in Python the reader compares all the headers of a stretch at
once: a strided ``memoryview`` of the u32 headers compared with itself
shifted by one record (a C loop, no allocation), growing the stretch
exponentially and bisecting on the first mismatch.  A stretch of equal
headers is a *run*; callbacks then loop over ``range(start, stop, stride)``
and batches become one strided NumPy view.  Records of varying sizes fall
back to one header at a time.

Memory ordering: the kernel publishes a record with a release store of its
header and the producer position; on x86-64 (TSO) ordinary loads in program
order are enough, and every load here goes through the interpreter in
program order.  (On weakly ordered CPUs a fence would be needed; pybpf's
machines are x86-64.)

Example::

    import pybpf
    from pybpf.maps import RingBuf

    with RingBuf(size=1 << 20, name="events") as events, pybpf.RingBufReader(events, record="<QQ") as reader:
        ...                                   # a program does bpf_ringbuf_output(&events, ...)
        for seq, value in reader.poll(timeout=1.0):
            print(seq, value)
        with reader.read_batch() as batch:    # all records at once, no per-record objects
            arr = batch.array                 # NumPy structured array, fields f0, f1
"""

from __future__ import annotations

import errno as _errno
import mmap
import os

from pybpf._sys.syscall import FD
from pybpf._sys.uapi import MapType
from pybpf.errors import SyscallError
from pybpf.readers._base import StreamReader
from pybpf.readers._records import RecordBatch, RecordError, RecordType
from pybpf.readers._ring import Ring, check_map, unmap, watch

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

__all__ = ["RingBufReader", "BUSY_BIT", "DISCARD_BIT", "HDR_SIZE"]

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
HDR_SIZE = 8
_LEN_MASK = ~(BUSY_BIT | DISCARD_BIT) & 0xFFFFFFFF
_FIRST_CHUNK = 8            # headers compared in the first step of a run search
_MAX_CHUNK = 1 << 16


def run_length(hv: memoryview, i0: int, step: int, limit: int) -> int:
    """How many of the ``limit`` u32 words ``hv[i0 + k*step]`` equal the first (at least 1).

    Compares stretches of the strided view with themselves shifted by one
    (all equal to the previous one means all equal to the first), doubling
    the stretch while it matches and bisecting the first one that does not.
    No allocation but the slice objects.

    >>> hv = memoryview(bytes([8, 0, 0, 0] * 3 + [9, 0, 0, 0])).cast("I")
    >>> run_length(hv, 0, 1, 4)          # three equal words, then a different one
    3
    """
    n = 1
    chunk = _FIRST_CHUNK
    while n < limit:
        k = min(chunk, limit - n)
        a = i0 + n * step
        if hv[a:a + k * step:step] == hv[a - step:a + (k - 1) * step:step]:
            n += k
            if chunk < _MAX_CHUNK:
                chunk <<= 1
            continue
        # hv[n .. n+k) has a mismatch; lo words after n are known equal.
        lo, hi = 0, k
        while hi - lo > 1:
            mid = (lo + hi) >> 1
            b = a + lo * step
            if hv[b:b + (mid - lo) * step:step] == hv[b - step:b + (mid - lo - 1) * step:step]:
                lo = mid
            else:
                hi = mid
        return n + lo
    return n


class RingMapping:
    """The three views of a BPF ring buffer map: consumer position, producer position, data.

    Page 0 (the consumer position) is mapped read-write for a consumer
    (``producer=False``, a RINGBUF reader) and read-only for a producer (a
    USER_RINGBUF writer); the rest, from page 1, the other way round.  The
    data area is mapped twice back to back, so ``data`` is ``2 * size`` bytes
    and a record that wraps is contiguous.  ``cons``/``prod`` are one-element
    u64 views, ``hdr`` the data as u32 words.

    >>> with RingBuf(size=4096) as rb:                                    # doctest: +SKIP
    ...     ring = RingMapping(rb.fd, rb.size, producer=False)
    ...     len(ring.data), ring.cons[0] == ring.prod[0]
    ...     ring.close()
    (8192, True)
    """

    __slots__ = ("cons", "prod", "data", "hdr", "_cons_mm", "_data_mm")

    def __init__(self, fd: int, size: int, *, producer: bool) -> None:
        page = mmap.PAGESIZE
        rw, ro = mmap.ACCESS_WRITE, mmap.ACCESS_READ
        self.cons = self.prod = self.data = self.hdr = None
        self._cons_mm = self._data_mm = None
        try:
            self._cons_mm = mmap.mmap(fd, page, access=ro if producer else rw, offset=0)
            self._data_mm = mmap.mmap(fd, page + 2 * size, access=rw if producer else ro, offset=page)
        except BaseException:
            self.close()
            raise
        self.cons = memoryview(self._cons_mm).cast("Q")
        whole = memoryview(self._data_mm)
        self.prod = whole[:8].cast("Q")
        self.data = whole[page:]
        self.hdr = self.data.cast("I")
        whole.release()

    def close(self) -> None:
        """Release the views and unmap (a mapping still exported lives on with its user)."""
        unmap(self, ("hdr", "data", "prod", "cons"), ("_cons_mm", "_data_mm"))


class _Ring(Ring):
    """One mapped BPF ring buffer: scanning and the consumer position."""

    __slots__ = ("_ring", "_cons", "_prod", "_data", "_hdr", "discarded", "_owned")

    def __init__(self, m: Any, index: int, rtype: RecordType) -> None:
        self.index = index
        self.map = m
        self.rtype = rtype
        self.dead = False
        self.size = m.max_entries
        self._mask = self.size - 1
        self._batch: RecordBatch | None = None
        self._open = None  # the record iterator of the last read, weakly
        self.discarded = 0
        self.fd = -1
        self._ring = None
        # Our own reference to the map's file, for epoll (the mmaps hold one too):
        # the reader keeps working whatever happens to the caller's Map object.
        self._owned = owned = FD(os.dup(m.fd), f"ring buffer reader of {getattr(m, '_label', 'map')}")
        try:
            self._ring = ring = RingMapping(owned.fileno(), self.size, producer=False)
        except OSError as exc:
            owned.close()
            raise SyscallError(f"mmap of ring buffer {getattr(m, 'name', '')!r}: {os.strerror(exc.errno or 0)}",
                               errno=exc.errno or _errno.EIO) from None
        self._cons, self._prod, self._data, self._hdr = ring.cons, ring.prod, ring.data, ring.hdr
        self._seen = self._cons[0]
        self.fd = owned.fileno()

    def pending(self) -> bool:
        return self._prod[0] != self._cons[0]

    def _commit(self, pos: int) -> None:
        cons = self._cons
        if cons is not None:
            try:
                if pos > cons[0]:
                    cons[0] = pos
            except ValueError:
                pass  # closed meanwhile by another thread

    def scan(self, limit: int, reader: Any = None) -> tuple[list, int]:
        """Runs of records available now (at most ``limit`` records) and the position after them.

        A run is ``(pos0, off0, n, stride, size, buf)``; see :mod:`._records`.
        """
        cons = self._cons[0]
        prod = self._prod[0]
        pos = cons
        hv = self._hdr
        data = self._data
        mask = self._mask
        runs = []
        count = 0
        while pos < prod and count < limit:
            off = pos & mask
            h = hv[off >> 2]
            if h & BUSY_BIT:
                break
            size = h & _LEN_MASK
            stride = (size + HDR_SIZE + 7) & ~7
            if stride > prod - pos:
                break  # not possible for a committed record: treat as not there yet
            if h & DISCARD_BIT:
                if pos >= self._seen:
                    self.discarded += 1
                pos += stride
                continue
            most = min((prod - pos) // stride, limit - count)
            n = run_length(hv, off >> 2, stride >> 2, most) if most > 1 else 1
            runs.append((pos, off + HDR_SIZE, n, stride, size, data))
            pos += n * stride
            count += n
        if pos > self._seen:
            self._seen = pos
        return runs, pos

    def close(self) -> None:
        self._drop_batch()
        self._cons = self._prod = self._data = self._hdr = None
        if self._ring is not None:
            self._ring.close()
        self.fd = -1
        self._owned.close()


def _as_maps(map_or_maps: Any) -> list[Any]:
    if isinstance(map_or_maps, (list, tuple)):
        return list(map_or_maps)
    return [map_or_maps]


class RingBufReader(StreamReader):
    """Reads one or more BPF ring buffers (``BPF_MAP_TYPE_RINGBUF``) — Linux 5.8.

    ``RingBufReader(map_or_maps, *, record=None, dtype=None, callback=None, on_error=None)``

    - ``map_or_maps``: a :class:`~pybpf.maps.RingBuf` (or any ``Map`` of type
      RINGBUF), or a list of them: all are waited on together.  Another map
      type is a ``TypeError``.  :meth:`add` adds more, each with its own type.
    - ``record=``: decode each record (a struct format, ctypes type, BTF type
      or codec...; see :mod:`pybpf.readers._records`); default: a
      ``memoryview`` of its bytes, valid until the next record.
    - ``dtype=``: the NumPy dtype of :attr:`RecordBatch.array` (derived from
      ``record=`` when possible).
    - ``callback=``: the default handler of :meth:`dispatch`/:meth:`consume`.
    - ``on_error(err)``: receives a :class:`RecordError` for each record
      shorter than the declared type; without it the read raises it.  Either
      way the record is skipped, never read past its end, and counted in
      :attr:`lost`.

    Counters: :attr:`received` (records handed over), :attr:`discarded`
    (records the producer discarded), :attr:`lost` (records skipped as
    malformed).  A full ring never loses records silently on the reader's
    side: ``bpf_ringbuf_reserve``/``output`` fail in the *program*, which has
    to count its failures itself (ring buffers keep no drop counter).

    Closing the map of a ring ends reads of that ring; with no ring left the
    reader closes itself and its iterators stop.

    Example::

        with RingBufReader(events, record=event_type) as reader:
            reader.dispatch(timeout=1.0, callback=print)      # libbpf's ring_buffer__poll
            for ev in reader.poll(timeout=1.0): ...           # an iterator
            batch = reader.read_batch(); batch.array          # everything at once
            async for ev in reader: ...                       # asyncio, no thread
    """

    _what = "ring buffer reader"

    def __init__(self, map_or_maps: Any, *, record: Any = None, dtype: Any = None,
                 callback: Callable[[Any], Any] | None = None,
                 on_error: Callable[[RecordError], Any] | None = None) -> None:
        maps = _as_maps(map_or_maps)
        if not maps:
            raise ValueError("RingBufReader needs at least one ring buffer map")
        for m in maps:
            _check_map(m)
        super().__init__(callback=callback, on_error=on_error)
        try:
            for m in maps:
                self.add(m, record=record, dtype=dtype)
        except BaseException:
            self.close()
            raise

    def add(self, m: Any, *, record: Any = None, dtype: Any = None) -> int:
        """Read ring buffer ``m`` too (its own ``record=``/``dtype=``); return its ring index."""
        _check_map(m)
        if self.closed:
            raise ValueError("ring buffer reader is closed")
        if any(r.map is m or getattr(r.map, "id", None) == getattr(m, "id", 0) for r in self._rings):
            raise ValueError(f"{getattr(m, '_label', 'map')} is read by this reader already")
        ring = _Ring(m, len(self._rings), RecordType(record, dtype, btf=getattr(m, "btf", None),
                                                     where=getattr(m, "_label", "")))
        try:
            self._add_ring(ring)
        except BaseException:
            ring.close()
            raise
        watch(m, self)
        return ring.index

    @property
    def discarded(self) -> int:
        """Records skipped because the producer discarded them (``bpf_ringbuf_discard``)."""
        return sum(r.discarded for r in self._rings)

    @property
    def maps(self) -> list[Any]:
        """The ring buffer maps read, in ring index order."""
        return [r.map for r in self._rings]

    def available(self, ring: int = 0) -> int:
        """Bytes between the consumer and producer positions of ring ``ring`` (headers and padding included)."""
        for r in self._rings:
            if r.index == ring and r._cons is not None:
                return r._prod[0] - r._cons[0]
        raise IndexError(f"ring buffer reader has no open ring {ring}")

    def __repr__(self) -> str:
        names = ", ".join(repr(getattr(r.map, "name", "?")) for r in self._rings)
        state = " closed" if self.closed else ""
        return f"<RingBufReader [{names}] received={self.received}{state}>"


def _check_map(m: Any) -> None:
    check_map(m, MapType.RINGBUF, "RingBufReader", "read", "ring buffer",
              {MapType.USER_RINGBUF: " (user ring buffers are written with UserRingBufWriter)"})
