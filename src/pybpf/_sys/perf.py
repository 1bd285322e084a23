"""perf_event_open(2) and the perf event ioctls.

Example::

    attr = PerfEventAttr(type=PerfType.SOFTWARE, config=PerfSwConfig.CPU_CLOCK,
                         sample_period=1_000_000)
    fd = perf_event_open(attr, pid=-1, cpu=0)
    set_bpf(fd, prog_fd); enable(fd)
"""

from __future__ import annotations

import ctypes
import errno as _errno
import fcntl
import struct

from pybpf._sys.attrs import PerfEventAttr, check_int
from pybpf._sys.flags import (
    PERF_EVENT_IOC_DISABLE, PERF_EVENT_IOC_ENABLE, PERF_EVENT_IOC_ID, PERF_EVENT_IOC_PAUSE_OUTPUT,
    PERF_EVENT_IOC_SET_BPF, PERF_FLAG_FD_CLOEXEC,
)
from pybpf._sys.syscall import FD, NR_PERF_EVENT_OPEN, _libc, eperm_hint, error
from pybpf.errors import SyscallError

_perf_event_open = _libc["syscall"]  # its own function object: _libc.syscall carries bpf(2)'s argtypes
_perf_event_open.restype = ctypes.c_long


def perf_event_open(attr: PerfEventAttr, *, pid: int = -1, cpu: int = 0, group_fd: int = -1,
                    flags: int = PERF_FLAG_FD_CLOEXEC, what: str = "perf event") -> FD:
    """Open a perf event; ``attr.size`` is filled in. Raises SyscallError."""
    attr.size = ctypes.sizeof(PerfEventAttr)
    pid, cpu = check_int("pid", pid, 32, signed=True), check_int("cpu", cpu, 32, signed=True)
    res = _perf_event_open(
        ctypes.c_long(NR_PERF_EVENT_OPEN), ctypes.c_void_p(ctypes.addressof(attr)),
        ctypes.c_int(pid), ctypes.c_int(cpu), ctypes.c_int(group_fd), ctypes.c_ulong(flags),
    )
    if res < 0:
        err = ctypes.get_errno()
        hint = None
        if err == _errno.EACCES or err == _errno.EPERM:
            hint = eperm_hint() + "; see also /proc/sys/kernel/perf_event_paranoid"
        elif err == _errno.ENOENT:
            hint = "no such event on this machine (hardware counters are often missing in VMs)"
        raise error(err, "perf_event_open", hint=hint)
    return FD(res, what)


def _ioctl(fd: int, request: int, arg: int, op: str) -> None:
    try:
        fcntl.ioctl(fd, request, arg)
    except OSError as exc:
        raise error(exc.errno or _errno.EIO, op) from None


def enable(fd: int) -> None:
    _ioctl(fd, PERF_EVENT_IOC_ENABLE, 0, "perf event enable")


def disable(fd: int) -> None:
    _ioctl(fd, PERF_EVENT_IOC_DISABLE, 0, "perf event disable")


def set_bpf(fd: int, prog_fd: int) -> None:
    """PERF_EVENT_IOC_SET_BPF: the attach path of kernels without perf links (before 5.15)."""
    _ioctl(fd, PERF_EVENT_IOC_SET_BPF, prog_fd, "perf event set bpf")


def pause_output(fd: int, pause: bool) -> None:
    _ioctl(fd, PERF_EVENT_IOC_PAUSE_OUTPUT, int(pause), "perf event pause output")


def event_id(fd: int) -> int:
    buf = bytearray(8)
    try:
        fcntl.ioctl(fd, PERF_EVENT_IOC_ID, buf)
    except OSError as exc:
        raise error(exc.errno or _errno.EIO, "perf event id") from None
    return struct.unpack("<Q", buf)[0]


__all__ = ["perf_event_open", "enable", "disable", "set_bpf", "pause_output", "event_id", "SyscallError"]
