"""A small rtnetlink client: XDP through ``IFLA_XDP``, tc through clsact and cls_bpf.

The hooks that predate BPF links are configured through rtnetlink
(``socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE)``), the protocol ``ip`` and
``tc`` speak.  This module builds those messages with :mod:`struct` and reads
the kernel's answers: every request asks for an acknowledgement
(``NLM_F_ACK``) and a refusal becomes a :class:`pybpf.SyscallError` naming the
request, the errno and what the kernel said (extended ack, Linux 4.12).

Requests used by :mod:`pybpf.links.xdp` and :mod:`pybpf.links.tc`:

* ``RTM_SETLINK`` with ``IFLA_XDP`` {``IFLA_XDP_FD``, ``IFLA_XDP_FLAGS``,
  ``IFLA_XDP_EXPECTED_FD``}: attach, replace or detach (fd -1) an XDP program
  (Linux 4.8; ``XDP_FLAGS_REPLACE``/``EXPECTED_FD`` 5.7);
* ``RTM_GETLINK``: which XDP program is attached, in which mode (prog ids 4.13,
  per-mode ids 5.0);
* ``RTM_NEWQDISC``/``RTM_DELQDISC``/``RTM_GETQDISC`` of the ``clsact`` qdisc
  (Linux 4.5);
* ``RTM_NEWTFILTER``/``RTM_DELTFILTER``/``RTM_GETTFILTER`` of ``bpf`` filters
  in direct-action mode (cls_bpf 4.1, ``TCA_BPF_ID`` in dumps 4.13).

The constants are those of the UAPI headers (linux/netlink.h, rtnetlink.h,
if_link.h, pkt_sched.h, pkt_cls.h).  Netlink works in the caller's network
namespace, like the interface names pybpf resolves.

Example::

    with RtNetlink() as nl:
        state = xdp_query(nl, socket.if_nametoindex("veth0"))
        print(state.mode, state.prog_id)
"""

from __future__ import annotations

import errno as _errno
import os
import struct
import sys

from pybpf._record import FrozenRecord
from pybpf._sys.syscall import error
from pybpf.errors import LinkError, NotSupportedError, SyscallError, context
from pybpf.links.link import Link

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterator

__all__ = [
    "RtNetlink", "Message", "XdpState", "TcFilter", "Qdisc",
    "xdp_query", "xdp_set", "qdiscs", "add_clsact", "del_clsact", "filters", "get_filter",
    "add_bpf_filter", "del_filter", "tc_h_make", "netns_id",
    "TC_H_CLSACT", "TC_H_MIN_INGRESS", "TC_H_MIN_EGRESS", "CLSACT_HANDLE",
]

# linux/netlink.h
AF_NETLINK = 16
AF_UNSPEC = 0
MSG_TRUNC = 0x20
NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10   # 4.3: do not echo the request back in an ack
NETLINK_EXT_ACK = 11   # 4.12: error messages from the kernel
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_ECHO, NLM_F_DUMP_INTR = 0x1, 0x2, 0x4, 0x8, 0x10
NLM_F_DUMP = 0x300
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200  # in NLMSG_ERROR
NLMSGERR_ATTR_MSG = 1
NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3FFF

# linux/rtnetlink.h
RTM_GETLINK, RTM_SETLINK = 18, 19
RTM_NEWQDISC, RTM_DELQDISC, RTM_GETQDISC = 36, 37, 38
RTM_NEWTFILTER, RTM_DELTFILTER, RTM_GETTFILTER = 44, 45, 46
_NAMES = {RTM_GETLINK: "RTM_GETLINK", RTM_SETLINK: "RTM_SETLINK", RTM_NEWQDISC: "RTM_NEWQDISC",
          RTM_DELQDISC: "RTM_DELQDISC", RTM_GETQDISC: "RTM_GETQDISC", RTM_NEWTFILTER: "RTM_NEWTFILTER",
          RTM_DELTFILTER: "RTM_DELTFILTER", RTM_GETTFILTER: "RTM_GETTFILTER"}

