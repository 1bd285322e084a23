"""tc: a SCHED_CLS program on an interface's ingress or egress, through a tcx link.

``attach_tc(prog, "eth0", "ingress")`` creates a tcx link
(``BPF_LINK_CREATE`` with ``BPF_TCX_INGRESS``/``BPF_TCX_EGRESS``, Linux 6.6).
tcx keeps several programs per direction in order: ``before=``/``after=``
place the new one relative to an attached Program or Link (default: last).
Return codes are tcx's (``TCX_NEXT`` -1, ``TCX_PASS`` 0, ``TCX_DROP`` 2,
``TCX_REDIRECT`` 7); classic ``TC_ACT_OK`` (0) and ``TC_ACT_SHOT`` (2) mean
the same.

Minimum kernel: 6.6.  Older kernels need a clsact qdisc and a bpf filter
made through netlink, which pybpf does not do: NotSupportedError("tcx").

Example::

    with attach_tc(prog, "veth0", "egress") as link:
        assert link.info().attach_type == AttachType.TCX_EGRESS
"""

from __future__ import annotations

import errno as _errno
from typing import Any

from pybpf import features
from pybpf._sys.attrs import LinkCreateAttr
from pybpf._sys.commands import link_create
from pybpf._sys.flags import AttachFlag
from pybpf._sys.uapi import AttachType, ProgType
from pybpf.errors import NotSupportedError, SyscallError, context
from pybpf.links.base import Link, _label, check_program, prog_fd
from pybpf.links.xdp import ifindex

__all__ = ["attach_tc"]

_DIRECTIONS = {"ingress": AttachType.TCX_INGRESS, "egress": AttachType.TCX_EGRESS}


def _relative(obj: Any) -> tuple[int, int]:
    """(fd, extra flag) for before=/after=: a Link adds BPF_F_LINK."""
    from pybpf.links.base import Link as _Link

    if isinstance(obj, _Link):
        return obj.fd, AttachFlag.LINK
    return prog_fd(obj), 0


def attach_tc(program: Any, ifname_or_index: str | int, direction: str = "ingress", *,
              before: Any = None, after: Any = None, expected_revision: int = 0) -> Link:
    """Attach a SCHED_CLS program to ``direction`` ("ingress"/"egress") of an interface (tcx)."""
    check_program(program, (ProgType.SCHED_CLS, ProgType.SCHED_ACT), "attach_tc")
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction must be 'ingress' or 'egress', not {direction!r}")
    if before is not None and after is not None:
        raise ValueError("give before= or after=, not both")
    index, name = ifindex(ifname_or_index)
    with context(_label(program)), context(f"attach_tc {name} {direction}"):
        features.require("tcx")
        attr = LinkCreateAttr(prog_fd=prog_fd(program), target_fd=index, attach_type=_DIRECTIONS[direction])
        if before is not None:
            fd, extra = _relative(before)
            attr.flags = AttachFlag.BEFORE | extra
            attr.u.tcx.relative_fd = fd
        elif after is not None:
            fd, extra = _relative(after)
            attr.flags = AttachFlag.AFTER | extra
            attr.u.tcx.relative_fd = fd
        attr.u.tcx.expected_revision = expected_revision
        try:
            link = link_create(attr, what="tcx link")
        except SyscallError as exc:
            if exc.errno == _errno.EINVAL and program.type == ProgType.SCHED_ACT:
                raise NotSupportedError("tcx for SCHED_ACT programs", None,
                                        "tcx takes SCHED_CLS programs; load the program as SCHED_CLS") from None
            if exc.errno == _errno.ESTALE:
                exc.hint = "the tcx revision changed (expected_revision no longer matches)"
            raise
        return Link(link, program=program, kind="tcx", target=f"{name}/{direction}")
