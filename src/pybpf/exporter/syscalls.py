"""Syscall numbers → names for the running architecture, from maintained sources.

Nothing here is typed by hand.  The names come from, in order:

1. libseccomp (``seccomp_syscall_resolve_num_arch``), whose tables follow
   every kernel release and every architecture;
2. the kernel's own UAPI header for this architecture
   (``asm/unistd_64.h`` from linux-libc-dev: ``#define __NR_read 0``);
3. otherwise ``syscall_<n>``.

Example::

    >>> syscall_name(0)          # doctest: +SKIP
    'read'
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform
import re

__all__ = ["syscall_name", "syscall_table", "source"]

_HEADERS = {
    "x86_64": ("/usr/include/x86_64-linux-gnu/asm/unistd_64.h", "/usr/include/asm/unistd_64.h"),
    "aarch64": ("/usr/include/aarch64-linux-gnu/asm/unistd.h", "/usr/include/asm-generic/unistd.h"),
}
_DEFINE = re.compile(r"^#define\s+__NR_(\w+)\s+(\d+)\s*$", re.M)


@functools.lru_cache(maxsize=1)
def _seccomp() -> tuple[object, object] | None:
    name = ctypes.util.find_library("seccomp")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name)
        libc = ctypes.CDLL(None)
        resolve = lib.seccomp_syscall_resolve_num_arch
    except (OSError, AttributeError):
        return None
    resolve.argtypes = [ctypes.c_uint32, ctypes.c_int]
    resolve.restype = ctypes.c_void_p          # a malloc'd string we free
    free = libc.free
    free.argtypes = [ctypes.c_void_p]
    free.restype = None
    return resolve, free


def _from_seccomp(nr: int) -> str | None:
    funcs = _seccomp()
    if funcs is None:
        return None
    resolve, free = funcs
    ptr = resolve(0, nr)                        # 0: SCMP_ARCH_NATIVE
    if not ptr:
        return None
    try:
        return ctypes.string_at(ptr).decode()
    finally:
        free(ptr)


@functools.lru_cache(maxsize=1)
def _header() -> tuple[str, dict[int, str]]:
    for path in _HEADERS.get(platform.machine(), ()):
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        return path, {int(nr): name for name, nr in _DEFINE.findall(text)}
    return "none", {}


def _header_table() -> dict[int, str]:
    return _header()[1]


def source() -> str:
    """Where names come from on this machine: ``"libseccomp"``, a header path, or ``"none"``."""
    return "libseccomp" if _seccomp() is not None else _header()[0]


@functools.lru_cache(maxsize=4096)
def syscall_name(nr: int) -> str:
    """The name of syscall ``nr`` on this architecture, or ``syscall_<nr>`` when unknown."""
    name = _from_seccomp(nr) if 0 <= nr < 1 << 31 else None
    return name or _header_table().get(nr) or f"syscall_{nr}"


def syscall_table(limit: int = 1024) -> dict[int, str]:
    """Every known syscall number below ``limit`` and its name."""
    out = {}
    for nr in range(limit):
        name = syscall_name(nr)
        if not name.startswith("syscall_"):
            out[nr] = name
    return out
