"""tc: a SCHED_CLS program on an interface's ingress or egress, through tcx or a tc filter.

``attach_tc(prog, "eth0", "ingress")`` creates a tcx link
(``BPF_LINK_CREATE`` with ``BPF_TCX_INGRESS``/``BPF_TCX_EGRESS``, Linux 6.6)
where the kernel has them (``features.has("tcx")``).  tcx keeps several
programs per direction in order: ``before=``/``after=`` place the new one
relative to an attached Program or Link (default: last).  Return codes are
tcx's (``TCX_NEXT`` -1, ``TCX_PASS`` 0, ``TCX_DROP`` 2, ``TCX_REDIRECT`` 7);
classic ``TC_ACT_UNSPEC`` (-1), ``TC_ACT_OK`` (0) and ``TC_ACT_SHOT`` (2)
mean the same.

Older kernels, or a call that gives ``priority=``/``handle=`` (properties of a
classic filter), attach a direct-action ``bpf`` filter (cls_bpf) through
rtnetlink, as ``tc filter add dev eth0 ingress bpf da fd N`` does.  The
result is a :class:`TcNetlinkLink`:

* a ``clsact`` qdisc is created on the interface when it has none; it is
  removed again when the last pybpf filter on a clsact pybpf created closes
  and no other filter is left under it (a qdisc someone else made stays);
* filters run in priority order, lowest first; without ``priority=`` pybpf
  picks the one after every filter of that direction (49152 on an empty
  one), so the new program runs last as with tcx; ``before=``/``after=`` an
  attached Program or TcNetlinkLink pick a free priority just before or
  after it; ``handle`` defaults to 1;
* ``close()`` deletes exactly our filter (priority and handle, and only
  while it still runs our program); ``update(program)`` swaps its program in
  place; ``info()`` reads it back: ``type`` TCX (the hook), ``id`` 0 (no
  kernel link), ``via`` "netlink", ``priority``, ``handle``, ``attach_type``;
* ``pin()`` raises NotSupportedError.  A filter is not tied to the process:
  if it dies without closing the Link, the filter stays (``tc filter del dev
  eth0 ingress pref P handle H bpf`` removes it).

An interface with a plain ``ingress`` qdisc takes ingress filters but has no
egress hook: attaching to egress there raises LinkError.

Minimum kernel: 4.1 (cls_bpf direct-action), 4.5 (clsact), 6.6 (tcx).

Example::

    with attach_tc(prog, "veth0", "egress") as link:
        assert link.info().attach_type == AttachType.TCX_EGRESS
"""

from __future__ import annotations

import errno as _errno
from _thread import RLock   # threading.RLock itself, without importing threading

from pybpf import features
from pybpf._sys.commands import prog_id_of as _prog_id
from pybpf._sys.attrs import LinkCreateAttr
from pybpf._sys.commands import link_create
from pybpf._sys.flags import AttachFlag
from pybpf._sys.uapi import AttachType, LinkType, ProgType
from pybpf.errors import BPFError, LinkError, NotSupportedError, SyscallError, context
from pybpf.links import _netlink as nl_
from pybpf.links.base import _label, check_program, prog_fd
from pybpf.links.info import LinkInfo
from pybpf.links.link import Link
from pybpf.links.xdp import ifindex
from pybpf.links.hook import Hook
from pybpf.links.info import attach_type_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["attach_tc", "TcNetlinkLink"]

_DIRECTIONS = {"ingress": AttachType.TCX_INGRESS, "egress": AttachType.TCX_EGRESS}
_PARENTS = {"ingress": nl_.tc_h_make(nl_.TC_H_CLSACT, nl_.TC_H_MIN_INGRESS),
            "egress": nl_.tc_h_make(nl_.TC_H_CLSACT, nl_.TC_H_MIN_EGRESS)}
_FIRST_PRIORITY = 0xC000  # where the kernel itself starts when asked to pick (tcf_auto_prio)
_MAX_PRIORITY = 0xFFFF


