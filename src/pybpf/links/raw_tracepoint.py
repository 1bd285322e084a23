"""Raw tracepoints: a RAW_TRACEPOINT program on a tracepoint's raw arguments.

``attach_raw_tracepoint(prog, "sys_enter", cookie=3)`` uses
``BPF_RAW_TRACEPOINT_OPEN`` (Linux 4.17), which returns a BPF link.  The
cookie field of that command and ``bpf_get_attach_cookie()`` for raw
tracepoint programs arrived together in Linux 6.10; on older kernels a
non-zero cookie goes through the clones of :mod:`pybpf.links.fallback`.

A BTF-typed raw tracepoint (``tp_btf``, a TRACING program) knows its
tracepoint from its load-time BTF id; attach it with
:func:`pybpf.links.tracing.attach_tracing` (this function forwards it).

Example::

    with attach_raw_tracepoint(prog, "sys_enter", cookie=3) as link:
        assert link.info().cookie == 3
"""

from __future__ import annotations

import ctypes

from pybpf._sys.commands import raw_tracepoint_open
from pybpf._sys.uapi import AttachType, LinkType, ProgType
from pybpf.errors import SyscallError, context
from pybpf.links.base import _label, check_program, prog_fd
from pybpf.links.link import Link
from pybpf.links.fallback import prepare
from pybpf.links.hook import Hook
from pybpf.links.info import second_pass, text
from pybpf.links.tracing import attach_tracing, raw_tp_cookies

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["attach_raw_tracepoint"]


def attach_raw_tracepoint(program: Any, name: str | None = None, *, cookie: int = 0, fallback: bool = True) -> Link:
    """Attach a RAW_TRACEPOINT program to raw tracepoint ``name``; Linux 4.17 (cookie 6.10).

    Example: ``prog.attach_raw_tracepoint("sys_enter")``.
    """
    if getattr(program, "type", None) == ProgType.TRACING and \
            getattr(program, "expected_attach_type", None) == AttachType.TRACE_RAW_TP:
        return attach_tracing(program, cookie=cookie, fallback=fallback)
    check_program(program, (ProgType.RAW_TRACEPOINT, ProgType.RAW_TRACEPOINT_WRITABLE), "attach_raw_tracepoint")
    if not name or not isinstance(name, str):
        raise ValueError("attach_raw_tracepoint needs the tracepoint's name, e.g. \"sys_enter\"")
    with context(_label(program)), context(f"attach_raw_tracepoint {name}"):
        prep = prepare(program, cookie, kernel_cookies=raw_tp_cookies(), fallback=fallback,
                       min_kernel="6.10", feature="raw_tp cookie")
        try:
            try:
                fd = raw_tracepoint_open(prog_fd(prep.program), name, prep.cookie)
            except SyscallError as exc:
                if exc.errno == 2:  # ENOENT
                    exc.hint = f"no raw tracepoint {name!r} (see /sys/kernel/tracing/available_events)"
                raise
        except BaseException:
            prep.lease.release()
            raise
        return Link(fd, program=program, attached_program=prep.program, kind="raw_tracepoint", target=name,
                    cookie=cookie, cleanups=[prep.lease.release])


HOOKS = (
    Hook(attach_raw_tracepoint, sections=("raw_tracepoint", "raw_tp", "raw_tracepoint.w", "raw_tp.w"),
         prog_types=(ProgType.RAW_TRACEPOINT, ProgType.RAW_TRACEPOINT_WRITABLE),
         section_args=lambda info: {"name": info.target} if info.target else {},
         needs={"name": "a raw tracepoint needs its name"}, target_format="NAME", min_kernel="4.17",
         cookies=True),
)


def _info(fd: int, first: Any) -> dict[str, Any]:
    """Raw tracepoint links: the tracepoint's name and (6.10) the cookie."""
    name = ctypes.create_string_buffer(512)

    def fill(raw: Any) -> None:
        raw.u.raw_tracepoint.tp_name, raw.u.raw_tracepoint.tp_name_len = ctypes.addressof(name), 512
    raw = second_pass(fd, fill)
    return dict(tp_name=text(name), cookie=raw.u.raw_tracepoint.cookie)


LINK_INFO = {LinkType.RAW_TRACEPOINT: _info}
