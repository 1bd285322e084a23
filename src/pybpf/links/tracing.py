"""BTF-based tracing: tp_btf, fentry, fexit, fmod_ret, lsm and freplace programs.

These programs name their hook at load time (``attach_btf_id``, plus
``attach_prog_fd`` for freplace), so attaching takes no target:
``attach_tracing(prog, cookie=5)``.  pybpf asks ``BPF_LINK_CREATE`` with the
program's expected attach type and the tracing cookie (Linux 5.19 for
fentry/fexit/fmod_ret/lsm cookies, 6.10 for tp_btf), and falls back to
``BPF_RAW_TRACEPOINT_OPEN`` (5.5) on kernels whose LINK_CREATE does not
know tracing programs.

Lockdown: fentry/fexit/fmod_ret/lsm need BPF trampolines, which
``lockdown=integrity`` refuses; the load already fails with EPERM and a
message saying so (and an attach that gets EPERM says the same).  tp_btf
needs no trampoline and works under lockdown.

Example::

    prog = Program.load(insns, prog_type=ProgType.TRACING,
                        expected_attach_type=AttachType.TRACE_RAW_TP, attach_btf_id=tid)
    with attach_tracing(prog, cookie=5) as link:
        assert link.info().cookie == 5
"""

from __future__ import annotations

import errno as _errno

from pybpf import features
from pybpf._sys.attrs import LinkCreateAttr
from pybpf._sys.commands import link_create, raw_tracepoint_open
from pybpf._sys.syscall import lockdown_mode
from pybpf._sys.uapi import AttachType, LinkType, ProgType
from pybpf.errors import SyscallError, context
from pybpf.links.base import _label, check_program, prog_fd
from pybpf.links.link import Link
from pybpf.links.fallback import calls_cookie_helper, prepare
from pybpf.links.hook import Hook
from pybpf.links.info import attach_type_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["attach_tracing", "raw_tp_cookies"]

_KINDS = {
    AttachType.TRACE_RAW_TP: "tp_btf",
    AttachType.TRACE_FENTRY: "fentry",
    AttachType.TRACE_FEXIT: "fexit",
    AttachType.MODIFY_RETURN: "fmod_ret",
    AttachType.LSM_MAC: "lsm",
    AttachType.LSM_CGROUP: "lsm_cgroup",
}
_TRAMPOLINE = {AttachType.TRACE_FENTRY, AttachType.TRACE_FEXIT, AttachType.MODIFY_RETURN,
               AttachType.LSM_MAC, AttachType.LSM_CGROUP}


def raw_tp_cookies() -> bool:
    """True when raw tracepoint and tp_btf links carry a cookie (Linux 6.10)."""
    return features.has("bpf_cookie") and features.has("raw_tp_cookie")


def _kernel_cookies(program: Any, eat: Any) -> bool | None:
    """True/False when known; None: unknown (try the cookie, drop it only if unobservable)."""
    if not features.has("bpf_cookie"):
        return False
    if eat == AttachType.TRACE_RAW_TP:
        return raw_tp_cookies()
    if calls_cookie_helper(getattr(program, "insns", None)):
        # The program loaded with bpf_get_attach_cookie(): this kernel has tracing
        # cookies (the helper for these types and the link field came together, 5.19).
        return True
    return None


def _eperm_hint(kind: str) -> str:
    mode = lockdown_mode()
    if mode and mode != "none" and kind != "tp_btf":
        return f"{kind} is refused under lockdown={mode} (BPF trampolines)"
    return "operation not permitted (missing CAP_BPF/CAP_PERFMON, an LSM, or kernel lockdown)"


def attach_tracing(program: Any, *, cookie: int = 0, target_program: Any = None, fallback: bool = True) -> Link:
    """Attach a TRACING (tp_btf/fentry/fexit/fmod_ret), LSM or EXT (freplace) program; Linux 5.5.

    The target was given at load (the section's name); cookies need 5.19
    (tp_btf 6.10).  Example: ``prog.attach_tracing(cookie=1)``.
    """
    check_program(program, (ProgType.TRACING, ProgType.LSM, ProgType.EXT), "attach_tracing")
    eat = getattr(program, "expected_attach_type", None)
    if program.type == ProgType.TRACING and eat == AttachType.TRACE_ITER:
        raise TypeError(f"{_label(program)} is an iterator program; attach it with attach_iter()")
    if program.type == ProgType.LSM and eat is None:
        eat = AttachType.LSM_MAC
    kind = _KINDS.get(eat, "freplace" if program.type == ProgType.EXT else "tracing")
    with context(_label(program)), context(f"attach {kind}"):
        known = _kernel_cookies(program, eat)
        prep = prepare(program, cookie, kernel_cookies=known is not False, fallback=fallback,
                       min_kernel="6.10" if kind == "tp_btf" else "5.19", feature=f"{kind} cookie")
        try:
            fd = _create(prep.program, eat, prep.cookie, target_program, kind, known)
        except BaseException:
            prep.lease.release()
            raise
        return Link(fd, program=program, attached_program=prep.program, kind=kind, target=program.name or kind,
                    cookie=cookie, cleanups=[prep.lease.release])


def _create(prog: Any, eat: Any, cookie: int, target_program: Any, kind: str, known: bool | None) -> Any:
    attr = LinkCreateAttr(prog_fd=prog_fd(prog), attach_type=int(eat or 0))
    if target_program is not None:
        attr.target_fd = prog_fd(target_program)
    attr.u.tracing.cookie = cookie
    try:
        return link_create(attr, what=f"{kind} link")
    except SyscallError as exc:
        if exc.errno == _errno.EPERM:
            exc.hint = _eperm_hint(kind)
            raise
        if exc.errno != _errno.EINVAL:
            raise
        if cookie and known is None and not calls_cookie_helper(getattr(prog, "insns", None)):
            # An older kernel refuses the cookie field; the program never reads it.
            attr.u.tracing.cookie = 0
            try:
                return link_create(attr, what=f"{kind} link")
            except SyscallError:
                pass
        if cookie or target_program is not None:
            raise
        # Kernels before 5.10 attach tracing programs through RAW_TRACEPOINT_OPEN.
        try:
            return raw_tracepoint_open(prog_fd(prog), None)
        except SyscallError:
            raise exc from None


HOOKS = (
    Hook(attach_tracing, sections=("tp_btf", "fentry", "fexit", "fmod_ret", "lsm", "freplace"),
         prog_types=(ProgType.TRACING, ProgType.LSM, ProgType.EXT),
         attach_types=(AttachType.TRACE_RAW_TP, AttachType.TRACE_FENTRY, AttachType.TRACE_FEXIT,
                       AttachType.MODIFY_RETURN, AttachType.LSM_MAC, None),
         section_args=lambda info: {}, target_format="FUNCTION (resolved in BTF at load)", min_kernel="5.5",
         cookies=True),
)


def _info(fd: int, first: Any) -> dict[str, Any]:
    """Tracing links: attach type, target object and BTF ids, cookie (5.19)."""
    t = first.u.tracing
    return dict(attach_type=attach_type_of(t.attach_type), target_obj_id=t.target_obj_id,
                target_btf_id=t.target_btf_id, cookie=t.cookie)


LINK_INFO = {LinkType.TRACING: _info}
