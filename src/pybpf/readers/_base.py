"""What every stream reader shares: the epoll set, the wake-up eventfd, the ways to read, closing.

A reader owns one or more *rings* (a BPF ring buffer, or one perf ring per
CPU).  Each ring has a file descriptor that becomes readable when records
arrive; they all sit in one epoll set together with an eventfd that
:meth:`StreamReader.flush` and :meth:`StreamReader.close` write to, so a
thread blocked in a read wakes up at once.  The epoll descriptor itself is
what asyncio watches (``loop.add_reader``), so ``async for`` needs no thread.

Rings are :class:`pybpf.readers._ring.Ring` objects (``_Ring`` in
:mod:`.ringbuf`, ``_PerfRing`` in :mod:`.perfbuf`): ``fd`` to poll,
``index``, ``map``, ``rtype``, ``pending()``, and ``dispatch``/``records``/
``batch`` to hand records over.

Closing.  A "session" is a blocking wait, a running :meth:`poll` generator or
an ``async for``.  :meth:`close` marks the reader closed and wakes every
session; resources are released at once when no session runs, otherwise by
the last session as it ends (a session in another thread is waited for, up
to a second).  Sessions notice a closed reader, or a closed map, at their next
wake-up and end without error.
"""

from __future__ import annotations

import os
import select
import threading
import time

from pybpf._sys.syscall import FD
from pybpf.readers._records import RecordBatch, RecordError, RecordType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator

__all__ = ["StreamReader"]

_EFD_FLAGS = os.EFD_NONBLOCK | os.EFD_CLOEXEC
_CLOSE_WAIT = 1.0  # seconds close() waits for sessions in other threads
_RAW = RecordType()  # the type of an empty batch from no ring


class _Resources:
    """The kernel objects of a reader, closed in one place (also by the GC finalizer)."""

    __slots__ = ("ep", "efd", "rings")

    def __init__(self) -> None:
        self.ep: select.epoll | None = select.epoll()
        self.efd: FD | None = None
        self.rings: list[Any] = []
        try:
            self.efd = FD(os.eventfd(0, _EFD_FLAGS), "reader eventfd")
            self.ep.register(self.efd.fileno(), select.EPOLLIN)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        rings, self.rings = self.rings, []
        for ring in rings:
            ring.close()
        if self.efd is not None:
            self.efd.close()
            self.efd = None
        if self.ep is not None:
            self.ep.close()
            self.ep = None


