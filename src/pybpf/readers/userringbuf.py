"""Write records into a user ring buffer (``BPF_MAP_TYPE_USER_RINGBUF``, Linux 6.1) for a BPF program.

The roles of a ring buffer reversed: user space produces, a program consumes
with ``bpf_user_ringbuf_drain(&map, callback, ctx, flags)``, which calls
``callback(struct bpf_dynptr *record, void *ctx)`` for each record.

Layout (``kernel/bpf/ringbuf.c``): page 0 holds the consumer position and is
read-only for user space; page 1 the producer position and from page 2 the
data area (mapped twice back to back) are writable.  To write a record the
producer (there must be one at a time) puts an 8-byte header at the producer
position with the length and the busy bit (1 << 31), moves the producer
position past the record (rounded up to 8 bytes), fills the record, then
clears the busy bit — or sets the discard bit (1 << 30) instead.  The
kernel stops draining at a busy record, skips discarded ones, and moves the
consumer position; the map's fd polls writable (EPOLLOUT) while there is
room, which is how :meth:`UserRingBufWriter.reserve` waits.

The stores are ordinary stores in program order; on x86-64 (TSO) the kernel
sees the record's bytes before the cleared busy bit.

Example::

    from pybpf.maps.ringbuf import UserRingBuf
    from pybpf.readers import UserRingBufWriter

    with UserRingBuf(size=1 << 16) as urb, UserRingBufWriter(urb) as w:
        w.write(struct.pack("<QQ", 1, 2))           # copy in, submit
        with w.reserve(16) as rec:                  # or fill in place
            struct.pack_into("<QQ", rec.data, 0, 3, 4)
        # a program now calls bpf_user_ringbuf_drain(&urb, cb, ctx, 0)
"""

from __future__ import annotations

import errno as _errno
import os
import select
import threading
import time

from pybpf._sys.syscall import FD
from pybpf._sys.uapi import MapType
from pybpf.errors import SyscallError
from pybpf.readers._ring import check_map, unwatch, watch
from pybpf.readers.ringbuf import BUSY_BIT, DISCARD_BIT, HDR_SIZE, RingMapping

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["UserRingBufWriter", "Reservation"]

#: the kernel hands records to programs as dynptrs, whose size field has 24 bits
MAX_RECORD = (1 << 24) - 1


class Reservation:
    """Room for one record in a user ring buffer: fill :attr:`data`, then :meth:`submit` or :meth:`discard`.

    As a context manager it submits on a normal exit and discards when an
    exception leaves the block.  Reservations are handed to the kernel in the
    order they were made; one still open holds back the ones after it.

    >>> with writer.reserve(16) as rec:                                   # doctest: +SKIP
    ...     struct.pack_into("<QQ", rec.data, 0, 1, 2)                   # submitted at the end of the block
    """

    __slots__ = ("data", "_writer", "_hoff", "_size", "_done")

    def __init__(self, writer: "UserRingBufWriter", hoff: int, size: int) -> None:
        self._writer = writer
        self._hoff = hoff
        self._size = size
        self._done = False
        self.data: memoryview = writer._data[hoff + HDR_SIZE:hoff + HDR_SIZE + size]

    def __len__(self) -> int:
        return self._size

    def submit(self) -> None:
        """Hand the record to the kernel (clears the busy bit)."""
        self._finish(self._size)

    def discard(self) -> None:
        """Give the room back unused: the kernel skips the record."""
        self._finish(self._size | DISCARD_BIT)

    def _finish(self, word: int) -> None:
        if self._done:
            raise ValueError("this reservation was already submitted or discarded")
        self._done = True
        self.data.release()
        w = self._writer
        hdr = w._hdr
        if hdr is None:
            raise ValueError("user ring buffer writer is closed")
        hdr[self._hoff >> 2] = word
        w._outstanding -= 1

    def __enter__(self) -> "Reservation":
        return self

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        if not self._done:
            if exc_type is None:
                self.submit()
            else:
                self.discard()


