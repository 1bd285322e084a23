"""Program arrays: ``BPF_MAP_TYPE_PROG_ARRAY`` (Linux 4.2), the jump table of tail calls.

``m[i] = prog`` stores a program (an object with ``.fd``, or an fd int);
``m[i]`` returns the id of the program stored there; ``del m[i]`` empties
the slot.  Only occupied slots are listed by ``keys()``/``items()`` and
counted by ``len()``.

Kernel quirk: the kernel empties every slot when the last user-space
reference to the map (fd or pin) is closed, even if programs still use the
map (``bpf_fd_array_map_clear`` on ``map_release_uref``, since Linux 4.10):
keep the map open or pinned for as long as the tail calls should work.

Example::

    from pybpf.maps import ProgArrayMap
    with ProgArrayMap(max_entries=8, name="jmp") as jmp:
        jmp[0] = prog                  # prog.fd is stored
        assert jmp[0] == prog.id
"""

from __future__ import annotations

from pybpf._sys.uapi import MapType
from pybpf.maps.base import Map
from pybpf.maps.codec import FdCodec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["ProgArrayMap"]


class FdArrayMixin:
    """Array-of-fd behaviour shared by prog arrays and arrays of maps: empty slots do not count."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return any(True for _ in self.keys())  # type: ignore[attr-defined]

    def clear(self) -> None:
        """Empty every slot."""
        for index in list(self.keys()):  # type: ignore[attr-defined]
            self.pop(index, None)  # type: ignore[attr-defined]


class ProgArrayMap(FdArrayMixin, Map):
    """``BPF_MAP_TYPE_PROG_ARRAY`` — Linux 4.2: u32 index → program (fd in, program id out).

    >>> jmp = ProgArrayMap(max_entries=4)
    >>> jmp[1] = prog_fd
    >>> jmp[1] == prog_id, 0 in jmp, len(jmp)
    (True, False, 1)
    """

    __slots__ = ()
    map_type = MapType.PROG_ARRAY
    min_kernel = "4.2"
    _default_key = "u32"
    _index_keys = True

    def __init__(self, *, max_entries: int, name: str = "", flags: int = 0, numa_node: int | None = None) -> None:
        self._create(self.map_type, key="u32", value=FdCodec("program"), max_entries=max_entries, flags=flags,
                     name=name, numa_node=numa_node)

    @classmethod
    def _codecs(
        cls, key: Any, key_size: int | None, value: Any, value_size: int | None, flags: int = 0,
    ) -> tuple[Any, Any]:
        return super()._codecs(key, key_size, FdCodec("program") if value is None else value, value_size, flags)