class StreamReader:
    """Base of :class:`RingBufReader` and :class:`PerfBufReader`: waiting, the read modes, closing.

    Read modes (``timeout`` in seconds; None waits for ever, 0 not at all):

    - ``for rec in reader.poll(timeout)``: wait up to ``timeout`` for records,
      yield every record available then, and stop;
    - ``reader.consume(callback)`` (no wait) / ``reader.dispatch(timeout,
      callback)``: call ``callback(rec)`` per record, return the count;
    - ``reader.read_batch(timeout)``: one :class:`RecordBatch` per call;
    - ``for rec in reader`` / ``async for rec in reader``: every record until
      :meth:`close` (or until the maps are closed).

    Records are ``memoryview`` slices of the ring (or decoded values, see
    ``record=``/``dtype=``); a view is valid until the reader moves on (the
    callback returns, the iterator is advanced): copy what you keep.

    One thread reads at a time (the rings have one consumer position each);
    :meth:`flush` and :meth:`close` may come from any thread.

    Example::

        with RingBufReader(events, record="<QQ", callback=print) as reader:
            reader.dispatch(timeout=1.0)                 # callbacks
            for seq, value in reader.poll(timeout=1.0):  # an iterator
                ...
            with reader.read_batch() as batch:           # everything at once
                batch.array
    """

    _what = "reader"

    def __init__(self, *, callback: Callable[[Any], Any] | None = None,
                 on_error: Callable[[RecordError], Any] | None = None) -> None:
        self._res = _Resources()
        self._rings: list[Any] = self._res.rings
        self._by_fd: dict[int, Any] = {}
        self._callback = callback
        self._on_error = on_error
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._sessions: dict[int, int] = {}  # thread id -> sessions running in it
        self._closing = False
        self._flushed = False
        self._released = False
        #: records handed over so far
        self.received = 0
        #: records that could not be handed over (see the subclass docs for what counts)
        self.lost = 0

    # ------------------------------------------------------------------ rings

    def _add_ring(self, ring: Any) -> None:
        self._res.ep.register(ring.fd, select.EPOLLIN)  # type: ignore[union-attr]
        self._rings.append(ring)
        self._by_fd[ring.fd] = ring

    def _map_closed(self, m: Any) -> None:
        """Called by a map's close(): its rings stop; with no ring left the reader ends."""
        with self._lock:
            for ring in self._rings:
                if ring.map is m:
                    ring.dead = True
            if all(r.dead for r in self._rings):
                self._closing = True
            self._drop_dead_locked()
        self._wake()

    def _drop_dead_locked(self) -> None:
        if self._sessions or self._released:
            return
        for ring in [r for r in self._rings if r.dead]:
            self._unregister(ring)
            self._rings.remove(ring)
            ring.close()
        if self._closing:
            self._release_locked()

    def _unregister(self, ring: Any) -> None:
        self._by_fd.pop(ring.fd, None)
        try:
            self._res.ep.unregister(ring.fd)  # type: ignore[union-attr]
        except (OSError, ValueError, AttributeError):
            pass

    def _live_rings(self) -> list[Any]:
        out = []
        for ring in self._rings:
            if not ring.dead and getattr(ring.map, "closed", False):
                ring.dead = True  # a map class without the close hook
            if not ring.dead:
                out.append(ring)
        if not out and self._rings:
            self._closing = True
        return out

    # ------------------------------------------------------------------ sessions

    def _check_mode(self) -> None:
        """Subclass hook: raise TypeError when the reader cannot be read this way."""

    def _enter(self) -> None:
        me = threading.get_ident()
        with self._lock:
            if self._released:
                raise ValueError(f"{self._what} is closed")
            self._sessions[me] = self._sessions.get(me, 0) + 1

    def _leave(self) -> None:
        me = threading.get_ident()
        with self._lock:
            left = self._sessions.get(me, 1) - 1
            if left:
                self._sessions[me] = left
            else:
                self._sessions.pop(me, None)
            if not self._sessions:
                self._drop_dead_locked()
                self._idle.notify_all()

    # ------------------------------------------------------------------ waiting

    def _wake(self) -> None:
        efd = self._res.efd
        if efd is not None and not efd.closed:
            try:
                os.eventfd_write(efd.fileno(), 1)
            except (OSError, ValueError):
                pass

    def _clear_wake(self) -> None:
        efd = self._res.efd
        if efd is not None:
            try:
                os.eventfd_read(efd.fileno())
            except (BlockingIOError, OSError, ValueError):
                pass

    def _take_flush(self) -> bool:
        flushed, self._flushed = self._flushed, False
        return flushed

    def _settled(self) -> tuple[tuple[list[Any] | None, bool] | None, list[Any]]:
        """``(answer, live rings)``: the answer of :meth:`_wait` once closing or flushed, else None."""
        if not self._closing:
            rings = self._live_rings()
            if not self._closing:
                if not self._flushed:
                    return None, rings
                self._clear_wake()
                return (rings, self._take_flush()), rings
        return (None, False), []

    def _wait(self, timeout: float | None) -> tuple[list[Any] | None, bool]:
        """``(rings with records, flushed)``; rings is None once the reader is closing.

        Rings that already hold records are returned without a system call;
        a flush returns every ring.  After a timeout the list is empty.
        """
        done, rings = self._settled()
        if done is not None:
            return done
        ready = [r for r in rings if r.pending()]
        if ready or timeout == 0:
            return ready, False
        ep = self._res.ep
        efd = self._res.efd
        if ep is None or efd is None:
            return None, False
        efd_no = efd.fileno()
        deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout
        while True:
            left = -1.0 if deadline is None else max(deadline - time.monotonic(), 0.0)
            events = ep.poll(left)
            ready = []
            for fd, _ev in events:
                if fd == efd_no:
                    self._clear_wake()
                else:
                    ring = self._by_fd.get(fd)
                    if ring is not None and not ring.dead:
                        ready.append(ring)
            done, _rings = self._settled()
            if done is not None:
                return done
            if ready:
                return ready, False
            if deadline is not None and time.monotonic() >= deadline:
                return [], False

    def wait(self, timeout: float | None = None) -> bool:
        """Block until records are waiting (True), or the timeout passes, or flush/close (False)."""
        self._enter()
        try:
            rings, _flushed = self._wait(timeout)
            return bool(rings) and any(r.pending() for r in rings)
        finally:
            self._leave()

    # ------------------------------------------------------------------ read modes

    def poll(self, timeout: float | None = None) -> Iterator[Any]:
        """Wait up to ``timeout`` seconds for records, yield every record available, then stop.

        A :meth:`flush` or :meth:`close` from another thread ends the wait early.

        >>> for rec in reader.poll(timeout=0.5):
        ...     handle(bytes(rec))
        """
        self._check_mode()
        self._enter()
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
                rings, flushed = self._wait(left)
                if not rings:
                    return
                count = 0
                for rec in self._drain(rings):
                    count += 1
                    yield rec
                if count or flushed or (deadline is not None and time.monotonic() >= deadline):
                    return
        finally:
            self._leave()

    def consume(self, callback: Callable[[Any], Any] | None = None) -> int:
        """Call ``callback(rec)`` (default: the reader's ``callback=``) for every record waiting now; no wait.

        Returns the number of records handed over.  An exception from the
        callback propagates; the record it was given counts as consumed.
        """
        return self.dispatch(0, callback)

    def dispatch(self, timeout: float | None = None, callback: Callable[[Any], Any] | None = None) -> int:
        """Wait up to ``timeout`` for records, then hand each to ``callback``; return the count.

        This is libbpf's ``ring_buffer__poll``: with ``callback=`` given at
        construction, ``while True: reader.dispatch(1.0)`` is a complete loop.
        """
        self._check_mode()
        handler = callback if callback is not None else self._callback
        if handler is None:
            raise TypeError("no callback: give callback= here or to the reader")
        self._enter()
        try:
            rings, _flushed = self._wait(timeout)
            if not rings:
                return 0
            return sum(ring.dispatch(handler, self) for ring in rings)
        finally:
            self._leave()

    def read_batch(self, timeout: float | None = 0, *, ring: int | None = None,
                   max_records: int | None = None) -> RecordBatch:
        """Every record available in one ring, handed over at once as a :class:`RecordBatch`.

        Waits up to ``timeout`` seconds (default: not at all) while no ring
        has records.  With several rings, ``ring=`` picks one by index
        (default: the first with records; an empty batch if it has none when
        the wait ends); :meth:`read_batches` takes them all.  Reading the
        same ring again releases its previous batch.
        """
        out = self._batches(timeout, ring, max_records, first_only=True)
        if out:
            return out[0]
        rings = [r for r in self._rings if ring is None or r.index == ring]
        r0 = rings[0] if rings else None
        return RecordBatch(None, r0.index if r0 is not None else (ring or 0), [], 0,
                           r0.rtype if r0 is not None else _RAW)

    def read_batches(self, timeout: float | None = 0, *, max_records: int | None = None) -> list[RecordBatch]:
        """One :class:`RecordBatch` per ring that has records (waiting up to ``timeout`` while none has)."""
        return self._batches(timeout, None, max_records, first_only=False)

    def _batches(self, timeout: float | None, index: int | None, max_records: int | None,
                 first_only: bool) -> list[RecordBatch]:
        self._check_mode()
        chosen = None
        if index is not None:
            found = [r for r in self._rings if r.index == index]
            if not found:
                raise IndexError(f"{self._what} has no ring {index}")
            chosen = found[0]
        limit = max_records if max_records is not None else 1 << 62
        self._enter()
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
                rings, flushed = self._wait(left)
                if rings is None:
                    return []
                out = []
                for r in ([chosen] if chosen is not None else rings):
                    b = r.batch(self, limit)
                    if b:
                        out.append(b)
                        if first_only:
                            break
                if out or flushed or chosen is not None or not rings:
                    return out
                if deadline is not None and time.monotonic() >= deadline:
                    return out
        finally:
            self._leave()

    def _drain(self, rings: list[Any]) -> Iterator[Any]:
        """Every record the rings hold now; stops early once the reader is closing."""
        for ring in rings:
            records = ring.records(self)
            try:
                for rec in records:
                    yield rec
                    if self._closing:
                        return
            finally:
                records.close()  # acknowledges what was handed over, however the loop ended

    def __iter__(self) -> Iterator[Any]:
        """Every record, waiting as long as it takes, until :meth:`close` or the maps close."""
        self._check_mode()
        self._enter()
        try:
            while True:
                rings, _flushed = self._wait(None)
                if rings is None:
                    return
                yield from self._drain(rings)
        finally:
            self._leave()

    def __aiter__(self) -> "_AsyncRecords":
        """``async for rec in reader``: asyncio waits on the epoll descriptor, no thread is started."""
        self._check_mode()
        return _AsyncRecords(self)

    # ------------------------------------------------------------------ errors

    def _short(self, ring: Any, buf: Any, off: int, size: int) -> RecordError:
        need = ring.rtype.size
        err = RecordError(f"{self._what} ring {ring.index}: record of {size} bytes is shorter than "
                          f"{ring.rtype.label} ({need} bytes); it was skipped",
                          ring=ring.index, length=size, needed=need, data=bytes(buf[off:off + size]))
        self.lost += 1
        return err

    # ------------------------------------------------------------------ flush / close

    def fileno(self) -> int:
        """The epoll descriptor: readable when records wait (for select/asyncio loops of your own)."""
        if self._res.ep is None:
            raise ValueError(f"{self._what} is closed")
        return self._res.ep.fileno()

    def flush(self) -> None:
        """Wake a blocked read: it hands over what every ring holds now and returns.

        Useful with ``watermark=``/``wakeup_events=`` or ``BPF_RB_NO_WAKEUP``,
        where the kernel does not wake the reader for every record.
        """
        self._flushed = True
        self._wake()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (or every map of the reader closed)."""
        return self._closing or self._released

    def close(self) -> None:
        """Stop the reader: blocked reads return, iterators end, the rings are unmapped.

        Called from another thread than the one reading, it waits (up to a
        second) for that read to end; called from inside a callback or loop
        body, the resources go when the read returns.
        """
        me = threading.get_ident()
        with self._lock:
            self._closing = True
        self._wake()
        with self._lock:
            if self._released:
                return
            if self._sessions and me not in self._sessions:
                self._idle.wait_for(lambda: not self._sessions, timeout=_CLOSE_WAIT)
            if not self._sessions:
                self._release_locked()

    def _release_locked(self) -> None:
        if self._released:
            return
        self._released = True
        for ring in self._rings:
            self._unregister(ring)
            ring.forget(self)
        self._res.close()
        self._closed_hook()

    def _closed_hook(self) -> None:
        """Subclass hook run once the rings are closed."""

    def __enter__(self) -> "StreamReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _session_drain(reader: StreamReader, rings: list[Any]) -> Iterator[Any]:
    """``reader._drain(rings)`` as one session.

    A plain function, not a method of :class:`_AsyncRecords`: a generator
    holding the iterator that holds it would be a reference cycle, and an
    ``async for`` left early (break, exception, cancellation) would leave the
    records it handed over unacknowledged until the garbage collector ran.
    Without the cycle, dropping the iterator closes the generator at once and
    the consumer position moves past exactly the records handed over.
    """
    reader._enter()
    try:
        yield from reader._drain(rings)
    finally:
        reader._leave()


class _AsyncRecords:
    """The ``async for`` iterator of a reader: drains what is there, then awaits the epoll fd.

    ``async for`` does not close its iterator when the loop is left early;
    the records handed over are acknowledged when the iterator is dropped (at
    once, no cycle holds it) or closed with ``aclose()``: keep no reference to it,
    or use ``contextlib.aclosing(aiter(reader))``.
    """

    __slots__ = ("_reader", "_it", "_done")

    def __init__(self, reader: StreamReader) -> None:
        self._reader = reader
        self._it: Iterator[Any] | None = None
        self._done = False

    def __aiter__(self) -> "_AsyncRecords":
        return self

    async def __anext__(self) -> Any:
        reader = self._reader
        while not self._done:
            it = self._it
            if it is not None:
                try:
                    return next(it)
                except StopIteration:
                    self._it = None
            rings = reader._wait(0)[0] if not reader._released else None
            if rings is None:
                break
            if rings:
                self._it = _session_drain(reader, rings)
                continue
            await self._readable()
        await self.aclose()
        raise StopAsyncIteration

    async def _readable(self) -> None:
        reader = self._reader
        import asyncio  # only for async readers: importing it costs ~25 ms

        loop = asyncio.get_running_loop()
        fut = loop.create_future()

        def ready() -> None:
            if not fut.done():
                fut.set_result(None)

        reader._enter()
        fd = reader.fileno()
        loop.add_reader(fd, ready)
        try:
            await fut
        finally:
            loop.remove_reader(fd)
            reader._clear_wake()
            reader._leave()

    async def aclose(self) -> None:
        self._done = True
        it, self._it = self._it, None
        if it is not None:
            it.close()  # type: ignore[attr-defined]

