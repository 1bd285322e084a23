"""Bloom filters: ``BPF_MAP_TYPE_BLOOM_FILTER`` (Linux 5.16).

A bloom filter answers "maybe present" or "definitely absent" for values;
it has no keys and nothing can be deleted or listed.  ``max_entries`` is the
number of values it is sized for; ``hashes`` (the map's ``map_extra``,
1..15, 0 meaning the kernel's default of 5) is how many hash functions
each value sets.

Example::

    from pybpf.maps import BloomFilterMap
    with BloomFilterMap(value="u32", max_entries=1000, hashes=3) as seen:
        seen.add(42)
        assert 42 in seen                 # maybe present: always true after add
        print(7 in seen)                  # almost certainly False
"""

from __future__ import annotations

import errno

from pybpf._sys.syscall import sys_bpf
from pybpf._sys.uapi import Cmd, MapType
from pybpf.maps.base import _ELEM_SIZE
from pybpf.maps.queue import KeylessMap

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable

__all__ = ["BloomFilterMap"]

_LOOKUP = int(Cmd.MAP_LOOKUP_ELEM)
_UPDATE = int(Cmd.MAP_UPDATE_ELEM)


class BloomFilterMap(KeylessMap):
    """``BPF_MAP_TYPE_BLOOM_FILTER`` — Linux 5.16: ``add(value)`` and ``value in m``.

    >>> b = BloomFilterMap(value="u64", max_entries=100)
    >>> b.add(5); 5 in b
    True
    """

    __slots__ = ()
    map_type = MapType.BLOOM_FILTER
    min_kernel = "5.16"
    _use_instead = "add() and the in operator"

    def __init__(
        self, *, value: Any = None, max_entries: int, hashes: int = 0, name: str = "", flags: int = 0,
        value_size: int | None = None, numa_node: int | None = None,
    ) -> None:
        if not 0 <= hashes <= 15:
            raise ValueError(f"hashes must be 0..15 (0: the kernel's default of 5), got {hashes}")
        self._create(self.map_type, value=value, key_size=0, value_size=value_size, max_entries=max_entries,
                     flags=flags, name=name, numa_node=numa_node, map_extra=hashes)

    @property
    def hashes(self) -> int:
        """Hash functions per value (the map's map_extra; 0 means the kernel default, 5)."""
        return self.map_extra & 0xF

    def add(self, value: Any) -> None:
        """Add ``value`` to the filter."""
        s = self._tls.s
        try:
            self._vpack(s.value, 0, value)
        except Exception as exc:
            self._pack_slow("value", s.value, 0, value, exc)
        res = sys_bpf(_UPDATE, s.attr_addr, _ELEM_SIZE)
        if res < 0:
            raise self._fail("add", -res)

    def add_many(self, values: Iterable[Any]) -> None:
        for value in values:
            self.add(value)

    def __contains__(self, value: Any) -> bool:
        """True if ``value`` may have been added; False if it certainly was not."""
        s = self._tls.s
        try:
            self._vpack(s.value, 0, value)
        except Exception as exc:
            self._pack_slow("value", s.value, 0, value, exc)
        # The kernel reads the value to test from the value buffer (key is NULL).
        res = sys_bpf(_LOOKUP, s.attr_addr, _ELEM_SIZE)
        if res < 0:
            if res == -errno.ENOENT:
                return False
            raise self._fail("lookup", -res)
        return True

    def __bool__(self) -> bool:
        return True

    def clear(self) -> None:
        raise TypeError("BloomFilterMap cannot remove values; create a new filter")

