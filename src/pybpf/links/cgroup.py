"""cgroup v2 programs: CGROUP_SKB, CGROUP_SOCK, CGROUP_SOCK_ADDR, SOCK_OPS, sysctl, sockopt, device.

``attach_cgroup(prog, "/sys/fs/cgroup/unified/app", "ingress")`` opens the
cgroup v2 directory and creates a cgroup link (``BPF_LINK_CREATE``, Linux
5.7); links are multi-attach (``BPF_F_ALLOW_MULTI`` semantics).  The attach
type defaults to the one the program was loaded for (``cgroup/connect4``
and friends say it in the section name); CGROUP_SKB programs need
"ingress" or "egress" (AttachType names and values work too).  On kernels
without cgroup links the program is attached with ``BPF_PROG_ATTACH``
(``BPF_F_ALLOW_MULTI``) and detached with ``BPF_PROG_DETACH`` on close.

Minimum kernel: 4.10 (PROG_ATTACH), links 5.7.

Example::

    with attach_cgroup(prog, "/sys/fs/cgroup/unified/test", "egress") as link:
        assert link.info().cgroup_id == os.stat("/sys/fs/cgroup/unified/test").st_ino
"""

from __future__ import annotations

import errno as _errno
import os

from pybpf._sys.attrs import LinkCreateAttr, ProgAttachAttr
from pybpf._sys.commands import link_create
from pybpf._sys.flags import AttachFlag
from pybpf._sys.syscall import FD, bpf, error
from pybpf._sys.uapi import AttachType, Cmd, LinkType, ProgType
from pybpf.errors import LinkError, NotFoundError, SyscallError, context
from pybpf.links.base import _label, check_program, prog_fd
from pybpf.links.link import Link
from pybpf.links.hook import Hook
from pybpf.links.info import attach_type_of
from pybpf.object.sections import SECTION_RULES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["attach_cgroup", "cgroup2_mounts"]

_CGROUP_TYPES = (
    ProgType.CGROUP_SKB, ProgType.CGROUP_SOCK, ProgType.CGROUP_SOCK_ADDR, ProgType.SOCK_OPS,
    ProgType.CGROUP_DEVICE, ProgType.CGROUP_SYSCTL, ProgType.CGROUP_SOCKOPT, ProgType.LSM,
)
_SHORT = {
    "ingress": AttachType.CGROUP_INET_INGRESS, "egress": AttachType.CGROUP_INET_EGRESS,
    "sock_create": AttachType.CGROUP_INET_SOCK_CREATE, "sock_release": AttachType.CGROUP_INET_SOCK_RELEASE,
    "sockops": AttachType.CGROUP_SOCK_OPS, "sock_ops": AttachType.CGROUP_SOCK_OPS,
    "device": AttachType.CGROUP_DEVICE, "dev": AttachType.CGROUP_DEVICE, "sysctl": AttachType.CGROUP_SYSCTL,
    "connect4": AttachType.CGROUP_INET4_CONNECT, "connect6": AttachType.CGROUP_INET6_CONNECT,
    "bind4": AttachType.CGROUP_INET4_BIND, "bind6": AttachType.CGROUP_INET6_BIND,
    "sendmsg4": AttachType.CGROUP_UDP4_SENDMSG, "sendmsg6": AttachType.CGROUP_UDP6_SENDMSG,
    "recvmsg4": AttachType.CGROUP_UDP4_RECVMSG, "recvmsg6": AttachType.CGROUP_UDP6_RECVMSG,
    "getsockopt": AttachType.CGROUP_GETSOCKOPT, "setsockopt": AttachType.CGROUP_SETSOCKOPT,
    "post_bind4": AttachType.CGROUP_INET4_POST_BIND, "post_bind6": AttachType.CGROUP_INET6_POST_BIND,
}


def cgroup2_mounts() -> list[str]:
    """Mount points of cgroup v2 file systems (``/sys/fs/cgroup`` or ``/sys/fs/cgroup/unified``)."""
    out = []
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == "cgroup2":
                    out.append(parts[1])
    except OSError:
        pass
    return out


def _attach_type(program: Any, attach_type: Any) -> AttachType:
    if attach_type is None:
        eat = getattr(program, "expected_attach_type", None)
        if eat is None:
            if program.type == ProgType.CGROUP_SKB:
                raise ValueError(f"{_label(program)}: a cgroup_skb program needs attach_type='ingress' or 'egress'")
            if program.type == ProgType.SOCK_OPS:
                return AttachType.CGROUP_SOCK_OPS
            if program.type == ProgType.CGROUP_DEVICE:
                return AttachType.CGROUP_DEVICE
            if program.type == ProgType.CGROUP_SOCK:
                return AttachType.CGROUP_INET_SOCK_CREATE
            raise ValueError(f"{_label(program)}: give the cgroup attach_type (the program was loaded without one)")
        return AttachType(eat)
    if isinstance(attach_type, str):
        key = attach_type.lower()
        if key in _SHORT:
            return _SHORT[key]
        try:
            return AttachType[attach_type.upper()]
        except KeyError:
            raise ValueError(f"unknown cgroup attach type {attach_type!r}; e.g. 'ingress', 'egress', 'connect4'") from None
    return AttachType(attach_type)


