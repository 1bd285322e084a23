"""What ``ctx`` means in each kind of program: the fields the compiler can read.

* uprobe/kprobe (``struct pt_regs``): ``ctx.arg(n)`` (n-th argument by the
  calling convention), ``ctx.ret`` (return value, for return probes),
  ``ctx.sp``/``ctx.ip``; per-architecture tables below.
* tracepoint: the fields of ``/sys/kernel/tracing/events/<cat>/<name>/format``
  by name (``ctx.id``, ``ctx.args[0]`` for ``raw_syscalls/sys_enter``).
* raw_tracepoint, tp_btf, fentry/fexit: ``ctx.arg(n)`` (the u64 array).
* xdp (``struct xdp_md``) and socket/tc/cgroup_skb (``struct __sk_buff``):
  their fields by name (``ctx.ingress_ifindex``, ``ctx.len``...).
* every kind with a cookie: ``ctx.cookie`` (``bpf_get_attach_cookie``, Linux 5.15).

:class:`FakeCtx` is the CPython stand-in for unit tests.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from pybpf.lang.types import INT_TYPES, u32, u64

__all__ = ["Field", "FakeCtx", "pt_regs_layout", "tracepoint_fields", "ctx_fields"]


@dataclass(frozen=True)
class Field:
    """A context field: ``offset`` bytes into ctx, of integer type ``type``; ``count`` > 0 for arrays."""

    offset: int
    type: type
    count: int = 0
    size: int = 0       # bytes loaded, when not the type's size (packet pointers are 32-bit fields)


# pt_regs: register name -> offset, and the argument / return registers (kernel calling convention).
_PT_REGS = {
    "x86_64": ({"r15": 0, "r14": 8, "r13": 16, "r12": 24, "bp": 32, "bx": 40, "r11": 48, "r10": 56,
                "r9": 64, "r8": 72, "ax": 80, "cx": 88, "dx": 96, "si": 104, "di": 112, "orig_ax": 120,
                "ip": 128, "cs": 136, "flags": 144, "sp": 152, "ss": 160},
               ("di", "si", "dx", "cx", "r8", "r9"), "ax"),
    "aarch64": ({**{f"x{i}": 8 * i for i in range(31)}, "sp": 248, "ip": 256, "pstate": 264},
                tuple(f"x{i}" for i in range(8)), "x0"),
}


def pt_regs_layout(machine: str | None = None) -> tuple[dict[str, int], tuple[str, ...], str]:
    """(register offsets, argument registers, return register) of ``struct pt_regs``."""
    m = machine or os.uname().machine
    m = {"amd64": "x86_64", "arm64": "aarch64"}.get(m, m)
    try:
        return _PT_REGS[m]
    except KeyError:
        raise NotImplementedError(f"pt_regs layout of {m} is not known to pybpf.lang") from None


_FIELD_RE = re.compile(r"field:(?P<decl>[^;]*);\s*offset:(?P<off>\d+);\s*size:(?P<size>\d+);\s*signed:(?P<s>\d)")


def _int_type(size: int, signed: bool) -> type:
    bits = 8 * size if size in (1, 2, 4, 8) else 64
    return INT_TYPES[f"{'i' if signed else 'u'}{bits}"]


def parse_format(text: str) -> dict[str, Field]:
    """Fields of a tracepoint ``format`` file (the common_* fields included)."""
    fields: dict[str, Field] = {}
    for m in _FIELD_RE.finditer(text):
        decl = m.group("decl").strip()
        off, size, signed = int(m.group("off")), int(m.group("size")), m.group("s") == "1"
        arr = re.search(r"(\w+)\s*\[(\d*)\]\s*$", decl)
        if arr:
            name, n = arr.group(1), int(arr.group(2) or 0)
            if n and size % n == 0:
                fields[name] = Field(off, _int_type(size // n, signed), n)
            else:   # __data_loc char[] name: a u32 (offset << 16 | length)
                fields[name] = Field(off, u32 if size == 4 else _int_type(size, False))
            continue
        name = re.split(r"[\s*]+", decl)[-1]
        fields[name] = Field(off, _int_type(size, signed))
    return fields


_TP_CACHE: dict[str, dict[str, Field]] = {}


def tracepoint_fields(target: str) -> dict[str, Field]:
    """Fields of tracepoint ``category/name`` read from tracefs (mounted if needed)."""
    fields = _TP_CACHE.get(target)
    if fields is None:
        from pybpf.links._tracefs import tracefs_root

        path = os.path.join(tracefs_root(), "events", target, "format")
        with open(path) as f:
            fields = _TP_CACHE[target] = parse_format(f.read())
    return fields


_XDP_MD = {"data": 0, "data_end": 4, "data_meta": 8, "ingress_ifindex": 12, "rx_queue_index": 16,
           "egress_ifindex": 20}
_SK_BUFF = {"len": 0, "pkt_type": 4, "mark": 8, "queue_mapping": 12, "protocol": 16, "vlan_present": 20,
            "vlan_tci": 24, "vlan_proto": 28, "priority": 32, "ingress_ifindex": 36, "ifindex": 40,
            "tc_index": 44, "hash": 68, "tc_classid": 72, "data": 76, "data_end": 80, "napi_id": 84,
            "family": 88, "remote_ip4": 92, "local_ip4": 96, "remote_port": 132, "local_port": 136,
            "data_meta": 140}


def ctx_fields(prog_type: Any) -> dict[str, Field]:
    """Named fields of the xdp_md / __sk_buff contexts (u32; data/data_end/data_meta are packet addresses)."""
    from pybpf._sys.uapi import ProgType
    from pybpf.lang.packet import pkt

    if prog_type == ProgType.XDP:
        table = _XDP_MD
    elif prog_type in (ProgType.SOCKET_FILTER, ProgType.SCHED_CLS, ProgType.SCHED_ACT, ProgType.CGROUP_SKB,
                       ProgType.LWT_IN, ProgType.LWT_OUT, ProgType.LWT_XMIT, ProgType.SK_SKB):
        table = _SK_BUFF
    else:
        return {}
    return {k: Field(v, pkt, 0, 4) if k in ("data", "data_end", "data_meta") else Field(v, u32)
            for k, v in table.items()}


class FakeCtx:
    """A context for running a program in CPython: ``FakeCtx(cookie=1, args=[...], ret=0, id=39)``.

    ``ctx.arg(n)`` returns ``args[n]``; other keyword arguments become attributes
    (tracepoint fields, xdp_md fields).

    >>> ctx = FakeCtx(cookie=2, args=[7, 8])
    >>> ctx.cookie, ctx.arg(1)
    (u64(2), u64(8))
    """

    def __init__(self, *, cookie: int = 0, args: Any = (), ret: int = 0, packet: bytes | None = None,
                 **fields: Any) -> None:
        self.cookie = u64(cookie)
        self.args = [u64(a) for a in args]
        self.ret = u64(ret)
        if packet is not None:
            from pybpf.lang.packet import set_packet

            self.data, self.data_end = set_packet(packet)
        for k, v in fields.items():
            setattr(self, k, v)

    def arg(self, n: int) -> Any:
        return self.args[n] if n < len(self.args) else u64(0)
