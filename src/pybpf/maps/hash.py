"""Hash maps: ``BPF_MAP_TYPE_HASH`` (Linux 3.19) and ``BPF_MAP_TYPE_LRU_HASH`` (Linux 4.10).

A hash map holds up to ``max_entries`` keys; adding one more fails with
E2BIG, which pybpf raises as :class:`~pybpf.errors.MapFullError`.  An LRU
hash map instead evicts the least recently used entry.

Example::

    from pybpf.maps import HashMap
    with HashMap(key="u32", value="u64", max_entries=1024, name="counts") as counts:
        counts[7] = 1
        counts[7] += 1
        print(dict(counts.items()))        # {7: 2}
"""

from __future__ import annotations

import errno

from pybpf._sys.flags import MapFlag
from pybpf._sys.uapi import MapType
from pybpf.maps.base import Map

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["HashMap", "LRUHashMap"]


class HashMap(Map):
    """``BPF_MAP_TYPE_HASH`` — Linux 3.19; batch operations 5.6; pop (lookup-and-delete) 5.14.

    ``key``/``value`` are codec specs (``"u32"``, ``"<IH"``, a ctypes type, a
    byte count, or a codec).  ``preallocate=False`` sets BPF_F_NO_PREALLOC
    (memory is allocated per insert instead of up front).

    >>> counts = HashMap(key="u32", value="u64", max_entries=1024, name="counts")
    >>> counts[1] = 5; counts.get(2, 0)
    0
    """

    __slots__ = ()
    map_type = MapType.HASH
    min_kernel = "3.19"
    _full_errno = errno.E2BIG

    def __init__(
        self, *, key: Any = None, value: Any = None, max_entries: int, name: str = "", flags: int = 0,
        preallocate: bool = True, key_size: int | None = None, value_size: int | None = None,
        numa_node: int | None = None,
    ) -> None:
        if not preallocate:
            flags |= MapFlag.NO_PREALLOC
        self._create(self.map_type, key=key, value=value, key_size=key_size, value_size=value_size,
                     max_entries=max_entries, flags=flags, name=name, numa_node=numa_node)


class LRUHashMap(HashMap):
    """``BPF_MAP_TYPE_LRU_HASH`` — Linux 4.10: a hash map that evicts the least recently used entry.

    ``common_lru=False`` sets BPF_F_NO_COMMON_LRU (one LRU list per CPU).
    Inserting into a full LRU map succeeds by evicting; it does not raise
    MapFullError.

    >>> recent = LRUHashMap(key="u32", value="u64", max_entries=128)
    """

    __slots__ = ()
    map_type = MapType.LRU_HASH
    min_kernel = "4.10"

    def __init__(
        self, *, key: Any = None, value: Any = None, max_entries: int, name: str = "", flags: int = 0,
        common_lru: bool = True, key_size: int | None = None, value_size: int | None = None,
        numa_node: int | None = None,
    ) -> None:
        if not common_lru:
            flags |= MapFlag.NO_COMMON_LRU
        self._create(self.map_type, key=key, value=value, key_size=key_size, value_size=value_size,
                     max_entries=max_entries, flags=flags, name=name, numa_node=numa_node)