class UserRingBufWriter:
    """Writes records into a ``BPF_MAP_TYPE_USER_RINGBUF`` map — Linux 6.1.

    ``UserRingBufWriter(map)``; :meth:`reserve` (optionally waiting for room),
    :meth:`write`, :meth:`write_many`, :attr:`written`, :attr:`free`.  One
    thread at a time may reserve (a lock enforces it).  ``close()`` discards
    nothing: records already submitted stay for the program to drain.

    >>> with UserRingBufWriter(urb) as w:
    ...     w.write(b"12345678")
    """

    def __init__(self, m: Any) -> None:
        check_map(m, MapType.USER_RINGBUF, "UserRingBufWriter", "write", "user ring buffer")
        self.map = m
        self.size = size = m.max_entries
        self._mask = size - 1
        self._lock = threading.Lock()
        self._outstanding = 0
        #: records submitted or reserved so far
        self.written = 0
        self._ring: RingMapping | None = None
        self._cons = self._prod = self._data = self._hdr = None
        self._ep: select.epoll | None = None
        self._fd = FD(os.dup(m.fd), "user ring buffer writer")
        try:
            self._ring = ring = RingMapping(self._fd.fileno(), size, producer=True)
            self._cons, self._prod, self._data, self._hdr = ring.cons, ring.prod, ring.data, ring.hdr
            self._ep = select.epoll()
            self._ep.register(self._fd.fileno(), select.EPOLLOUT)
        except BaseException:
            self.close()
            raise
        watch(m, self)

    # ------------------------------------------------------------------ state

    @property
    def free(self) -> int:
        """Bytes the producer may still use (headers and padding count); ValueError once closed."""
        return self.size - self.pending

    @property
    def pending(self) -> int:
        """Bytes written and not yet drained by the kernel; ValueError once closed."""
        prod, cons = self._prod, self._cons
        if prod is None or cons is None:
            raise ValueError("user ring buffer writer is closed")
        return prod[0] - cons[0]

    @property
    def closed(self) -> bool:
        """True once the writer (or its map) was closed."""
        return self._hdr is None

    # ------------------------------------------------------------------ writing

    def reserve(self, size: int, *, timeout: float | None = 0) -> Reservation:
        """Room for a record of ``size`` bytes; wait up to ``timeout`` seconds for it (None: for ever).

        Raises ``ValueError`` for a size the ring can never hold and
        :class:`~pybpf.errors.SyscallError` ENOSPC when the ring stays full.
        """
        if self._hdr is None:
            raise ValueError("user ring buffer writer is closed")
        if not isinstance(size, int) or size <= 0:
            raise ValueError(f"record size must be a positive int, not {size!r}")
        total = (size + HDR_SIZE + 7) & ~7
        if total > self.size or size > MAX_RECORD:
            raise ValueError(f"a record of {size} bytes does not fit a user ring buffer of {self.size} bytes"
                             + (f" (records are at most {MAX_RECORD} bytes)" if size > MAX_RECORD else ""))
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                hdr, cons, prod = self._hdr, self._cons, self._prod
                if hdr is None or cons is None or prod is None:
                    raise ValueError("user ring buffer writer is closed")
                pos = prod[0]
                if pos - cons[0] + total <= self.size:
                    break
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise SyscallError(f"{getattr(self.map, '_label', 'map')}: reserve {size} bytes: ENOSPC",
                                       errno=_errno.ENOSPC,
                                       hint=f"the user ring buffer is full ({self.pending} of {self.size} bytes "
                                            "not drained yet)")
                self._wait_room(left)
            hoff = pos & self._mask
            hdr[hoff >> 2] = size | BUSY_BIT
            hdr[(hoff >> 2) + 1] = 0
            prod[0] = pos + total
            self._outstanding += 1
            self.written += 1
            return Reservation(self, hoff, size)

    def _wait_room(self, left: float | None) -> None:
        ep = self._ep
        if ep is None:
            raise ValueError("user ring buffer writer is closed")
        # The kernel wakes writers after a drain; poll again at least every 50 ms
        # in case a drain with BPF_RB_NO_WAKEUP freed the room silently.
        wait = 0.05 if left is None else min(max(left, 0.0), 0.05)
        ep.poll(wait)

    def write(self, data: bytes | bytearray | memoryview, *, timeout: float | None = 0) -> None:
        """Copy ``data`` into a new record and submit it (waiting up to ``timeout`` for room)."""
        mv = memoryview(data).cast("B")
        rec = self.reserve(len(mv), timeout=timeout)
        rec.data[:] = mv
        rec.submit()

    def write_many(self, records: Any, *, timeout: float | None = 0) -> int:
        """Write every record of an iterable of bytes-like objects; return how many were written."""
        n = 0
        for data in records:
            self.write(data, timeout=timeout)
            n += 1
        return n

    # ------------------------------------------------------------------ lifetime

    def _map_closed(self, m: Any) -> None:
        self.close()

    def close(self) -> None:
        """Unmap the ring.  Open reservations stay busy for ever: submit or discard them first."""
        self._cons = self._prod = self._data = self._hdr = None
        if self._ring is not None:
            self._ring.close()  # a Reservation's data view may keep the mapping alive
        if self._ep is not None:
            self._ep.close()
            self._ep = None
        self._fd.close()
        unwatch(self.map, self)

    def __enter__(self) -> "UserRingBufWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self.closed else f" pending={self.pending}"
        return f"<UserRingBufWriter {getattr(self.map, 'name', '')!r} written={self.written}{state}>"
