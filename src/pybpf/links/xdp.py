"""XDP: an XDP program on a network interface, through a BPF link or netlink.

``attach_xdp(prog, "eth0", mode="skb")`` creates an XDP link
(``BPF_LINK_CREATE`` with ``BPF_XDP``, Linux 5.9) where the kernel has them
(``features.has("xdp_link")``).  ``mode`` is None (the driver's native mode
when it has one, else generic), "skb" (generic XDP, works on every device),
"drv" (native; the driver must support it) or "hw" (offloaded).  Interfaces
are named or given by index, in the caller's network namespace.  A link
cannot be replaced by another attach (EBUSY): use :meth:`Link.update` to swap
the program.

Older kernels attach through rtnetlink (``RTM_SETLINK`` with ``IFLA_XDP``,
Linux 4.8), as ``ip link set dev eth0 xdp ...`` does; the result is an
:class:`XdpNetlinkLink`:

* the attach refuses to replace a program already on the interface
  (``XDP_FLAGS_UPDATE_IF_NOEXIST``) unless ``replace=True``; a replaced
  program is not restored when the link closes;
* ``close()`` detaches only if our program is still the one attached
  (``IFLA_XDP_EXPECTED_FD`` with ``XDP_FLAGS_REPLACE``, Linux 5.7; before
  5.7 the attached program's id is compared first, which is not atomic);
* ``update(program)`` swaps the program the same way;
* ``info()`` reads the interface's state: ``type`` XDP, ``id`` 0 (there is no
  kernel link), ``via`` "netlink", ``mode``, ``ifindex``;
* ``pin()`` raises NotSupportedError: only BPF links can be pinned.  The
  attachment is not tied to the process either: if it dies without closing
  the Link, the program stays on the interface (``ip link set dev eth0 xdp
  off`` removes it).

``replace=`` only matters for netlink: a BPF link never replaces an
attachment (EBUSY names what holds the interface).

Minimum kernel: 4.8 (netlink XDP; generic "skb" mode 4.12), 5.9 (XDP links).

Example::

    with attach_xdp(prog, "veth0", mode="skb") as link:
        assert link.info().ifindex == socket.if_nametoindex("veth0")
"""

from __future__ import annotations

import errno as _errno
import os

from pybpf import features
from pybpf._sys.commands import prog_id_of as _prog_id
from pybpf._sys.attrs import LinkCreateAttr
from pybpf._sys.commands import link_create
from pybpf._sys.flags import XdpFlag
from pybpf._sys.syscall import FD
from pybpf._sys.uapi import AttachType, LinkType, ProgType
from pybpf.errors import LinkError, NameNotFoundError, NotSupportedError, SyscallError, context
from pybpf.links import _netlink as nl_
from pybpf.links.base import _label, check_program, prog_fd
from pybpf.links.info import LinkInfo
from pybpf.links.link import Link
from pybpf.links.hook import Hook

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["attach_xdp", "ifindex", "XdpNetlinkLink"]

_MODES = {None: 0, "skb": XdpFlag.SKB_MODE, "generic": XdpFlag.SKB_MODE, "drv": XdpFlag.DRV_MODE,
          "native": XdpFlag.DRV_MODE, "hw": XdpFlag.HW_MODE, "offload": XdpFlag.HW_MODE}
_MODE_BITS = XdpFlag.SKB_MODE | XdpFlag.DRV_MODE | XdpFlag.HW_MODE


def ifindex(ifname_or_index: str | int) -> tuple[int, str]:
    """(index, name) of a network interface in this network namespace; ValueError/LookupError."""
    import socket   # here: importing the hooks must not import the socket stack

    if isinstance(ifname_or_index, bool):
        raise TypeError("an interface is a name or an index")
    if isinstance(ifname_or_index, int):
        if ifname_or_index <= 0:
            raise ValueError(f"invalid interface index {ifname_or_index}")
        try:
            return ifname_or_index, socket.if_indextoname(ifname_or_index)
        except OSError:
            raise NameNotFoundError(f"no network interface with index {ifname_or_index} in this network namespace") from None
    if not isinstance(ifname_or_index, str) or not ifname_or_index:
        raise TypeError(f"an interface is a name or an index, not {ifname_or_index!r}")
    try:
        return socket.if_nametoindex(ifname_or_index), ifname_or_index
    except OSError:
        raise NameNotFoundError(f"no network interface {ifname_or_index!r} in this network namespace") from None


def _mode_flags(mode: Any) -> int:
    if isinstance(mode, (int, XdpFlag)) and not isinstance(mode, bool):
        return int(mode)
    key = mode.lower() if isinstance(mode, str) else mode
    if key not in _MODES:
        raise ValueError(f"unknown XDP mode {mode!r}; use None, 'skb', 'drv' or 'hw'")
    return int(_MODES[key])


def _mode_name(flags: int) -> str | None:
    for bit, name in ((XdpFlag.SKB_MODE, "skb"), (XdpFlag.DRV_MODE, "drv"), (XdpFlag.HW_MODE, "hw")):
        if flags & bit:
            return name
    return None


