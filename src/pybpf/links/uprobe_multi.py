"""Many uprobes in one system call: the uprobe_multi link (Linux 6.6).

``attach_uprobe_multi(prog, target, symbols, cookies=, offsets=, pid=, retprobe=)``
attaches one program to every function in ``symbols`` — a list of names or
one shell glob (``"str*"``) — with one ``BPF_LINK_CREATE``.  ``cookies`` holds
one cookie per resolved point (in the order of the list, or of the sorted
names for a glob), or is a mapping ``{name: cookie}``.  With
``symbols=None``, ``offsets`` are absolute file offsets; with a list of
names they are added to each name's offset.

The program must be loaded for ``BPF_TRACE_UPROBE_MULTI``
(``SEC("uprobe.multi")``); one loaded as a plain uprobe is reloaded as a
clone of that type (one more verification, cached while attached).  A
``SEC("uprobe.session")`` program (loaded for ``BPF_TRACE_UPROBE_SESSION``,
Linux 6.12) is attached as it is: it runs at entry and at return of every
call, ``bpf_session_is_return()`` tells which, and ``bpf_session_cookie()``
points to 8 bytes kept from the entry to the return of one call; a session
has no one-uprobe-per-point fallback.

Without the uprobe_multi link the points are attached one by one as single
uprobes (perf links with cookies, or the cookie clones of
:mod:`pybpf.links.fallback` on kernels without cookies) and returned as one
:class:`~pybpf.links.base.LinkGroup`; ``fallback=False`` raises
NotSupportedError instead.

Minimum kernel: 6.6 (single-uprobe fallback: 4.17), sessions 6.12.

Example::

    link = attach_uprobe_multi(prog, "/tmp/target", ["func_a", "func_b"], cookies=[1, 2])
    link.info().cookies            # [1, 2]
"""

from __future__ import annotations

import ctypes
import os

from pybpf import features
from pybpf._sys.attrs import LinkCreateAttr, u64_array
from pybpf._sys.commands import link_create
from pybpf._sys.flags import UPROBE_MULTI_RETURN
from pybpf._sys.syscall import address, cstr
from pybpf._sys.uapi import AttachType, LinkType, ProgType
from pybpf.errors import NotSupportedError, context
from pybpf.links.base import _label, check_program, cookie_list, prog_fd, u64_list
from pybpf.links.link import Link, LinkGroup, close_all
from pybpf.links.fallback import acquire
from pybpf.links.hook import Hook, retprobe_for
from pybpf.links.ifunc import IfuncChoice, select_implementations
from pybpf.links.info import second_pass, text
from pybpf.links.symbols import ElfFile, Symbol, resolve_symbols
from pybpf.links.uprobe import _pid_arg, attach_uprobe, check_in_file, resolve_target_for

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Mapping, Sequence

__all__ = ["attach_uprobe_multi", "resolve_points"]

def resolve_points(target: Any, symbols: str | Sequence[str] | None, offsets: Sequence[int] | None,
                   pid: int | None = None) -> tuple[str, list[int], list[str], dict[str, IfuncChoice]]:
    """(path, file offsets, names, IFUNC choices) of the probe points.

    IFUNC symbols are probed at the implementation the dynamic loader
    selects on this machine (see :mod:`pybpf.links.ifunc`).
    """
    path = resolve_target_for(target, pid)
    if symbols is None:
        if not offsets:
            raise ValueError("attach_uprobe_multi needs symbols, or absolute file offsets with symbols=None")
        offs = u64_list(offsets, "offsets")
        elf = ElfFile.open(path)
        for o in offs:
            check_in_file(elf, o, f"offset {o:#x}")
        return path, offs, [f"{o:#x}" for o in offs], {}
    if isinstance(symbols, str):
        if offsets:
            raise ValueError("offsets cannot be combined with a glob; give a list of names")
        syms: list[Symbol] = resolve_symbols(path, symbols)
        impls, chosen = select_implementations(ElfFile.open(path), syms)
        return path, [s.offset for s in impls], [s.name for s in syms], chosen
    names = list(symbols)
    if not names:
        raise ValueError("attach_uprobe_multi: the list of symbols is empty")
    syms = resolve_symbols(path, names)
    impls, chosen = select_implementations(ElfFile.open(path), syms)
    if len(syms) != len(names):
        # A glob inside the list expanded: offsets per name no longer line up.
        if offsets:
            raise ValueError("offsets cannot be combined with globs inside the list of names")
        return path, [s.offset for s in impls], [s.name for s in syms], chosen
    offs = [s.offset for s in impls]
    if offsets:
        extra = u64_list(offsets, "offsets")
        if len(extra) != len(names):
            raise ValueError(f"{len(extra)} offsets for {len(names)} symbols: give one per symbol")
        offs = [o + e for o, e in zip(offs, extra)]
    return path, offs, names, chosen