def _relative(obj: Any) -> tuple[int, int]:
    """(fd, extra flag) for before=/after=: a Link adds BPF_F_LINK."""
    if isinstance(obj, TcNetlinkLink):
        raise LinkError(f"{obj!r} is a classic tc filter; tcx links always run before classic filters, "
                        "so a tcx program cannot be placed relative to one")
    if isinstance(obj, Link):
        return obj.fd, AttachFlag.LINK
    return prog_fd(obj), 0


def attach_tc(program: Any, ifname_or_index: str | int, direction: str = "ingress", *,
              before: Any = None, after: Any = None, expected_revision: int = 0,
              priority: int | None = None, handle: int | None = None) -> Link:
    """Attach a SCHED_CLS program to ``direction`` ("ingress"/"egress") of an interface.

    tcx (Linux 6.6) where the kernel has it, else a clsact qdisc and a
    direct-action bpf filter (Linux 4.5); ``priority=``/``handle=`` ask for the
    classic filter.

    Example: ``prog.attach_tc("eth0", "egress")``.
    """
    check_program(program, (ProgType.SCHED_CLS, ProgType.SCHED_ACT), "attach_tc")
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction must be 'ingress' or 'egress', not {direction!r}")
    if before is not None and after is not None:
        raise ValueError("give before= or after=, not both")
    if priority is not None and (before is not None or after is not None):
        raise ValueError("give priority= or before=/after=, not both")
    if priority is not None and not (isinstance(priority, int) and 1 <= priority <= _MAX_PRIORITY):
        raise ValueError(f"a tc filter priority is 1..{_MAX_PRIORITY}, not {priority!r}")
    if handle is not None and not (isinstance(handle, int) and 1 <= handle <= 0xFFFFFFFF):
        raise ValueError(f"a tc filter handle is 1..0xffffffff, not {handle!r}")
    index, name = ifindex(ifname_or_index)
    with context(_label(program)), context(f"attach_tc {name} {direction}"):
        classic = priority is not None or handle is not None
        if not classic and features.has("tcx"):
            return _attach_tcx(program, index, name, direction, before, after, expected_revision)
        if expected_revision:
            if classic and features.has("tcx"):
                raise ValueError("expected_revision= is a tcx option; it does not combine with priority=/handle=")
            raise NotSupportedError("tcx", features.FEATURES["tcx"].min_kernel,
                                    "expected_revision= needs tcx links; classic tc filters have no revision")
        return _attach_classic(program, index, name, direction, priority, handle, before, after)


def _attach_tcx(program: Any, index: int, name: str, direction: str, before: Any, after: Any,
                expected_revision: int) -> Link:
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


# -- classic filters through netlink ----------------------------------------------------

# clsact qdiscs pybpf created, by (network namespace, ifindex): how many of our filters use each.
# Reentrant: a garbage-collected TcNetlinkLink may be finalized while this thread holds the lock.
_qdisc_lock = RLock()
_our_qdiscs: dict[tuple[int, int], int] = {}


def _release_qdisc(nl: nl_.RtNetlink, key: tuple[int, int]) -> None:
    """One of our filters on a clsact we created is gone; remove the qdisc once nothing uses it.

    Call with _qdisc_lock held.
    """
    left = _our_qdiscs.get(key, 0) - 1
    if left > 0:
        _our_qdiscs[key] = left
        return
    _our_qdiscs.pop(key, None)
    index = key[1]
    try:
        if any(nl_.filters(nl, index, parent) for parent in _PARENTS.values()):
            return  # someone else's filters live under it: leave it
        nl_.del_clsact(nl, index)
    except SyscallError as exc:
        if exc.errno not in (_errno.ENOENT, _errno.EINVAL, _errno.ENODEV):
            raise


