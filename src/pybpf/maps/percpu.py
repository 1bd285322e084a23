"""Per-CPU maps: ``PERCPU_HASH``, ``PERCPU_ARRAY`` (Linux 4.6) and ``LRU_PERCPU_HASH`` (4.10).

Each key holds one value per *possible* CPU (``/sys/devices/system/cpu/possible``,
see :func:`~pybpf.maps.base.possible_cpus`).  Reading gives a list with one
entry per possible CPU; writing takes such a list, or one value that is
written to every CPU.  In the kernel buffer each CPU's slot is padded to 8
bytes; pybpf does that for you.  :meth:`sum` adds the CPUs up.

Example::

    from pybpf.maps import PerCPUArrayMap
    with PerCPUArrayMap(value="u64", max_entries=1) as hits:
        hits[0] = 1                     # every CPU's slot := 1
        assert hits[0] == [1] * hits.ncpus and hits.sum(0) == hits.ncpus
"""

from __future__ import annotations

import errno

from pybpf._sys.uapi import MapType
from pybpf.maps.array import ArrayMap
from pybpf.maps.base import _MISSING, possible_cpus
from pybpf.maps.hash import HashMap, LRUHashMap

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["PerCPUHashMap", "PerCPUArrayMap", "LRUPerCPUHashMap"]


class _PerCPU:
    """What the per-CPU families add: the CPU count and sums."""

    __slots__ = ()

    @property
    def ncpus(self) -> int:
        """Entries in each value list: the number of possible CPUs."""
        return possible_cpus()

    def sum(self, key: Any, default: Any = _MISSING) -> Any:
        """The per-CPU values of ``key`` added up (numbers, or tuples of numbers field by field).

        ``default``, when given, is returned for a missing key instead of raising.
        """
        values = self.get(key, _MISSING)  # type: ignore[attr-defined]
        if values is _MISSING:
            if default is _MISSING:
                raise self._fail("lookup", errno.ENOENT, key)  # type: ignore[attr-defined]
            return default
        first = values[0]
        if isinstance(first, (int, float)) and not isinstance(first, bool):
            return sum(values)
        if isinstance(first, tuple) and all(isinstance(x, (int, float)) for x in first):
            return tuple(sum(col) for col in zip(*values))
        raise TypeError(f"sum() needs numeric per-CPU values, got {type(first).__name__}")


class PerCPUHashMap(_PerCPU, HashMap):
    """``BPF_MAP_TYPE_PERCPU_HASH`` — Linux 4.6: a hash map with one value per possible CPU.

    >>> m = PerCPUHashMap(key="u32", value="u64", max_entries=64)
    >>> m[1] = [1, 2]            # on a machine with two possible CPUs
    >>> m.sum(1)
    3
    """

    __slots__ = ()
    map_type = MapType.PERCPU_HASH
    min_kernel = "4.6"


class LRUPerCPUHashMap(_PerCPU, LRUHashMap):
    """``BPF_MAP_TYPE_LRU_PERCPU_HASH`` — Linux 4.10: per-CPU values, least recently used evicted.

    >>> m = LRUPerCPUHashMap(key="u32", value="u64", max_entries=64)
    """

    __slots__ = ()
    map_type = MapType.LRU_PERCPU_HASH
    min_kernel = "4.10"


class PerCPUArrayMap(_PerCPU, ArrayMap):
    """``BPF_MAP_TYPE_PERCPU_ARRAY`` — Linux 4.6: an array with one value per possible CPU.

    Per-CPU arrays cannot be mmapped (the kernel allows MMAPABLE on plain
    arrays only).

    >>> hits = PerCPUArrayMap(value="u64", max_entries=4)
    >>> hits.sum(0)
    0
    """

    __slots__ = ()
    map_type = MapType.PERCPU_ARRAY
    min_kernel = "4.6"

    def __init__(
        self, *, value: Any = None, max_entries: int, name: str = "", flags: int = 0, key: Any = None,
        value_size: int | None = None, numa_node: int | None = None,
    ) -> None:
        self._create(self.map_type, key=key, value=value, key_size=4, value_size=value_size,
                     max_entries=max_entries, flags=flags, name=name, numa_node=numa_node)

