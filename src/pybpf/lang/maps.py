"""Map declarations shared by the BPF side and the Python side.

A declaration at module level (``counts = HashMap(key=u64, value=u64,
max_entries=1024)``) is a map of the compiled object, named after the
global that holds it.  Inside a compiled program:

* ``m[k]`` reads the value (0 when the key is absent), ``m[k] = v`` writes it,
  ``m[k] += n`` is an atomic add when the key is present and an insert when
  it is absent (exact across CPUs), ``k in m``, ``del m[k]``, ``m.get(k, d)``;
* ``RingBuf.output(value)`` copies a value into the ring buffer.

Run by CPython (unit tests), the same declaration is a dict with those
semantics, so probe logic can be tested without a kernel.

Minimum kernels: hash/array 3.19, per-CPU 4.6, LRU 4.10, ring buffer 5.8.

Example::

    >>> from pybpf.lang import HashMap, u64
    >>> counts = HashMap(key=u64, value=u64, max_entries=16)
    >>> counts[1] += 5; counts[1]
    u64(5)
"""

from __future__ import annotations

from typing import Any

from pybpf._sys.uapi import MapType
from pybpf.lang.types import BTFTypes, u32

__all__ = ["MapDecl", "HashMap", "LruHash", "PerCpuHash", "LruPerCpuHash", "Array", "PerCpuArray", "RingBuf",
           "LpmTrie", "PerfEventArray", "StackTrace", "Queue", "ProgArray"]


def _convert(t: Any, value: Any) -> Any:
    if isinstance(t, type) and issubclass(t, int) and t is not bool:
        return t(value)
    return value


def _value_copy(t: Any, value: Any) -> Any:
    """What a map stores or gives back: integers converted, Structs and arrays copied (as the kernel does)."""
    if isinstance(value, int):
        return _convert(t, value)
    import copy

    return copy.deepcopy(value)


def _zero(t: Any) -> Any:
    return t() if isinstance(t, type) else 0


class MapDecl:
    """A map declared for a compiled program (use the subclasses)."""

    map_type: MapType = MapType.HASH
    keyed = True        # has keys (False: ring buffers)

    def __init__(self, key: Any = None, value: Any = None, max_entries: int = 1, *, flags: int = 0,
                 name: str | None = None) -> None:
        if self.keyed and (key is None or value is None):
            raise TypeError(f"{type(self).__name__}(): give key= and value= types")
        if not isinstance(max_entries, int) or max_entries <= 0:
            raise ValueError(f"{type(self).__name__}(): max_entries must be a positive int")
        self.key = key
        self.value = value
        self.max_entries = max_entries
        self.flags = flags
        self.name = name
        self._data: dict[Any, Any] = {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name or '?'} key={getattr(self.key, '__name__', self.key)} " \
               f"value={getattr(self.value, '__name__', self.value)} max_entries={self.max_entries}>"

    # -- CPython semantics (the compiled code does the same in the kernel) ---------------

    def _k(self, key: Any) -> Any:
        return _convert(self.key, key)

    def __getitem__(self, key: Any) -> Any:
        """The value, or zero when absent; a Struct value is a copy (``lookup`` gives the stored one)."""
        found = self._data.get(self._k(key))
        return _zero(self.value) if found is None else _value_copy(self.value, found)

    def __setitem__(self, key: Any, value: Any) -> None:
        k = self._k(key)
        if k not in self._data and len(self._data) >= self.max_entries:
            return  # a full map refuses the insert (E2BIG), which a program cannot see here
        self._data[k] = _value_copy(self.value, value)

    def __contains__(self, key: Any) -> bool:
        return self._k(key) in self._data

    def __delitem__(self, key: Any) -> None:
        self._data.pop(self._k(key), None)

    def get(self, key: Any, default: Any = 0) -> Any:
        return self._data.get(self._k(key), default)

    def lookup(self, key: Any) -> Any:
        """The stored value itself (None when absent): a Struct value is updated in place."""
        return self._data.get(self._k(key))

    def items(self):
        return self._data.items()

    def clear(self) -> None:
        self._data.clear()


class HashMap(MapDecl):
    """BPF_MAP_TYPE_HASH (Linux 3.19)."""

    map_type = MapType.HASH


class LruHash(MapDecl):
    """BPF_MAP_TYPE_LRU_HASH (Linux 4.10): the least recently used entry makes room."""

    map_type = MapType.LRU_HASH


class PerCpuHash(MapDecl):
    """BPF_MAP_TYPE_PERCPU_HASH (Linux 4.6): one value per CPU; ``+=`` needs no atomics."""

    map_type = MapType.PERCPU_HASH


class LruPerCpuHash(MapDecl):
    """BPF_MAP_TYPE_LRU_PERCPU_HASH (Linux 4.10)."""

    map_type = MapType.LRU_PERCPU_HASH


class Array(MapDecl):
    """BPF_MAP_TYPE_ARRAY (Linux 3.19): keys are u32 indexes below max_entries, all present."""

    map_type = MapType.ARRAY

    def __init__(self, value: Any = None, max_entries: int = 1, *, key: Any = None, flags: int = 0,
                 name: str | None = None) -> None:
        super().__init__(key or u32, value, max_entries, flags=flags, name=name)

    def __setitem__(self, key: Any, value: Any) -> None:
        k = self._k(key)
        if 0 <= k < self.max_entries:
            self._data[k] = _value_copy(self.value, value)

    def __contains__(self, key: Any) -> bool:
        return 0 <= self._k(key) < self.max_entries

    def __delitem__(self, key: Any) -> None:
        raise TypeError("array map entries cannot be deleted (set them to 0)")

    def get(self, key: Any, default: Any = 0) -> Any:
        k = self._k(key)
        return self._data.get(k, _zero(self.value)) if 0 <= k < self.max_entries else default


