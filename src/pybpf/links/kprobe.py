"""Kprobes: a KPROBE program on a kernel function, one at a time or many at once.

``attach_kprobe(prog, "do_sys_openat2", cookie=1, retprobe=False)`` opens a
perf event of the ``kprobe`` PMU (``config1`` = the function's name,
``config2`` = the offset, the ``retprobe`` bit from
``/sys/bus/event_source/devices/kprobe/format/retprobe``) and attaches the
program through a perf link carrying the cookie; without the PMU it writes
a probe into tracefs ``kprobe_events`` (removed when the link closes).

``attach_kprobe_multi(prog, "vfs_*", cookies=...)`` attaches to every
matching function with one kprobe_multi link (fprobe, Linux 5.18); a list of
names works too.  Patterns are matched against
``available_filter_functions`` (the functions that can be probed).  Without
the link the functions are attached one by one (``fallback=True``).

Kernels built without ``CONFIG_KPROBES`` (the development VMs) raise
:class:`pybpf.NotSupportedError` naming "kprobes" / "kprobe_multi_link".

A ``SEC("kprobe.session")`` program goes to ``attach_kprobe_multi`` and runs
at entry and at return of each call (Linux 6.10).

Minimum kernel: 4.1 (tracefs), 4.17 (PMU), cookies 5.15, kprobe_multi 5.18,
kprobe sessions 6.10.

Example::

    with attach_kprobe(prog, "vfs_read", cookie=3) as link:
        ...
"""

from __future__ import annotations

import ctypes
import fnmatch
import os

from pybpf import features
from pybpf._sys.attrs import LinkCreateAttr, PerfEventAttr, u64_array
from pybpf._sys.commands import link_create
from pybpf._sys.flags import KPROBE_MULTI_RETURN
from pybpf._sys.kernel import syscall_prefix
from pybpf._sys.syscall import address, cstr
from pybpf._sys.uapi import AttachType, LinkType, PerfType, ProgType
from pybpf.errors import LinkError, SyscallError, context
from pybpf.links import _perf, _tracefs
from pybpf.links.base import _label, check_program, cookie_list, prog_fd
from pybpf.links.link import Link, LinkGroup, close_all
from pybpf.links.fallback import acquire
from pybpf.links.hook import Hook, retprobe_for, split_offset
from pybpf.links.info import second_pass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Mapping, Sequence

__all__ = ["attach_kprobe", "attach_kprobe_multi", "kprobe_functions"]


def _check_name(function: str) -> None:
    if not isinstance(function, str) or not function or any(c in function for c in " \t\n:/"):
        raise ValueError(f"invalid kernel function name {function!r}")


def open_kprobe_event(function: str, offset: int, retprobe: bool) -> tuple[Any, list, dict]:
    pmu = _perf.pmu_type("kprobe")
    info = dict(link_type=LinkType.PERF_EVENT, perf_type="kretprobe" if retprobe else "kprobe",
                func_name=function, offset=offset, retprobe=retprobe)
    if pmu is not None:
        attr = PerfEventAttr(type=pmu)
        name = cstr(function)
        attr.config1 = address(name)  # kprobe_func
        attr.config2 = offset         # probe_offset
        if retprobe:
            _perf.set_field(attr, "kprobe", "retprobe", 1, default=("config", 0, 0))
        event = _perf.open_event(attr, pid=-1, cpu=0, what="kprobe event")
        del name
        return event, [], info
    event_name = _tracefs.new_event_name()
    spec = function + (f"+{offset}" if offset else "")
    tp_id = _tracefs.add_dynamic_probe("kprobe", f"{'r' if retprobe else 'p'} {spec}", event_name)

    def remove() -> None:
        _tracefs.remove_dynamic_probe("kprobe", event_name)
    try:
        event = _perf.open_event(PerfEventAttr(type=PerfType.TRACEPOINT, config=tp_id), pid=-1, cpu=0,
                                 what="kprobe event")
    except BaseException:
        remove()
        raise
    return event, [remove], info