def _in_cgroup2(path: str) -> bool:
    real = os.path.realpath(path)
    return any(real == m or real.startswith(m.rstrip("/") + "/") for m in cgroup2_mounts())


def attach_cgroup(program: Any, path: str | os.PathLike[str], attach_type: Any = None) -> Link:
    """Attach a cgroup program to the cgroup v2 directory ``path``; a BPF link since Linux 5.7 (4.10 before).

    ``attach_type`` defaults to the one the program was loaded for.
    Example: ``prog.attach_cgroup("/sys/fs/cgroup/app", "egress")``.
    """
    check_program(program, _CGROUP_TYPES, "attach_cgroup")
    path = os.fspath(path)
    atype = _attach_type(program, attach_type)
    with context(_label(program)), context(f"attach_cgroup {path} {atype.name.lower()}"):
        if not os.path.isdir(path):
            raise NotFoundError(f"no cgroup directory {path}", filename=path)
        if not _in_cgroup2(path):
            mounts = cgroup2_mounts()
            raise LinkError(f"{path} is not in a cgroup v2 hierarchy"
                            + (f" (cgroup2 is mounted at {', '.join(mounts)})" if mounts
                               else " (no cgroup2 file system is mounted: mount -t cgroup2 none /sys/fs/cgroup)"))
        try:
            cg = FD(os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), "cgroup")
        except OSError as exc:
            raise error(exc.errno or _errno.EACCES, f"open {path}") from None
        try:
            attr = LinkCreateAttr(prog_fd=prog_fd(program), target_fd=cg.fileno(), attach_type=atype)
            try:
                fd = link_create(attr, what="cgroup link")
            except SyscallError as exc:
                if exc.errno != _errno.EINVAL or atype == AttachType.LSM_CGROUP:
                    raise
                return _legacy_attach(program, cg, atype, path, exc)
        except BaseException:
            cg.close()
            raise
        cg.close()
        return Link(fd, program=program, kind="cgroup", target=f"{path} {atype.name.lower()}")


def _legacy_attach(program: Any, cg: FD, atype: AttachType, path: str, first: SyscallError) -> Link:
    """BPF_PROG_ATTACH with ALLOW_MULTI (kernels before 5.7); BPF_PROG_DETACH on close."""
    pfd = prog_fd(program)
    attr = ProgAttachAttr(target_fd=cg.fileno(), attach_bpf_fd=pfd, attach_type=atype,
                          attach_flags=AttachFlag.ALLOW_MULTI)
    try:
        bpf(Cmd.PROG_ATTACH, attr, op="attach")
    except SyscallError:
        raise first from None
    # Keep our own reference to the program: PROG_DETACH with ALLOW_MULTI names it by fd.
    prog_ref = FD(os.dup(pfd), "program")

    def detach() -> None:
        try:
            bpf(Cmd.PROG_DETACH, ProgAttachAttr(target_fd=cg.fileno(), attach_bpf_fd=prog_ref.fileno(),
                                                attach_type=atype), op="detach")
        finally:
            prog_ref.close()
            cg.close()
    return Link(None, program=program, kind="cgroup", target=f"{path} {atype.name.lower()}", cleanups=[detach],
                local_info=dict(link_type=LinkType.CGROUP, attach_type=atype, cgroup_id=os.stat(path).st_ino))


HOOKS = (
    Hook(attach_cgroup, sections=tuple(k for k, (pt, _, _) in SECTION_RULES.items()
                                       if pt in _CGROUP_TYPES and pt != ProgType.LSM or k == "lsm_cgroup"),
         prog_types=_CGROUP_TYPES,
         section_args=lambda info: {"attach_type": info.attach_type} if info.attach_type is not None else {},
         needs={"path": "a cgroup program needs a cgroup v2 directory"}, aliases={"cgroup": "path"},
         min_kernel="4.10"),
)


def _info(fd: int, first: Any) -> dict[str, Any]:
    """Cgroup links: the cgroup's id and the attach type."""
    return dict(cgroup_id=first.u.cgroup.cgroup_id, attach_type=attach_type_of(first.u.cgroup.attach_type))


LINK_INFO = {LinkType.CGROUP: _info}
