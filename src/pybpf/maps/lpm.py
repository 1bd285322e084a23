"""Longest-prefix-match tries: ``BPF_MAP_TYPE_LPM_TRIE`` (Linux 4.11).

A key is ``struct bpf_lpm_trie_key``: a host-order u32 prefix length followed
by the data in network order.  pybpf keys are ``(prefixlen, data)`` tuples,
where data is ``bytes`` of the trie's data size, or — for ``key="ipv4"`` /
``"ipv6"`` tries — an address (``ipaddress`` object or string).  A network
(``"10.0.0.0/8"`` or ``IPv4Network``) and a bare address (full-length
prefix) are accepted as keys too.  A lookup of ``(32, addr)`` returns the
value of the longest stored prefix containing ``addr`` (:meth:`LPMTrieMap.match`).

The kernel requires BPF_F_NO_PREALLOC for tries; pybpf sets it.  Batch
operations are not implemented by tries: iteration walks GET_NEXT_KEY
(Linux 4.16).

Example::

    from pybpf.maps import LPMTrieMap
    with LPMTrieMap(key="ipv4", value="u32", max_entries=64) as routes:
        routes["10.0.0.0/8"] = 1
        routes[(16, "10.1.0.0")] = 2
        assert routes.match("10.1.2.3") == 2 and routes.match("10.9.9.9") == 1
"""

from __future__ import annotations

import errno
import ipaddress
import struct

from pybpf._sys.flags import MapFlag
from pybpf._sys.uapi import MapType
from pybpf.errors import ArgumentError
from pybpf.maps.base import Map
from pybpf.maps.codec import _Base, _bytes_len, _describe, make_codec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["LPMTrieMap", "LPMKeyCodec"]

_HEAD = struct.Struct("=I")
_KINDS = {"ipv4": 4, "ipv6": 16}


class _PrefixRange(Exception):
    pass


class LPMKeyCodec(_Base):
    """``(prefixlen, data)`` keys of an LPM trie; ``kind`` "ipv4"/"ipv6" decodes data to addresses."""

    __slots__ = ("data_size", "kind", "bits")

    def __init__(self, data_size: int, kind: str = "bytes") -> None:
        if data_size < 1:
            raise ArgumentError(f"LPM trie data must be at least 1 byte, got {data_size}")
        self.data_size = data_size
        self.kind = kind
        self.bits = data_size * 8
        self.size = 4 + data_size
        self.label = f"LPM key (prefixlen, {kind if kind != 'bytes' else f'{data_size} bytes'})"

    def _data(self, data: Any) -> bytes:
        if isinstance(data, str):
            data = ipaddress.ip_address(data)
        if isinstance(data, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            data = data.packed
        if _bytes_len(data) != self.data_size:
            raise TypeError
        return bytes(data)

    def _split(self, value: Any) -> tuple[int, bytes]:
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], int):
            return value[0], self._data(value[1])
        if isinstance(value, str):
            value = ipaddress.ip_network(value, strict=False) if "/" in value else ipaddress.ip_address(value)
        if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
            return value.prefixlen, self._data(value.network_address)
        if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            return self.bits, self._data(value)
        raise TypeError

    def pack_into(self, buf: Any, offset: int, value: Any) -> None:
        prefixlen, data = self._split(value)
        if not 0 <= prefixlen <= self.bits:
            raise _PrefixRange(prefixlen)
        _HEAD.pack_into(buf, offset, prefixlen)
        buf[offset + 4:offset + self.size] = data

    def unpack_from(self, buf: Any, offset: int = 0) -> tuple:
        prefixlen = _HEAD.unpack_from(buf, offset)[0]
        data = bytes(memoryview(buf).cast("B")[offset + 4:offset + self.size])
        if self.kind == "ipv4":
            return ((prefixlen, ipaddress.IPv4Address(data)),)
        if self.kind == "ipv6":
            return ((prefixlen, ipaddress.IPv6Address(data)),)
        return ((prefixlen, data),)

    def error(self, role: str, value: Any, exc: BaseException) -> Exception:
        if isinstance(exc, _PrefixRange):
            return OverflowError(f"{role} prefixlen {exc.args[0]} out of range (0..{self.bits})")
        if isinstance(exc, ValueError):  # ipaddress could not parse it
            return TypeError(f"{role}: {exc}")
        return TypeError(f"{role} must be {self.size} bytes ({self.label}): give (prefixlen, "
                         f"{self.data_size}-byte data), an address or a network; got {_describe(value)}")


class LPMTrieMap(Map):
    """``BPF_MAP_TYPE_LPM_TRIE`` — Linux 4.11 (iteration 4.16).

    ``key`` is ``"ipv4"`` (default), ``"ipv6"``, an int (bytes of data
    after the prefix length; keys then carry ``bytes``), or a codec spec of
    the whole kernel key (prefix length included), e.g. a BTF codec.
    Adding to a full trie raises MapFullError (the kernel says ENOSPC).

    >>> t = LPMTrieMap(key="ipv4", value="u32", max_entries=16)
    >>> t["192.168.0.0/16"] = 7
    >>> t.match("192.168.1.1"), t.match("10.0.0.1", default=0)
    (7, 0)
    """

    __slots__ = ()
    map_type = MapType.LPM_TRIE
    min_kernel = "4.11"
    _full_errno = errno.ENOSPC  # trie_update_elem refuses a new prefix once n_entries == max_entries

    def __init__(
        self, *, key: Any = "ipv4", value: Any = None, max_entries: int, name: str = "", flags: int = 0,
        value_size: int | None = None, numa_node: int | None = None,
    ) -> None:
        self._create(self.map_type, key=key, value=value, value_size=value_size, max_entries=max_entries,
                     flags=flags, name=name, numa_node=numa_node)

    @classmethod
    def _codecs(
        cls, key: Any, key_size: int | None, value: Any, value_size: int | None, flags: int = 0,
    ) -> tuple[Any, Any]:
        if key is None:
            if key_size is None or key_size < 5:
                raise ArgumentError(f"LPM trie keys need at least 5 bytes (u32 prefixlen + data), got "
                                    f"key_size={key_size}: declare the key as struct bpf_lpm_trie_key_u8 "
                                    "followed by the data, or __uint(key_size, 4 + data bytes)")
            kc: Any = LPMKeyCodec(key_size - 4)
        elif isinstance(key, str) and key in _KINDS:
            kc = LPMKeyCodec(_KINDS[key], key)
        elif isinstance(key, int) and not isinstance(key, bool):
            kc = LPMKeyCodec(key)
        else:
            kc = make_codec(key, size=key_size, role="key")
        if key_size is not None and kc.size != key_size:
            raise ArgumentError(f"key codec {kc.label} is {kc.size} bytes, but the map's key_size is {key_size}")
        return kc, make_codec(value, size=value_size, role="value")

    @classmethod
    def _create_flags(cls, flags: int) -> int:
        return flags | MapFlag.NO_PREALLOC

    def match(self, address: Any, default: Any = None) -> Any:
        """The value of the longest stored prefix containing ``address`` (``default`` if none)."""
        kc = self._kc
        if isinstance(kc, LPMKeyCodec):
            return self.get((kc.bits, address), default)
        return self.get(address, default)

