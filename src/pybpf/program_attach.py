"""The ``attach_*`` methods of :class:`pybpf.Program`.

They are thin: each hands the program to the hook module in
:mod:`pybpf.links` that does the work, imported on first use so that the
program layer does not depend on the hooks layer at import time.  Each
method's full documentation, with the minimum kernel, is on the function it
calls.

Example::

    prog = obj.programs["count_calls"]
    with prog.attach_uprobe("/usr/bin/myapp", "func_a", cookie=1), \\
         prog.attach_uprobe("/usr/bin/myapp", "func_b", cookie=2):
        ...
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:
    from pybpf.links import IterLink, Link, UsdtLink


class AttachMethods:
    """Mixed into :class:`pybpf.Program`; see :mod:`pybpf.links` for each hook."""

    __slots__ = ()

    def attach_uprobe(self, target: str | os.PathLike[str], symbol: str | None = None, *, offset: int = 0,
                      pid: int | None = None, cookie: int = 0, retprobe: bool = False,
                      ref_ctr_offset: int = 0, fallback: bool = True) -> "Link":
        """User-space probe on ``symbol`` (or a file ``offset``) of ``target``; Linux 4.17 (cookie 5.15)."""
        from pybpf.links.uprobe import attach_uprobe
        return attach_uprobe(self, target, symbol, offset=offset, pid=pid, cookie=cookie, retprobe=retprobe,
                             ref_ctr_offset=ref_ctr_offset, fallback=fallback)

    def attach_uretprobe(self, target: str | os.PathLike[str], symbol: str | None = None, *, offset: int = 0,
                         pid: int | None = None, cookie: int = 0, fallback: bool = True) -> "Link":
        """Return probe: ``attach_uprobe(..., retprobe=True)``."""
        return self.attach_uprobe(target, symbol, offset=offset, pid=pid, cookie=cookie, retprobe=True,
                                  fallback=fallback)

    def attach_uprobe_multi(self, target: str | os.PathLike[str], symbols: str | Sequence[str] | None = None, *,
                            cookies: Sequence[int] | Mapping[str, int] | None = None,
                            offsets: Sequence[int] | None = None, ref_ctr_offsets: Sequence[int] | None = None,
                            pid: int | None = None, retprobe: bool = False, fallback: bool = True) -> "Link":
        """Many uprobes in one link (a list or a glob of symbols, one cookie each); Linux 6.6."""
        from pybpf.links.uprobe_multi import attach_uprobe_multi
        return attach_uprobe_multi(self, target, symbols, cookies=cookies, offsets=offsets,
                                   ref_ctr_offsets=ref_ctr_offsets, pid=pid, retprobe=retprobe, fallback=fallback)

    def attach_usdt(self, target: str, provider: str, name: str, *, pid: int | None = None, cookie: int = 0,
                    spec_map: Any = None, fallback: bool = True) -> "UsdtLink":
        """Every site of USDT probe ``provider:name`` in ``target``; Linux 4.17 (semaphores 4.20)."""
        from pybpf.links.usdt import attach_usdt
        return attach_usdt(self, target, provider, name, pid=pid, cookie=cookie, spec_map=spec_map,
                           fallback=fallback)

    def attach_kprobe(self, function: str, *, offset: int = 0, cookie: int = 0, retprobe: bool = False,
                      fallback: bool = True) -> "Link":
        """Kernel probe on ``function``; Linux 4.17 (cookie 5.15). Needs CONFIG_KPROBES."""
        from pybpf.links.kprobe import attach_kprobe
        return attach_kprobe(self, function, offset=offset, cookie=cookie, retprobe=retprobe, fallback=fallback)

    def attach_kprobe_multi(self, functions: str | Sequence[str], *,
                            cookies: Sequence[int] | Mapping[str, int] | None = None, retprobe: bool = False,
                            fallback: bool = True) -> "Link":
        """Many kprobes in one link (a list or a glob); Linux 5.18."""
        from pybpf.links.kprobe import attach_kprobe_multi
        return attach_kprobe_multi(self, functions, cookies=cookies, retprobe=retprobe, fallback=fallback)

    def attach_tracepoint(self, category: str, name: str | None = None, *, cookie: int = 0,
                          fallback: bool = True) -> "Link":
        """Tracepoint ``category/name`` (tracefs); Linux 4.7 (cookie 5.15)."""
        from pybpf.links.tracepoint import attach_tracepoint
        return attach_tracepoint(self, category, name, cookie=cookie, fallback=fallback)

    def attach_raw_tracepoint(self, name: str | None = None, *, cookie: int = 0, fallback: bool = True) -> "Link":
        """Raw tracepoint ``name`` ("sys_enter"); Linux 4.17 (cookie 6.10)."""
        from pybpf.links.raw_tracepoint import attach_raw_tracepoint
        return attach_raw_tracepoint(self, name, cookie=cookie, fallback=fallback)

    def attach_tracing(self, *, cookie: int = 0, target_program: Any = None, fallback: bool = True) -> "Link":
        """tp_btf / fentry / fexit / fmod_ret / lsm / freplace to the target given at load; Linux 5.5."""
        from pybpf.links.tracing import attach_tracing
        return attach_tracing(self, cookie=cookie, target_program=target_program, fallback=fallback)

    def attach_perf_event(self, event_type: Any = "software", config: int | str = "cpu-clock", *,
                          sample_period: int | None = None, sample_freq: int | None = None,
                          pid: int | None = None, cpu: int | None = None, cookie: int = 0,
                          inherit: bool = False, fallback: bool = True) -> "Link":
        """Sampling perf event (software or hardware) per CPU or per pid; Linux 4.9 (cookie 5.15)."""
        from pybpf.links.perf_event import attach_perf_event
        return attach_perf_event(self, event_type, config, sample_period=sample_period, sample_freq=sample_freq,
                                 pid=pid, cpu=cpu, cookie=cookie, inherit=inherit, fallback=fallback)

    def attach_xdp(self, ifname_or_index: str | int, *, mode: str | int | None = None, flags: int = 0,
                   replace: bool = False) -> "Link":
        """XDP on an interface ("skb", "drv" or the default mode); BPF link (5.9), else netlink (4.8)."""
        from pybpf.links.xdp import attach_xdp
        return attach_xdp(self, ifname_or_index, mode=mode, flags=flags, replace=replace)

    def attach_tc(self, ifname_or_index: str | int, direction: str = "ingress", *, before: Any = None,
                  after: Any = None, expected_revision: int = 0, priority: int | None = None,
                  handle: int | None = None) -> "Link":
        """tc ingress/egress: a tcx link (6.6), else a clsact bpf filter through netlink (4.5)."""
        from pybpf.links.tc import attach_tc
        return attach_tc(self, ifname_or_index, direction, before=before, after=after,
                         expected_revision=expected_revision, priority=priority, handle=handle)

    def attach_cgroup(self, path: str | os.PathLike[str], attach_type: Any = None) -> "Link":
        """A cgroup v2 directory; BPF link, Linux 5.7 (BPF_PROG_ATTACH before)."""
        from pybpf.links.cgroup import attach_cgroup
        return attach_cgroup(self, path, attach_type)

    def attach_socket(self, sock: Any) -> "Link":
        """SO_ATTACH_BPF on a socket; Linux 3.19."""
        from pybpf.links.socket import attach_socket
        return attach_socket(self, sock)

    def attach_iter(self, *, map: Any = None, pid: int | None = None, tid: int | None = None,
                    cgroup: Any = None, cgroup_order: int = 0) -> "IterLink":
        """A BPF iterator; read its output with ``link.read()``; Linux 5.8."""
        from pybpf.links.iter import attach_iter
        return attach_iter(self, map=map, pid=pid, tid=tid, cgroup=cgroup, cgroup_order=cgroup_order)

    def attach(self, **kwargs: Any) -> "Link":
        """Attach as the program's section name says, like libbpf's auto-attach."""
        from pybpf.links.auto import attach
        return attach(self, **kwargs)