# linux/if_link.h
IFLA_XDP = 43
IFLA_XDP_FD, IFLA_XDP_ATTACHED, IFLA_XDP_FLAGS, IFLA_XDP_PROG_ID = 1, 2, 3, 4
IFLA_XDP_DRV_PROG_ID, IFLA_XDP_SKB_PROG_ID, IFLA_XDP_HW_PROG_ID, IFLA_XDP_EXPECTED_FD = 5, 6, 7, 8
XDP_ATTACHED_NONE, XDP_ATTACHED_DRV, XDP_ATTACHED_SKB, XDP_ATTACHED_HW, XDP_ATTACHED_MULTI = range(5)
_XDP_MODE_NAMES = {XDP_ATTACHED_NONE: None, XDP_ATTACHED_DRV: "drv", XDP_ATTACHED_SKB: "skb",
                   XDP_ATTACHED_HW: "hw", XDP_ATTACHED_MULTI: "multi"}

# linux/rtnetlink.h (tc) and pkt_sched.h / pkt_cls.h
TCA_KIND, TCA_OPTIONS, TCA_CHAIN = 1, 2, 11
TCA_BPF_FD, TCA_BPF_NAME, TCA_BPF_FLAGS, TCA_BPF_ID = 6, 7, 8, 11
TCA_BPF_FLAG_ACT_DIRECT = 1
TC_H_CLSACT = 0xFFFFFFF1  # == TC_H_INGRESS
TC_H_MIN_INGRESS, TC_H_MIN_EGRESS = 0xFFF2, 0xFFF3
ETH_P_ALL = 0x0003


def tc_h_make(major: int, minor: int) -> int:
    """``TC_H_MAKE``: the major half of one handle with the minor half of another."""
    return (major & 0xFFFF0000) | (minor & 0x0000FFFF)


CLSACT_HANDLE = tc_h_make(TC_H_CLSACT, 0)  # ffff:

_HDR = struct.Struct("=IHHII")        # struct nlmsghdr
_ATTR = struct.Struct("=HH")          # struct nlattr
_IFINFO = struct.Struct("=BxHiII")    # struct ifinfomsg
_TCMSG = struct.Struct("=BxxxiIII")   # struct tcmsg
_ERR = struct.Struct("=i")            # struct nlmsgerr.error (the request's header follows)
_RECV_SIZE = 1 << 17                  # the kernel's dump messages are at most 32-64 KiB
_TIMEOUT = 10.0


def _swap16(value: int) -> int:
    """htons/ntohs: a 16-bit value between network (big-endian) and host byte order."""
    return int.from_bytes(value.to_bytes(2, "big"), sys.byteorder)


def _align(n: int) -> int:
    return (n + 3) & ~3


# ---------------------------------------------------------------- attributes

def attr(kind: int, data: bytes) -> bytes:
    """One netlink attribute (padded to 4 bytes)."""
    length = _ATTR.size + len(data)
    return _ATTR.pack(length, kind) + data + b"\0" * (_align(length) - length)


def attr_u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value & 0xFFFFFFFF))


def attr_s32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=i", value))


def attr_str(kind: int, text: str) -> bytes:
    return attr(kind, text.encode() + b"\0")


def nested(kind: int, *attrs: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(attrs))


def parse_attrs(data: bytes | memoryview, offset: int = 0) -> dict[int, bytes]:
    """Attributes from ``offset`` on, by type (flags masked off); a malformed tail is ignored."""
    out: dict[int, bytes] = {}
    view = memoryview(data)
    while offset + _ATTR.size <= len(view):
        length, kind = _ATTR.unpack_from(view, offset)
        if length < _ATTR.size or offset + length > len(view):
            break
        out[kind & NLA_TYPE_MASK] = bytes(view[offset + _ATTR.size:offset + length])
        offset += _align(length)
    return out


def _u32(attrs: dict[int, bytes], kind: int, default: int = 0) -> int:
    value = attrs.get(kind)
    return struct.unpack_from("=I", value)[0] if value is not None and len(value) >= 4 else default


def _str(attrs: dict[int, bytes], kind: int) -> str:
    return attrs.get(kind, b"").split(b"\0", 1)[0].decode(errors="replace")


# ---------------------------------------------------------------- the socket