class _TcAttachment:
    """What the finalizer of a :class:`TcNetlinkLink` needs (never the link itself)."""

    __slots__ = ("ifindex", "ifname", "direction", "parent", "priority", "handle", "prog_id", "qdisc_key",
                 "detached")

    def __init__(self, ifindex: int, ifname: str, direction: str, priority: int, handle: int, prog_id: int,
                 qdisc_key: tuple[int, int] | None) -> None:
        self.ifindex, self.ifname, self.direction = ifindex, ifname, direction
        self.parent = _PARENTS[direction]
        self.priority, self.handle, self.prog_id = priority, handle, prog_id
        self.qdisc_key = qdisc_key  # set when the clsact qdisc is one pybpf created
        self.detached = False

    def current(self, nl: nl_.RtNetlink) -> nl_.TcFilter | None:
        return nl_.get_filter(nl, self.ifindex, self.parent, self.priority, self.handle)

    def ours(self, flt: nl_.TcFilter | None) -> bool:
        """Whether ``flt`` is our filter still running our program (ids: Linux 4.13)."""
        return flt is not None and (not flt.prog_id or not self.prog_id or flt.prog_id == self.prog_id)

    def detach(self) -> None:
        """Delete our filter (if it is still ours), then drop the qdisc if we made it and it is unused."""
        with _qdisc_lock, nl_.RtNetlink() as nl:
            if self.detached:
                return
            if self.ours(self.current(nl)):
                try:
                    nl_.del_filter(nl, self.ifindex, self.parent, self.priority, self.handle)
                except SyscallError as exc:
                    if exc.errno not in (_errno.ENOENT, _errno.ENODEV, _errno.EINVAL):
                        raise  # still attached: a later close() tries again
            self.detached = True
            if self.qdisc_key is not None:
                _release_qdisc(nl, self.qdisc_key)


class TcNetlinkLink(nl_.NetlinkLink):
    """A SCHED_CLS program in a direct-action bpf filter under clsact, made through rtnetlink.

    ``priority`` and ``handle`` name the filter (``tc filter show dev X
    ingress`` lists it); closing the Link deletes it.  It cannot be pinned.
    """

    _gone = "the filter"
    _pin_refusal = ("pinning a tc filter attached through netlink", "6.6",
                    "only BPF links (tcx) can be pinned; a netlink filter lasts until this Link deletes it "
                    "(or the interface goes away)")

    def __init__(self, attachment: _TcAttachment, *, program: Any) -> None:
        super().__init__(None, program=program, kind="tc",
                         target=f"{attachment.ifname}/{attachment.direction}", cleanups=[attachment.detach])
        self._att = attachment

    @property
    def _what(self) -> str:
        return f"tc filter {self.target} pref {self._att.priority} handle {self._att.handle:#x} (netlink)"

    @property
    def ifindex(self) -> int:
        return self._att.ifindex

    @property
    def direction(self) -> str:
        return self._att.direction

    @property
    def priority(self) -> int:
        return self._att.priority

    @property
    def handle(self) -> int:
        return self._att.handle

    def update(self, program: Any, *, old_program: Any = None) -> None:
        """Swap the filter's program in place (RTM_NEWTFILTER without NLM_F_CREATE).

        With ``old_program`` the swap only happens if that program runs in the
        filter now; the check and the swap are two requests, not one.
        """
        self._check_open("update")
        check_program(program, (ProgType.SCHED_CLS,), "update")
        att = self._att
        fd = prog_fd(program)
        with context(self._what), context("update"), nl_.RtNetlink() as nl:
            flt = att.current(nl)
            if flt is None:
                raise LinkError(f"the filter is gone from {att.ifname} {att.direction}")
            expected = _prog_id(prog_fd(old_program)) if old_program is not None else att.prog_id
            if flt.prog_id and expected and flt.prog_id != expected:
                raise SyscallError(f"netlink RTM_NEWTFILTER: {_errno.errorcode[_errno.EEXIST]}", errno=_errno.EEXIST,
                                   hint=f"the filter runs program id {flt.prog_id}, not the expected id {expected}")
            nl_.add_bpf_filter(nl, att.ifindex, att.parent, att.priority, att.handle, fd,
                               _filter_name(program), create=False)
        att.prog_id = _prog_id(fd)
        self.program = program
        self.attached_program = program

    def info(self) -> LinkInfo:
        """The filter as the kernel reports it; ``prog_id`` 0 once it is gone."""
        if self.closed:
            raise LinkError(f"{self._what}: info: the link is closed")
        att = self._att
        with context(self._what), context("info"), nl_.RtNetlink() as nl:
            flt = att.current(nl)
        prog_id = (flt.prog_id or att.prog_id) if flt is not None else 0
        return LinkInfo(type=LinkType.TCX, id=0, prog_id=prog_id, details=dict(
            ifindex=att.ifindex, ifname=att.ifname, attach_type=_DIRECTIONS[att.direction],
            direction=att.direction, priority=att.priority, handle=att.handle, via="netlink",
            direct_action=flt.direct_action if flt is not None else False,
            attached=att.ours(flt) and not att.detached, qdisc_created=att.qdisc_key is not None))


