"""Shared machinery of the perf-event based hooks (uprobe, kprobe, tracepoint, perf_event).

A perf event is opened for the hook, then the program is attached to it:

* through a BPF perf link (``BPF_LINK_CREATE`` with ``BPF_PERF_EVENT``,
  Linux 5.15), which also carries the cookie; the link holds the event, so
  pybpf closes its own event fd right away (one fd per probe);
* or, on older kernels, with ``PERF_EVENT_IOC_SET_BPF`` (4.1+): the event fd
  is the attachment and cannot carry a cookie, so a non-zero cookie goes
  through :mod:`pybpf.links.fallback` (a clone per cookie).

PMU-based probes read their type and config bits from sysfs
(``/sys/bus/event_source/devices/<pmu>/type`` and ``format/<field>``, e.g.
``retprobe`` is ``config:0`` and ``ref_ctr_offset`` ``config:32-63``) rather
than hard-coding them.
"""

from __future__ import annotations

import ctypes

from pybpf import features
from pybpf._sys import perf as _perf
from pybpf._sys.attrs import LinkCreateAttr, PerfEventAttr
from pybpf._sys.commands import link_create
from pybpf._sys.flags import PERF_FLAG_FD_CLOEXEC
from pybpf._sys.kernel import EVENT_SOURCES, pmu_field, pmu_type
from pybpf._sys.syscall import FD
from pybpf._sys.uapi import AttachType, LinkType, PerfEventLinkKind, ProgType
from pybpf.errors import LinkError
from pybpf.links.base import prog_fd
from pybpf.links.link import Link
from pybpf.links.fallback import KEEP, prepare
from pybpf.links.info import second_pass, text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Sequence

__all__ = ["pmu_type", "pmu_field", "open_event", "attach_to_event", "EVENT_SOURCES"]


def set_field(attr: PerfEventAttr, pmu: str, name: str, value: int, *, default: tuple[str, int, int] | None = None) -> None:
    """Store ``value`` into PMU format field ``name`` of ``attr`` (config, config1...)."""
    where = pmu_field(pmu, name) or default
    if where is None:
        raise LinkError(f"the {pmu} PMU has no '{name}' format field in {EVENT_SOURCES}/{pmu}/format")
    field, lo, hi = where
    width = hi - lo + 1
    if value >= (1 << width) or value < 0:
        raise LinkError(f"{pmu} {name}={value:#x} does not fit {width} bits")
    setattr(attr, field, getattr(attr, field) | (value << lo))


def open_event(attr: PerfEventAttr, *, pid: int = -1, cpu: int = 0, what: str = "perf event") -> FD:
    """perf_event_open(2) with close-on-exec; raises SyscallError."""
    return _perf.perf_event_open(attr, pid=pid, cpu=cpu, group_fd=-1, flags=PERF_FLAG_FD_CLOEXEC, what=what)


# Attach types a KPROBE program must NOT carry to be attached to a perf event.
_MULTI_TYPES = {AttachType.TRACE_UPROBE_MULTI, AttachType.TRACE_KPROBE_MULTI,
                AttachType.TRACE_KPROBE_SESSION, AttachType.TRACE_UPROBE_SESSION}


def perf_attach_type(program: Any) -> Any:
    """KEEP, or None when the program was loaded for a multi link and needs a retyped clone."""
    eat = getattr(program, "expected_attach_type", None)
    if getattr(program, "type", None) == ProgType.KPROBE and eat in _MULTI_TYPES:
        return None
    return KEEP


def attach_to_event(
    program: Any,
    event: FD,
    *,
    cookie: int | None,
    fallback: bool,
    kind: str,
    target: str,
    cleanups: Sequence[Callable[[], None]] = (),
    local_info: dict[str, Any] | None = None,
) -> Link:
    """Attach ``program`` to the open perf ``event``; the Link takes ownership of ``event``.

    On failure ``event`` is closed and ``cleanups`` are run.
    """
    cleanups = list(cleanups)
    prep = None
    try:
        use_link = features.has("perf_link")
        kernel_cookies = use_link and features.has("bpf_cookie")
        prep = prepare(program, cookie, kernel_cookies=kernel_cookies, fallback=fallback,
                       expected_attach_type=perf_attach_type(program))
        pfd = prog_fd(prep.program)
        if use_link:
            attr = LinkCreateAttr(prog_fd=pfd, target_fd=event.fileno(), attach_type=AttachType.PERF_EVENT)
            attr.u.perf_event.bpf_cookie = prep.cookie
            lfd = link_create(attr, what=f"{kind} link")
            # The perf link holds a reference to the event's file: ours can go.
            event.close()
            return Link(lfd, program=program, attached_program=prep.program, kind=kind, target=target,
                        cookie=cookie, cleanups=[*cleanups, prep.lease.release], local_info=local_info)
        # PERF_EVENT_IOC_SET_BPF: the event fd is the attachment (Linux 4.1-5.14 path).
        _perf.set_bpf(event.fileno(), pfd)
        _perf.enable(event.fileno())
        return Link(None, perf_fd=event, program=program, attached_program=prep.program, kind=kind,
                    target=target, cookie=cookie, cleanups=[*cleanups, prep.lease.release],
                    local_info=local_info)
    except BaseException:
        event.close()
        if prep is not None:
            prep.lease.release()
        for fn in reversed(cleanups):
            try:
                fn()
            except Exception:  # noqa: BLE001
                pass
        raise


def _info(fd: int, first: Any) -> dict[str, Any]:
    """Perf event links (6.6): which event (``perf_type``), its target and the cookie (6.9)."""
    K = PerfEventLinkKind
    kind = first.u.perf_event.type
    try:
        details: dict[str, Any] = {"perf_type": K(kind).name.lower()}
    except ValueError:
        details = {"perf_type": str(kind)}
    name = ctypes.create_string_buffer(4096)

    def fill(raw: Any) -> None:
        raw.u.perf_event.type = kind
        u = raw.u.perf_event.u
        if kind in (K.UPROBE, K.URETPROBE):
            u.uprobe.file_name, u.uprobe.name_len = ctypes.addressof(name), 4096
        elif kind in (K.KPROBE, K.KRETPROBE):
            u.kprobe.func_name, u.kprobe.name_len = ctypes.addressof(name), 4096
        elif kind == K.TRACEPOINT:
            u.tracepoint.tp_name, u.tracepoint.name_len = ctypes.addressof(name), 4096

    if kind in (K.UPROBE, K.URETPROBE):
        up = second_pass(fd, fill).u.perf_event.u.uprobe
        details.update(file_name=text(name), offset=up.offset, cookie=up.cookie, ref_ctr_offset=up.ref_ctr_offset,
                       retprobe=kind == K.URETPROBE)
    elif kind in (K.KPROBE, K.KRETPROBE):
        kp = second_pass(fd, fill).u.perf_event.u.kprobe
        details.update(func_name=text(name), offset=kp.offset, addr=kp.addr, missed=kp.missed, cookie=kp.cookie,
                       retprobe=kind == K.KRETPROBE)
    elif kind == K.TRACEPOINT:
        tp = second_pass(fd, fill).u.perf_event.u.tracepoint
        details.update(tp_name=text(name), cookie=tp.cookie)
    elif kind == K.EVENT:
        ev = first.u.perf_event.u.event
        details.update(config=ev.config, event_type=ev.type, cookie=ev.cookie)
    return details


LINK_INFO = {LinkType.PERF_EVENT: _info}