class Message(FrozenRecord):
    """One netlink message: its type, flags and payload (after the 16-byte header)."""

    __slots__ = ("type", "flags", "payload")

    def __init__(self, type: int, flags: int, payload: bytes) -> None:
        super().__init__(type=type, flags=flags, payload=payload)


class RtNetlink:
    """A NETLINK_ROUTE socket that sends requests and reads their answers.  Close it after use."""

    def __init__(self) -> None:
        import socket   # here: importing the hooks must not import the socket stack

        try:
            sock = socket.socket(AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        except OSError as exc:
            raise error(exc.errno or _errno.EINVAL, "netlink: socket(AF_NETLINK, NETLINK_ROUTE)") from None
        try:
            sock.bind((0, 0))
            sock.settimeout(_TIMEOUT)
            for option in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):
                try:
                    sock.setsockopt(SOL_NETLINK, option, 1)
                except OSError:
                    pass  # kernels before 4.3 / 4.12: full acks, no error messages
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._seq = int.from_bytes(os.urandom(2), "little") << 8

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> "RtNetlink":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, msg_type: int, flags: int, body: bytes) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        data = _HDR.pack(_HDR.size + len(body), msg_type, flags, self._seq, 0) + body
        try:
            self._sock.sendto(data, (0, 0))
        except OSError as exc:
            raise error(exc.errno or _errno.EIO, f"netlink {_NAMES.get(msg_type, msg_type)}: send") from None
        return self._seq

    def _answers(self, seq: int, what: str) -> Iterator[Message]:
        """Messages answering request ``seq``, as they arrive (the caller stops reading)."""
        while True:
            try:
                data, _anc, msg_flags, _addr = self._sock.recvmsg(_RECV_SIZE)
            except TimeoutError:   # socket.timeout
                raise LinkError(f"{what}: no answer from the kernel in {_TIMEOUT:.0f} s") from None
            except OSError as exc:
                raise error(exc.errno or _errno.EIO, f"{what}: receive") from None
            if msg_flags & MSG_TRUNC:
                raise LinkError(f"{what}: an answer longer than {_RECV_SIZE} bytes was truncated")
            offset = 0
            while offset + _HDR.size <= len(data):
                length, mtype, mflags, mseq, _pid = _HDR.unpack_from(data, offset)
                if length < _HDR.size or offset + length > len(data):
                    raise LinkError(f"{what}: malformed netlink message from the kernel")
                if mseq == seq:
                    yield Message(mtype, mflags, data[offset + _HDR.size:offset + length])
                offset += _align(length)

    @staticmethod
    def _check(msg: Message, what: str) -> None:
        """Raise the SyscallError an NLMSG_ERROR carries (error 0 is an acknowledgement)."""
        if len(msg.payload) < _ERR.size + _HDR.size:
            raise LinkError(f"{what}: short NLMSG_ERROR from the kernel")
        (code,) = _ERR.unpack_from(msg.payload)
        if code == 0:
            return
        said = None
        if msg.flags & NLM_F_ACK_TLVS:
            orig_len = _HDR.unpack_from(msg.payload, _ERR.size)[0]
            start = _ERR.size + (_HDR.size if msg.flags & NLM_F_CAPPED else _align(orig_len))
            said = _str(parse_attrs(msg.payload, start), NLMSGERR_ATTR_MSG) or None
        err = -code
        exc = error(err, what, hint=_hint(err, said))
        exc.kernel_message = said  # type: ignore[attr-defined]
        raise exc

    def request(self, msg_type: int, body: bytes, *, flags: int = 0, what: str = "") -> list[Message]:
        """Send one request with NLM_F_ACK; the messages before the ack (e.g. a GET's answer)."""
        what = what or f"netlink {_NAMES.get(msg_type, msg_type)}"
        seq = self._send(msg_type, NLM_F_REQUEST | NLM_F_ACK | flags, body)
        replies = []
        for msg in self._answers(seq, what):
            if msg.type == NLMSG_ERROR:
                self._check(msg, what)
                return replies
            replies.append(msg)
        raise AssertionError("unreachable")  # pragma: no cover - _answers never ends

    def dump(self, msg_type: int, body: bytes, *, what: str = "") -> list[Message]:
        """A NLM_F_DUMP request: every message up to NLMSG_DONE (redone once if interrupted)."""
        what = what or f"netlink {_NAMES.get(msg_type, msg_type)} dump"
        for _attempt in range(3):
            seq = self._send(msg_type, NLM_F_REQUEST | NLM_F_DUMP, body)
            replies, interrupted = [], False
            for msg in self._answers(seq, what):
                interrupted |= bool(msg.flags & NLM_F_DUMP_INTR)
                if msg.type == NLMSG_DONE:
                    break
                if msg.type == NLMSG_ERROR:
                    self._check(msg, what)
                    break
                replies.append(msg)
            if not interrupted:
                return replies
        return replies  # the table kept changing; the last complete reading


