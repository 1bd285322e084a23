"""Per-thread scratch buffers for single-element map operations.

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

__all__ = ["Scratch", "Layout", "PerThread"]


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
