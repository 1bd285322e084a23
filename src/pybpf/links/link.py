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

import errno as _errno
import os
import weakref

from pybpf._sys import commands as _cmd
from pybpf._sys.pin import Pinnable
from pybpf._sys.syscall import ENOTSUPP, FD
from pybpf._sys.uapi import LinkType
from pybpf.errors import BPFError, LinkError, NotSupportedError, SyscallError, context
from pybpf.links.info import GroupInfo, LinkInfo, read_link_info
from pybpf.links.registry import link_class
from pybpf.program import program_fd as prog_fd

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable, Iterator, Sequence

__all__ = ["Link", "LinkGroup", "close_all"]


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
        link_cls: type[Link] = link_class(info.type, cls) if cls is Link else cls
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
        link_cls: type[Link] = link_class(info.type, cls) if cls is Link else cls
        return link_cls(fd, kind=getattr(info.type, "name", str(info.type)).lower(), target=f"id {link_id}",
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

    ``links`` lists them in attach order (the group owns them).  It behaves
    like a link: :meth:`info` is a :class:`~pybpf.links.info.GroupInfo` (id
    0, since no one kernel object stands for the group; iterate it for each
    member's info), ``id`` is 0, ``close``/``take``/``detach`` act on all of
    them.  A group cannot be pinned or updated as a whole: iterate ``links``
    for that.
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

    def info(self) -> GroupInfo:
        """One :class:`~pybpf.links.info.GroupInfo`: id 0, the common type, and each member's info."""
        if self.closed:
            raise LinkError(f"{self._what}: info: the link is closed")
        members = tuple(link.info() for link in self.links)
        types = {m.type for m in members}
        prog_id = members[0].prog_id if members else 0
        try:
            prog_id = self.program.id if self.program is not None else prog_id
        except (AttributeError, BPFError):
            pass
        details: dict[str, Any] = {"count": len(members)}
        if self.cookie is not None:
            details["cookie"] = self.cookie
        return GroupInfo(type=types.pop() if len(types) == 1 else LinkType.UNSPEC, id=0, prog_id=prog_id,
                         details=details, members=members)

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