def attach_uprobe_multi(
    program: Any,
    target: str | os.PathLike[str],
    symbols: str | Sequence[str] | None = None,
    *,
    cookies: Sequence[int] | Mapping[str, int] | None = None,
    offsets: Sequence[int] | None = None,
    ref_ctr_offsets: Sequence[int] | None = None,
    pid: int | None = None,
    retprobe: bool | None = None,
    fallback: bool = True,
) -> Link:
    """Attach ``program`` to many uprobes of one file with one link; Linux 6.6 (sessions 6.12).

    ``symbols`` is a list of names or one glob; ``cookies`` one cookie per
    point (or ``{name: cookie}``).  ``retprobe`` defaults to the program's
    section (``SEC("uretprobe.multi")``).  A ``SEC("uprobe.session")``
    program runs at entry and at return of each call, in one session
    (``bpf_session_is_return()``, ``bpf_session_cookie()``).  See the module
    docs for the fallback without the uprobe_multi link.

    Example: ``prog.attach_uprobe_multi("c", ["strlen", "strcmp"], cookies=[1, 2])``.
    """
    check_program(program, (ProgType.KPROBE,), "attach_uprobe_multi")
    retprobe = retprobe_for(program, retprobe, "attach_uprobe_multi")
    session = getattr(program, "expected_attach_type", None) == AttachType.TRACE_UPROBE_SESSION
    pid = _pid_arg(pid)
    path, offs, names, ifunc = resolve_points(target, symbols, offsets, pid)
    cookie_values = cookie_list(cookies, names)
    refs = u64_list(ref_ctr_offsets, "ref_ctr_offsets") if ref_ctr_offsets is not None else None
    if refs is not None and len(refs) != len(offs):
        raise ValueError(f"{len(refs)} ref_ctr_offsets for {len(offs)} probe points")
    kind = "uprobe_session" if session else "uretprobe_multi" if retprobe else "uprobe_multi"
    desc = f"{path}:{symbols if isinstance(symbols, str) else ','.join(names[:4]) + (',...' if len(names) > 4 else '')}"
    with context(_label(program)), context(f"attach_uprobe_multi {desc}"):
        link = _attach_points(program, path, offs, cookie_values, refs, pid, retprobe, session, kind, desc, fallback)
    if ifunc:
        link._local_info["ifunc"] = ifunc  # what pybpf chose: the kernel only knows the offsets
    return link


def _attach_points(program: Any, path: str, offs: list[int], cookie_values: list[int] | None,
                   refs: list[int] | None, pid: int | None, retprobe: bool, session: bool, kind: str, desc: str,
                   fallback: bool) -> Link:
    if session:
        features.require("uprobe_session")  # one uprobe per point cannot make a session
        return _attach_multi(program, path, offs, cookie_values, refs, pid, False, kind, desc,
                             AttachType.TRACE_UPROBE_SESSION)
    if features.has("uprobe_multi_link"):
        return _attach_multi(program, path, offs, cookie_values, refs, pid, retprobe, kind, desc)
    if not fallback:
        raise NotSupportedError("uprobe_multi_link", "6.6",
                                "fallback=False: pass fallback=True to attach the points as single uprobes")
    links: list[Link] = []
    try:
        for i, off in enumerate(offs):
            links.append(attach_uprobe(
                program, path, None, offset=off, pid=pid, retprobe=retprobe,
                cookie=cookie_values[i] if cookie_values else 0,
                ref_ctr_offset=refs[i] if refs else 0, fallback=fallback))
    except BaseException:
        close_all(links)
        raise
    return LinkGroup(links, program=program, kind=kind, target=desc)


