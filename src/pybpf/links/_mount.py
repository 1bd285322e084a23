"""Mounting bpffs and tracefs when they are missing (mount(2) through libc).

Only the two pseudo file systems pybpf needs, only at their standard
places, and only when nothing is mounted there.  Root (CAP_SYS_ADMIN) is
needed; otherwise the caller turns the OSError into a message that says
which ``mount`` command to run.
"""

from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)
_mount = _libc.mount
_mount.restype = ctypes.c_int
_mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p)


def mount(source: str, target: str, fstype: str) -> None:
    """mount -t ``fstype`` ``source`` ``target``; raises OSError."""
    os.makedirs(target, exist_ok=True)
    if _mount(source.encode(), target.encode(), fstype.encode(), 0, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)
