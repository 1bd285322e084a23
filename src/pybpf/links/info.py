"""What the kernel says about a link: :class:`LinkInfo` and :func:`read_link_info`.

``BPF_OBJ_GET_INFO_BY_FD`` on a link fills ``struct bpf_link_info``: type,
id, program id, and a union with the fields of each link type.  Each hook
module decodes the union for its own link types (``LINK_INFO = {LinkType.X:
decode}``, where ``decode(fd, first)`` returns the type's fields, asking the
kernel a second time when names or arrays need buffers); this module
dispatches and wraps the result.

Example::

    info = read_link_info(link.fd)
    print(info.type.name, info.id, info.prog_id, info.details)

Minimum kernel: link info 5.8; what each type reports is in its decoder.
"""

from __future__ import annotations

import ctypes

from pybpf._record import FrozenRecord
from pybpf._sys import commands as _cmd
from pybpf._sys.attrs import LinkInfo as RawLinkInfo
from pybpf._sys.uapi import AttachType, LinkType

__all__ = ["LinkInfo", "GroupInfo", "read_link_info", "second_pass", "text", "attach_type_of"]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator

    Decoder = Callable[[int, RawLinkInfo], dict[str, Any]]


class LinkInfo(FrozenRecord):
    """What the kernel says about a link (``struct bpf_link_info``).

    ``type`` is a :class:`LinkType`, ``id`` the link's id, ``prog_id`` the
    attached program's id.  Type-specific fields are in ``details`` and can
    be read as attributes: ``info.cookie`` (perf event, raw tracepoint and
    tracing links), ``info.ifindex`` (xdp, tcx), ``info.cgroup_id``,
    ``info.attach_type``, ``info.tp_name``, ``info.file_name``/``offset``
    (uprobes), ``info.path``/``offsets``/``cookies``/``pid`` (uprobe_multi),
    ``info.perf_type`` ("uprobe", "uretprobe", "tracepoint", "event"...).
    A field this kernel does not report raises AttributeError.

    Kernel versions: perf event links describe their event since Linux 6.6
    and report the cookie since 6.9 (before that ``cookie`` reads 0 although
    the link carries one: :attr:`Link.cookie` is what was asked for);
    raw tracepoint cookies since 6.10, uprobe_multi since 6.8.
    """

    __slots__ = ("type", "id", "prog_id", "details")

    def __init__(self, type: LinkType | int, id: int, prog_id: int, details: dict[str, Any] | None = None,
                 **more: Any) -> None:
        super().__init__(type=type, id=id, prog_id=prog_id, details={} if details is None else details, **more)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            details = object.__getattribute__(self, "details")
        except AttributeError:   # not set yet
            raise AttributeError(name) from None
        if name in details:
            return details[name]
        raise AttributeError(f"{type(self).__name__} of a {getattr(self.type, 'name', self.type)} link has no field {name!r}")


class GroupInfo(LinkInfo):
    """The info of a :class:`~pybpf.links.LinkGroup`: a LinkInfo, and the sequence of its members' infos.

    ``id`` is 0 (a group is not one kernel object), ``type`` the members'
    type when they share one, ``prog_id`` the program's; iterate it (or
    index it) for each member's own :class:`LinkInfo`.
    """

    __slots__ = ("members",)

    def __init__(self, type: LinkType | int, id: int, prog_id: int, details: dict[str, Any] | None = None,
                 members: tuple[LinkInfo, ...] = ()) -> None:
        super().__init__(type, id, prog_id, details, members=members)

    def __iter__(self) -> Iterator[LinkInfo]:
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)

    def __getitem__(self, index: int) -> LinkInfo:
        return self.members[index]


def text(buf: ctypes.Array | None) -> str:
    """A NUL-terminated name the kernel wrote into ``buf``."""
    return buf.value.decode(errors="replace") if buf is not None else ""


def attach_type_of(value: int) -> AttachType | int:
    try:
        return AttachType(value)
    except ValueError:
        return value


def second_pass(fd: int, fill: Callable[[RawLinkInfo], None]) -> RawLinkInfo:
    """Ask again with pointers to our buffers (names, arrays) set by ``fill``."""
    second = RawLinkInfo()
    fill(second)
    return _cmd.obj_info(fd, second)


def read_link_info(fd: int) -> LinkInfo:
    """BPF_OBJ_GET_INFO_BY_FD on a link, decoded by the hook module that knows its type."""
    from pybpf.links.registry import link_info_decoders

    first = _cmd.link_info(fd)
    try:
        ltype: LinkType | int = LinkType(first.type)
    except ValueError:
        ltype = first.type
    decode = link_info_decoders().get(ltype)
    details = decode(fd, first) if decode is not None else {}
    return LinkInfo(type=ltype, id=first.id, prog_id=first.prog_id, details=details)
