"""Functions a program may call: BPF helpers with a CPython twin.

Compiled, each is one ``call`` of the BPF helper (and a shift or a mask
for the halves of a packed result); run by CPython it answers the same
question about the calling process, so unit tests see sensible values.

=====================  ==============================  =====  ===============
function               BPF                              type   min kernel
=====================  ==============================  =====  ===============
``pid_tgid()``         bpf_get_current_pid_tgid()       u64    4.2
``tgid()``             pid_tgid() >> 32 (the process)   u32    4.2
``pid()``              pid_tgid() & 0xffffffff (thread) u32    4.2
``uid_gid()``          bpf_get_current_uid_gid()        u64    4.2
``uid()``/``gid()``    its low / high half              u32    4.2
``ktime_get_ns()``     bpf_ktime_get_ns()               u64    4.1
``boot_ns()``          bpf_ktime_get_boot_ns()          u64    5.8
``smp_processor_id()`` bpf_get_smp_processor_id()       u32    4.1
``prandom_u32()``      bpf_get_prandom_u32()            u32    4.1
``send_signal(sig)``   bpf_send_signal(sig)             i64    5.3
``get_current_comm(b)`` bpf_get_current_comm(b, size)   i64    4.2
``probe_read_user(b, p)``  bpf_probe_read_user(b, size, p)   i64  5.5
``probe_read_kernel(b, p)`` bpf_probe_read_kernel(b, size, p) i64 5.5
``probe_read_user_str(b, p)`` bpf_probe_read_user_str     i64    5.5
``probe_read_kernel_str(b, p)`` bpf_probe_read_kernel_str i64    5.5
=====================  ==============================  =====  ===============

``b`` is a fixed array or Struct (a local, or a field of one): the helper
gets its address and size.
"""

from __future__ import annotations

import os
import signal as _signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from pybpf._sys.uapi import HelperID
from pybpf.lang.types import i64, u32, u64

__all__ = ["pid_tgid", "tgid", "pid", "uid_gid", "uid", "gid", "ktime_get_ns", "boot_ns", "smp_processor_id",
           "prandom_u32", "send_signal", "get_current_comm", "probe_read_user", "probe_read_kernel",
           "probe_read_user_str", "probe_read_kernel_str", "HELPERS", "HelperSpec"]


def pid_tgid() -> u64:
    """Thread id (low half) and process id (high half) of the current task."""
    return u64(os.getpid() << 32 | threading.get_native_id())


def tgid() -> u32:
    """The current process id (what user space calls the pid)."""
    return u32(os.getpid())


def pid() -> u32:
    """The current thread id."""
    return u32(threading.get_native_id())


def uid_gid() -> u64:
    """uid (low half) and gid (high half) of the current task."""
    return u64(os.getgid() << 32 | os.getuid())


def uid() -> u32:
    return u32(os.getuid())


def gid() -> u32:
    return u32(os.getgid())


def ktime_get_ns() -> u64:
    """CLOCK_MONOTONIC in nanoseconds."""
    return u64(time.monotonic_ns())


def boot_ns() -> u64:
    """CLOCK_BOOTTIME in nanoseconds (Linux 5.8)."""
    return u64(time.clock_gettime_ns(time.CLOCK_BOOTTIME))


def smp_processor_id() -> u32:
    """The CPU the program runs on."""
    return u32(os.sched_getcpu() if hasattr(os, "sched_getcpu") else 0)


def prandom_u32() -> u32:
    import random   # CPython runs of a program only

    return u32(random.getrandbits(32))


def send_signal(sig: int) -> i64:
    """Send ``sig`` to the current process (Linux 5.3); in CPython it is only recorded."""
    _signal.Signals(int(sig))
    return i64(0)


def get_current_comm(buf: Any) -> i64:
    """Copy the current task's name (NUL-terminated) into ``buf`` (a u8[16])."""
    with open("/proc/thread-self/comm", "rb") as f:
        name = f.read().rstrip(b"\n")[:len(buf) - 1]
    buf[:] = name + bytes(len(buf) - len(name))
    return i64(0)


def _read(buf: Any, src: int, string: bool) -> i64:
    import ctypes

    n = len(buf)
    data = ctypes.string_at(int(src), n)
    if string:
        data = data.split(b"\0", 1)[0][:n - 1]
        buf[:] = data + bytes(n - len(data))
        return i64(len(data) + 1)
    buf[:] = data
    return i64(0)


def probe_read_user(buf: Any, src: int) -> i64:
    """Copy ``len(buf)`` bytes from user address ``src`` (CPython: this process's memory)."""
    return _read(buf, src, False)


def probe_read_kernel(buf: Any, src: int) -> i64:
    """Copy ``len(buf)`` bytes from kernel address ``src`` (CPython: this process's memory)."""
    return _read(buf, src, False)


def probe_read_user_str(buf: Any, src: int) -> i64:
    """Copy a NUL-terminated string from user address ``src``; the length with the NUL."""
    return _read(buf, src, True)


def probe_read_kernel_str(buf: Any, src: int) -> i64:
    return _read(buf, src, True)


@dataclass(frozen=True)
class HelperSpec:
    """How a call compiles: ``helper`` id, argument kinds, ``post`` ("", "hi32", "lo32"), result ``type``.

    Argument kinds: "int" (a value), "buf" (an array or Struct: its address, then its size).
    """

    helper: int
    type: type
    args: tuple[str, ...] = ()
    post: str = ""


HELPERS: dict[Callable[..., Any], HelperSpec] = {
    pid_tgid: HelperSpec(HelperID.get_current_pid_tgid, u64),
    tgid: HelperSpec(HelperID.get_current_pid_tgid, u32, (), "hi32"),
    pid: HelperSpec(HelperID.get_current_pid_tgid, u32, (), "lo32"),
    uid_gid: HelperSpec(HelperID.get_current_uid_gid, u64),
    uid: HelperSpec(HelperID.get_current_uid_gid, u32, (), "lo32"),
    gid: HelperSpec(HelperID.get_current_uid_gid, u32, (), "hi32"),
    ktime_get_ns: HelperSpec(HelperID.ktime_get_ns, u64),
    boot_ns: HelperSpec(HelperID.ktime_get_boot_ns, u64),
    smp_processor_id: HelperSpec(HelperID.get_smp_processor_id, u32),
    prandom_u32: HelperSpec(HelperID.get_prandom_u32, u32),
    send_signal: HelperSpec(HelperID.send_signal, i64, ("int",)),
    get_current_comm: HelperSpec(HelperID.get_current_comm, i64, ("buf",)),
    probe_read_user: HelperSpec(HelperID.probe_read_user, i64, ("buf", "int")),
    probe_read_kernel: HelperSpec(HelperID.probe_read_kernel, i64, ("buf", "int")),
    probe_read_user_str: HelperSpec(HelperID.probe_read_user_str, i64, ("buf", "int")),
    probe_read_kernel_str: HelperSpec(HelperID.probe_read_kernel_str, i64, ("buf", "int")),
}


def _kernel_helpers() -> None:
    from pybpf.lang.kernel_types import KPtr, current_task

    HELPERS[current_task] = HelperSpec(HelperID.get_current_task, KPtr("task_struct"))


_kernel_helpers()
