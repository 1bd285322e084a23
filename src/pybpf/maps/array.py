"""Array maps: ``BPF_MAP_TYPE_ARRAY`` (Linux 3.19), optionally memory-mapped (Linux 5.5).

Keys are u32 indices ``0 .. max_entries-1``, all of which always exist
(zeroed at creation); elements cannot be deleted, only overwritten.

An array created with ``MapFlag.MMAPABLE`` (``ArrayMap(..., mmapable=True)``,
or any array the loader creates with that flag, such as ``.data``/``.bss``)
is mapped into this process: ``m[i]`` and ``m[i] = v`` then read and write
the kernel's memory directly, with no system call at all, and ``m.memory``
is a memoryview of the value area (``round_up(value_size, 8) * max_entries``
bytes) for global variables.  A frozen map (``.rodata`` after
:meth:`ArrayMap.freeze`) is mapped read-only: the kernel refuses a writable
mapping of it with EPERM.

Example::

    from pybpf.maps import ArrayMap
    with ArrayMap(value="u64", max_entries=4, mmapable=True) as a:
        a[0] = 42                  # a store to shared memory, no bpf(2) call
        assert a[0] == 42 and list(a.values()) == [42, 0, 0, 0]
"""

from __future__ import annotations

import errno as _errno
import mmap

from pybpf._sys.flags import MapFlag, UpdateFlag
from pybpf._sys.syscall import ENOTSUPP
from pybpf._sys.uapi import MapType
from pybpf.errors import MapError
from pybpf.maps.base import Map

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterator

__all__ = ["ArrayMap"]

_MMAPABLE = int(MapFlag.MMAPABLE)
_RDONLY_PROG = int(MapFlag.RDONLY_PROG)


