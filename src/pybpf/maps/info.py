"""Plain facts about maps: :class:`MapInfo`, the possible-CPU count, flag names.

Example::

    >>> from pybpf.maps.info import flags_text
    >>> flags_text(MapFlag.NO_PREALLOC | MapFlag.MMAPABLE)
    'NO_PREALLOC|MMAPABLE'
"""

from __future__ import annotations

from pybpf._record import FrozenRecord
from pybpf._sys.cpus import possible_cpus
from pybpf._sys.flags import MapFlag
from pybpf._sys.uapi import MapType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["MapInfo", "possible_cpus", "flags_text", "PERCPU_TYPES"]

#: map types whose values hold one slot per possible CPU
PERCPU_TYPES = frozenset({
    MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH, MapType.PERCPU_CGROUP_STORAGE,
})


class MapInfo(FrozenRecord):
    """What BPF_OBJ_GET_INFO_BY_FD says about a map.

    >>> m.info().max_entries, m.info().flags
    (1024, <MapFlag.NO_PREALLOC: 1>)
    """

    __slots__ = ("type", "id", "name", "key_size", "value_size", "max_entries", "flags", "map_extra", "ifindex",
                 "btf_id", "btf_key_type_id", "btf_value_type_id", "btf_vmlinux_value_type_id")

    def __init__(self, *, type: MapType | int, id: int, name: str, key_size: int, value_size: int,
                 max_entries: int, flags: MapFlag, map_extra: int, ifindex: int, btf_id: int,
                 btf_key_type_id: int, btf_value_type_id: int, btf_vmlinux_value_type_id: int) -> None:
        super().__init__(type=type, id=id, name=name, key_size=key_size, value_size=value_size,
                         max_entries=max_entries, flags=flags, map_extra=map_extra, ifindex=ifindex,
                         btf_id=btf_id, btf_key_type_id=btf_key_type_id, btf_value_type_id=btf_value_type_id,
                         btf_vmlinux_value_type_id=btf_vmlinux_value_type_id)

    @classmethod
    def from_kernel(cls, raw: Any) -> "MapInfo":
        try:
            kind: MapType | int = MapType(raw.type)
        except ValueError:
            kind = raw.type
        return cls(
            type=kind, id=raw.id, name=raw.name.decode(errors="replace"), key_size=raw.key_size,
            value_size=raw.value_size, max_entries=raw.max_entries, flags=MapFlag(raw.map_flags),
            map_extra=raw.map_extra, ifindex=raw.ifindex, btf_id=raw.btf_id,
            btf_key_type_id=raw.btf_key_type_id, btf_value_type_id=raw.btf_value_type_id,
            btf_vmlinux_value_type_id=raw.btf_vmlinux_value_type_id,
        )


def flags_text(flags: int) -> str:
    """``MapFlag`` bits as ``"NO_PREALLOC|MMAPABLE"`` (``"0"`` for none)."""
    names = [f.name for f in MapFlag if f.name and flags & f]
    rest = flags & ~sum(int(f) for f in MapFlag)
    return "|".join(names + ([hex(rest)] if rest else [])) or "0"
