"""``pybpf.Link``: one attachment of a program to a hook, and what it owns.

A link keeps a program attached for as long as it is open.  Closing it
(``close()``, ``with``, or garbage collection) detaches the program and
releases everything the attachment needed: the BPF link fd, a perf event fd
(when the kernel has no perf links), a tracefs probe entry, the cookie
clones of :mod:`pybpf.links.fallback`.

Kinds of attachment behind the one class:

* a BPF link (``BPF_LINK_CREATE`` or ``BPF_RAW_TRACEPOINT_OPEN``): it can be
  pinned in bpffs (:meth:`Link.pin`, :meth:`Link.from_pin`), its program
  replaced where the kernel allows it (:meth:`Link.update`: XDP, tcx, cgroup,
  iterators...), and described by the kernel (:meth:`Link.info`);
* a perf event that holds the program through ``PERF_EVENT_IOC_SET_BPF``
  (kernels before 5.15): closing the event detaches;
* a legacy attachment undone by a call (``SO_ATTACH_BPF``, ``BPF_PROG_ATTACH``);
* a group of links (:class:`LinkGroup`), when one request needed several
  attachments (the cookie fallback, ``attach_uprobe_multi`` without the
  uprobe_multi link, a perf event on every CPU).

Example::

    with prog.attach_tracepoint("syscalls", "sys_enter_getpid", cookie=7) as link:
        info = link.info()
        assert info.cookie == 7 and info.prog_id == prog.id
        link.pin("/sys/fs/bpf/getpid")
    again = pybpf.Link.from_pin("/sys/fs/bpf/getpid")
    again.unpin(); again.close()

Minimum kernel: BPF links 5.7 (raw tracepoints 4.17), pinning links 5.7,
link info 5.8, perf links 5.15.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

from pybpf.program import program_fd as prog_fd
from pybpf._sys import commands as _cmd
from pybpf._sys.attrs import LinkInfo as _RawLinkInfo
from pybpf._sys.pin import Pinnable
from pybpf._sys.syscall import ENOTSUPP, FD
from pybpf._sys.uapi import AttachType, LinkType, ProgType
from pybpf.errors import BPFError, LinkError, NotSupportedError, SyscallError, context
from pybpf.links.registry import method_for

__all__ = ["Link", "LinkGroup", "LinkInfo", "PerfEventKind", "check_program", "prog_fd"]

# enum bpf_perf_event_type (include/uapi/linux/bpf.h, Linux 6.6).
class PerfEventKind:
    UNSPEC, UPROBE, URETPROBE, KPROBE, KRETPROBE, TRACEPOINT, EVENT = range(7)
    NAMES = {0: "unspec", 1: "uprobe", 2: "uretprobe", 3: "kprobe", 4: "kretprobe", 5: "tracepoint", 6: "event"}


# -- programs ---------------------------------------------------------------------------

def _label(program: Any) -> str:
    label = getattr(program, "_label", None)
    if isinstance(label, str):
        return label
    name = getattr(program, "name", "")
    return f"program '{name}'" if name else "program"


def _ptype(program: Any) -> ProgType | int | None:
    t = getattr(program, "type", None)
    try:
        return ProgType(t) if t is not None else None
    except ValueError:
        return t


def check_program(program: Any, allowed: Iterable[ProgType], method: str,
                  attach_types: Iterable[Any] | None = None) -> None:
    """TypeError naming the right method when ``program`` is of the wrong type for ``method``."""
    allowed = tuple(allowed)
    pt = _ptype(program)
    eat = getattr(program, "expected_attach_type", None)
    if pt is None:
        raise TypeError(f"{method}() takes a pybpf.Program, not {type(program).__name__}")
    ok = pt in allowed
    if ok and attach_types is not None:
        ok = eat in tuple(attach_types)
    if not ok:
        kind = pt.name if isinstance(pt, ProgType) else str(pt)
        extra = ""
        if eat and isinstance(pt, ProgType) and pt in allowed:
            try:
                extra = f" loaded for {AttachType(eat).name}"
            except ValueError:
                extra = f" loaded for attach type {eat}"
        raise TypeError(f"{_label(program)} is a {kind} program{extra}; attach it with {method_for(pt, eat)}"
                        f" (not {method}())")


# -- link info --------------------------------------------------------------------------

@dataclass(frozen=True)
class LinkInfo:
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

    type: LinkType | int
    id: int
    prog_id: int
    details: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        details = self.__dict__.get("details", {})
        if name in details:
            return details[name]
        raise AttributeError(f"{type(self).__name__} of a {getattr(self.type, 'name', self.type)} link has no field {name!r}")


def _buf_str(buf: ctypes.Array | None) -> str:
    return buf.value.decode(errors="replace") if buf is not None else ""


def _attach_type(value: int) -> AttachType | int:
    try:
        return AttachType(value)
    except ValueError:
        return value


def read_link_info(fd: int) -> LinkInfo:
    """BPF_OBJ_GET_INFO_BY_FD on a link, with a second pass for names and arrays."""
    first = _cmd.link_info(fd)
    try:
        ltype: LinkType | int = LinkType(first.type)
    except ValueError:
        ltype = first.type
    details: dict[str, Any] = {}
    keep: list[Any] = []

    def buf(n: int) -> ctypes.Array:
        b = ctypes.create_string_buffer(max(n, 1))
        keep.append(b)
        return b

    raw = first
    if ltype == LinkType.RAW_TRACEPOINT:
        name = buf(512)
        second = _RawLinkInfo()
        second.u.raw_tracepoint.tp_name = ctypes.addressof(name)
        second.u.raw_tracepoint.tp_name_len = 512
        raw = _cmd.obj_info(fd, second)
        details.update(tp_name=_buf_str(name), cookie=raw.u.raw_tracepoint.cookie)
    elif ltype == LinkType.TRACING:
        t = raw.u.tracing
        details.update(attach_type=_attach_type(t.attach_type), target_obj_id=t.target_obj_id,
                       target_btf_id=t.target_btf_id, cookie=t.cookie)
    elif ltype == LinkType.CGROUP:
        details.update(cgroup_id=raw.u.cgroup.cgroup_id, attach_type=_attach_type(raw.u.cgroup.attach_type))
    elif ltype == LinkType.ITER:
        pass
    elif ltype == LinkType.XDP:
        details.update(ifindex=raw.u.xdp.ifindex)
    elif ltype in (LinkType.TCX, LinkType.NETKIT):
        details.update(ifindex=raw.u.tcx.ifindex, attach_type=_attach_type(raw.u.tcx.attach_type))
    elif ltype == LinkType.KPROBE_MULTI:
        n = raw.u.kprobe_multi.count
        second = _RawLinkInfo()
        addrs = (ctypes.c_uint64 * max(n, 1))()
        cookies = (ctypes.c_uint64 * max(n, 1))()
        if n:
            km = second.u.kprobe_multi
            km.addrs, km.cookies, km.count = ctypes.addressof(addrs), ctypes.addressof(cookies), n
            try:
                raw = _cmd.obj_info(fd, second)
            except SyscallError:
                raw = first  # addresses are hidden from unprivileged readers on some kernels
        km = raw.u.kprobe_multi
        details.update(count=km.count, flags=km.flags, missed=km.missed, retprobe=bool(km.flags & 1),
                       addrs=list(addrs[:n]) if raw is not first else [],
                       cookies=list(cookies[:n]) if raw is not first else [])
    elif ltype == LinkType.UPROBE_MULTI:
        um = raw.u.uprobe_multi
        n = um.count
        second = _RawLinkInfo()
        path = buf(4096)
        offsets = (ctypes.c_uint64 * max(n, 1))()
        cookies = (ctypes.c_uint64 * max(n, 1))()
        refs = (ctypes.c_uint64 * max(n, 1))()
        s = second.u.uprobe_multi
        s.path, s.path_size = ctypes.addressof(path), 4096
        if n:
            s.offsets, s.cookies, s.ref_ctr_offsets, s.count = (
                ctypes.addressof(offsets), ctypes.addressof(cookies), ctypes.addressof(refs), n)
        raw = _cmd.obj_info(fd, second)
        um = raw.u.uprobe_multi
        details.update(path=_buf_str(path), count=um.count, flags=um.flags, pid=um.pid,
                       retprobe=bool(um.flags & 1), offsets=list(offsets[:n]), cookies=list(cookies[:n]),
                       ref_ctr_offsets=list(refs[:n]))
    elif ltype == LinkType.PERF_EVENT:
        kind = raw.u.perf_event.type
        details["perf_type"] = PerfEventKind.NAMES.get(kind, str(kind))
        second = _RawLinkInfo()
        second.u.perf_event.type = kind
        if kind in (PerfEventKind.UPROBE, PerfEventKind.URETPROBE):
            name = buf(4096)
            second.u.perf_event.u.uprobe.file_name = ctypes.addressof(name)
            second.u.perf_event.u.uprobe.name_len = 4096
            raw = _cmd.obj_info(fd, second)
            up = raw.u.perf_event.u.uprobe
            details.update(file_name=_buf_str(name), offset=up.offset, cookie=up.cookie,
                           ref_ctr_offset=up.ref_ctr_offset, retprobe=kind == PerfEventKind.URETPROBE)
        elif kind in (PerfEventKind.KPROBE, PerfEventKind.KRETPROBE):
            name = buf(512)
            second.u.perf_event.u.kprobe.func_name = ctypes.addressof(name)
            second.u.perf_event.u.kprobe.name_len = 512
            raw = _cmd.obj_info(fd, second)
            kp = raw.u.perf_event.u.kprobe
            details.update(func_name=_buf_str(name), offset=kp.offset, addr=kp.addr, missed=kp.missed,
                           cookie=kp.cookie, retprobe=kind == PerfEventKind.KRETPROBE)
        elif kind == PerfEventKind.TRACEPOINT:
            name = buf(512)
            second.u.perf_event.u.tracepoint.tp_name = ctypes.addressof(name)
            second.u.perf_event.u.tracepoint.name_len = 512
            raw = _cmd.obj_info(fd, second)
            details.update(tp_name=_buf_str(name), cookie=raw.u.perf_event.u.tracepoint.cookie)
        elif kind == PerfEventKind.EVENT:
            ev = raw.u.perf_event.u.event
            details.update(config=ev.config, event_type=ev.type, cookie=ev.cookie)
    return LinkInfo(type=ltype, id=first.id, prog_id=first.prog_id, details=details)


# -- the Link ---------------------------------------------------------------------------

def _run_cleanups(fd: FD | None, perf: FD | None, cleanups: list[Callable[[], None]]) -> None:
    """Finalizer: release in reverse order of acquisition, never raising."""
    for closer in (fd, perf):
        if closer is not None:
            try:
                closer.close()
            except OSError:
                pass
    while cleanups:
        fn = cleanups.pop()
        try:
            fn()
        except Exception:  # noqa: BLE001 - a finalizer must not raise
            pass


class Link(Pinnable):
    """An attachment of a program to a hook.  Close it to detach.

    Attributes: ``program`` (what was attached, possibly a cookie clone's
    original), ``kind`` ("uprobe", "tracepoint", "xdp"...), ``target`` (a
    description of the hook, e.g. "/usr/bin/bash:readline+0x0"), ``cookie``
    (what was asked for, or None), ``attached_program`` (the program the
    kernel runs: a clone when the cookie fallback was used).

    Ownership: a link made for a program belongs to that program (and so to
    its object): dropping the Link does not detach, closing the program does.
    :meth:`close` detaches early; :meth:`take` hands the link to the caller,
    after which dropping it detaches as well.
    """

    def __init__(
        self,
        fd: FD | None = None,
        *,
        program: Any = None,
        kind: str = "link",
        target: str = "",
        cookie: int | None = None,
        perf_fd: FD | None = None,
        cleanups: Sequence[Callable[[], None]] = (),
        attached_program: Any = None,
        local_info: dict[str, Any] | None = None,
    ) -> None:
        self._fd = fd
        self._perf = perf_fd
        self._cleanups: list[Callable[[], None]] = list(cleanups)
        self.program = program
        self.attached_program = attached_program if attached_program is not None else program
        self.kind = kind
        self.target = target
        self.cookie = cookie
        self._pinned: str | None = None
        self._local_info = dict(local_info or {})
        self._finalizer = weakref.finalize(self, _run_cleanups, fd, perf_fd, self._cleanups)
        self._owner: Any = None
        if hasattr(program, "_own_link"):
            program._own_link(self)
            self._owner = program

    # -- life cycle ----------------------------------------------------------------------

    @property
    def fd(self) -> int:
        """The BPF link fd (the perf event fd for an ioctl attachment)."""
        if self._fd is not None and not self._fd.closed:
            return self._fd.fileno()
        if self._perf is not None and not self._perf.closed:
            return self._perf.fileno()
        raise LinkError(f"{self._what}: the link is closed" if self.closed else f"{self._what}: no file descriptor")

    def fileno(self) -> int:
        return self.fd

    @property
    def is_bpf_link(self) -> bool:
        """True when a BPF link fd backs this attachment (pin, update and info work)."""
        return self._fd is not None

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def close(self) -> None:
        """Detach (unless pinned) and release every resource.  Idempotent."""
        self.take()
        self._finalizer()

    def take(self) -> "Link":
        """Take the link from the program that owns it; it then lives as long as this object.

        Example: ``link = prog.attach_tracepoint("syscalls", "sys_enter_getpid").take()``;
        ``del link`` (or garbage collection) now detaches.  Returns the link.
        """
        owner, self._owner = self._owner, None
        if owner is not None:
            owner._disown_link(self)
        return self

    def __enter__(self) -> "Link":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("bpf link" if self.is_bpf_link else "attached")
        cookie = f" cookie={self.cookie}" if self.cookie is not None else ""
        return f"<{type(self).__name__} {self.kind} {self.target}{cookie} {state}>"

    @property
    def _what(self) -> str:
        return f"{self.kind} link" + (f" {self.target}" if self.target else "")

    def _link_fd(self, op: str) -> int:
        if self.closed:
            raise LinkError(f"{self._what}: {op}: the link is closed")
        if self._fd is None:
            raise NotSupportedError(
                f"{op} of a {self.kind} attachment without a BPF link", None,
                "this attachment was made without BPF_LINK_CREATE (perf event ioctl or a legacy attach); "
                "the kernel has no link object to " + op)
        return self._fd.fileno()

    def detach(self) -> None:
        """Detach now (BPF_LINK_DETACH, Linux 5.9), even if pinned; the fd stays open but dead."""
        fd = self._link_fd("detach")
        with context(self._what):
            _cmd.link_detach(fd)

    # -- pinning (pin, unpin, pinned_path: pybpf._sys.pin) ------------------------------

    @property
    def _label(self) -> str:
        return self._what

    def _pin_fd(self) -> int:
        return self._link_fd("pin")

    @classmethod
    def from_pin(cls, path: str | os.PathLike[str]) -> "Link":
        """Open a link pinned at ``path``; its kind comes from the kernel's link info."""
        path = os.fspath(path)
        with context(f"link {path}"):
            fd = _cmd.obj_get(path, what="link")
            try:
                info = read_link_info(fd.fileno())
            except SyscallError as exc:
                fd.close()
                if exc.errno == _errno.EINVAL:
                    raise LinkError(f"{path} is not a pinned link: {exc}") from None
                raise
            except BaseException:
                fd.close()
                raise
        kind = getattr(info.type, "name", str(info.type)).lower()
        link_cls: type[Link] = cls
        if info.type == LinkType.ITER and cls is Link:
            from pybpf.links.iter import IterLink

            link_cls = IterLink
        link = link_cls(fd, kind=kind, target=path, cookie=info.details.get("cookie"))
        link._pinned = path
        return link

    @classmethod
    def from_id(cls, link_id: int) -> "Link":
        """Open the link with kernel id ``link_id``."""
        with context("link"):
            fd = _cmd.link_fd_by_id(link_id)
            try:
                info = read_link_info(fd.fileno())
            except BaseException:
                fd.close()
                raise
        return cls(fd, kind=getattr(info.type, "name", str(info.type)).lower(), target=f"id {link_id}",
                   cookie=info.details.get("cookie"))

    # -- kernel operations ---------------------------------------------------------------

    def update(self, program: Any, *, old_program: Any = None) -> None:
        """Replace the attached program (BPF_LINK_UPDATE).

        The kernel allows it for XDP, tcx, netkit, cgroup, iterator, netns and
        struct_ops links; perf event, raw tracepoint and tracing links raise
        NotSupportedError.  With ``old_program`` the swap only happens if that
        program is still attached.
        """
        fd = self._link_fd("update")
        new_fd = prog_fd(program)
        with context(self._what):
            try:
                if old_program is not None:
                    _cmd.link_update(fd, new_fd, old_prog_fd=prog_fd(old_program), flags=1 << 2)  # BPF_F_REPLACE
                else:
                    _cmd.link_update(fd, new_fd)
            except SyscallError as exc:
                if exc.errno in (_errno.EOPNOTSUPP, ENOTSUPP):
                    raise NotSupportedError(f"update of {self.kind} links", None,
                                            "the kernel cannot swap the program of this kind of link") from None
                raise
        self.program = program
        self.attached_program = program

    def info(self) -> LinkInfo:
        """The kernel's description of the link (type, id, prog_id and type-specific fields).

        For an attachment without a BPF link (perf event ioctl, legacy
        attach) the fields are what pybpf knows: id 0, the program's id and
        the attach parameters.
        """
        if self.closed:
            raise LinkError(f"{self._what}: info: the link is closed")
        if self._fd is None:
            prog_id = 0
            prog = self.attached_program
            if prog is not None and hasattr(prog, "id"):
                try:
                    prog_id = prog.id
                except BPFError:
                    prog_id = 0
            details = dict(self._local_info)
            if self.cookie is not None:
                details.setdefault("cookie", self.cookie)
            return LinkInfo(type=details.pop("link_type", LinkType.UNSPEC), id=0, prog_id=prog_id, details=details)
        with context(self._what):
            info = read_link_info(self._fd.fileno())
        if "ifunc" in self._local_info:  # the implementation pybpf chose: the kernel knows only the offset
            info.details["ifunc"] = self._local_info["ifunc"]
        return info

    @property
    def id(self) -> int:
        return self.info().id


