"""What the rings of the stream readers share: handing records over, batches, checks, unmapping.

A ring class (``_Ring`` in :mod:`.ringbuf`, ``_PerfRing`` in :mod:`.perfbuf`)
subclasses :class:`Ring` and provides what depends on the ring's layout:

- ``scan(limit, reader) -> (runs, end)``: the runs of records available now
  (a run is ``(pos0, off0, n, stride, size, buf)``, see :mod:`._records`) and
  the ring position after them;
- ``_commit(pos)``: move the consumer position forward to ``pos``;
- ``pending()`` and ``close()``.

:class:`Ring` builds the three ways to hand records over on them
(:meth:`~Ring.dispatch`, :meth:`~Ring.records`, :meth:`~Ring.batch`); each
moves the consumer position only past records that were handed over (or
skipped as too short), so an exception from a callback loses nothing after
the record it was given.
"""

from __future__ import annotations

import weakref

from pybpf._sys.uapi import MapType
from pybpf.readers._records import RecordBatch

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable, Iterator

__all__ = ["Ring", "check_map", "watch", "unwatch", "unmap", "SCAN_LIMIT", "COMMIT_EVERY"]

SCAN_LIMIT = 1 << 16   # records per scan
COMMIT_EVERY = 1024    # records handed to a callback between consumer position updates


def _label(m: Any) -> str:
    return getattr(m, "_label", "map")


def check_map(m: Any, want: MapType, who: str, verb: str, what: str, hints: dict[int, str] | None = None) -> None:
    """Raise TypeError unless ``m`` is a map of type ``want``, ValueError if it is closed.

    ``who`` ("RingBufReader") ``verb``s ("read") ``what`` ("ring buffer")
    maps; ``hints`` add advice for particular wrong map types.
    """
    try:
        code = int(m.type)
    except (AttributeError, TypeError, ValueError):
        code = None
    # hasattr on the class first: reading a closed map's fd raises
    if code is None or not (hasattr(type(m), "fd") or hasattr(m, "fd")):
        raise TypeError(f"{who} {verb}s {what} maps, not {type(m).__name__}")
    if code != want:
        try:
            name = MapType(code).name
        except ValueError:
            name = str(code)
        hint = (hints or {}).get(code, "")
        raise TypeError(f"{_label(m)} is a {name} map, not a {want.name}: {who} cannot {verb} it{hint}")
    if getattr(m, "closed", False):
        raise ValueError(f"{_label(m)} is closed")


def watch(m: Any, watcher: Any) -> None:
    """Have ``watcher._map_closed(m)`` called when map ``m`` closes (maps without the hook: nothing)."""
    hook = getattr(m, "_watch", None)
    if hook is not None:
        hook(watcher)


def unwatch(m: Any, watcher: Any) -> None:
    """Undo :func:`watch`."""
    hook = getattr(m, "_unwatch", None)
    if hook is not None:
        hook(watcher)


def unmap(owner: Any, views: Iterable[str], mappings: Iterable[str]) -> None:
    """Release the memoryviews and close the mmaps held in ``owner``'s attributes; set them to None.

    A view or mapping still exported (a record view or NumPy array the user
    keeps) stays alive with its user instead of failing.
    """
    for name in views:
        view = getattr(owner, name)
        setattr(owner, name, None)
        if view is not None:
            try:
                view.release()
            except BufferError:
                pass  # someone holds an array of it: the mapping lives on with it
    for name in mappings:
        mm = getattr(owner, name)
        setattr(owner, name, None)
        if mm is not None:
            try:
                mm.close()
            except BufferError:
                pass  # record views are still alive; the mapping goes with them