class ArrayMap(Map):
    """``BPF_MAP_TYPE_ARRAY`` — Linux 3.19; batch operations 5.6; ``mmapable=True`` 5.5.

    ``len(m)`` is ``max_entries`` and ``keys()`` is ``range(max_entries)``
    (no system calls); ``values()``/``items()`` read the memory of mmapable
    arrays and use batch lookups otherwise.  ``clear()`` zeroes every
    element (array elements cannot be deleted).

    With ``mmapable=True`` single-element reads and writes make no system
    call; ``m.memory`` is the mapped value area.  Drop every view of
    ``m.memory`` before closing the map, or the mapping (and a dup of the fd
    the mmap module keeps) lives until those views are garbage.

    >>> a = ArrayMap(value="u32", max_entries=16)
    >>> a[3] = 7; a[3], a[4]
    (7, 0)
    """

    __slots__ = ("_mem", "_memview", "_stride", "_mem_writable")
    map_type = MapType.ARRAY
    min_kernel = "3.19"
    _default_key = "u32"
    _index_keys = True

    def __init__(
        self, *, value: Any = None, max_entries: int, name: str = "", flags: int = 0, mmapable: bool = False,
        key: Any = None, value_size: int | None = None, numa_node: int | None = None,
    ) -> None:
        if mmapable:
            flags |= MapFlag.MMAPABLE
        self._create(self.map_type, key=key, value=value, key_size=4, value_size=value_size,
                     max_entries=max_entries, flags=flags, name=name, numa_node=numa_node)

    def _setup(self, fd: Any, info: tuple, key_codec: Any, value_codec: Any, name: str, label: str) -> None:
        self._mem: mmap.mmap | None = None
        self._memview: memoryview | None = None
        self._mem_writable = False
        super()._setup(fd, info, key_codec, value_codec, name, label)
        self._stride = (self.value_size + 7) & ~7
        flags = info[4]  # an int: MapFlag arithmetic goes through enum code
        if flags & _MMAPABLE and self.type == MapType.ARRAY:
            # The kernel refuses writable mappings of frozen and BPF_F_RDONLY_PROG maps
            # (EPERM/EACCES): map those read-only at once instead of failing first.
            self._map_memory(writable=not (flags & _RDONLY_PROG or info[7]))

    # ------------------------------------------------------------------ the mapping

    def _map_memory(self, *, writable: bool) -> None:
        length = self._stride * self.max_entries
        pages = max(-(-length // mmap.PAGESIZE), 1) * mmap.PAGESIZE
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
        try:
            mem = mmap.mmap(self.fd, pages, mmap.MAP_SHARED, prot)
        except PermissionError:
            if not writable:
                raise
            # Frozen (or BPF_F_RDONLY) maps refuse writable mappings with EPERM.
            mem = mmap.mmap(self.fd, pages, mmap.MAP_SHARED, mmap.PROT_READ)
            writable = False
        except OSError as exc:
            raise MapError(f"mmap: {exc.strerror}", errno=exc.errno or 0,
                           hint="mmapable arrays need Linux 5.5").add_context(self._label) from None
        self._mem = mem
        self._memview = memoryview(mem)[:length]
        self._mem_writable = writable

    def _unmap_memory(self) -> bool:
        """Drop our mapping; False if views of :attr:`memory` keep it alive."""
        mem, view = self._mem, self._memview
        self._mem = self._memview = None
        self._mem_writable = False
        if view is not None:
            view.release()
        if mem is not None:
            try:
                mem.close()
            except BufferError:
                # Someone still holds a view of m.memory: the mapping (and the
                # fd the mmap module dup'ed) goes away when those views do.
                return False
        return True

    def _release(self) -> None:
        self._unmap_memory()

    @property
    def memory(self) -> memoryview:
        """The mapped value area (mmapable arrays only); read-only once the map is frozen."""
        if self._memview is None:
            if self._fd.closed:
                raise ValueError(f"{self._label} is closed")
            raise MapError("memory: the map is not mmapable (create it with mmapable=True, Linux 5.5)",
                           errno=_errno.EINVAL).add_context(self._label)
        return self._memview

    @property
    def mmapped(self) -> bool:
        return self._mem is not None

    def freeze(self) -> None:
        """Freeze the map (Linux 5.2); an mmapable array is remapped read-only.

        The kernel refuses to freeze a map with writable mappings (EBUSY), so
        ours is dropped first: views of :attr:`memory` taken before must be
        released, and are invalid afterwards.
        """
        if self._mem is None or not self._mem_writable:
            super().freeze()
            return
        if not self._unmap_memory():
            self._map_memory(writable=True)
            raise MapError("freeze: views of m.memory are still held, so the map stays mapped writable",
                           errno=_errno.EBUSY, hint="release them (del, memoryview.release()) first"
                           ).add_context(self._label)
        try:
            super().freeze()
        finally:
            self._map_memory(writable=False)

    # ------------------------------------------------------------------ elements (mmap fast path first)

    def __getitem__(self, index: Any) -> Any:
        mem = self._mem
        if mem is not None and index.__class__ is int and 0 <= index < self.max_entries:
            return self._vunpack(mem, index * self._stride)[0]
        return Map.__getitem__(self, index)

    def get(self, index: Any, default: Any = None) -> Any:
        mem = self._mem
        if mem is not None and index.__class__ is int and 0 <= index < self.max_entries:
            return self._vunpack(mem, index * self._stride)[0]
        return Map.get(self, index, default)

    def __setitem__(self, index: Any, value: Any) -> None:
        if self._mem_writable and index.__class__ is int and 0 <= index < self.max_entries:
            try:
                self._vpack(self._mem, index * self._stride, value)
            except Exception as exc:
                self._pack_slow("value", self._mem, index * self._stride, value, exc)
            return
        Map.__setitem__(self, index, value)

    def __contains__(self, index: Any) -> bool:
        if index.__class__ is int:
            return 0 <= index < self.max_entries
        return Map.__contains__(self, index)

    def __len__(self) -> int:
        """``max_entries``: every index of an array exists."""
        return self.max_entries

    def __bool__(self) -> bool:
        return self.max_entries > 0

    def keys(self) -> Iterator[int]:
        return iter(range(self.max_entries))

    def values(self) -> Iterator[Any]:
        if self._mem is not None:
            return iter(self._decode_memory())
        return Map.values(self)

    def items(self) -> Iterator[tuple[int, Any]]:
        if self._mem is not None:
            return iter(enumerate(self._decode_memory()))
        return Map.items(self)

    def _decode_memory(self) -> list[Any]:
        mem, n = self._mem, self.max_entries
        if self._stride == self.value_size:
            return self._vc.decode_many(mem, n)
        unpack, stride = self._vunpack, self._stride
        return [unpack(mem, i * stride)[0] for i in range(n)]

    def clear(self) -> None:
        """Zero every element (array elements cannot be deleted)."""
        if self._mem_writable:
            length = self._stride * self.max_entries
            self._mem[:length] = bytes(length)
            return
        zero = self._vc.unpack_from(bytes(self._vc.size), 0)[0]
        n = self.max_entries
        for start in range(0, n, 4096):
            stop = min(n, start + 4096)
            self.update_batch(range(start, stop), [zero] * (stop - start))

    def _hint(self, op: str, err: int, key: Any, flags: int) -> str | None:
        if err == _errno.E2BIG and op.startswith("update"):
            return f"index {key!r} is out of range (max_entries={self.max_entries})"
        if err == _errno.ENOENT and op == "lookup":
            return f"index out of range, max_entries={self.max_entries}"
        if err == _errno.EEXIST and flags == UpdateFlag.NOEXIST:
            return "every array index exists, so flags=NOEXIST always fails"
        if err in (_errno.EINVAL, ENOTSUPP) and op.startswith(("delete", "pop", "lookup_and_delete")):
            return "array elements cannot be deleted; assign a zero value instead"
        return super()._hint(op, err, key, flags)

