"""Per-thread scratch buffers for single-element map operations, and the stand-ins
that make them (and the codecs of a map an object loader made) on first use.

Each Map keeps, per thread, a key buffer, a value buffer and the
``MapElemAttr`` structs that point at them, so a lookup or update packs
straight into memory whose address the kernel already has.  ctypes releases
the GIL around bpf(2) and Python may switch threads between packing a key
and making the call; per-thread buffers make one Map object safe to use
from several threads at once (about 30 ns per operation for the
``threading.local`` access).
"""

from __future__ import annotations

import ctypes
from _thread import _local   # threading.local itself, without importing threading
import weakref

from pybpf._sys.attrs import MapElemAttr
from pybpf.maps.batch import buffer

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

__all__ = ["Scratch", "Layout", "PerThread", "FirstUse", "CodecsOnFirstUse"]


class Scratch:
    """One thread's buffers for single-element operations on one map."""

    __slots__ = ("key", "value", "attr", "attr_addr", "fattr", "fattr_addr", "dattr", "attr_arg", "fattr_arg",
                 "dattr_arg", "_pins", "__weakref__")

    def __init__(self, fd: int, key_size: int, value_size: int) -> None:
        self.key, key_addr, kpin = buffer(key_size)
        self.value, value_addr, vpin = buffer(value_size)
        if key_size == 0:
            key_addr = 0  # the kernel wants NULL for maps without keys (queue, stack, bloom)
        self.attr = MapElemAttr(map_fd=fd, key=key_addr, value=value_addr)
        self.attr_addr = ctypes.addressof(self.attr)
        self.fattr = MapElemAttr(map_fd=fd, key=key_addr, value=value_addr)  # carries flags
        self.fattr_addr = ctypes.addressof(self.fattr)
        # DELETE_ELEM's last field is the key: the kernel wants value and flags zero.
        self.dattr = MapElemAttr(map_fd=fd, key=key_addr)
        self.dattr_arg = ctypes.c_void_p(ctypes.addressof(self.dattr))
        self.attr_arg = ctypes.c_void_p(self.attr_addr)
        self.fattr_arg = ctypes.c_void_p(self.fattr_addr)
        self._pins = (kpin, vpin)


class Layout:
    """Makes scratch buffers for new threads; invalidates them all on close.

    It holds no reference to the Map, so a Map is freed (and its fd closed)
    by reference counting alone.
    """

    __slots__ = ("fd", "key_size", "value_size", "all", "__weakref__")

    def __init__(self, fd: int, key_size: int, value_size: int) -> None:
        self.fd = fd
        self.key_size = key_size
        self.value_size = value_size
        self.all: weakref.WeakSet[Scratch] | None = None   # made with the first scratch

    def scratch(self) -> Scratch:
        s = Scratch(self.fd, self.key_size, self.value_size)
        if self.all is None:
            self.all = weakref.WeakSet()
        self.all.add(s)
        return s

    def invalidate(self) -> None:
        # -1 as u32: every later call fails with EBADF instead of reaching
        # whatever object reuses the fd number.
        self.fd = 0xFFFFFFFF
        if self.all is not None:
            for s in list(self.all):
                s.attr.map_fd = s.fattr.map_fd = s.dattr.map_fd = 0xFFFFFFFF


class PerThread(_local):
    def __init__(self, layout: Layout) -> None:
        self.s = layout.scratch()


class FirstUse:
    """Stands in for a map's :class:`PerThread` until the first single-element operation.

    A map made by a loader is often never read or written from Python; its
    buffers (the Layout, three attrs, a key and a value buffer) are made on
    first use, when this object puts the real :class:`PerThread` in the map's
    place, so the hot paths keep reading a plain attribute.
    """

    __slots__ = ("_map",)

    def __init__(self, owner: object) -> None:
        self._map = weakref.ref(owner)

    @property
    def s(self) -> Scratch:
        owner: Any = self._map()   # (alive: only its own methods reach this object)
        fd = owner._fd._fd   # -1 once closed: the buffers then name no map, as close() leaves them
        layout = owner._layout = Layout(fd if fd >= 0 else 0xFFFFFFFF, owner._kc.size, owner._vc.size)
        tls = owner._tls = PerThread(layout)
        return tls.s


class CodecsOnFirstUse:
    """Stands in for the key or the value codec of a map until either is first used.

    The object loader creates maps of the sizes the object file gives and
    leaves their codecs to ``make()`` (BTF types resolved, scalars told from
    records: more work than most loads ever need).  A stand-in knows its
    ``size``; anything else asked of it makes both codecs, puts them in the
    map's place (``Map._install_codecs``), so the hot paths read plain
    attributes again, and answers from the real codec.  Only for families
    whose codecs cannot fail and are not wrapped (not per-CPU).
    """

    __slots__ = ("size", "_value", "_map", "_make", "_real")

    def __init__(self, size: int, value: bool, owner: Any, make: Callable[[], tuple[Any, Any]]) -> None:
        self.size = size
        self._value = value
        self._map = owner
        self._make = make
        self._real: Any = None

    @classmethod
    def pair(cls, owner: object, make: Callable[[], tuple[Any, Any]], key_size: int,
             value_size: int) -> tuple["CodecsOnFirstUse", "CodecsOnFirstUse"]:
        """The stand-ins of ``owner``'s key and value codecs."""
        ref = weakref.ref(owner)
        return cls(key_size, False, ref, make), cls(value_size, True, ref, make)

    def resolve(self) -> Any:
        """The real codec (made, and installed in the map, the first time)."""
        real = self._real
        if real is None:
            owner = self._map()
            if owner is not None and owner._key_codec.__class__ is CodecsOnFirstUse:
                owner._install_codecs(*self._make())
                real = owner._value_codec if self._value else owner._key_codec
            else:   # the map has its codecs already (or is gone): the same ones, made again
                real = self._make()[self._value]
            self._real = real
        return real

    def pack_into(self, buf: Any, offset: int, value: Any) -> None:
        self.resolve().pack_into(buf, offset, value)

    def unpack_from(self, buf: Any, offset: int = 0) -> Any:
        return self.resolve().unpack_from(buf, offset)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.resolve(), name)
