"""Uprobes and uretprobes: a program on a user-space function, with a cookie.

``attach_uprobe(prog, target, symbol, offset=, pid=, cookie=, retprobe=)``
places one uprobe at the file offset of ``symbol`` (+ ``offset``) in
``target``.  ``target`` is a path, or a library or command by name ("c",
"libc", "libc.so.6", "bash") found like the dynamic loader finds it
(:mod:`pybpf.links.ldcache`); ``symbol`` may carry a version
("memcpy@GLIBC_2.14"), or be None with ``offset`` an absolute file offset.
``pid`` limits the probe to one process (thread id, as perf does; None: every
process mapping the file).

The probe is a perf event of the ``uprobe`` PMU (Linux 4.17) attached
through a BPF perf link carrying the cookie (5.15); before that the program
is attached with an ioctl and a non-zero cookie is compiled into a clone
(:mod:`pybpf.links.fallback`).  Without the PMU, pybpf writes a probe into
tracefs ``uprobe_events`` and removes it when the link closes.

Minimum kernel: 4.17 (PMU; 3.5 through tracefs), cookies 5.15,
``ref_ctr_offset`` (USDT semaphores) 4.20.

Cost: attaching is about 0.2 ms a probe, but *closing* a uprobe link waits
for an RCU tasks-trace grace period in the kernel (about 0.1 s each on Linux
6.x, for libbpf too).  For many points prefer
:func:`~pybpf.links.uprobe_multi.attach_uprobe_multi`, whose link waits once
for all of them.

Example::

    link = attach_uprobe(prog, "/usr/bin/bash", "readline", cookie=1)
    link = attach_uprobe(prog, "c", "malloc", retprobe=True, pid=1234)
"""

from __future__ import annotations

import os

from pybpf import features
from pybpf._sys.attrs import PerfEventAttr, check_int
from pybpf._sys.syscall import address, cstr
from pybpf._sys.uapi import LinkType, PerfType, ProgType
from pybpf.errors import ArgumentError, LinkError, SyscallError, context
from pybpf.links import _perf, _tracefs
from pybpf.links.base import _label, check_program
from pybpf.links.link import Link
from pybpf.links.hook import Hook, retprobe_for, split_offset
from pybpf.links.ifunc import IfuncChoice, select_implementations
from pybpf.links.ldcache import library_candidates, resolve_target
from pybpf.links.symbols import ElfFile

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["attach_uretprobe", "attach_uprobe", "resolve_uprobe", "open_uprobe_event", "check_in_file"]

_FORCE_TRACEFS = False  # tests: take the legacy tracefs path even when the PMU exists


def _library_in_process(pid: int, name: str) -> str | None:
    """The path of library ``name`` as mapped by process ``pid`` (what its loader really chose)."""
    if "/" in name:
        return None
    exact, prefix = library_candidates(name)
    try:
        with open(f"/proc/{pid}/maps") as f:
            lines = f.readlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) < 6:
            continue
        path = parts[5].strip()
        base = os.path.basename(path)
        if (exact is not None and base == exact) or (exact is None and (base == prefix or base.startswith(prefix + "."))):
            # Through /proc/<pid>/root when the process lives in another mount
            # namespace (its path names another file, or none, in ours).
            rooted = f"/proc/{pid}/root{path}"
            try:
                theirs = os.stat(rooted)
            except OSError:
                return path
            try:
                ours = os.stat(path)
                if (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino):
                    return path
            except OSError:
                pass
            return rooted
    return None


def resolve_target_for(target: Any, pid: int | None) -> str:
    text = os.fspath(target)
    if pid is not None and pid > 0 and isinstance(text, str):
        found = _library_in_process(pid, text)
        if found:
            return found
    return resolve_target(text)