def _attach_multi(program: Any, path: str, offs: list[int], cookies: list[int] | None, refs: list[int] | None,
                  pid: int | None, retprobe: bool, kind: str, desc: str,
                  attach_type: AttachType = AttachType.TRACE_UPROBE_MULTI) -> Link:
    lease = acquire(program, expected_attach_type=attach_type)
    try:
        n = len(offs)
        path_buf = cstr(path)
        off_arr = u64_array("offset", offs)
        cookie_arr = u64_array("cookie", cookies) if cookies else None
        ref_arr = u64_array("ref_ctr_offset", refs) if refs else None
        attr = LinkCreateAttr(prog_fd=prog_fd(lease.program), attach_type=attach_type)
        um = attr.u.uprobe_multi
        um.path = address(path_buf)
        um.offsets = address(off_arr)
        um.cookies = address(cookie_arr)
        um.ref_ctr_offsets = address(ref_arr)
        um.cnt = n
        um.flags = UPROBE_MULTI_RETURN if retprobe else 0
        um.pid = pid or 0
        fd = link_create(attr, what=f"{kind} link")
    except BaseException:
        lease.release()
        raise
    return Link(fd, program=program, attached_program=lease.program, kind=kind, target=desc,
                cookie=None, cleanups=[lease.release])


def _section_args(info: Any) -> dict[str, Any]:
    if not info.target:
        return {}
    path, sep, pattern = info.target.rpartition(":")
    if not sep or not path:
        raise ValueError(f"expected {info.kind}/PATH:PATTERN, not {info.kind}/{info.target}")
    return {"target": path, "symbols": pattern}


HOOKS = (
    Hook(attach_uprobe_multi, sections=("uprobe.multi", "uretprobe.multi", "uprobe.session"),
         prog_types=(ProgType.KPROBE,),
         attach_types=(None, AttachType.TRACE_UPROBE_MULTI, AttachType.TRACE_UPROBE_SESSION),
         section_args=_section_args,
         needs={"target": "a uprobe.multi program needs a binary and functions",
                "symbols": "a uprobe.multi program needs functions (a list or a glob)"},
         target_format="PATH:GLOB", min_kernel="6.6", section_min_kernel={"uprobe.session": "6.12"}, cookies=True),
)


def _info(fd: int, first: Any) -> dict[str, Any]:
    """uprobe_multi links (6.8): path, pid, flags and one offset, cookie and ref_ctr_offset per point."""
    n = first.u.uprobe_multi.count
    path = ctypes.create_string_buffer(4096)
    offsets, cookies, refs = ((ctypes.c_uint64 * max(n, 1))() for _ in range(3))

    def fill(raw: Any) -> None:
        s = raw.u.uprobe_multi
        s.path, s.path_size = ctypes.addressof(path), 4096
        if n:
            s.offsets, s.cookies, s.ref_ctr_offsets, s.count = (
                ctypes.addressof(offsets), ctypes.addressof(cookies), ctypes.addressof(refs), n)
    um = second_pass(fd, fill).u.uprobe_multi
    return dict(path=text(path), count=um.count, flags=um.flags, pid=um.pid,
                retprobe=bool(um.flags & UPROBE_MULTI_RETURN), offsets=list(offsets[:n]), cookies=list(cookies[:n]),
                ref_ctr_offsets=list(refs[:n]))


LINK_INFO = {LinkType.UPROBE_MULTI: _info}