def _hint(err: int, said: str | None) -> str | None:
    """The kernel's own words first; CAP_NET_ADMIN instead of bpf(2)'s advice for EPERM."""
    if err == _errno.EPERM:
        base = "operation not permitted: changing interfaces needs CAP_NET_ADMIN (run as root)"
    elif err == _errno.ENODEV:
        base = "no such network interface (it went away?)"
    else:
        base = None
    if said:
        return f"the kernel says: {said}" + (f"; {base}" if base else "")
    return base


def netns_id() -> int:
    """An identity of the calling thread's network namespace (the inode of its nsfs file)."""
    for path in ("/proc/thread-self/ns/net", "/proc/self/ns/net"):
        try:
            return os.stat(path).st_ino
        except OSError:
            continue
    return 0


# ---------------------------------------------------------------- XDP

class XdpState(FrozenRecord):
    """What ``RTM_GETLINK`` says about an interface's XDP programs (ids 0 when none)."""

    __slots__ = ("attached", "prog_id", "drv_prog_id", "skb_prog_id", "hw_prog_id")

    def __init__(self, attached: int, prog_id: int, drv_prog_id: int, skb_prog_id: int,
                 hw_prog_id: int) -> None:
        super().__init__(attached=attached, prog_id=prog_id, drv_prog_id=drv_prog_id, skb_prog_id=skb_prog_id,
                         hw_prog_id=hw_prog_id)

    @property
    def mode(self) -> str | None:
        """"drv", "skb", "hw", "multi" (several modes at once) or None."""
        return _XDP_MODE_NAMES.get(self.attached, str(self.attached))

    def prog_id_in(self, mode: str | None) -> int:
        """The id of the program in ``mode`` ("drv", "skb", "hw"; None: the mode the kernel picks)."""
        by_mode = {"drv": self.drv_prog_id, "skb": self.skb_prog_id, "hw": self.hw_prog_id}
        if self.attached == XDP_ATTACHED_MULTI:
            if mode is None:  # the kernel's default mode is drv or skb, never hw
                return self.drv_prog_id or self.skb_prog_id
            return by_mode.get(mode, 0)
        if self.attached == XDP_ATTACHED_NONE or (mode is not None and mode != self.mode):
            return 0
        return self.prog_id or by_mode.get(self.mode or "", 0)


def _ifinfo(ifindex: int) -> bytes:
    return _IFINFO.pack(AF_UNSPEC, 0, ifindex, 0, 0)


def xdp_query(nl: RtNetlink, ifindex: int) -> XdpState:
    """The XDP programs of interface ``ifindex`` (RTM_GETLINK)."""
    replies = nl.request(RTM_GETLINK, _ifinfo(ifindex), what="netlink RTM_GETLINK")
    for msg in replies:
        if len(msg.payload) < _IFINFO.size:
            continue
        xdp = parse_attrs(parse_attrs(msg.payload, _IFINFO.size).get(IFLA_XDP, b""))
        attached = (xdp.get(IFLA_XDP_ATTACHED) or b"\0")[0]
        return XdpState(attached, _u32(xdp, IFLA_XDP_PROG_ID), _u32(xdp, IFLA_XDP_DRV_PROG_ID),
                        _u32(xdp, IFLA_XDP_SKB_PROG_ID), _u32(xdp, IFLA_XDP_HW_PROG_ID))
    raise LinkError(f"netlink RTM_GETLINK: no answer about interface {ifindex}")


