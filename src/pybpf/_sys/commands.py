"""Typed wrappers for the bpf(2) commands that are not tied to one map or program.

Map and program hot paths build their own attrs (see :mod:`pybpf.maps`);
these are the one-off commands: pinning, ids, info, BTF, links, stats.

Example::

    fd = obj_get("/sys/fs/bpf/counts")
    info = map_info(fd)
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os

from pybpf._sys.attrs import (
    BtfInfo, BtfLoadAttr, EnableStatsAttr, GetIdAttr, InfoAttr, IterCreateAttr, LinkCreateAttr,
    LinkDetachAttr, LinkInfo, LinkUpdateAttr, MapInfo, ObjPinAttr, ProgBindMapAttr, ProgInfo,
    RawTracepointAttr, packer,
)
from pybpf._sys.fs import check_on_bpffs, ensure_bpffs, on_bpffs
from pybpf._sys.syscall import FD, address, bpf, c_copy, cstr, error
from pybpf._sys.uapi import Cmd, StatsType
from pybpf.errors import SyscallError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator, TypeVar

    _Info = TypeVar("_Info", ProgInfo, MapInfo, LinkInfo, BtfInfo)


def obj_pin(fd: int, path: str) -> None:
    """BPF_OBJ_PIN ``fd`` at ``path`` (Linux 4.4), mounting bpffs first when ``path`` is below /sys/fs/bpf."""
    ensure_bpffs(path)
    p = cstr(path)
    try:
        bpf(Cmd.OBJ_PIN, ObjPinAttr(pathname=address(p), bpf_fd=fd), op=f"pin to {path}")
    except SyscallError as exc:
        if os.path.isdir(os.path.dirname(os.path.abspath(path))) and not on_bpffs(path):
            exc.hint = f"{os.path.dirname(path) or '.'} is not on a bpffs (mount -t bpf bpf /sys/fs/bpf)"
        raise


def unpin(path: str, *, missing_ok: bool = True) -> None:
    """Remove the bpffs pin at ``path``; one already gone is an error only if not ``missing_ok``.

    Only a file on a bpffs is removed (checked with statfs, as libbpf does):
    unpinning never deletes an ordinary file.
    """
    if not os.path.lexists(path):
        if missing_ok:
            return
        raise error(_errno.ENOENT, f"unpin {path}", hint="nothing is pinned there")
    check_on_bpffs(path, "unpin")
    try:
        os.unlink(path)
    except FileNotFoundError:
        if not missing_ok:
            raise error(_errno.ENOENT, f"unpin {path}", hint="nothing is pinned there") from None
    except OSError as exc:
        raise error(exc.errno or _errno.EPERM, f"unpin {path}") from None


def obj_get(path: str, *, flags: int = 0, what: str = "pinned object") -> FD:
    p = cstr(path)
    return FD(bpf(Cmd.OBJ_GET, ObjPinAttr(pathname=address(p), file_flags=flags), op=f"open pinned {path}",
                  hint_for=lambda err: _pin_permissions(path, err)), what)


def _pin_permissions(path: str, err: int) -> str | None:
    """For EACCES on a pin: the file permissions that refused it (a pin is opened like a file)."""
    if err != _errno.EACCES:
        return None
    try:
        st = os.stat(path)
    except PermissionError:
        return (f"permission denied on a directory above the pin: {os.path.dirname(path)} is not searchable "
                f"by uid {os.geteuid()}")
    except OSError:
        return None
    return (f"the pin's file permissions: {path} is mode {st.st_mode & 0o7777:04o} owned by uid {st.st_uid} "
            f"gid {st.st_gid}, and this process runs as uid {os.geteuid()} (chmod/chown the pin, or run as root)")


def _next_ids(cmd: Cmd) -> Iterator[int]:
    current = 0
    while True:
        attr = GetIdAttr(start_id=current)
        try:
            bpf(cmd, attr)
        except SyscallError as exc:
            if exc.errno == 2:  # ENOENT: no more ids
                return
            raise
        current = attr.next_id
        yield current


def prog_ids() -> Iterator[int]:
    return _next_ids(Cmd.PROG_GET_NEXT_ID)


def map_ids() -> Iterator[int]:
    return _next_ids(Cmd.MAP_GET_NEXT_ID)


def link_ids() -> Iterator[int]:
    return _next_ids(Cmd.LINK_GET_NEXT_ID)


def btf_ids() -> Iterator[int]:
    return _next_ids(Cmd.BTF_GET_NEXT_ID)


def fd_by_id(cmd: Cmd, obj_id: int, what: str) -> FD:
    return FD(bpf(cmd, GetIdAttr(start_id=obj_id), op=f"open {what} id {obj_id}"), what)


def prog_fd_by_id(obj_id: int) -> FD:
    return fd_by_id(Cmd.PROG_GET_FD_BY_ID, obj_id, "program")


def map_fd_by_id(obj_id: int) -> FD:
    return fd_by_id(Cmd.MAP_GET_FD_BY_ID, obj_id, "map")


def link_fd_by_id(obj_id: int) -> FD:
    return fd_by_id(Cmd.LINK_GET_FD_BY_ID, obj_id, "link")


def btf_fd_by_id(obj_id: int) -> FD:
    return fd_by_id(Cmd.BTF_GET_FD_BY_ID, obj_id, "btf")


def obj_info(fd: int, info: _Info) -> _Info:
    """Fill ``info`` (a ProgInfo/MapInfo/LinkInfo/BtfInfo, pointers pre-set) for ``fd``."""
    attr = InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info))
    bpf(Cmd.OBJ_GET_INFO_BY_FD, attr, op="get info")
    return info


def prog_info(fd: int) -> ProgInfo:
    return obj_info(fd, ProgInfo())


def prog_id_of(fd: int) -> int:
    """The id of the program behind ``fd``, or 0 when the kernel does not say."""
    try:
        return prog_info(fd).id
    except SyscallError:
        return 0


def map_info(fd: int) -> MapInfo:
    return obj_info(fd, MapInfo())


def link_info(fd: int) -> LinkInfo:
    return obj_info(fd, LinkInfo())


def btf_info(fd: int) -> BtfInfo:
    return obj_info(fd, BtfInfo())


_btf_load_attr_of = packer(BtfLoadAttr, ("btf", "btf_log_buf", "btf_size", "btf_log_size", "btf_log_level"))
_BTF_LOAD = int(Cmd.BTF_LOAD)


def btf_load(data: bytes, *, log_size: int = 0, log_level: int = 0) -> tuple[FD | None, str, int]:
    """BPF_BTF_LOAD: return (fd or None, log text, errno)."""
    blob, blob_addr = c_copy(data)
    log = ctypes.create_string_buffer(log_size) if log_size else None
    attr = _btf_load_attr_of((blob_addr, address(log), len(data), log_size, log_level if log_size else 0))
    try:
        fd = bpf(_BTF_LOAD, attr, op="load BTF")
    except SyscallError as exc:
        return None, (log.value.decode(errors="replace") if log else ""), exc.errno or 0
    return FD(fd, "btf"), (log.value.decode(errors="replace") if log else ""), 0


def raw_tracepoint_open(prog_fd: int, name: str | None, cookie: int = 0) -> FD:
    n = cstr(name) if name else None
    attr = RawTracepointAttr(name=address(n), prog_fd=prog_fd, cookie=cookie)
    return FD(bpf(Cmd.RAW_TRACEPOINT_OPEN, attr, op=f"open raw tracepoint {name}"), "raw tracepoint link")


def link_create(attr: LinkCreateAttr, what: str = "link") -> FD:
    return FD(bpf(Cmd.LINK_CREATE, attr, op="create link"), what)


def link_update(link_fd: int, new_prog_fd: int, *, old_prog_fd: int = 0, flags: int = 0) -> None:
    attr = LinkUpdateAttr(link_fd=link_fd, new_prog_fd=new_prog_fd, old_prog_fd=old_prog_fd, flags=flags)
    bpf(Cmd.LINK_UPDATE, attr, op="update link")


def link_detach(link_fd: int) -> None:
    bpf(Cmd.LINK_DETACH, LinkDetachAttr(link_fd=link_fd), op="detach link")


def iter_create(link_fd: int) -> FD:
    return FD(bpf(Cmd.ITER_CREATE, IterCreateAttr(link_fd=link_fd), op="create iterator"), "iterator")


def prog_bind_map(prog_fd: int, map_fd: int) -> None:
    bpf(Cmd.PROG_BIND_MAP, ProgBindMapAttr(prog_fd=prog_fd, map_fd=map_fd), op="bind map")


def enable_stats(kind: StatsType = StatsType.RUN_TIME) -> FD:
    """BPF_ENABLE_STATS: run time/count accounting stays on while the returned fd is open."""
    return FD(bpf(Cmd.ENABLE_STATS, EnableStatsAttr(type=kind), op="enable stats"), "stats")
