"""Queues and stacks: ``BPF_MAP_TYPE_QUEUE`` and ``BPF_MAP_TYPE_STACK`` (Linux 4.20).

These maps have no keys (key_size 0): :meth:`push` adds a value, :meth:`pop`
removes the oldest (queue, FIFO) or newest (stack, LIFO), :meth:`peek`
reads it without removing.  Pushing onto a full map raises
:class:`~pybpf.errors.MapFullError` unless ``overwrite=True`` (BPF_EXIST),
which drops the oldest value to make room.  Popping or peeking an empty map
raises :class:`~pybpf.errors.KeyNotFoundError` unless a default is given.
Dict operations and iteration do not apply and raise TypeError; use
:meth:`drain` to take everything.

Example::

    from pybpf.maps import QueueMap
    with QueueMap(value="u32", max_entries=8) as q:
        q.push(1); q.push(2)
        assert q.peek() == 1 and q.pop() == 1 and q.drain() == [2]
"""

from __future__ import annotations

import errno

from pybpf._sys.flags import UpdateFlag
from pybpf._sys.syscall import sys_bpf
from pybpf._sys.uapi import Cmd, MapType
from pybpf.errors import KeyNotFoundError
from pybpf.maps.base import _ELEM_SIZE, _MISSING, Map
from pybpf.maps.codec import NullCodec, make_codec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

__all__ = ["QueueMap", "StackMap"]

_LOOKUP = int(Cmd.MAP_LOOKUP_ELEM)
_UPDATE = int(Cmd.MAP_UPDATE_ELEM)
_LOOKUP_AND_DELETE = int(Cmd.MAP_LOOKUP_AND_DELETE_ELEM)


class KeylessMap(Map):
    """Base of the maps without keys (queue, stack, bloom filter): dict operations raise TypeError."""

    __slots__ = ()
    _use_instead: str = ""

    @classmethod
    def _codecs(
        cls, key: Any, key_size: int | None, value: Any, value_size: int | None, flags: int = 0,
    ) -> tuple[Any, Any]:
        if key is not None or key_size not in (None, 0):
            raise TypeError(f"{cls.__name__} has no keys (key_size 0), got key={key!r}, key_size={key_size}")
        return NullCodec(), make_codec(value, size=value_size, role="value")

    def _no_keys(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(f"{type(self).__name__} has no keys: use {self._use_instead}")

    __getitem__ = __setitem__ = __delitem__ = __contains__ = get = put = setdefault = update = _no_keys
    keys = values = items = lookup_batch = items_batch = update_batch = delete_batch = _no_keys
    lookup_and_delete_batch = _no_keys

    def __iter__(self) -> NoReturn:
        self._no_keys()

    def __len__(self) -> NoReturn:
        raise TypeError(f"{type(self).__name__} cannot count its entries without removing them; "
                        f"use {self._use_instead}")


class _QueueBase(KeylessMap):
    __slots__ = ()
    _full_errno = errno.E2BIG
    _use_instead = "push(), pop(), peek() or drain()"

    def __init__(
        self, *, value: Any = None, max_entries: int, name: str = "", flags: int = 0,
        value_size: int | None = None, numa_node: int | None = None,
    ) -> None:
        self._create(self.map_type, value=value, key_size=0, value_size=value_size, max_entries=max_entries,
                     flags=flags, name=name, numa_node=numa_node)

    def push(self, value: Any, *, overwrite: bool = False) -> None:
        """Add ``value``; when full, raise MapFullError, or with ``overwrite`` drop the oldest value."""
        s = self._tls.s
        try:
            self._vpack(s.value, 0, value)
        except Exception as exc:
            self._pack_slow("value", s.value, 0, value, exc)
        if overwrite:
            s.fattr.flags = UpdateFlag.EXIST
            res = sys_bpf(_UPDATE, s.fattr_addr, _ELEM_SIZE)
        else:
            res = sys_bpf(_UPDATE, s.attr_addr, _ELEM_SIZE)
        if res < 0:
            raise self._fail("push", -res)

    def pop(self, default: Any = _MISSING) -> Any:  # type: ignore[override]
        """Remove and return the next value (``default``, if given, when empty)."""
        return self._take(_LOOKUP_AND_DELETE, "pop", default)

    def peek(self, default: Any = _MISSING) -> Any:
        """Return the next value without removing it (``default``, if given, when empty)."""
        return self._take(_LOOKUP, "peek", default)

    def _take(self, cmd: int, op: str, default: Any) -> Any:
        s = self._tls.s
        res = sys_bpf(cmd, s.attr_addr, _ELEM_SIZE)
        if res < 0:
            if res == -errno.ENOENT:
                if default is not _MISSING:
                    return default
                kind = "stack" if self.type == MapType.STACK else "queue"
                raise KeyNotFoundError(f"{op}: {kind} is empty", errno=errno.ENOENT).add_context(self._label)
            raise self._fail(op, -res)
        return self._vunpack(s.value, 0)[0]

    def drain(self) -> list[Any]:
        """Pop every value, in pop order."""
        out = []
        while True:
            value = self._take(_LOOKUP_AND_DELETE, "pop", _MISSING_SENTINEL)
            if value is _MISSING_SENTINEL:
                return out
            out.append(value)

    def clear(self) -> None:
        """Pop and discard every value."""
        self.drain()

    def __bool__(self) -> bool:
        """True when a value is waiting (one peek)."""
        return self._take(_LOOKUP, "peek", _MISSING_SENTINEL) is not _MISSING_SENTINEL

    def _hint(self, op: str, err: int, key: Any, flags: int) -> str | None:
        if err == errno.E2BIG and op == "push":
            return f"map is full, max_entries={self.max_entries}; push(value, overwrite=True) drops the oldest"
        return super()._hint(op, err, key, flags)


_MISSING_SENTINEL: Any = object()


class QueueMap(_QueueBase):
    """``BPF_MAP_TYPE_QUEUE`` — Linux 4.20: first in, first out.

    >>> q = QueueMap(value="u64", max_entries=16)
    >>> q.push(1); q.push(2); q.pop()
    1
    """

    __slots__ = ()
    map_type = MapType.QUEUE
    min_kernel = "4.20"


class StackMap(_QueueBase):
    """``BPF_MAP_TYPE_STACK`` — Linux 4.20: last in, first out.

    >>> s = StackMap(value="u64", max_entries=16)
    >>> s.push(1); s.push(2); s.pop()
    2
    """

    __slots__ = ()
    map_type = MapType.STACK
    min_kernel = "4.20"

