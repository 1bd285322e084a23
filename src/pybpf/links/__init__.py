"""pybpf.links: attach programs to hooks, one module per hook, all returning a :class:`Link`.

==================  ============================================  ==========================
module              function                                      program type
==================  ============================================  ==========================
uprobe              attach_uprobe(prog, target, symbol, ...)      KPROBE
uprobe_multi        attach_uprobe_multi(prog, target, symbols)    KPROBE (uprobe.multi)
usdt                attach_usdt(prog, target, provider, name)     KPROBE
kprobe              attach_kprobe / attach_kprobe_multi           KPROBE
tracepoint          attach_tracepoint(prog, category, name)       TRACEPOINT
raw_tracepoint      attach_raw_tracepoint(prog, name)             RAW_TRACEPOINT
tracing             attach_tracing(prog)                          TRACING (tp_btf, fentry...), LSM, EXT
perf_event          attach_perf_event(prog, type, config, ...)    PERF_EVENT
xdp                 attach_xdp(prog, ifname, mode=)               XDP
tc                  attach_tc(prog, ifname, direction)            SCHED_CLS
cgroup              attach_cgroup(prog, path, attach_type)        CGROUP_*, SOCK_OPS
socket              attach_socket(prog, sock)                     SOCKET_FILTER
iter                attach_iter(prog) → IterLink(.read())         TRACING (iter)
struct_ops          attach_struct_ops(map) → StructOpsLink        STRUCT_OPS (a map)
auto                attach(prog) from prog.section                any
==================  ============================================  ==========================

Every attach whose link can carry a BPF cookie takes ``cookie=`` (or
``cookies=``); on kernels without cookies pybpf clones the program per
cookie (:mod:`pybpf.links.fallback`; ``fallback=False`` raises
NotSupportedError instead).  Symbol resolution for uprobes is in
:mod:`pybpf.links.symbols` and :mod:`pybpf.links.ldcache`.

Example::

    from pybpf import links
    link = links.attach_uprobe(prog, "c", "getpid", cookie=1)
    print(link.info())
    link.close()

:class:`pybpf.Program` has the same functions as methods
(``prog.attach_uprobe(...)``), defined in :mod:`pybpf.program_attach`.
"""

from __future__ import annotations

import importlib
from typing import Any

from pybpf.links.base import Link, LinkGroup, LinkInfo

__all__ = [
    "Link", "LinkGroup", "LinkInfo", "IterLink", "UsdtLink",
    "attach_uprobe", "attach_uretprobe", "attach_uprobe_multi", "attach_usdt", "attach_kprobe",
    "attach_kprobe_multi", "attach_tracepoint", "attach_raw_tracepoint", "attach_tracing",
    "attach_perf_event", "attach_xdp", "attach_tc", "attach_cgroup", "attach_socket", "attach_iter",
    "attach_struct_ops", "StructOpsLink", "attach", "attach_all",
]

# name → module that defines it (imported on first use)
_LAZY = {
    "attach_uprobe": "uprobe",
    "attach_uprobe_multi": "uprobe_multi",
    "attach_usdt": "usdt",
    "UsdtLink": "usdt",
    "attach_kprobe": "kprobe",
    "attach_kprobe_multi": "kprobe",
    "attach_tracepoint": "tracepoint",
    "attach_raw_tracepoint": "raw_tracepoint",
    "attach_tracing": "tracing",
    "attach_perf_event": "perf_event",
    "attach_xdp": "xdp",
    "attach_tc": "tc",
    "attach_cgroup": "cgroup",
    "attach_socket": "socket",
    "attach_iter": "iter",
    "IterLink": "iter",
    "attach_struct_ops": "struct_ops",
    "StructOpsLink": "struct_ops",
    "attach": "auto",
    "attach_all": "auto",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pybpf.links' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"pybpf.links.{module}"), name)
    globals()[name] = value
    return value


def attach_uretprobe(program: Any, target: Any, symbol: str | None = None, **kwargs: Any) -> Link:
    """:func:`attach_uprobe` with ``retprobe=True``."""
    from pybpf.links.uprobe import attach_uprobe

    return attach_uprobe(program, target, symbol, retprobe=True, **kwargs)