def attach_xdp(program: Any, ifname_or_index: str | int, *, mode: str | int | None = None,
               flags: int = 0, replace: bool = False) -> Link:
    """Attach an XDP program to an interface: an XDP link (5.9), else netlink (4.8).

    ``replace=True`` lets the netlink attach replace a program already on the
    interface (never one held by a BPF link).

    Example: ``prog.attach_xdp("eth0", mode="skb")``.
    """
    check_program(program, (ProgType.XDP,), "attach_xdp")
    index, name = ifindex(ifname_or_index)
    link_flags = _mode_flags(mode) | int(flags)
    with context(_label(program)), context(f"attach_xdp {name}"):
        if not features.has("xdp_link"):
            return _attach_netlink(program, index, name, link_flags, replace)
        attr = LinkCreateAttr(prog_fd=prog_fd(program), target_fd=index, attach_type=AttachType.XDP,
                              flags=link_flags)
        try:
            fd = link_create(attr, what="xdp link")
        except SyscallError as exc:
            if exc.errno == _errno.EBUSY:
                exc.hint = f"{name} already has an XDP program (another link or a netlink attach); detach it first"
                if replace:
                    exc.hint += " (replace=True only applies to netlink attachments: a BPF link never replaces one)"
            elif exc.errno == _errno.EOPNOTSUPP and mode in ("drv", "native"):
                exc.hint = f"the driver of {name} has no native XDP; use mode='skb'"
            elif exc.errno == _errno.EINVAL and getattr(program, "expected_attach_type", None) not in (None, AttachType.XDP):
                exc.hint = "the program was loaded for a devmap/cpumap, not for an interface"
            elif exc.errno == _errno.EINVAL:
                raise NotSupportedError("xdp link", "5.9", str(exc)) from None
            raise
        return Link(fd, program=program, kind="xdp", target=name)


# -- netlink (kernels before 5.9) ------------------------------------------------------

def _explain(exc: SyscallError, name: str, flags: int, program: Any) -> None:
    """Put what to do first in the hint of a refused RTM_SETLINK, the kernel's words after."""
    if getattr(exc, "explained", False):
        return
    said = getattr(exc, "kernel_message", None) or ""
    ours = None
    if exc.errno == _errno.EBUSY and "link" in said.lower():
        ours = f"{name} has an XDP program held by a BPF link, which netlink cannot replace; close that link"
    elif exc.errno == _errno.EBUSY:
        ours = f"{name} already has an XDP program; pass replace=True to replace it"
    elif exc.errno == _errno.EEXIST and "expected" in said.lower():
        ours = f"the XDP program on {name} is no longer the one this link attached"
    elif exc.errno == _errno.EEXIST and ("native" in said.lower() or not said):
        ours = (f"{name} already has an XDP program in the other mode (generic and native XDP cannot be "
                "active at once); detach it or attach with the same mode")
    elif exc.errno == _errno.EOPNOTSUPP and flags & (XdpFlag.DRV_MODE | XdpFlag.HW_MODE):
        kind = "native" if flags & XdpFlag.DRV_MODE else "offloaded"
        ours = f"the driver of {name} has no {kind} XDP; use mode='skb'"
    elif exc.errno == _errno.EINVAL and getattr(program, "expected_attach_type", None) not in (None, AttachType.XDP):
        ours = "the program was loaded for a devmap/cpumap, not for an interface"
    elif exc.errno == _errno.ENODEV:
        ours = f"the interface {name} went away"
    if ours:
        exc.hint = f"{ours}; the kernel says: {said}" if said else ours


class _XdpAttachment:
    """What the finalizer of an :class:`XdpNetlinkLink` needs (never the link itself)."""

    __slots__ = ("ifindex", "ifname", "flags", "prog", "prog_id", "detached")

    def __init__(self, ifindex: int, ifname: str, flags: int, prog: FD) -> None:
        self.ifindex, self.ifname, self.flags = ifindex, ifname, flags
        self.prog = prog                      # our own dup of the program fd: IFLA_XDP_EXPECTED_FD
        self.prog_id = _prog_id(prog.fileno())
        self.detached = False

    @property
    def mode(self) -> str | None:
        return _mode_name(self.flags)

    def swap(self, nl: nl_.RtNetlink, new_fd: int, expected_fd: int, expected_id: int) -> None:
        """Replace the program (new_fd -1: detach) only if ``expected`` is the one attached."""
        mode_flags = self.flags & _MODE_BITS
        try:
            nl_.xdp_set(nl, self.ifindex, new_fd, mode_flags | XdpFlag.REPLACE, expected_fd=expected_fd)
            return
        except SyscallError as exc:
            # Linux < 5.7 rejects XDP_FLAGS_REPLACE with a bare EINVAL (no extended ack message).
            if exc.errno != _errno.EINVAL or getattr(exc, "kernel_message", None):
                raise
        current = nl_.xdp_query(nl, self.ifindex).prog_id_in(self.mode)
        if expected_id and current != expected_id:
            exc = SyscallError(f"netlink RTM_SETLINK IFLA_XDP: {_errno.errorcode[_errno.EEXIST]}",
                               errno=_errno.EEXIST,
                               hint=f"the XDP program on {self.ifname} (id {current}) is no longer the expected "
                                    f"one (id {expected_id})")
            exc.explained = True  # type: ignore[attr-defined]
            raise exc
        nl_.xdp_set(nl, self.ifindex, new_fd, mode_flags)

    def detach(self) -> None:
        if self.detached:
            return
        try:
            with nl_.RtNetlink() as nl:
                self.swap(nl, -1, self.prog.fileno(), self.prog_id)
        except SyscallError as exc:
            # The interface is gone (ENODEV), or another program replaced ours (EEXIST): nothing to undo.
            if exc.errno not in (_errno.ENODEV, _errno.EEXIST):
                raise
        self.detached = True

    def release(self) -> None:
        """The finalizer: detach, then close our program fd whatever happened."""
        try:
            self.detach()
        finally:
            self.prog.close()


