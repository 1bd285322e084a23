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

import mmap
import os
from typing import Any, Callable, Iterator

from pybpf._sys.syscall import FD
from pybpf._sys.uapi import MapType
from pybpf.readers._base import StreamReader
from pybpf.readers._records import RecordBatch, RecordError, RecordType

__all__ = ["RingBufReader", "BUSY_BIT", "DISCARD_BIT", "HDR_SIZE"]

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
HDR_SIZE = 8
_LEN_MASK = ~(BUSY_BIT | DISCARD_BIT) & 0xFFFFFFFF
_SCAN_LIMIT = 1 << 16       # records per scan when they come one header at a time
_COMMIT_EVERY = 1024        # records handed over between consumer position updates
_FIRST_CHUNK = 8            # headers compared in the first step of a run search
_MAX_CHUNK = 1 << 16


def run_length(hv: memoryview, i0: int, step: int, limit: int) -> int:
    """How many of the ``limit`` u32 words ``hv[i0 + k*step]`` equal the first (at least 1).

    Compares stretches of the strided view with themselves shifted by one
    (all equal to the previous one means all equal to the first), doubling
    the stretch while it matches and bisecting the first one that does not.
    No allocation but the slice objects.
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


class _Ring:
    """One mapped BPF ring buffer: scanning, handing records over, the consumer position."""

    __slots__ = ("index", "map", "fd", "rtype", "dead", "size", "_mask", "_cons_mm", "_data_mm", "_cons",
                 "_prod", "_data", "_hdr", "_seen", "_batch", "discarded", "_owned", "__weakref__")

    def __init__(self, m: Any, index: int, rtype: RecordType) -> None:
        self.index = index
        self.map = m
        self.rtype = rtype
        self.dead = False
        self.size = size = m.max_entries
        self._mask = size - 1
        self._cons_mm = self._data_mm = None
        self._cons = self._prod = self._data = self._hdr = None
        self._batch: RecordBatch | None = None
        self.discarded = 0
        page = mmap.PAGESIZE
        self.fd = -1
        # Our own reference to the map's file, for epoll (the mmaps hold one too):
        # the reader keeps working whatever happens to the caller's Map object.
        self._owned = owned = FD(os.dup(m.fd), f"ring buffer reader of {getattr(m, '_label', 'map')}")
        try:
            self._cons_mm = mmap.mmap(owned.fileno(), page, access=mmap.ACCESS_WRITE, offset=0)
            self._data_mm = mmap.mmap(owned.fileno(), page + 2 * size, access=mmap.ACCESS_READ, offset=page)
        except OSError as exc:
            owned.close()
            self.close()
            raise OSError(exc.errno, f"mmap of ring buffer {getattr(m, 'name', '')!r}: {exc.strerror}") from None
        self._cons = memoryview(self._cons_mm).cast("Q")
        whole = memoryview(self._data_mm)
        self._prod = whole[:8].cast("Q")
        self._data = whole[page:]
        self._hdr = self._data.cast("I")
        whole.release()
        self._seen = self._cons[0]
        self.fd = owned.fileno()

    # -------------------------------------------------------------- positions

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

    def scan(self, limit: int) -> tuple[list, int]:
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

    # -------------------------------------------------------------- handing over

    def _take_batch(self) -> None:
        b = self._batch
        if b is not None:
            self._batch = None
            b.release()

    def _short_run(self, reader: StreamReader, run: tuple, commit: bool) -> None:
        """Report the records of a run shorter than the declared type, one by one.

        Without ``on_error`` the first one is raised, after the consumer
        position moved past it (so the next read goes on after it).
        """
        pos0, off0, n, stride, size, buf = run
        for i in range(n):
            err = reader._short(self, buf, off0 + i * stride, size)
            if reader._on_error is None:
                self._commit(pos0 + (i + 1) * stride)
                raise err
            reader._on_error(err)
        if commit:
            self._commit(pos0 + n * stride)

    def dispatch(self, handler: Callable[[Any], Any], reader: StreamReader) -> int:
        """Hand every available record to ``handler``; the count."""
        self._take_batch()
        decode = self.rtype.decode
        need = self.rtype.size
        total = 0
        while True:
            runs, end = self.scan(_SCAN_LIMIT)
            for run in runs:
                pos0, off0, n, stride, size, data = run
                if size < need:
                    self._short_run(reader, run, commit=True)
                    continue
                stop = off0 + n * stride
                start = off0
                while start < stop:
                    sub = min(stop, start + _COMMIT_EVERY * stride)
                    o = start
                    try:
                        if decode is None:
                            for o in range(start, sub, stride):
                                handler(data[o:o + size])
                        else:
                            for o in range(start, sub, stride):
                                handler(decode(data, o))
                    except BaseException:
                        done = (o - off0) // stride + 1
                        self._commit(pos0 + done * stride)
                        reader.received += done - (start - off0) // stride
                        total += done - (start - off0) // stride
                        raise
                    reader.received += (sub - start) // stride
                    total += (sub - start) // stride
                    self._commit(pos0 + (sub - off0))
                    start = sub
                if reader._closing:
                    return total
            self._commit(end)
            if sum(r[2] for r in runs) < _SCAN_LIMIT:
                return total

    def records(self, reader: StreamReader) -> Iterator[Any]:
        """Yield every available record; the consumer position follows what was handed over."""
        self._take_batch()
        decode = self.rtype.decode
        need = self.rtype.size
        pos0 = off0 = stride = 0
        o = -1
        try:
            while True:
                runs, end = self.scan(_SCAN_LIMIT)
                for run in runs:
                    pos0, off0, n, stride, size, data = run
                    o = -1
                    if size < need:
                        self._short_run(reader, run, commit=True)
                        continue
                    stop = off0 + n * stride
                    if decode is None:
                        for o in range(off0, stop, stride):
                            reader.received += 1
                            yield data[o:o + size]
                    else:
                        for o in range(off0, stop, stride):
                            reader.received += 1
                            yield decode(data, o)
                    self._commit(pos0 + n * stride)
                    o = -1
                self._commit(end)
                if sum(r[2] for r in runs) < _SCAN_LIMIT:
                    return
        finally:
            if o >= 0:
                self._commit(pos0 + (o - off0) + stride)

    def batch(self, reader: StreamReader, limit: int) -> RecordBatch:
        """The available records as one RecordBatch; the position moves when it is released."""
        self._take_batch()
        need = self.rtype.size
        runs, end = self.scan(limit)
        if need and any(run[4] < need for run in runs):
            good = []
            for run in runs:
                if run[4] >= need:
                    good.append(run)
                elif reader._on_error is None and good:
                    end = run[0]  # hand over what came before; the short record raises next time
                    break
                else:
                    # Raises (moving past the record) only when nothing came before it.
                    self._short_run(reader, run, commit=False)
            runs = good
        if not runs:  # only skipped records (discarded, short, lost): nothing to hold back
            self._commit(end)
            return RecordBatch(None, self.index, [], end, self.rtype)
        batch = RecordBatch(self, self.index, runs, end, self.rtype)
        reader.received += len(batch)
        self._batch = batch
        return batch

    def _release_batch(self, batch: RecordBatch, end: int) -> None:
        if self._batch is batch:
            self._batch = None
        self._commit(end)

    # -------------------------------------------------------------- lifetime

    def forget(self, reader: Any) -> None:
        unwatch = getattr(self.map, "_unwatch", None)
        if unwatch is not None:
            unwatch(reader)

    def close(self) -> None:
        b, self._batch = self._batch, None
        if b is not None:
            b._owner = None  # released without moving the position: the reader is gone
        for name in ("_hdr", "_data", "_prod", "_cons"):
            view = getattr(self, name)
            setattr(self, name, None)
            if view is not None:
                try:
                    view.release()
                except BufferError:
                    pass  # someone holds a NumPy array of it: the mapping lives on with it
        for name in ("_cons_mm", "_data_mm"):
            mm = getattr(self, name)
            setattr(self, name, None)
            if mm is not None:
                try:
                    mm.close()
                except BufferError:
                    pass  # record views are still alive; the mapping goes with them
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
        ring = _Ring(m, len(self._rings), RecordType(record, dtype))
        try:
            self._add_ring(ring)
        except BaseException:
            ring.close()
            raise
        watch = getattr(m, "_watch", None)
        if watch is not None:
            watch(self)
        return ring.index

    @property
    def discarded(self) -> int:
        """Records skipped because the producer discarded them (``bpf_ringbuf_discard``)."""
        return sum(r.discarded for r in self._rings)

    @property
    def maps(self) -> list[Any]:
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
    kind = getattr(m, "type", None)
    if kind is None or not hasattr(m, "fd"):
        raise TypeError(f"RingBufReader reads ring buffer maps, not {type(m).__name__}")
    if int(kind) != MapType.RINGBUF:
        try:
            name = MapType(int(kind)).name
        except ValueError:
            name = str(kind)
        hint = " (user ring buffers are written with UserRingBufWriter)" if int(kind) == MapType.USER_RINGBUF else ""
        raise TypeError(f"{getattr(m, '_label', 'map')} is a {name} map, not a RINGBUF: "
                        f"RingBufReader cannot read it{hint}")
    if getattr(m, "closed", False):
        raise ValueError(f"{getattr(m, '_label', 'map')} is closed")