class LinkGroup(Link):
    """Several attachments made for one request; they close together.

    ``links`` lists them in attach order; :meth:`info` returns one
    :class:`LinkInfo` per member.  A group cannot be pinned or updated as a
    whole: iterate ``links`` for that.
    """

    def __init__(self, links: Sequence[Link], *, program: Any = None, kind: str = "group", target: str = "",
                 cookie: int | None = None, cleanups: Sequence[Callable[[], None]] = ()) -> None:
        self.links = [link.take() for link in links]  # the group owns its members
        members = list(self.links)

        def close_members() -> None:
            for link in reversed(members):
                link.close()
        super().__init__(None, program=program, kind=kind, target=target, cookie=cookie,
                         cleanups=[*cleanups, close_members])

    def __iter__(self) -> Iterator[Link]:
        return iter(self.links)

    def __len__(self) -> int:
        return len(self.links)

    def __getitem__(self, index: int) -> Link:
        return self.links[index]

    @property
    def fd(self) -> int:
        raise LinkError(f"{self._what}: a group of {len(self.links)} links has no single fd; see .links")

    def info(self) -> list[LinkInfo]:  # type: ignore[override]
        if self.closed:
            raise LinkError(f"{self._what}: info: the link is closed")
        return [link.info() for link in self.links]

    def pin(self, path: str | os.PathLike[str]) -> None:
        raise LinkError(f"{self._what}: a group of {len(self.links)} links cannot be pinned as one; "
                        "pin each of .links under its own path")

    def update(self, program: Any, *, old_program: Any = None) -> None:
        raise LinkError(f"{self._what}: a group of links cannot be updated as one; update each of .links")

    def detach(self) -> None:
        for link in self.links:
            link.detach()


def close_all(links: Iterable[Link]) -> None:
    """Close links, newest first (for undoing a partial multi-attach)."""
    for link in reversed(list(links)):
        try:
            link.close()
        except Exception:  # noqa: BLE001
            pass
