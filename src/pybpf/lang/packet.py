"""Packet access for xdp / tc / socket filter programs: addresses, loads, byte order.

``ctx.data`` and ``ctx.data_end`` are packet addresses (type :class:`pkt`,
64-bit arithmetic, as the verifier wants for packet pointers).  Check the
length before reading, the way the verifier must see it::

    @xdp
    def count_udp(ctx) -> int:
        data = ctx.data
        if data + 34 > ctx.data_end:          # Ethernet + IPv4 header
            return XDP_PASS
        if load_u16(data + 12) == be16(0x0800) and load_u8(data + 23) == 17:
            counts[0] += 1
        return XDP_PASS

``load_u8/u16/u32/u64(addr)`` compile to one ``ldx`` at ``addr`` (a
constant added to an address becomes the instruction's offset);
``be16/be32/be64(x)`` convert between host and network order (``bswap`` on
little-endian hosts).  In CPython, ``FakeCtx(packet=b"...")`` makes the
packet readable by the same functions.
"""

from __future__ import annotations

import sys
from typing import Any

from pybpf.lang.types import Fixed, u8, u16, u32, u64

__all__ = ["pkt", "load_u8", "load_u16", "load_u32", "load_u64", "be16", "be32", "be64", "LOADS", "SWAPS",
           "set_packet"]


class pkt(Fixed):
    """A packet address: unsigned 64-bit, but loaded from the context's 32-bit field."""

    bits = 64
    signed = False
    __slots__ = ()


_BASE = 1 << 32
_packet: bytes = b""


def set_packet(data: bytes) -> tuple[pkt, pkt]:
    """Make ``data`` the packet CPython's load_* read; returns (data, data_end) addresses."""
    global _packet
    _packet = bytes(data)
    return pkt(_BASE), pkt(_BASE + len(data))


def _load(addr: int, size: int, t: type) -> Any:
    off = int(addr) - _BASE
    if off < 0 or off + size > len(_packet):
        raise IndexError(f"packet read of {size} bytes at offset {off} is outside the {len(_packet)}-byte packet "
                         "(the verifier would reject this program)")
    return t(int.from_bytes(_packet[off:off + size], sys.byteorder))


def load_u8(addr: int) -> u8:
    return _load(addr, 1, u8)


def load_u16(addr: int) -> u16:
    return _load(addr, 2, u16)


def load_u32(addr: int) -> u32:
    return _load(addr, 4, u32)


def load_u64(addr: int) -> u64:
    return _load(addr, 8, u64)


def _swap(x: int, t: type) -> Any:
    n = t.bits // 8
    v = int(t(x))
    return t(int.from_bytes(v.to_bytes(n, sys.byteorder), "big" if sys.byteorder == "little" else "little"))


def be16(x: int) -> u16:
    """``x`` in network byte order (a no-op on big-endian hosts)."""
    return _swap(x, u16)


def be32(x: int) -> u32:
    return _swap(x, u32)


def be64(x: int) -> u64:
    return _swap(x, u64)


LOADS = {load_u8: u8, load_u16: u16, load_u32: u32, load_u64: u64}
SWAPS = {be16: u16, be32: u32, be64: u64}