class PerCpuArray(Array):
    """BPF_MAP_TYPE_PERCPU_ARRAY (Linux 4.6)."""

    map_type = MapType.PERCPU_ARRAY


class RingBuf(MapDecl):
    """BPF_MAP_TYPE_RINGBUF (Linux 5.8): ``events.output(value)`` sends a record.

    ``max_entries`` is the size in bytes (a power of two, a multiple of the page size).
    Run by CPython, the records are appended to ``.records``.
    """

    map_type = MapType.RINGBUF
    keyed = False

    def __init__(self, max_entries: int = 1 << 16, *, name: str | None = None) -> None:
        super().__init__(None, None, max_entries, name=name)
        self.records: list[Any] = []

    def output(self, value: Any, flags: int = 0) -> int:
        self.records.append(value)
        return 0

    def reserve(self, t: Any) -> Any:
        value = t()
        self.records.append(value)
        return value

    def submit(self, record: Any) -> None:
        pass

    def discard(self, record: Any) -> None:
        self.records.remove(record)

    def reader(self, obj: Any, **kwargs: Any) -> Any:
        """A :class:`pybpf.RingBufReader` of this ring buffer in loaded object ``obj``, decoding
        records as the compiled programs write them (their Struct or integer type)."""
        from pybpf.readers import RingBufReader

        record = getattr(self, "record", None)
        if record is not None and "record" not in kwargs:
            kwargs["record"] = BTFTypes().of(record)
        return RingBufReader(obj.maps[self.name], **kwargs)


class LpmTrie(MapDecl):
    """BPF_MAP_TYPE_LPM_TRIE (Linux 4.11): longest-prefix match; the key is a Struct whose first
    field is ``prefixlen: u32`` followed by the data (e.g. ``addr: u32`` for IPv4).  Created with
    BPF_F_NO_PREALLOC, which the kernel requires.  CPython matches exact keys only."""

    map_type = MapType.LPM_TRIE

    def __init__(self, key: Any = None, value: Any = None, max_entries: int = 1, *, name: str | None = None) -> None:
        super().__init__(key, value, max_entries, flags=1, name=name)   # BPF_F_NO_PREALLOC


class PerfEventArray(MapDecl):
    """BPF_MAP_TYPE_PERF_EVENT_ARRAY (Linux 4.3): ``events.output(value)`` writes a record to the
    current CPU's perf buffer (bpf_perf_event_output with BPF_F_CURRENT_CPU, Linux 4.4); read it
    with :class:`pybpf.PerfBufReader`.  ``max_entries`` 0 means one slot per possible CPU."""

    map_type = MapType.PERF_EVENT_ARRAY
    keyed = False

    def __init__(self, max_entries: int = 0, *, name: str | None = None) -> None:
        import os

        super().__init__(None, None, max_entries or (os.cpu_count() or 1), name=name)
        self.records: list[Any] = []

    def output(self, value: Any) -> int:
        self.records.append(value)
        return 0


class StackTrace(MapDecl):
    """BPF_MAP_TYPE_STACK_TRACE (Linux 4.6): ``stacks.get_stackid(ctx, flags)`` stores the current
    stack and returns its id (negative on error); ``flags`` 0 for the kernel stack, 256
    (BPF_F_USER_STACK) for the user one.  ``depth`` frames of 8 bytes each."""

    map_type = MapType.STACK_TRACE
    keyed = False

    def __init__(self, max_entries: int = 1024, depth: int = 127, *, name: str | None = None) -> None:
        super().__init__(None, None, max_entries, name=name)
        self.depth = depth

    def get_stackid(self, ctx: Any, flags: int = 0) -> int:
        return -14   # -EFAULT: no stack to walk in CPython


class Queue(MapDecl):
    """BPF_MAP_TYPE_QUEUE (Linux 4.20): ``q.push(v)`` (0, or a negative error when full) and
    ``q.pop()`` (the oldest value, 0 when empty)."""

    map_type = MapType.QUEUE
    keyed = False

    def __init__(self, value: Any = None, max_entries: int = 1, *, name: str | None = None) -> None:
        super().__init__(None, value, max_entries, name=name)
        self._items: list[Any] = []

    def push(self, value: Any) -> int:
        if len(self._items) >= self.max_entries:
            return -7    # -E2BIG
        self._items.append(_convert(self.value, value))
        return 0

    def pop(self) -> Any:
        return self._items.pop(0) if self._items else _zero(self.value)


class ProgArray(MapDecl):
    """BPF_MAP_TYPE_PROG_ARRAY (Linux 4.2): ``progs.tail_call(ctx, i)`` jumps to the program in
    slot ``i`` and does not return (falls through when the slot is empty).  ``programs`` fills
    slots at load time: ``ProgArray(4, programs={0: other_prog})``."""

    map_type = MapType.PROG_ARRAY
    keyed = False

    def __init__(self, max_entries: int = 1, *, programs: dict[int, Any] | None = None,
                 name: str | None = None) -> None:
        super().__init__(None, None, max_entries, name=name)
        self.programs = dict(programs or {})

    def tail_call(self, ctx: Any, index: int) -> Any:
        """CPython: run the slot's program and end the caller with its result (as the kernel does)."""
        prog = self.programs.get(int(index))
        if prog is None:
            return -2    # -ENOENT: the caller goes on
        from pybpf.lang.programs import TailCall

        raise TailCall(prog(ctx))