class XdpNetlinkLink(nl_.NetlinkLink):
    """An XDP program attached through rtnetlink (IFLA_XDP): no BPF link behind it.

    It detaches on close, swaps programs with :meth:`update` and describes
    the interface's state with :meth:`info`; it cannot be pinned.
    """

    _gone = "the program"
    _pin_refusal = ("pinning an XDP program attached through netlink", "5.9",
                    "only BPF links can be pinned; a netlink attachment lasts until this Link detaches it "
                    "(or the interface goes away)")

    def __init__(self, attachment: _XdpAttachment, *, program: Any, target: str) -> None:
        super().__init__(None, program=program, kind="xdp", target=target, cleanups=[attachment.release])
        self._att = attachment

    @property
    def _what(self) -> str:
        return f"xdp attachment {self.target} (netlink)"

    @property
    def ifindex(self) -> int:
        return self._att.ifindex

    @property
    def mode(self) -> str | None:
        """The mode asked for ("skb", "drv", "hw"), or None for the kernel's choice."""
        return self._att.mode

    def update(self, program: Any, *, old_program: Any = None) -> None:
        """Swap in ``program`` if ours (or ``old_program``) is still the one attached (XDP_FLAGS_REPLACE, 5.7)."""
        self._check_open("update")
        check_program(program, (ProgType.XDP,), "update")
        att = self._att
        with context(self._what), context("update"):
            new = FD(os.dup(prog_fd(program)), "xdp program")
            try:
                if old_program is not None:
                    expected_fd = prog_fd(old_program)
                    expected_id = _prog_id(expected_fd)
                else:
                    expected_fd, expected_id = att.prog.fileno(), att.prog_id
                with nl_.RtNetlink() as nl:
                    try:
                        att.swap(nl, new.fileno(), expected_fd, expected_id)
                    except SyscallError as exc:
                        _explain(exc, att.ifname, att.flags, program)
                        raise
            except BaseException:
                new.close()
                raise
        old, att.prog, att.prog_id = att.prog, new, _prog_id(new.fileno())
        old.close()
        self.program = program
        self.attached_program = program

    def info(self) -> LinkInfo:
        """The interface's XDP state: ``prog_id`` is what runs there now in our mode (0: nothing)."""
        if self.closed:
            raise LinkError(f"{self._what}: info: the link is closed")
        att = self._att
        with context(self._what), context("info"):
            with nl_.RtNetlink() as nl:
                state = nl_.xdp_query(nl, att.ifindex)
        current = state.prog_id_in(att.mode)
        mode = att.mode or (state.mode if state.mode != "multi" else None)
        return LinkInfo(type=LinkType.XDP, id=0, prog_id=current,
                        details=dict(ifindex=att.ifindex, ifname=att.ifname, mode=mode, via="netlink",
                                     attached=bool(current) and current == att.prog_id and not att.detached))


def _attach_netlink(program: Any, index: int, name: str, flags: int, replace: bool) -> XdpNetlinkLink:
    """RTM_SETLINK IFLA_XDP with XDP_FLAGS_UPDATE_IF_NOEXIST unless ``replace``."""
    prog = FD(os.dup(prog_fd(program)), "xdp program")
    try:
        request = flags if replace else flags | XdpFlag.UPDATE_IF_NOEXIST
        with nl_.RtNetlink() as nl:
            try:
                nl_.xdp_set(nl, index, prog.fileno(), request)
            except SyscallError as exc:
                _explain(exc, name, flags, program)
                raise
        attachment = _XdpAttachment(index, name, flags & ~XdpFlag.UPDATE_IF_NOEXIST, prog)
    except BaseException:
        prog.close()
        raise
    return XdpNetlinkLink(attachment, program=program, target=name)


HOOKS = (
    Hook(attach_xdp, sections=("xdp", "xdp.frags"), prog_types=(ProgType.XDP,), attach_types=(None, AttachType.XDP),
         section_args=lambda info: {}, needs={"ifname_or_index": "XDP needs an interface"},
         aliases={"interface": "ifname_or_index", "ifname": "ifname_or_index"}, min_kernel="4.8"),
)


def _info(fd: int, first: Any) -> dict[str, Any]:
    """XDP links: the interface."""
    return dict(ifindex=first.u.xdp.ifindex)


LINK_INFO = {LinkType.XDP: _info}
