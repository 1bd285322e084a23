"""Read perf buffers: ``bpf_perf_event_output`` records from a ``PERF_EVENT_ARRAY`` (Linux 4.3).

For each online CPU the reader opens a software perf event
``PERF_COUNT_SW_BPF_OUTPUT`` with ``sample_type = PERF_SAMPLE_RAW``
(``perf_event_open(pid=-1, cpu=N)``), maps its ring (one meta page plus
``pages`` data pages), stores the event's fd in the map at index N and puts
it in the reader's epoll set.  A program writing with ``BPF_F_CURRENT_CPU``
lands in the ring of the CPU it runs on; order is kept within a CPU only.

Ring layout (``include/uapi/linux/perf_event.h``): the meta page holds
``data_head`` (the kernel's write position, at byte 1024) and ``data_tail``
(ours, right after it).  Records start with ``struct perf_event_header``
(u32 type, u16 misc, u16 size) and are 8-byte aligned.  A
``PERF_RECORD_SAMPLE`` carries a u32 size and the raw bytes, padded so the
record stays aligned: a 64-byte output arrives as 68 bytes (the last 4 are
padding).  A ``PERF_RECORD_LOST`` (u64 id, u64 count) says how many samples
the kernel dropped because the ring was full: they add to :attr:`lost`
and go to ``on_lost(cpu, count)``.  The data area is mapped once, so a
record that wraps around its end is copied; all others are handed over as
zero-copy views.

``overwrite=True`` (Linux 4.7) opens the events with ``write_backward``: the kernel never
waits for the reader and overwrites the oldest records, which makes a
flight recorder.  The rings are mapped read-only and read by
:meth:`PerfBufReader.snapshot`, which pauses output
(``PERF_EVENT_IOC_PAUSE_OUTPUT``), walks from ``data_head`` (the newest
record) towards older ones, and resumes.

Example::

    from pybpf.maps.perf_event_array import PerfEventArray
    from pybpf.readers import PerfBufReader

    with PerfEventArray(name="events") as events, PerfBufReader(events, pages=16, on_lost=print) as reader:
        ...                                  # bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &ev, sizeof ev)
        for rec in reader.poll(timeout=1.0):
            print(reader.last_cpu, bytes(rec))
        print(reader.received, reader.lost)
"""

from __future__ import annotations

import ctypes
import errno as _errno
import mmap
import os

from pybpf._sys.cpus import online_cpus
from pybpf._sys.attrs import MapElemAttr, PerfEventAttr
from pybpf._sys.flags import PERF_ATTR_FLAG_WATERMARK, PERF_ATTR_FLAG_WRITE_BACKWARD
from pybpf._sys.perf import enable, pause_output, perf_event_open
from pybpf._sys.syscall import bpf
from pybpf._sys.uapi import Cmd, MapType, PerfRecordType, PerfSampleFormat, PerfSwConfig, PerfType
from pybpf.errors import BPFError, SyscallError
from pybpf.readers._base import StreamReader
from pybpf.readers._records import RecordBatch, RecordError, RecordType
from pybpf.readers._ring import Ring, check_map, unmap, watch
from pybpf.readers.ringbuf import run_length

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

__all__ = ["PerfBufReader", "online_cpus"]

_SAMPLE = int(PerfRecordType.SAMPLE)
_LOST = int(PerfRecordType.LOST)
_HEAD = 1024 // 8          # data_head, as a u64 index into the meta page
_TAIL = _HEAD + 1          # data_tail
_RAW_OFF = 12              # header (8) + raw size (4)


def _raw_size(buf: memoryview, boff: int, size: int) -> int:
    """Bytes of the raw sample in the record at ``boff`` (its u32 size, bounded by the record)."""
    return max(0, min(int.from_bytes(buf[boff + 8:boff + 12], "little"), size - _RAW_OFF))