def resolve_uprobe(target: Any, symbol: str | None, offset: int = 0,
                   pid: int | None = None) -> tuple[str, int, str, dict[str, IfuncChoice]]:
    """(path, file offset, description, IFUNC choice) of a probe point.

    An IFUNC symbol (glibc's strlen...) is probed at the implementation the
    dynamic loader selects on this machine (see :mod:`pybpf.links.ifunc`).
    Raises NotFoundError/SymbolNotFoundError.
    """
    if not isinstance(offset, int) or offset < 0:
        raise ArgumentError(f"offset must be a non-negative int, not {offset!r}")
    check_int("offset", offset)
    path = resolve_target_for(target, pid)
    if symbol is None:
        if offset == 0:
            raise ValueError("attach_uprobe needs a symbol, or an absolute file offset with symbol=None")
        elf = ElfFile.open(path)  # an ELF check: a uprobe on a non-ELF file would never fire
        check_in_file(elf, offset, f"offset {offset:#x}")
        return path, offset, f"{path}:{offset:#x}", {}
    if not isinstance(symbol, str):
        raise TypeError(f"symbol must be a str or None, not {type(symbol).__name__}")
    elf = ElfFile.open(path)
    (sym,), choice = select_implementations(elf, [elf.resolve(symbol)])
    desc = f"{path}:{symbol}" + (f"+{offset:#x}" if offset else "")
    check_in_file(elf, sym.offset + offset, f"{symbol}+{offset:#x} (file offset {sym.offset + offset:#x})")
    return path, sym.offset + offset, desc, choice


def check_in_file(elf: ElfFile, offset: int, what: str) -> None:
    """A uprobe goes on an instruction of the file: an offset past its end is refused here, by name
    (the kernel would only say EINVAL)."""
    size = elf.file_size
    if offset >= size:
        raise LinkError(f"{what} is past the end of {elf.path} ({size} bytes): a uprobe offset is a file "
                        "offset, not an address")


def open_uprobe_event(path: str, offset: int, *, pid: int | None, retprobe: bool,
                      ref_ctr_offset: int = 0) -> tuple[Any, list, dict]:
    """Open the perf event of one uprobe: (event FD, cleanups, local info).

    Through the ``uprobe`` PMU, or tracefs ``uprobe_events`` without it.
    """
    # features.override(uprobes=False) takes the legacy path, as on a kernel without the PMU.
    pmu = None if _FORCE_TRACEFS or not features.has("uprobes") else _perf.pmu_type("uprobe")
    cpu, tid = (0, -1) if pid is None or pid < 0 else (-1, pid)
    info = dict(link_type=LinkType.PERF_EVENT, perf_type="uretprobe" if retprobe else "uprobe",
                file_name=path, offset=offset, ref_ctr_offset=ref_ctr_offset, retprobe=retprobe)
    if pmu is not None:
        attr = PerfEventAttr(type=pmu)
        name = cstr(path)
        attr.config1 = address(name)  # uprobe_path
        attr.config2 = offset         # probe_offset
        if retprobe:
            _perf.set_field(attr, "uprobe", "retprobe", 1, default=("config", 0, 0))
        if ref_ctr_offset:
            _perf.set_field(attr, "uprobe", "ref_ctr_offset", ref_ctr_offset, default=("config", 32, 63))
        event = _perf.open_event(attr, pid=tid, cpu=cpu, what="uprobe event")
        del name
        return event, [], info
    # Legacy: a dynamic uprobe in tracefs (kernels before 4.17).
    event_name = _tracefs.new_event_name()
    spec = f"{path}:{offset:#x}" + (f"({ref_ctr_offset:#x})" if ref_ctr_offset else "")
    tp_id = _tracefs.add_dynamic_probe("uprobe", f"{'r' if retprobe else 'p'} {spec}", event_name)

    def remove() -> None:
        _tracefs.remove_dynamic_probe("uprobe", event_name)
    try:
        attr = PerfEventAttr(type=PerfType.TRACEPOINT, config=tp_id)
        event = _perf.open_event(attr, pid=tid, cpu=cpu, what="uprobe event")
    except BaseException:
        remove()
        raise
    info["tracefs_event"] = f"{_tracefs.GROUP}/{event_name}"
    return event, [remove], info