def xdp_set(nl: RtNetlink, ifindex: int, prog_fd: int, flags: int, expected_fd: int | None = None) -> None:
    """Attach ``prog_fd`` (-1: detach) to ``ifindex`` with XDP ``flags`` (RTM_SETLINK IFLA_XDP).

    ``expected_fd`` goes with ``XDP_FLAGS_REPLACE`` (Linux 5.7): the change only
    happens while that program is the one attached.
    """
    parts = [attr_s32(IFLA_XDP_FD, prog_fd), attr_u32(IFLA_XDP_FLAGS, flags)]
    if expected_fd is not None:
        parts.append(attr_s32(IFLA_XDP_EXPECTED_FD, expected_fd))
    nl.request(RTM_SETLINK, _ifinfo(ifindex) + nested(IFLA_XDP, *parts), what="netlink RTM_SETLINK IFLA_XDP")


# ---------------------------------------------------------------- tc

class Qdisc(FrozenRecord):
    __slots__ = ("kind", "handle", "parent")

    def __init__(self, kind: str, handle: int, parent: int) -> None:
        super().__init__(kind=kind, handle=handle, parent=parent)


class TcFilter(FrozenRecord):
    """One tc filter of a dump: ``handle`` 0 is the entry of its priority itself."""

    __slots__ = ("parent", "priority", "protocol", "handle", "kind", "prog_id", "name", "direct_action")

    def __init__(self, parent: int, priority: int, protocol: int, handle: int, kind: str, prog_id: int = 0,
                 name: str = "", direct_action: bool = False) -> None:
        super().__init__(parent=parent, priority=priority, protocol=protocol, handle=handle, kind=kind,
                         prog_id=prog_id, name=name, direct_action=direct_action)


def _tcmsg(ifindex: int, handle: int = 0, parent: int = 0, info: int = 0) -> bytes:
    return _TCMSG.pack(AF_UNSPEC, ifindex, handle, parent, info)


def _filter_info(priority: int) -> int:
    """tcm_info of a filter: the priority above, the protocol (network order) below."""
    return tc_h_make(priority << 16, _swap16(ETH_P_ALL))


def qdiscs(nl: RtNetlink, ifindex: int) -> list[Qdisc]:
    """The qdiscs of interface ``ifindex`` (RTM_GETQDISC dump, filtered here)."""
    out = []
    for msg in nl.dump(RTM_GETQDISC, _tcmsg(ifindex)):
        if msg.type != RTM_NEWQDISC or len(msg.payload) < _TCMSG.size:
            continue
        _family, index, handle, parent, _info = _TCMSG.unpack_from(msg.payload)
        if index == ifindex:
            out.append(Qdisc(_str(parse_attrs(msg.payload, _TCMSG.size), TCA_KIND), handle, parent))
    return out


def add_clsact(nl: RtNetlink, ifindex: int) -> bool:
    """Create the clsact qdisc; False when a qdisc already sits there (see :func:`qdiscs` for its kind)."""
    body = _tcmsg(ifindex, CLSACT_HANDLE, TC_H_CLSACT) + attr_str(TCA_KIND, "clsact")
    try:
        nl.request(RTM_NEWQDISC, body, flags=NLM_F_CREATE | NLM_F_EXCL, what="netlink RTM_NEWQDISC clsact")
    except SyscallError as exc:
        if exc.errno == _errno.EEXIST:
            return False
        raise
    return True


def del_clsact(nl: RtNetlink, ifindex: int) -> None:
    body = _tcmsg(ifindex, CLSACT_HANDLE, TC_H_CLSACT) + attr_str(TCA_KIND, "clsact")
    nl.request(RTM_DELQDISC, body, what="netlink RTM_DELQDISC clsact")


def _parse_filter(payload: bytes) -> TcFilter | None:
    if len(payload) < _TCMSG.size:
        return None
    _family, _index, handle, parent, info = _TCMSG.unpack_from(payload)
    attrs = parse_attrs(payload, _TCMSG.size)
    options = parse_attrs(attrs.get(TCA_OPTIONS, b""))
    return TcFilter(parent=parent, priority=info >> 16, protocol=_swap16(info & 0xFFFF), handle=handle,
                    kind=_str(attrs, TCA_KIND), prog_id=_u32(options, TCA_BPF_ID), name=_str(options, TCA_BPF_NAME),
                    direct_action=bool(_u32(options, TCA_BPF_FLAGS) & TCA_BPF_FLAG_ACT_DIRECT))