def attach_kprobe(program: Any, function: str, *, offset: int = 0, cookie: int = 0, retprobe: bool | None = None,
                  fallback: bool = True) -> Link:
    """Attach a KPROBE program to kernel function ``function`` (+ ``offset``); Linux 4.17 (cookie 5.15).

    ``retprobe`` defaults to the program's section (``SEC("kretprobe")``).
    Needs CONFIG_KPROBES.  Example: ``prog.attach_kprobe("vfs_read", cookie=3)``.
    """
    check_program(program, (ProgType.KPROBE,), "attach_kprobe")
    retprobe = retprobe_for(program, retprobe, "attach_kprobe")
    _check_name(function)
    if not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset must be a non-negative int, not {offset!r}")
    kind = "kretprobe" if retprobe else "kprobe"
    desc = function + (f"+{offset:#x}" if offset else "")
    with context(_label(program)), context(f"attach_{kind} {desc}"):
        features.require("kprobes")
        try:
            event, cleanups, info = open_kprobe_event(function, offset, retprobe)
        except SyscallError as exc:
            if exc.errno in (2, 22):  # ENOENT/EINVAL: no such function or not probe-able
                exc.hint = f"no probe-able kernel function {function!r} (see available_filter_functions)"
            raise
        info["cookie"] = cookie
        return _perf.attach_to_event(program, event, cookie=cookie, fallback=fallback, kind=kind, target=desc,
                                     cleanups=cleanups, local_info=info)


def kprobe_functions(pattern: str) -> list[str]:
    """Probe-able kernel functions matching the glob ``pattern`` (from available_filter_functions)."""
    root = _tracefs.tracefs_root()
    path = os.path.join(root, "available_filter_functions")
    names: set[str] = set()
    try:
        with open(path) as f:
            for line in f:
                name = line.split(None, 1)[0] if line.strip() else ""
                if name and fnmatch.fnmatchcase(name, pattern):
                    names.add(name)
    except FileNotFoundError:
        raise LinkError(f"{path} is missing: the kernel has no function tracer (CONFIG_FUNCTION_TRACER)") from None
    return sorted(names)


def attach_kprobe_multi(program: Any, functions: str | Sequence[str], *,
                        cookies: Sequence[int] | Mapping[str, int] | None = None, retprobe: bool | None = None,
                        fallback: bool = True) -> Link:
    """Attach a KPROBE program to many kernel functions (a glob or a list) with one link; Linux 5.18.

    ``retprobe`` defaults to the program's section (``SEC("kretprobe.multi")``).
    A ``SEC("kprobe.session")`` program (Linux 6.10) runs at entry and at
    return of each call (``bpf_session_is_return()``, ``bpf_session_cookie()``).
    Needs CONFIG_FPROBE (or one kprobe per function with ``fallback=True``).

    Example: ``prog.attach_kprobe_multi("vfs_*")``.
    """
    check_program(program, (ProgType.KPROBE,), "attach_kprobe_multi")
    retprobe = retprobe_for(program, retprobe, "attach_kprobe_multi")
    session = getattr(program, "expected_attach_type", None) == AttachType.TRACE_KPROBE_SESSION
    kind = "kprobe_session" if session else "kretprobe_multi" if retprobe else "kprobe_multi"
    desc = functions if isinstance(functions, str) else ",".join(list(functions)[:4])
    with context(_label(program)), context(f"attach_{kind} {desc}"):
        if session:
            features.require("kprobe_session")  # one kprobe per function cannot make a session
        elif not features.has("kprobe_multi_link"):
            if not fallback:
                features.require("kprobe_multi_link")
            features.require("kprobes")  # the one-by-one fallback needs kprobes
        if isinstance(functions, str):
            if any(c in functions for c in "*?["):
                names = kprobe_functions(functions)
                if not names:
                    raise LinkError(f"no probe-able kernel function matches {functions!r}")
            else:
                names = [functions]
        else:
            names = list(functions)
            if not names:
                raise ValueError("attach_kprobe_multi: the list of functions is empty")
        for n in names:
            _check_name(n)
        values = cookie_list(cookies, names)
        if not session and not features.has("kprobe_multi_link"):
            links: list[Link] = []
            try:
                for i, n in enumerate(names):
                    links.append(attach_kprobe(program, n, cookie=values[i] if values else 0, retprobe=retprobe,
                                               fallback=fallback))
            except BaseException:
                close_all(links)
                raise
            return LinkGroup(links, program=program, kind=kind, target=desc)
        return _attach_multi(program, names, values, retprobe, kind, desc,
                             AttachType.TRACE_KPROBE_SESSION if session else AttachType.TRACE_KPROBE_MULTI)