class _PerfRing(Ring):
    """One CPU's perf ring: the event fd, the mapping, scanning and the tail position."""

    __slots__ = ("cpu", "_mm", "_meta", "_data", "_q", "_overwrite", "_prev_head", "_event", "_on_lost", "lost",
                 "stored")

    def __init__(self, m: Any, cpu: int, index: int, rtype: RecordType, attr: PerfEventAttr, pages: int,
                 overwrite: bool, on_lost: Callable[[int, int], Any] | None) -> None:
        self.index = index
        self.cpu = cpu
        self.map = m
        self.rtype = rtype
        self.dead = False
        self.stored = False  # our event sits in the map at index cpu
        self._overwrite = overwrite
        self._on_lost = on_lost
        self.lost = 0
        self._mm = None
        self._meta = self._data = self._q = None
        self._batch: RecordBatch | None = None
        self._open = None  # the record iterator of the last read, weakly
        page = mmap.PAGESIZE
        self.size = pages * page
        self._mask = self.size - 1
        self._event = perf_event_open(attr, pid=-1, cpu=cpu, what=f"perf buffer CPU {cpu}")
        self.fd = self._event.fileno()
        try:
            access = mmap.ACCESS_READ if overwrite else mmap.ACCESS_WRITE
            self._mm = mmap.mmap(self.fd, (pages + 1) * page, access=access)
            whole = memoryview(self._mm)
            self._meta = whole[:page].cast("Q")
            self._data = whole[page:]
            self._q = self._data.cast("Q")
            whole.release()
        except OSError as exc:
            self.close()
            raise SyscallError(f"mmap of the perf ring of CPU {cpu}: {os.strerror(exc.errno or 0)}",
                               errno=exc.errno or _errno.EIO,
                               hint="perf rings count against /proc/sys/kernel/perf_event_mlock_kb "
                                    "(root is exempt); try fewer pages") from None
        self._seen = self._meta[_TAIL]
        self._prev_head: int | None = None

    # -------------------------------------------------------------- positions

    def pending(self) -> bool:
        meta = self._meta
        return not self._overwrite and meta is not None and meta[_HEAD] != meta[_TAIL]

    def _commit(self, pos: int) -> None:
        meta = self._meta
        if meta is not None and not self._overwrite:
            try:
                if pos > meta[_TAIL]:
                    meta[_TAIL] = pos
            except ValueError:
                pass  # closed meanwhile by another thread

    def scan(self, limit: int, reader: StreamReader) -> tuple[list, int]:
        """Runs of samples available now and the position after them; LOST records are counted."""
        meta, q, data = self._meta, self._q, self._data
        tail = meta[_TAIL]
        head = meta[_HEAD]
        size_all, mask = self.size, self._mask
        pos = tail
        runs = []
        count = 0
        while pos < head and count < limit:
            off = pos & mask
            word = q[off >> 3]
            size = word >> 48
            kind = word & 0xFFFFFFFF
            if size < 8 or size > head - pos:
                # A corrupt header would loop for ever: give up on what is in the ring.
                pos = head
                break
            buf, boff = self._record(off, size)
            if kind == _SAMPLE:
                n = 1
                if buf is data:  # not wrapped: samples of this size may follow at a fixed stride
                    most = min((head - pos) // size, (size_all - off) // size, limit - count)
                    n = run_length(q, off >> 3, size >> 3, most) if most > 1 and not size & 7 else 1
                runs.append((pos, boff + _RAW_OFF, n, size, _raw_size(buf, boff, size), buf))
                count += n
                pos += n * size
                continue
            if kind == _LOST and pos >= self._seen:
                dropped = int.from_bytes(buf[boff + 16:boff + 24], "little")
                self.lost += dropped
                reader.lost += dropped
                if self._on_lost is not None:
                    self._seen = pos + size
                    self._on_lost(self.cpu, dropped)
            pos += size
        if pos > self._seen:
            self._seen = pos
        return runs, pos

    def _record(self, off: int, size: int) -> tuple[memoryview, int]:
        """The buffer holding the record at ``off`` and its offset there: a copy if it wraps around."""
        data = self._data
        if off + size > self.size:
            return memoryview(bytes(data[off:]) + bytes(data[:off + size - self.size])), 0
        return data, off

    def _handing_over(self, reader: Any) -> None:
        reader.last_cpu = self.cpu

    # -------------------------------------------------------------- overwrite mode

    def snapshot(self, decode: Callable[[Any, int], Any] | None, everything: bool) -> list[Any]:
        """Records written since the previous snapshot (or all still in the ring), oldest first."""
        pause_output(self.fd, True)
        try:
            meta, q = self._meta, self._q
            head = meta[_HEAD]
            span = self.size
            if not everything and self._prev_head is not None:
                span = min(span, (self._prev_head - head) & 0xFFFFFFFFFFFFFFFF)
            self._prev_head = head
            found = []
            pos, end = head, head + span
            while pos < end:
                off = pos & self._mask
                word = q[off >> 3]
                size = word >> 48
                if size < 8 or pos + size > end:
                    break  # never written, or partly overwritten by the newest records
                if word & 0xFFFFFFFF == _SAMPLE:
                    buf, boff = self._record(off, size)
                    found.append((buf, boff + _RAW_OFF, _raw_size(buf, boff, size)))
                pos += size
            out = []
            need = self.rtype.size
            for buf, o, raw in reversed(found):
                if raw < need:
                    continue
                out.append(decode(buf, o) if decode is not None else bytes(buf[o:o + raw]))
            return out
        finally:
            pause_output(self.fd, False)

    # -------------------------------------------------------------- lifetime

    def close(self) -> None:
        self._drop_batch()
        if self.stored and not self.dead and not getattr(self.map, "closed", True):
            _delete_entry(self.map, self.cpu)
        self.stored = False
        unmap(self, ("_q", "_data", "_meta"), ("_mm",))
        self._event.close()
        self.fd = -1


# The map slots are written with raw u32 keys and values rather than through the Map's
# codecs, which follow the map's BTF (any 4-byte type) and are not needed here.

def _store_entry(m: Any, cpu: int, fd: int) -> None:
    """Store the perf event ``fd`` at index ``cpu`` of the PERF_EVENT_ARRAY ``m``."""
    key = ctypes.c_uint32(cpu)
    value = ctypes.c_uint32(fd)
    attr = MapElemAttr(map_fd=m.fd, key=ctypes.addressof(key), value=ctypes.addressof(value))
    try:
        bpf(Cmd.MAP_UPDATE_ELEM, attr, op=f"store the perf event of CPU {cpu}")
    except BPFError as exc:
        raise exc.add_context(getattr(m, "_label", "perf event array"))


def _delete_entry(m: Any, cpu: int) -> None:
    """Remove our event from index ``cpu`` (quietly: the map may be gone already)."""
    key = ctypes.c_uint32(cpu)
    try:
        attr = MapElemAttr(map_fd=m.fd, key=ctypes.addressof(key))
        bpf(Cmd.MAP_DELETE_ELEM, attr, op="delete")
    except (BPFError, ValueError):
        pass  # already gone, or the map closed meanwhile


class PerfBufReader(StreamReader):
    """Reads the per-CPU perf rings behind a ``BPF_MAP_TYPE_PERF_EVENT_ARRAY`` — Linux 4.3.

    ``PerfBufReader(map, *, pages=64, watermark=0, wakeup_events=1, overwrite=False, cpus=None,
    record=None, dtype=None, callback=None, on_lost=None, on_error=None)``

    - ``pages``: data pages per CPU, a power of two.
    - ``wakeup_events``: wake the reader every N samples (default every one);
      ``watermark``: instead, wake it when this many bytes wait.  Either way
      :meth:`flush` hands over what is there.
    - ``overwrite=True``: a flight recorder (Linux 4.7); read with :meth:`snapshot`.
    - ``cpus``: which CPUs get a ring (default: the online ones).
    - ``record=``/``dtype=``/``callback=``/``on_error=``: as for
      :class:`~pybpf.readers.RingBufReader`.  Samples come padded to 8 bytes
      minus 4 (a 64-byte output reads as 68 bytes): a declared type only
      needs to fit.
    - ``on_lost(cpu, count)``: called for every ``PERF_RECORD_LOST``.

    Counters: :attr:`received`, :attr:`lost` (samples the kernel dropped,
    plus records skipped as too short); :attr:`last_cpu` is the CPU of the
    record handed over last.  Batches (:meth:`read_batch`) are per CPU;
    ``batch.ring`` is the ring index, ``reader.cpus[batch.ring]`` its CPU.

    Example::

        with PerfEventArray(name="events") as events, PerfBufReader(events, pages=8, record="<QI") as reader:
            ...                                          # attach a program calling bpf_perf_event_output()
            for ts, pid in reader.poll(timeout=1.0):
                print(reader.last_cpu, ts, pid)
            print(reader.received, reader.lost)
    """

    _what = "perf buffer reader"

    def __init__(self, m: Any, *, pages: int = 64, watermark: int = 0, wakeup_events: int = 1,
                 overwrite: bool = False, cpus: list[int] | None = None, record: Any = None, dtype: Any = None,
                 callback: Callable[[Any], Any] | None = None, on_lost: Callable[[int, int], Any] | None = None,
                 on_error: Callable[[RecordError], Any] | None = None) -> None:
        _check_map(m)
        if not isinstance(pages, int) or pages <= 0 or pages & (pages - 1):
            raise ValueError(f"pages must be a power of two, not {pages!r}")
        if watermark < 0 or wakeup_events < 0:
            raise ValueError("watermark and wakeup_events must be >= 0")
        if watermark and watermark >= pages * mmap.PAGESIZE:
            raise ValueError(f"watermark={watermark} must be below the ring size ({pages * mmap.PAGESIZE} bytes)")
        cpus = list(online_cpus() if cpus is None else cpus)
        too_big = [c for c in cpus if c >= m.max_entries]
        if too_big:
            raise ValueError(f"{getattr(m, '_label', 'map')} has max_entries={m.max_entries}, too few for CPU "
                             f"{too_big[0]}: create it with max_entries >= the number of possible CPUs")
        rtype = RecordType(record, dtype, btf=getattr(m, "btf", None), where=getattr(m, "_label", ""))
        super().__init__(callback=callback, on_error=on_error)
        self.map = m
        self.pages = pages
        self.overwrite = overwrite
        self.cpus = cpus
        #: the CPU of the record handed over last
        self.last_cpu = -1
        self._on_lost = on_lost
        attr = PerfEventAttr(type=PerfType.SOFTWARE, config=PerfSwConfig.BPF_OUTPUT,
                             sample_type=PerfSampleFormat.RAW, sample_period=1)
        if watermark:
            attr.flags |= PERF_ATTR_FLAG_WATERMARK
            attr.wakeup_events = watermark  # the union's wakeup_watermark
        else:
            attr.wakeup_events = wakeup_events or 1
        if overwrite:
            attr.flags |= PERF_ATTR_FLAG_WRITE_BACKWARD
        try:
            for i, cpu in enumerate(cpus):
                ring = _PerfRing(m, cpu, i, rtype, attr, pages, overwrite, on_lost)
                if overwrite:
                    self._rings.append(ring)  # never polled: read by snapshot()
                else:
                    self._add_ring(ring)
                _store_entry(m, cpu, ring.fd)
                ring.stored = True
                enable(ring.fd)
        except BaseException:
            self.close()
            raise
        watch(m, self)

    def _check_mode(self) -> None:
        if self.overwrite:
            raise TypeError("an overwritable perf buffer (overwrite=True) is read with snapshot()")

    def snapshot(self, *, everything: bool = False) -> dict[int, list[Any]]:
        """Overwritable rings: ``{cpu: [records, oldest first]}`` written since the last snapshot.

        ``everything=True`` returns all records still in the rings.  Each
        ring is paused while it is read.  Records are ``bytes`` copies (or
        decoded with ``record=``/``dtype=``).
        """
        if not self.overwrite:
            raise TypeError("snapshot() reads overwritable perf buffers (overwrite=True)")
        self._enter()
        try:
            out = {}
            for ring in self._rings:
                if not ring.dead:
                    recs = ring.snapshot(ring.rtype.decode, everything)
                    self.received += len(recs)
                    out[ring.cpu] = recs
            return out
        finally:
            self._leave()

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return (f"<PerfBufReader {getattr(self.map, 'name', '')!r} cpus={self.cpus} received={self.received} "
                f"lost={self.lost}{state}>")


def _check_map(m: Any) -> None:
    check_map(m, MapType.PERF_EVENT_ARRAY, "PerfBufReader", "read", "perf event array")
