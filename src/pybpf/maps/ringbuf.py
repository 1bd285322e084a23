"""Ring buffer maps: ``BPF_MAP_TYPE_RINGBUF`` (Linux 5.8) and ``BPF_MAP_TYPE_USER_RINGBUF`` (6.1).

A ring buffer has no keys and no values: ``max_entries`` is the size of its
data area in bytes, a power of two and a multiple of the page size.  BPF
programs write records into a :class:`RingBuf` (``bpf_ringbuf_reserve`` /
``submit`` / ``output``) and user space reads them with
:class:`pybpf.readers.RingBufReader`.  A :class:`UserRingBuf` goes the other
way: user space writes records with :class:`pybpf.readers.UserRingBufWriter`
and a program drains them with ``bpf_user_ringbuf_drain``.

Dict operations make no sense on these maps and raise ``TypeError``.

Example::

    from pybpf.maps import RingBuf
    with RingBuf(size=1 << 20, name="events") as events, events.reader() as reader:
        ...                                    # load a program that writes to events.fd
        for record in reader.poll(timeout=1.0):
            print(bytes(record))
"""

from __future__ import annotations

import mmap
import weakref

from pybpf._sys.uapi import MapType
from pybpf.maps.base import Map
from pybpf.maps.codec import NullCodec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterator

__all__ = ["RingBuf", "UserRingBuf", "check_ring_size"]


def check_ring_size(size: int, what: str = "ring buffer") -> int:
    """Validate a ring size in bytes: a power of two and a multiple of the page size.

    The kernel answers EINVAL without saying why; this says why.

    >>> check_ring_size(1 << 20)
    1048576
    >>> check_ring_size(5000)
    Traceback (most recent call last):
    ValueError: ring buffer size must be a power of two and a multiple of the page size (4096), not 5000
    """
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise ValueError(f"{what} size must be a positive int (bytes), not {size!r}")
    if size & (size - 1) or size % mmap.PAGESIZE:
        raise ValueError(f"{what} size must be a power of two and a multiple of the page size "
                         f"({mmap.PAGESIZE}), not {size}")
    return size


class Watched:
    """Mixin of the maps that readers and writers watch: they hear when the map closes.

    A reader registers with ``m._watch(reader)``; closing the map calls
    ``reader._map_closed(m)``.  The map class lists ``_watchers`` in its
    ``__slots__`` and puts this mixin before :class:`Map`.

    >>> with RingBuf(size=4096) as rb:
    ...     reader = rb.reader()
    >>> reader.closed          # the map's close() ended the reader
    True
    """

    __slots__ = ()

    def _setup(self, fd: Any, info: tuple, key_codec: Any, value_codec: Any, name: str, label: str) -> None:
        self._watchers: weakref.WeakSet[Any] = weakref.WeakSet()
        super()._setup(fd, info, key_codec, value_codec, name, label)  # type: ignore[misc]

    def _watch(self, watcher: Any) -> None:
        """Readers and writers register here: ``watcher._map_closed(self)`` runs when the map closes."""
        self._watchers.add(watcher)

    def _unwatch(self, watcher: Any) -> None:
        self._watchers.discard(watcher)

    def _release(self) -> None:
        for watcher in list(self._watchers):
            watcher._map_closed(self)
        self._watchers.clear()
        super()._release()  # type: ignore[misc]


class _Stream(Watched, Map):
    """What both ring buffer families share: no keys, no values, readers to notify on close."""

    __slots__ = ("_watchers",)

    @classmethod
    def _codecs(cls, key: Any, key_size: int | None, value: Any, value_size: int | None,
                flags: int = 0) -> tuple[Any, Any]:
        return NullCodec(), NullCodec()

    def __init__(self, size: int, *, name: str = "", numa_node: int | None = None) -> None:
        check_ring_size(size, type(self).__name__)
        self._create(self.map_type, key_size=0, value_size=0, max_entries=size, name=name,
                     numa_node=numa_node)

    @property
    def size(self) -> int:
        """Bytes in the data area (``max_entries``)."""
        return self.max_entries

    # Dict operations do not apply to streams.
    def _no_dict(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{self._label} is a {type(self).__name__}: it has no keys or values; "
                        f"use {self._reader_hint}")

    __getitem__ = __setitem__ = __delitem__ = __contains__ = get = put = pop = setdefault = _no_dict
    keys = values = items = clear = update = lookup_batch = items_batch = _no_dict
    update_batch = delete_batch = lookup_and_delete_batch = _no_dict
    _reader_hint = "a reader"

    def __iter__(self) -> Iterator[Any]:
        return self._no_dict()

    def __len__(self) -> int:
        return self._no_dict()

    def __bool__(self) -> bool:
        return True


class RingBuf(_Stream):
    """``BPF_MAP_TYPE_RINGBUF``: records from BPF programs to user space — Linux 5.8.

    ``RingBuf(size, name=..., numa_node=...)``; ``size`` in bytes, a power of
    two and a multiple of the page size.  One ring is shared by all CPUs and
    keeps the order in which records were reserved.  Read it with
    :meth:`reader` (a :class:`pybpf.readers.RingBufReader`).

    >>> with RingBuf(size=4096 * 64) as rb:
    ...     rb.size
    262144
    """

    __slots__ = ()
    map_type = MapType.RINGBUF
    min_kernel = "5.8"
    _reader_hint = "pybpf.RingBufReader(map)"

    def reader(self, **options: Any) -> Any:
        """A :class:`pybpf.readers.RingBufReader` on this ring (options as there)."""
        from pybpf.readers.ringbuf import RingBufReader

        return RingBufReader(self, **options)


class UserRingBuf(_Stream):
    """``BPF_MAP_TYPE_USER_RINGBUF``: records from user space to BPF programs — Linux 6.1.

    Write with :meth:`writer` (a :class:`pybpf.readers.UserRingBufWriter`);
    a program consumes with ``bpf_user_ringbuf_drain(map, callback, ctx, flags)``.

    >>> with UserRingBuf(size=4096) as urb, urb.writer() as w:
    ...     w.write(b"hello!!!")
    """

    __slots__ = ()
    map_type = MapType.USER_RINGBUF
    min_kernel = "6.1"
    _reader_hint = "pybpf.UserRingBufWriter(map)"

    def writer(self, **options: Any) -> Any:
        """A :class:`pybpf.readers.UserRingBufWriter` on this ring."""
        from pybpf.readers.userringbuf import UserRingBufWriter

        return UserRingBufWriter(self, **options)