def filters(nl: RtNetlink, ifindex: int, parent: int) -> list[TcFilter]:
    """The filters under ``parent`` (e.g. clsact ingress), priority entries included (RTM_GETTFILTER dump)."""
    out = []
    for msg in nl.dump(RTM_GETTFILTER, _tcmsg(ifindex, 0, parent)):
        if msg.type == RTM_NEWTFILTER:
            flt = _parse_filter(msg.payload)
            if flt is not None:
                out.append(flt)
    return out


def get_filter(nl: RtNetlink, ifindex: int, parent: int, priority: int, handle: int) -> TcFilter | None:
    """The filter ``priority``/``handle`` under ``parent``, or None when it is gone."""
    body = _tcmsg(ifindex, handle, parent, _filter_info(priority)) + attr_str(TCA_KIND, "bpf")
    try:
        replies = nl.request(RTM_GETTFILTER, body, what="netlink RTM_GETTFILTER")
    except SyscallError as exc:
        if exc.errno in (_errno.ENOENT, _errno.ENODEV, _errno.EINVAL):
            return None  # no such filter, priority, qdisc or interface
        raise
    for msg in replies:
        if msg.type == RTM_NEWTFILTER:
            return _parse_filter(msg.payload)
    return None


def add_bpf_filter(nl: RtNetlink, ifindex: int, parent: int, priority: int, handle: int, prog_fd: int,
                   name: str, *, create: bool = True) -> None:
    """A direct-action ``bpf`` filter running ``prog_fd`` for every protocol.

    ``create=True`` adds a new filter (``NLM_F_CREATE|NLM_F_EXCL``: EEXIST if
    that priority/handle is taken); ``create=False`` swaps the program of the
    existing one (ENOENT if it is gone).
    """
    body = (_tcmsg(ifindex, handle, parent, _filter_info(priority)) + attr_str(TCA_KIND, "bpf")
            + nested(TCA_OPTIONS, attr_u32(TCA_BPF_FD, prog_fd), attr_str(TCA_BPF_NAME, name),
                     attr_u32(TCA_BPF_FLAGS, TCA_BPF_FLAG_ACT_DIRECT)))
    nl.request(RTM_NEWTFILTER, body, flags=NLM_F_CREATE | NLM_F_EXCL if create else 0,
               what="netlink RTM_NEWTFILTER bpf")


def del_filter(nl: RtNetlink, ifindex: int, parent: int, priority: int, handle: int) -> None:
    """Delete exactly one filter (a handle of 0 would delete its whole priority: refused here)."""
    if not handle:
        raise ValueError("a filter handle of 0 would delete every filter of that priority")
    body = _tcmsg(ifindex, handle, parent, _filter_info(priority)) + attr_str(TCA_KIND, "bpf")
    nl.request(RTM_DELTFILTER, body, what="netlink RTM_DELTFILTER")


class NetlinkLink(Link):
    """A hook attached through rtnetlink (XDP before 5.9, tc before 6.6): no BPF link behind it,
    so nothing to pin; ``self._att`` (set by the subclass) does the detaching.

    Subclasses name what can be gone (``_gone``) and why pinning is refused
    (``_pin_refusal``: what, minimum kernel, detail).
    """

    _att: Any
    _gone = "the attachment"
    _pin_refusal: tuple[str, str | None, str] = ("pinning a netlink attachment", None, "")

    def _check_open(self, op: str) -> None:
        if self.closed:
            raise LinkError(f"{self._what}: {op}: the link is closed")
        if self._att.detached:
            raise LinkError(f"{self._what}: {op}: {self._gone} was detached")

    def pin(self, path: str | os.PathLike[str]) -> None:
        """Always raises: a netlink attachment has no kernel object to pin."""
        raise NotSupportedError(*self._pin_refusal).add_context(self._what)

    def detach(self) -> None:
        """Detach now; the Link stays open (and dead) until closed."""
        self._check_open("detach")
        with context(self._what), context("detach"):
            self._att.detach()
