"""The two pseudo file systems pybpf needs: bpffs (pins) and tracefs (tracepoints, dynamic probes).

Neither is mounted at boot on every system.  pybpf mounts each at its standard
place when it needs it and nothing is mounted there yet (root is needed):
bpffs at /sys/fs/bpf when something is pinned below it, tracefs at
/sys/kernel/tracing when a tracepoint or a legacy probe needs it.  Each
mount is logged (logger ``pybpf``, level INFO); pybpf never mounts over a
file system that is already mounted at either place.

Pins are only ever removed from a bpffs: :func:`check_on_bpffs` asks
``statfs(2)`` for the file system's magic (BPF_FS_MAGIC, as libbpf does), so
``unpin`` cannot be turned into a general ``unlink``.

Example::

    ensure_bpffs("/sys/fs/bpf/myapp/counts")     # mounts bpffs if missing
    events = os.path.join(tracefs_root(), "events")
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
from _thread import allocate_lock   # threading.Lock itself, without importing threading

from pybpf._sys.syscall import error

__all__ = ["BPFFS", "TRACEFS", "BPF_FS_MAGIC", "mount_fs", "fs_magic", "on_bpffs", "check_on_bpffs",
           "ensure_bpffs", "tracefs_root", "tracefs_file"]

BPFFS = "/sys/fs/bpf"
TRACEFS = "/sys/kernel/tracing"               # Linux 4.1+
DEBUGFS_TRACING = "/sys/kernel/debug/tracing"  # tracefs under debugfs, the older place
BPF_FS_MAGIC = 0xCAFE4A11                     # include/uapi/linux/magic.h


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.restype = ctypes.c_int
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p)
_libc.statfs.restype = ctypes.c_int
_libc.statfs.argtypes = (ctypes.c_char_p, ctypes.c_void_p)
_lock = allocate_lock()


def mount_fs(fstype: str, target: str) -> None:
    """``mount -t fstype fstype target``, logged; raises OSError (EBUSY when something is mounted there)."""
    os.makedirs(target, exist_ok=True)
    if os.path.ismount(target):
        raise OSError(_errno.EBUSY, f"something is already mounted at {target}", target)
    if _libc.mount(fstype.encode(), target.encode(), fstype.encode(), 0, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)
    import logging  # only here: importing logging costs every process that never mounts anything

    logging.getLogger("pybpf").info("pybpf mounted %s at %s (it was not mounted)", fstype, target)


def fs_magic(path: str) -> int | None:
    """The ``f_type`` statfs(2) reports for the file system holding ``path``, or None."""
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit Linux
    if _libc.statfs(os.fsencode(path), buf) != 0:
        return None
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF  # f_type is the first field


def on_bpffs(path: str) -> bool:
    """Whether ``path``'s directory lies on a bpffs (pins live in their directory's file system)."""
    return fs_magic(os.path.dirname(os.path.abspath(path)) or ".") == BPF_FS_MAGIC


def check_on_bpffs(path: str, op: str) -> None:
    """Raise a SyscallError (EINVAL) unless ``path`` is on a bpffs: ``op`` would touch some other file."""
    if not on_bpffs(path):
        raise error(_errno.EINVAL, f"{op} {path}",
                    hint=f"{os.path.dirname(os.path.abspath(path))} is not on a bpffs: not a pin")


def ensure_bpffs(path: str) -> None:
    """Mount bpffs at /sys/fs/bpf when ``path`` lies below it and nothing is mounted there.

    Raises SyscallError saying how to mount it when that fails (not root),
    or when another file system is mounted at /sys/fs/bpf.
    """
    real = os.path.abspath(path)
    if not (real == BPFFS or real.startswith(BPFFS + "/")):
        return
    with _lock:
        if fs_magic(BPFFS) == BPF_FS_MAGIC:
            return
        try:
            mount_fs("bpf", BPFFS)
        except OSError as exc:
            raise error(exc.errno or _errno.EPERM, f"mount bpffs at {BPFFS}",
                        hint=f"bpffs is not mounted at {BPFFS} and pybpf could not mount it "
                             f"({exc.strerror}); mount it with: mount -t bpf bpf {BPFFS}") from None


def _usable(root: str) -> bool:
    return os.path.isdir(os.path.join(root, "events"))


def tracefs_root(*, mount: bool = True) -> str:
    """The tracefs directory, mounting tracefs at /sys/kernel/tracing when it is missing.

    Raises SyscallError (ENOENT, or why mounting failed) saying which command to run.
    """
    for root in (TRACEFS, DEBUGFS_TRACING):
        if _usable(root):
            return root
    how = f"mount it with: mount -t tracefs tracefs {TRACEFS}"
    if os.path.ismount(TRACEFS) and not os.access(TRACEFS, os.R_OK | os.X_OK):
        # Mounted, but its mode (0700 by default) keeps this user out: mounting again cannot help.
        raise error(_errno.EACCES, f"open tracefs at {TRACEFS}",
                    hint=f"permission denied on {TRACEFS} (mode {os.stat(TRACEFS).st_mode & 0o7777:04o}, "
                         f"uid {os.stat(TRACEFS).st_uid}), run as root")
    if mount:
        with _lock:
            if _usable(TRACEFS):
                return TRACEFS
            try:
                mount_fs("tracefs", TRACEFS)
            except OSError as exc:
                raise error(exc.errno or _errno.EPERM, f"mount tracefs at {TRACEFS}",
                            hint=f"tracefs is not mounted and pybpf could not mount it ({exc.strerror}); {how}"
                            ) from None
            if _usable(TRACEFS):
                return TRACEFS
    raise error(_errno.ENOENT, "find tracefs", hint=f"tracefs is not mounted; {how}")


def tracefs_file(name: str) -> bool:
    """Whether tracefs, at either usual place, has ``name`` (never mounts)."""
    return any(os.path.exists(os.path.join(root, name)) for root in (TRACEFS, DEBUGFS_TRACING))
