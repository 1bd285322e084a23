"""System call names and numbers, from a maintained source — never a table typed by hand.

Two sources, tried in order:

1. **libseccomp** (``libseccomp.so.2``, through ctypes): its resolver knows
   every architecture's table and is updated with each kernel release.
2. **The kernel's own UAPI header** for this architecture
   (``/usr/include/<multiarch>/asm/unistd_64.h`` from linux-libc-dev),
   whose ``#define __NR_<name> <number>`` lines are generated from the
   kernel's ``syscall_64.tbl``.

When neither is present a number is shown as ``syscall_<nr>``.  The numbers
are those of the running interpreter's architecture (the tracepoints
``raw_syscalls/sys_enter`` and ``sys_exit`` report native numbers).

Example::

    >>> from pybpf.tools import syscalls
    >>> syscalls.name(39), syscalls.number("getppid")          # doctest: +SKIP
    ('getpid', 110)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import re
import sysconfig

__all__ = ["name", "number", "table", "source"]

_SCMP_ARCH_NATIVE = 0
_DEFINE = re.compile(r"^#define\s+__NR_(\w+)\s+(\d+)\s*$", re.M)


def _header_paths() -> list[str]:
    triple = sysconfig.get_config_var("MULTIARCH") or ""
    names = ("unistd_64.h", "unistd.h")
    dirs = [f"/usr/include/{triple}/asm"] if triple else []
    dirs.append("/usr/include/asm")
    return [os.path.join(d, n) for d in dirs for n in names]


@functools.lru_cache(maxsize=1)
def _header_table() -> tuple[str, dict[int, str]]:
    for path in _header_paths():
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        found = {int(nr): nm for nm, nr in _DEFINE.findall(text)}
        if found:
            return path, found
    return "", {}


@functools.lru_cache(maxsize=1)
def _seccomp() -> ctypes.CDLL | None:
    path = ctypes.util.find_library("seccomp")
    if not path:
        return None
    try:
        lib = ctypes.CDLL(path)
        lib.seccomp_syscall_resolve_num_arch.argtypes = [ctypes.c_uint32, ctypes.c_int]
        lib.seccomp_syscall_resolve_num_arch.restype = ctypes.c_void_p   # malloc'd; we free it
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return lib


_libc = ctypes.CDLL(None)
_libc.free.argtypes = [ctypes.c_void_p]


@functools.lru_cache(maxsize=None)
def name(nr: int) -> str:
    """The name of system call ``nr`` on this architecture (``syscall_<nr>`` when unknown).

    >>> name(-1)
    'syscall_-1'
    """
    if nr >= 0:
        lib = _seccomp()
        if lib is not None:
            ptr = lib.seccomp_syscall_resolve_num_arch(_SCMP_ARCH_NATIVE, nr)
            if ptr:
                try:
                    return ctypes.string_at(ptr).decode()
                finally:
                    _libc.free(ptr)
        found = _header_table()[1].get(nr)
        if found:
            return found
    return f"syscall_{nr}"


@functools.lru_cache(maxsize=None)
def number(syscall: str) -> int | None:
    """The number of system call ``syscall`` on this architecture, or None if it has none.

    >>> number("no_such_syscall") is None
    True
    """
    lib = _seccomp()
    if lib is not None:
        nr = lib.seccomp_syscall_resolve_name(syscall.encode())
        if nr >= 0:
            return nr
    for nr, nm in _header_table()[1].items():
        if nm == syscall:
            return nr
    return None


def table() -> dict[int, str]:
    """Every known system call of this architecture, number → name (from the header when present)."""
    found = dict(_header_table()[1])
    if not found and _seccomp() is not None:
        for nr in range(1024):
            nm = name(nr)
            if not nm.startswith("syscall_"):
                found[nr] = nm
    return found


def source() -> str:
    """Where the names come from: ``libseccomp``, the header's path, or ``none``."""
    if _seccomp() is not None:
        return "libseccomp"
    return _header_table()[0] or "none"
