"""Kernel BPF maps, one module per family.

==========================  ========================  ===========
class                       kernel map type           since Linux
==========================  ========================  ===========
:class:`HashMap`            HASH                      3.19
:class:`ArrayMap`           ARRAY (mmapable: 5.5)     3.19
:class:`ProgArrayMap`       PROG_ARRAY                4.2
:class:`PerfEventArray`     PERF_EVENT_ARRAY          4.3
:class:`PerCPUHashMap`      PERCPU_HASH               4.6
:class:`PerCPUArrayMap`     PERCPU_ARRAY              4.6
:class:`StackTraceMap`      STACK_TRACE               4.6
:class:`LRUHashMap`         LRU_HASH                  4.10
:class:`LRUPerCPUHashMap`   LRU_PERCPU_HASH           4.10
:class:`LPMTrieMap`         LPM_TRIE                  4.11
:class:`ArrayOfMapsMap`     ARRAY_OF_MAPS             4.12
:class:`HashOfMapsMap`      HASH_OF_MAPS              4.12
:class:`QueueMap`           QUEUE                     4.20
:class:`StackMap`           STACK                     4.20
:class:`RingBuf`            RINGBUF                   5.8
:class:`BloomFilterMap`     BLOOM_FILTER              5.16
:class:`UserRingBuf`        USER_RINGBUF              6.1
==========================  ========================  ===========

Other map types are wrapped by the generic :class:`Map` (raw bytes keys and
values unless codecs are given).  Batch operations need Linux 5.6 and fall
back to per-key operations where missing.

Example::

    import pybpf.maps as maps
    with maps.HashMap(key="u32", value="u64", max_entries=1024, name="counts") as counts:
        counts[1] = 1
    with maps.create(maps.MapType.ARRAY, value="u32", max_entries=4) as arr:
        arr[0] = 7
    m = maps.Map.from_pin("/sys/fs/bpf/counts")     # -> HashMap
"""

from __future__ import annotations

import importlib

from pybpf._sys.flags import MapFlag, UpdateFlag
from pybpf._sys.uapi import MapType
from pybpf.maps.base import FAMILIES, Map, MapInfo, create, map_class, possible_cpus
from pybpf.maps.codec import Codec, make_codec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any
    from pybpf.maps.array import ArrayMap
    from pybpf.maps.bloom import BloomFilterMap
    from pybpf.maps.hash import HashMap, LRUHashMap
    from pybpf.maps.lpm import LPMTrieMap
    from pybpf.maps.mapinmap import ArrayOfMapsMap, HashOfMapsMap
    from pybpf.maps.percpu import LRUPerCPUHashMap, PerCPUArrayMap, PerCPUHashMap
    from pybpf.maps.perf_event_array import PerfEventArray
    from pybpf.maps.progarray import ProgArrayMap
    from pybpf.maps.queue import QueueMap, StackMap
    from pybpf.maps.ringbuf import RingBuf, UserRingBuf
    from pybpf.maps.stacktrace import StackTraceMap

# The family classes are imported on first use (``maps.HashMap``), as map_class() does.
_FAMILY_MODULES = {cls: module for module, cls in FAMILIES.values()}


def __getattr__(name: str) -> Any:
    module = _FAMILY_MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'pybpf.maps' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"pybpf.maps.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "Map", "MapInfo", "Codec", "make_codec", "create", "map_class", "possible_cpus", "MapType", "MapFlag",
    "UpdateFlag", "HashMap", "LRUHashMap", "ArrayMap", "PerCPUHashMap", "PerCPUArrayMap", "LRUPerCPUHashMap",
    "LPMTrieMap", "QueueMap", "StackMap", "BloomFilterMap", "StackTraceMap", "ProgArrayMap",
    "ArrayOfMapsMap", "HashOfMapsMap", "PerfEventArray", "RingBuf", "UserRingBuf",
]
