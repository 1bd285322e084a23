"""XDP: an XDP program on a network interface, through a BPF link.

``attach_xdp(prog, "eth0", mode="skb")`` creates an XDP link
(``BPF_LINK_CREATE`` with ``BPF_XDP``, Linux 5.9).  ``mode`` is None (the
driver's native mode when it has one, else generic), "skb" (generic XDP,
works on every device), "drv" (native; the driver must support it) or "hw"
(offloaded).  Interfaces are named or given by index, in the caller's
network namespace.  A link cannot be replaced by another attach (EBUSY): use
:meth:`Link.update` to swap the program.

Minimum kernel: 5.9 (XDP links).  Older kernels attach XDP through netlink
(``IFLA_XDP``), which pybpf does not do: NotSupportedError.

Example::

    with attach_xdp(prog, "veth0", mode="skb") as link:
        assert link.info().ifindex == socket.if_nametoindex("veth0")
"""

from __future__ import annotations

import errno as _errno
import socket
from typing import Any

from pybpf._sys.attrs import LinkCreateAttr
from pybpf._sys.commands import link_create
from pybpf._sys.flags import XdpFlag
from pybpf._sys.uapi import AttachType, ProgType
from pybpf.errors import NotSupportedError, SyscallError, context
from pybpf.links.base import Link, _label, check_program, prog_fd

__all__ = ["attach_xdp", "ifindex"]

_MODES = {None: 0, "skb": XdpFlag.SKB_MODE, "generic": XdpFlag.SKB_MODE, "drv": XdpFlag.DRV_MODE,
          "native": XdpFlag.DRV_MODE, "hw": XdpFlag.HW_MODE, "offload": XdpFlag.HW_MODE}


def ifindex(ifname_or_index: str | int) -> tuple[int, str]:
    """(index, name) of a network interface in this network namespace; ValueError/LookupError."""
    if isinstance(ifname_or_index, bool):
        raise TypeError("an interface is a name or an index")
    if isinstance(ifname_or_index, int):
        if ifname_or_index <= 0:
            raise ValueError(f"invalid interface index {ifname_or_index}")
        try:
            return ifname_or_index, socket.if_indextoname(ifname_or_index)
        except OSError:
            raise LookupError(f"no network interface with index {ifname_or_index} in this network namespace") from None
    if not isinstance(ifname_or_index, str) or not ifname_or_index:
        raise TypeError(f"an interface is a name or an index, not {ifname_or_index!r}")
    try:
        return socket.if_nametoindex(ifname_or_index), ifname_or_index
    except OSError:
        raise LookupError(f"no network interface {ifname_or_index!r} in this network namespace") from None


def _mode_flags(mode: Any) -> int:
    if isinstance(mode, (int, XdpFlag)) and not isinstance(mode, bool):
        return int(mode)
    key = mode.lower() if isinstance(mode, str) else mode
    if key not in _MODES:
        raise ValueError(f"unknown XDP mode {mode!r}; use None, 'skb', 'drv' or 'hw'")
    return int(_MODES[key])


def attach_xdp(program: Any, ifname_or_index: str | int, *, mode: str | int | None = None,
               flags: int = 0) -> Link:
    """Attach an XDP program to an interface through an XDP link."""
    check_program(program, (ProgType.XDP,), "attach_xdp")
    index, name = ifindex(ifname_or_index)
    link_flags = _mode_flags(mode) | int(flags)
    with context(_label(program)), context(f"attach_xdp {name}"):
        attr = LinkCreateAttr(prog_fd=prog_fd(program), target_fd=index, attach_type=AttachType.XDP,
                              flags=link_flags)
        try:
            fd = link_create(attr, what="xdp link")
        except SyscallError as exc:
            if exc.errno == _errno.EBUSY:
                exc.hint = f"{name} already has an XDP program (another link or a netlink attach); detach it first"
            elif exc.errno == _errno.EOPNOTSUPP and mode in ("drv", "native"):
                exc.hint = f"the driver of {name} has no native XDP; use mode='skb'"
            elif exc.errno == _errno.EINVAL and getattr(program, "expected_attach_type", None) not in (None, AttachType.XDP):
                exc.hint = "the program was loaded for a devmap/cpumap, not for an interface"
            elif exc.errno == _errno.EINVAL:
                raise NotSupportedError("xdp link", "5.9", str(exc)) from None
            raise
        return Link(fd, program=program, kind="xdp", target=name)