def _attach_multi(program: Any, names: list[str], cookies: list[int] | None, retprobe: bool, kind: str,
                  desc: str, attach_type: AttachType) -> Link:
    lease = acquire(program, expected_attach_type=attach_type)
    try:
        n = len(names)
        bufs = [cstr(name) for name in names]
        syms = (ctypes.c_uint64 * n)(*(address(b) for b in bufs))
        cookie_arr = u64_array("cookie", cookies) if cookies else None
        attr = LinkCreateAttr(prog_fd=prog_fd(lease.program), attach_type=attach_type)
        km = attr.u.kprobe_multi
        km.syms, km.cnt, km.cookies = address(syms), n, address(cookie_arr)
        km.flags = KPROBE_MULTI_RETURN if retprobe else 0
        fd = link_create(attr, what=f"{kind} link")
    except BaseException:
        lease.release()
        raise
    return Link(fd, program=program, attached_program=lease.program, kind=kind, target=desc,
                cleanups=[lease.release])



def _kprobe_args(info: Any) -> dict[str, Any]:
    if not info.target:
        return {}
    if info.kind in ("ksyscall", "kretsyscall"):
        return {"function": f"{syscall_prefix()}sys_{info.target}"}
    function, offset = split_offset(info.target)
    return {"function": function, "offset": offset}


def _kprobe_multi_args(info: Any) -> dict[str, Any]:
    return {"functions": info.target} if info.target else {}


HOOKS = (
    Hook(attach_kprobe, sections=("kprobe", "kretprobe", "ksyscall", "kretsyscall"), prog_types=(ProgType.KPROBE,),
         attach_types=(None,), section_args=_kprobe_args,
         needs={"function": "a kprobe needs a kernel function"}, target_format="FUNCTION[+OFFSET] (ksyscall: NAME)",
         min_kernel="4.17", cookies=True),
    Hook(attach_kprobe_multi, sections=("kprobe.multi", "kretprobe.multi", "kprobe.session"),
         prog_types=(ProgType.KPROBE,),
         attach_types=(None, AttachType.TRACE_KPROBE_MULTI, AttachType.TRACE_KPROBE_SESSION),
         section_args=_kprobe_multi_args, needs={"functions": "a kprobe.multi program needs kernel functions"},
         target_format="GLOB", min_kernel="5.18", section_min_kernel={"kprobe.session": "6.10"}, cookies=True),
)


def _info(fd: int, first: Any) -> dict[str, Any]:
    """kprobe_multi links: count, flags, missed hits, and the addresses and cookies where readable."""
    n = first.u.kprobe_multi.count
    addrs = (ctypes.c_uint64 * max(n, 1))()
    cookies = (ctypes.c_uint64 * max(n, 1))()

    def fill(raw: Any) -> None:
        km = raw.u.kprobe_multi
        km.addrs, km.cookies, km.count = ctypes.addressof(addrs), ctypes.addressof(cookies), n
    raw, arrays = first, False
    if n:
        try:
            raw, arrays = second_pass(fd, fill), True
        except SyscallError:
            pass  # addresses are hidden from unprivileged readers on some kernels
    km = raw.u.kprobe_multi
    return dict(count=km.count, flags=km.flags, missed=km.missed, retprobe=bool(km.flags & KPROBE_MULTI_RETURN),
                addrs=list(addrs[:n]) if arrays else [], cookies=list(cookies[:n]) if arrays else [])


LINK_INFO = {LinkType.KPROBE_MULTI: _info}
