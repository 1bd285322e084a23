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

Each hook module declares its hooks once (``HOOKS``, :class:`~pybpf.links.hook.Hook`
descriptors); :func:`hooks` returns them all, and the ``Program.attach_*``
methods, auto-attach and ``docs/sections.md`` are derived from them.

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
(``prog.attach_uprobe(...)``), installed from the descriptors when this
package is imported (the first ``attach*`` lookup on a program does).  A link attached to a program
belongs to that program: dropping the returned Link does not detach; closing
the program (or its object) does, and so does ``link.close()``.
"""

from __future__ import annotations

from pybpf.links import (
    _perf, cgroup, iter as _iter, kprobe, perf_event, raw_tracepoint, registry, socket, struct_ops as _struct_ops,
    tc, tracepoint, tracing, uprobe, uprobe_multi, usdt as _usdt, xdp,
)
from pybpf.links.auto import attach, attach_all
from pybpf.links.info import LinkInfo
from pybpf.links.iter import IterLink
from pybpf.links.link import Link, LinkGroup
from pybpf.links.registry import hooks
from pybpf.links.struct_ops import StructOpsLink
from pybpf.links.usdt import UsdtLink
from pybpf.program_attach import AttachMethods

# Every module that declares HOOKS, LINK_INFO or LINK_CLASSES, in name order (a test checks the list).
registry.register(_perf, cgroup, _iter, kprobe, perf_event, raw_tracepoint, socket, _struct_ops, tc, tracepoint,
                  tracing, uprobe, uprobe_multi, _usdt, xdp)
registry.install_methods(AttachMethods, attach)


_ATTACH_FUNCTIONS = {h.method: h.attach for h in hooks()}   # attach_uprobe(prog, ...), ...
globals().update(_ATTACH_FUNCTIONS)
__all__ = ["Link", "LinkGroup", "LinkInfo", "IterLink", "UsdtLink", "StructOpsLink", "hooks", "attach", "attach_all",
           *_ATTACH_FUNCTIONS]
