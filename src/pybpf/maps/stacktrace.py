"""Stack trace maps: ``BPF_MAP_TYPE_STACK_TRACE`` (Linux 4.6).

A program calls ``bpf_get_stackid(ctx, &stacks, flags)``; the kernel stores
the stack (instruction addresses, innermost first) under a u32 stack id and
returns the id.  User space reads ``m[stack_id]``: a list of addresses (the
zero entries past the stack's depth are dropped), and deletes entries it is
done with.  User space cannot write stacks (the kernel answers EINVAL).

With ``build_id=True`` (BPF_F_STACK_BUILD_ID, Linux 4.17, user stacks
only) each frame is ``(status, build_id bytes, offset_or_ip)``.

Example::

    from pybpf.maps import StackTraceMap
    stacks = StackTraceMap(max_entries=1024, depth=127)
    # ... a program stores stacks ...
    for stack_id, addrs in stacks.items():
        print(stack_id, [hex(a) for a in addrs])
"""

from __future__ import annotations

import errno
import struct

from pybpf._sys.flags import MapFlag
from pybpf._sys.uapi import MapType
from pybpf.maps.base import Map
from pybpf.maps.codec import _Base

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["StackTraceMap", "StackCodec", "BuildIdStackCodec"]

MAX_DEPTH = 127  # the kernel's default sysctl kernel.perf_event_max_stack


class StackCodec(_Base):
    """``depth`` u64 addresses; decodes to a list cut at the first zero."""

    __slots__ = ("depth", "_struct")

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.size = 8 * depth
        self.label = f"stack of {depth} u64 addresses"
        self._struct = struct.Struct(f"={depth}Q")

    def pack_into(self, buf: Any, offset: int, value: Any) -> None:
        frames = list(value)
        if len(frames) > self.depth:
            raise TypeError
        self._struct.pack_into(buf, offset, *frames, *([0] * (self.depth - len(frames))))

    def unpack_from(self, buf: Any, offset: int = 0) -> tuple:
        frames = self._struct.unpack_from(buf, offset)
        try:
            return (list(frames[:frames.index(0)]),)
        except ValueError:
            return (list(frames),)


_BUILD_ID_FRAME = struct.Struct("=i20sQ")  # struct bpf_stack_build_id: status, build_id[20], offset/ip


class BuildIdStackCodec(_Base):
    """``depth`` frames of ``struct bpf_stack_build_id``; decodes to (status, build_id, offset_or_ip)."""

    __slots__ = ("depth",)

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.size = _BUILD_ID_FRAME.size * depth
        self.label = f"stack of {depth} build-id frames"

    def pack_into(self, buf: Any, offset: int, value: Any) -> None:
        frames = list(value)
        if len(frames) > self.depth:
            raise TypeError
        buf[offset:offset + self.size] = bytes(self.size)
        for i, frame in enumerate(frames):
            _BUILD_ID_FRAME.pack_into(buf, offset + i * _BUILD_ID_FRAME.size, *frame)

    def unpack_from(self, buf: Any, offset: int = 0) -> tuple:
        frames = []
        for i in range(self.depth):
            status, build_id, where = _BUILD_ID_FRAME.unpack_from(buf, offset + i * _BUILD_ID_FRAME.size)
            if status == 0 and where == 0 and not any(build_id):
                break  # BPF_STACK_BUILD_ID_EMPTY with nothing in it: past the end
            frames.append((status, build_id, where))
        return (frames,)


class StackTraceMap(Map):
    """``BPF_MAP_TYPE_STACK_TRACE`` — Linux 4.6: u32 stack id → list of addresses.

    ``depth`` frames per stack (value_size = 8 * depth, or 32 * depth with
    ``build_id=True``).

    >>> stacks = StackTraceMap(max_entries=256, depth=64)
    """

    __slots__ = ()
    map_type = MapType.STACK_TRACE
    min_kernel = "4.6"
    _default_key = "u32"

    def __init__(
        self, *, max_entries: int, depth: int = MAX_DEPTH, build_id: bool = False, name: str = "",
        flags: int = 0, numa_node: int | None = None,
    ) -> None:
        if build_id:
            flags |= MapFlag.STACK_BUILD_ID
        value = BuildIdStackCodec(depth) if build_id else StackCodec(depth)
        self._create(self.map_type, key="u32", value=value, max_entries=max_entries, flags=flags, name=name,
                     numa_node=numa_node)

    @classmethod
    def _codecs(
        cls, key: Any, key_size: int | None, value: Any, value_size: int | None, flags: int = 0,
    ) -> tuple[Any, Any]:
        if value is None and value_size is not None:
            if flags & MapFlag.STACK_BUILD_ID and value_size % _BUILD_ID_FRAME.size == 0:
                value = BuildIdStackCodec(value_size // _BUILD_ID_FRAME.size)
            elif value_size % 8 == 0:
                value = StackCodec(value_size // 8)
        return super()._codecs(key, key_size, value, value_size, flags)

    def _hint(self, op: str, err: int, key: Any, flags: int) -> str | None:
        if err == errno.EINVAL and op.startswith("update"):
            return "user space cannot write stack traces; programs add them with bpf_get_stackid()"
        return super()._hint(op, err, key, flags)