def _pid_arg(pid: Any) -> int | None:
    if pid is None:
        return None
    if isinstance(pid, bool) or not isinstance(pid, int):
        raise TypeError(f"pid must be an int or None, not {type(pid).__name__}")
    if pid <= 0:
        raise ValueError(f"pid must be positive, not {pid}")
    return pid


def attach_uprobe(
    program: Any,
    target: str | os.PathLike[str],
    symbol: str | None = None,
    *,
    offset: int = 0,
    pid: int | None = None,
    cookie: int = 0,
    retprobe: bool | None = None,
    ref_ctr_offset: int = 0,
    fallback: bool = True,
) -> Link:
    """Attach a KPROBE-type program to a uprobe (or uretprobe) on ``symbol`` (+ ``offset``) of ``target``.

    ``retprobe`` defaults to what the program's section says
    (``SEC("uretprobe")``: a return probe); an explicit value that
    contradicts the section is a ValueError.  Linux 4.17 (cookie 5.15,
    ``ref_ctr_offset`` 4.20).

    Example: ``prog.attach_uprobe("/usr/bin/bash", "readline", cookie=1)``.

    Raises FileNotFoundError (no such file or library), SymbolNotFoundError
    (with the closest names), TypeError (not a kprobe/uprobe program),
    NotSupportedError (no cookies and ``fallback=False``), SyscallError.
    """
    check_program(program, (ProgType.KPROBE,), "attach_uprobe")
    retprobe = retprobe_for(program, retprobe, "attach_uprobe")
    method = "attach_uretprobe" if retprobe else "attach_uprobe"
    pid = _pid_arg(pid)
    with context(_label(program)), context(method):
        path, off, desc, ifunc = resolve_uprobe(target, symbol, offset, pid)
    kind = "uretprobe" if retprobe else "uprobe"
    with context(_label(program)), context(f"{method} {desc}"):
        try:
            event, cleanups, info = open_uprobe_event(path, off, pid=pid, retprobe=retprobe,
                                                      ref_ctr_offset=ref_ctr_offset)
        except SyscallError as exc:
            if exc.errno == 3:  # ESRCH
                exc.hint = f"no process {pid}"
            raise
        info["cookie"] = cookie
        if ifunc:
            info["ifunc"] = ifunc
        return _perf.attach_to_event(program, event, cookie=cookie, fallback=fallback, kind=kind,
                                     target=desc + (f" pid {pid}" if pid else ""), cleanups=cleanups,
                                     local_info=info)


def attach_uretprobe(program: Any, target: str | os.PathLike[str], symbol: str | None = None, *, offset: int = 0,
                     pid: int | None = None, cookie: int = 0, ref_ctr_offset: int = 0,
                     fallback: bool = True) -> Link:
    """A return probe: :func:`attach_uprobe` with ``retprobe=True``; Linux 4.17 (cookie 5.15).

    Example: ``prog.attach_uretprobe("c", "malloc", pid=1234)``.
    """
    return attach_uprobe(program, target, symbol, offset=offset, pid=pid, cookie=cookie, retprobe=True,
                         ref_ctr_offset=ref_ctr_offset, fallback=fallback)


def _section_args(info: Any) -> dict[str, Any]:
    if not info.target:
        return {}
    path, sep, func = info.target.rpartition(":")
    if not sep or not path:
        raise ValueError(f"expected {info.kind}/PATH:FUNCTION[+OFFSET], not {info.kind}/{info.target}")
    symbol, offset = split_offset(func)
    return {"target": path, "symbol": symbol or None, "offset": offset}


_NEEDS = {"target": "a uprobe needs a binary and a function"}
HOOKS = (
    Hook(attach_uprobe, sections=("uprobe", "uretprobe"), prog_types=(ProgType.KPROBE,), attach_types=(None,),
         section_args=_section_args, needs=_NEEDS, target_format="PATH:FUNCTION[+OFFSET]",
         min_kernel="4.17", cookies=True),
    Hook(attach_uretprobe, prog_types=(ProgType.KPROBE,), attach_types=(None,), min_kernel="4.17", cookies=True),
)
