"""Maps of maps: ``BPF_MAP_TYPE_ARRAY_OF_MAPS`` and ``BPF_MAP_TYPE_HASH_OF_MAPS`` (Linux 4.12).

The outer map is created from an *inner map template*: every map stored in
it must have the template's type, key size, value size and flags (and, for
most types, max_entries).  ``m[k] = inner`` stores a map (a Map, an object
with ``.fd``, or an fd int); ``m[k]`` returns the stored map's *id*, which
is what the kernel gives user space; :meth:`get_map` opens it as a Map.

Example::

    from pybpf.maps import ArrayMap, ArrayOfMapsMap
    template = ArrayMap(value="u64", max_entries=4)
    with ArrayOfMapsMap(inner_map=template, max_entries=8) as outer:
        outer[0] = template
        with outer.get_map(0) as inner:
            assert inner.id == template.id
"""

from __future__ import annotations

import errno

from pybpf._sys.uapi import MapType
from pybpf.maps.base import Map
from pybpf.maps.codec import FdCodec
from pybpf.maps.progarray import FdArrayMixin

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["ArrayOfMapsMap", "HashOfMapsMap"]


class _OfMaps:
    __slots__ = ()

    @classmethod
    def _codecs(
        cls, key: Any, key_size: int | None, value: Any, value_size: int | None, flags: int = 0,
    ) -> tuple[Any, Any]:
        return super()._codecs(key, key_size, FdCodec("map") if value is None else value,  # type: ignore[misc]
                               value_size, flags)

    def get_map(self, key: Any, *, key_codec: Any = None, value_codec: Any = None) -> Map:
        """Open the map stored under ``key`` (a new fd; close it when done)."""
        return Map.from_id(self[key], key=key_codec, value=value_codec)  # type: ignore[index]


class ArrayOfMapsMap(FdArrayMixin, _OfMaps, Map):
    """``BPF_MAP_TYPE_ARRAY_OF_MAPS`` — Linux 4.12: u32 index → map (fd in, map id out).

    >>> outer = ArrayOfMapsMap(inner_map=HashMap(key="u32", value="u32", max_entries=4), max_entries=2)
    """

    __slots__ = ()
    map_type = MapType.ARRAY_OF_MAPS
    min_kernel = "4.12"
    _default_key = "u32"
    _index_keys = True

    def __init__(self, *, inner_map: Map, max_entries: int, name: str = "", flags: int = 0,
                 numa_node: int | None = None) -> None:
        self._create(self.map_type, key="u32", value=FdCodec("map"), max_entries=max_entries, flags=flags,
                     name=name, inner_map=inner_map, numa_node=numa_node)


class HashOfMapsMap(_OfMaps, Map):
    """``BPF_MAP_TYPE_HASH_OF_MAPS`` — Linux 4.12: key → map (fd in, map id out).

    >>> outer = HashOfMapsMap(key="u32", inner_map=template, max_entries=64)
    """

    __slots__ = ()
    map_type = MapType.HASH_OF_MAPS
    min_kernel = "4.12"
    _full_errno = errno.E2BIG

    def __init__(self, *, key: Any = None, inner_map: Map, max_entries: int, name: str = "", flags: int = 0,
                 key_size: int | None = None, numa_node: int | None = None) -> None:
        self._create(self.map_type, key=key, key_size=key_size, value=FdCodec("map"), max_entries=max_entries,
                     flags=flags, name=name, inner_map=inner_map, numa_node=numa_node)