def _filter_name(program: Any) -> str:
    name = getattr(program, "name", "")
    return name if isinstance(name, str) and name else "pybpf"


def _check_qdisc(nl: nl_.RtNetlink, index: int, name: str, direction: str) -> None:
    """A qdisc already sits at clsact's place: it must be clsact (or ingress, for ingress filters)."""
    found = [q for q in nl_.qdiscs(nl, index) if q.parent == nl_.TC_H_CLSACT or q.handle == nl_.CLSACT_HANDLE]
    kinds = {q.kind for q in found}
    if "clsact" in kinds or ("ingress" in kinds and direction == "ingress"):
        return
    if "ingress" in kinds:
        raise LinkError(f"{name} has an 'ingress' qdisc, which has no egress hook; replace it with clsact "
                        f"(tc qdisc del dev {name} ingress) to attach to egress")
    raise LinkError(f"cannot create a clsact qdisc on {name}: the kernel says one exists but lists "
                    f"{', '.join(sorted(kinds)) or 'none'}")


def _reference_priority(obj: Any, filters: list[nl_.TcFilter], index: int, name: str, direction: str) -> int:
    """The priority of the filter ``obj`` (a TcNetlinkLink or an attached Program) for before=/after=."""
    if isinstance(obj, TcNetlinkLink):
        if obj.closed or obj._att.detached:
            raise LinkError(f"{obj!r} is closed; it cannot be a reference for before=/after=")
        if obj.ifindex != index or obj.direction != direction:
            raise LinkError(f"{obj!r} is not on {name} {direction}")
        return obj.priority
    if isinstance(obj, Link):
        raise LinkError(f"{obj!r} is not a classic tc filter; tcx links run before every classic filter, "
                        "so a filter cannot be placed relative to one")
    prog_id = _prog_id(prog_fd(obj))
    for flt in filters:
        if flt.handle and prog_id and flt.prog_id == prog_id:
            return flt.priority
    raise LinkError(f"{_label(obj)} is not attached to {name} {direction} as a tc filter")


def _choose_priority(filters: list[nl_.TcFilter], before: int | None, after: int | None) -> int | None:
    """A free priority: just below ``before``, just above ``after``, else after every filter."""
    used = {flt.priority for flt in filters}
    if before is not None:
        return next((p for p in range(before - 1, 0, -1) if p not in used), None)
    if after is not None:
        return next((p for p in range(after + 1, _MAX_PRIORITY + 1) if p not in used), None)
    if not used:
        return _FIRST_PRIORITY
    top = max(used) + 1
    return top if top <= _MAX_PRIORITY else None