class Ring:
    """Base of the ring classes: hands the runs ``scan`` finds to callbacks, iterators and batches."""

    __slots__ = ("index", "map", "fd", "rtype", "dead", "size", "_mask", "_seen", "_batch", "_open", "__weakref__")

    # ------------------------------------------------------------ provided by the subclass

    def scan(self, limit: int, reader: Any) -> tuple[list, int]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _commit(self, pos: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _handing_over(self, reader: Any) -> None:
        """Called before the records of a run go to ``reader``'s user (perf rings note their CPU)."""

    # ------------------------------------------------------------ handing over

    def _take_batch(self) -> None:
        b = self._batch
        if b is not None:
            self._batch = None
            b.release()
        self._take_open()

    def _take_open(self) -> None:
        """End the record iterator of an earlier read that was left suspended (a loop left early
        whose iterator someone still holds): it acknowledges what it handed over, exactly once,
        before this read starts from the consumer position."""
        ref = getattr(self, "_open", None)
        if ref is not None:
            self._open = None
            gen = ref()
            if gen is not None and not gen.gi_running:
                gen.close()

    def _drop_batch(self) -> None:
        """Forget the batch without moving the position (the ring is going away)."""
        b, self._batch = self._batch, None
        if b is not None:
            b._owner = None

    def _short_run(self, reader: Any, run: tuple, commit: bool) -> None:
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

    def dispatch(self, handler: Callable[[Any], Any], reader: Any) -> int:
        """Hand every available record to ``handler``; the count."""
        self._take_batch()
        decode = self.rtype.decode
        need = self.rtype.size
        total = 0
        while True:
            runs, end = self.scan(SCAN_LIMIT, reader)
            for run in runs:
                pos0, off0, n, stride, size, data = run
                if size < need:
                    self._short_run(reader, run, commit=True)
                    continue
                self._handing_over(reader)
                start, stop = off0, off0 + n * stride
                while start < stop:
                    sub = min(stop, start + COMMIT_EVERY * stride)
                    o = start
                    try:
                        if decode is None:
                            for o in range(start, sub, stride):
                                handler(data[o:o + size])
                        else:
                            for o in range(start, sub, stride):
                                handler(decode(data, o))
                    except BaseException:
                        # the record the handler was given counts as consumed
                        reader.received += (o - start) // stride + 1
                        self._commit(pos0 + (o - off0) + stride)
                        raise
                    reader.received += (sub - start) // stride
                    total += (sub - start) // stride
                    self._commit(pos0 + (sub - off0))
                    start = sub
                if reader._closing:
                    return total
            self._commit(end)
            if sum(r[2] for r in runs) < SCAN_LIMIT:
                return total

    def records(self, reader: Any) -> Iterator[Any]:
        """Every available record, as an iterator; the consumer position follows what was handed over.

        The next read on this ring ends it (held only weakly here: a dropped
        iterator is closed, and acknowledges, at once).
        """
        self._take_batch()
        gen = self._records(reader)
        self._open = weakref.ref(gen)
        return gen

    def _records(self, reader: Any) -> Iterator[Any]:
        decode = self.rtype.decode
        need = self.rtype.size
        pos0 = off0 = stride = 0
        o = -1
        try:
            while True:
                runs, end = self.scan(SCAN_LIMIT, reader)
                for run in runs:
                    pos0, off0, n, stride, size, data = run
                    o = -1
                    if size < need:
                        self._short_run(reader, run, commit=True)
                        continue
                    self._handing_over(reader)
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
                if sum(r[2] for r in runs) < SCAN_LIMIT:
                    return
        finally:
            if o >= 0:  # stopped inside a run: past the last record handed over
                self._commit(pos0 + (o - off0) + stride)

    def batch(self, reader: Any, limit: int) -> RecordBatch:
        """The available records as one RecordBatch; the position moves when it is released."""
        self._take_batch()
        need = self.rtype.size
        runs, end = self.scan(limit, reader)
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

    # ------------------------------------------------------------ lifetime

    def forget(self, reader: Any) -> None:
        """The reader is done with this ring's map: stop being told when it closes."""
        unwatch(self.map, reader)