def _add_filter(nl: nl_.RtNetlink, program: Any, index: int, name: str, direction: str,
                priority: int | None, handle: int, before: Any, after: Any) -> int:
    """Add our filter; the priority it got.  A priority we chose that someone takes meanwhile is chosen again."""
    parent = _PARENTS[direction]
    fd = prog_fd(program)
    for _attempt in range(5):
        chosen = priority
        if chosen is None:
            existing = nl_.filters(nl, index, parent)
            ref_before = _reference_priority(before, existing, index, name, direction) if before is not None else None
            ref_after = _reference_priority(after, existing, index, name, direction) if after is not None else None
            chosen = _choose_priority(existing, ref_before, ref_after)
            if chosen is None:
                where = "before the reference filter" if before is not None else "after the reference filter" \
                    if after is not None else "after the last filter"
                raise LinkError(f"no free tc priority {where} on {name} {direction}; give priority=")
        try:
            nl_.add_bpf_filter(nl, index, parent, chosen, handle, fd, _filter_name(program))
            return chosen
        except SyscallError as exc:
            if exc.errno == _errno.EEXIST and priority is None:
                continue  # raced with another writer: choose again
            said = getattr(exc, "kernel_message", None)
            ours = None
            if exc.errno == _errno.EEXIST:
                ours = f"{name} {direction} already has a filter with priority {chosen} and handle {handle:#x}"
            elif exc.errno == _errno.EINVAL and said and "protocol" in said.lower():
                ours = f"priority {chosen} on {name} {direction} belongs to filters of another kind or protocol"
            elif exc.errno == _errno.ENOENT and not said:
                ours = "this kernel has no bpf classifier (cls_bpf, Linux 4.1)"
            if ours:
                exc.hint = f"{ours}; the kernel says: {said}" if said else ours
            raise
    raise LinkError(f"could not add a filter to {name} {direction}: its priorities kept changing")


def _attach_classic(program: Any, index: int, name: str, direction: str, priority: int | None,
                    handle: int | None, before: Any, after: Any) -> TcNetlinkLink:
    if program.type == ProgType.SCHED_ACT:
        raise NotSupportedError("bpf filters of SCHED_ACT programs", None,
                                "a tc bpf filter runs SCHED_CLS programs (SCHED_ACT programs are tc actions); "
                                "load the program as SCHED_CLS")
    handle = 1 if handle is None else handle
    key = (nl_.netns_id(), index)
    with _qdisc_lock, nl_.RtNetlink() as nl:
        try:
            created = nl_.add_clsact(nl, index)
        except SyscallError as exc:
            if exc.errno in (_errno.ENOENT, _errno.EINVAL) and not getattr(exc, "kernel_message", None):
                exc.hint = "this kernel may have no clsact qdisc (Linux 4.5, CONFIG_NET_SCH_INGRESS)"
            raise
        if created:
            _our_qdiscs.setdefault(key, 0)
        else:
            _check_qdisc(nl, index, name, direction)
        ours = key in _our_qdiscs
        if ours:
            _our_qdiscs[key] += 1  # counted before the filter exists, so no finalizer removes the qdisc meanwhile
        try:
            chosen = _add_filter(nl, program, index, name, direction, priority, handle, before, after)
        except BaseException:
            if ours:
                try:
                    _release_qdisc(nl, key)
                except BPFError:
                    pass  # the attach error matters more
            raise
    attachment = _TcAttachment(index, name, direction, chosen, handle, _prog_id(prog_fd(program)),
                               key if ours else None)
    return TcNetlinkLink(attachment, program=program)


def _section_args(info: Any) -> dict[str, Any]:
    if info.attach_type is None:
        return {}
    return {"direction": "egress" if info.attach_type == AttachType.TCX_EGRESS else "ingress"}


HOOKS = (
    Hook(attach_tc, sections=("tc", "classifier", "action", "tc/ingress", "tc/egress", "tcx/ingress",
                              "tcx/egress"),
         prog_types=(ProgType.SCHED_CLS, ProgType.SCHED_ACT), section_args=_section_args,
         needs={"ifname_or_index": "tc needs an interface"},
         aliases={"interface": "ifname_or_index", "ifname": "ifname_or_index"}, min_kernel="4.5"),
)


def _info(fd: int, first: Any) -> dict[str, Any]:
    """tcx and netkit links: the interface and the direction."""
    return dict(ifindex=first.u.tcx.ifindex, attach_type=attach_type_of(first.u.tcx.attach_type))


LINK_INFO = {LinkType.TCX: _info, LinkType.NETKIT: _info}
