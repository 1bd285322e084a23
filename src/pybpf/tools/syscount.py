"""syscount: system calls counted by name (the life-cycle article's sys_enter counter, grown up).

The kernel side is the pybpf.lang programs below: on the
``raw_syscalls/sys_enter`` tracepoint they add one to ``counts[nr]`` (or
``counts[tgid]`` with ``BY_PROCESS``); with ``LATENCY`` they also note the
entry time per thread, and on ``raw_syscalls/sys_exit`` the time spent is
added to ``total_ns``.  Only the programs a run needs are compiled, and the
verifier drops the branches the ``Const`` settings turn off.  Names come from :mod:`pybpf.tools.syscalls`.

Example::

    with SysCount(pid=os.getpid()) as tool:
        os.getppid()
        print(tool.rows()[0])            # SyscallCount(key=110, name='getppid', count=1, total_ns=None)
"""

from __future__ import annotations

from dataclasses import dataclass

import pybpf
from pybpf.lang import Const, HashMap, ktime_get_ns, pid_tgid, tgid, tracepoint, u8, u32, u64
from pybpf.tools import syscalls
from pybpf.tools.session import Tracer

# -- kernel side (pybpf.lang) ------------------------------------------------------------------------

TARGET_TGID = Const(u32, 0)        # 0: every process
BY_PROCESS = Const(u8, 0)          # key by process instead of by system call
LATENCY = Const(u8, 0)             # note entry times for sys_exit
counts = HashMap(key=u64, value=u64, max_entries=10240)
start = HashMap(key=u64, value=u64, max_entries=10240)       # thread -> entry time
total_ns = HashMap(key=u64, value=u64, max_entries=10240)


@tracepoint("raw_syscalls/sys_enter")
def sys_enter(ctx) -> int:
    if TARGET_TGID != 0 and tgid() != TARGET_TGID:
        return 0
    key = u64(tgid()) if BY_PROCESS else u64(ctx.id) & 0xFFFFFFFF
    counts[key] += 1
    if LATENCY:
        start[pid_tgid()] = ktime_get_ns()
    return 0


@tracepoint("raw_syscalls/sys_exit")
def sys_exit(ctx) -> int:
    if TARGET_TGID != 0 and tgid() != TARGET_TGID:
        return 0
    thread = pid_tgid()
    if thread not in start:
        return 0
    ns = ktime_get_ns() - start[thread]
    del start[thread]
    key = u64(tgid()) if BY_PROCESS else u64(ctx.id) & 0xFFFFFFFF
    total_ns[key] += ns
    return 0


# -- user side ---------------------------------------------------------------------------------------

__all__ = ["SysCount", "SyscallCount", "process_name"]


@dataclass(frozen=True)
class SyscallCount:
    """One row: a system call (or, by process, a pid), its name, its count and time spent (ns, with latency)."""

    key: int
    name: str
    count: int
    total_ns: int | None = None


def process_name(pid: int) -> str:
    """The command name of process ``pid`` (``?`` once it has gone)."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


class SysCount(Tracer):
    """The syscount tracer: attaches on construction; :meth:`rows`, :meth:`close`."""

    def __init__(self, pid: int | None = None, *, by_process: bool = False, latency: bool = False) -> None:
        self.by_process = by_process
        self.latency = latency
        self._base: dict[int, tuple[int, int]] = {}
        spec = pybpf.compile(sys_enter, sys_exit) if latency else pybpf.compile(sys_enter)
        spec.variables["TARGET_TGID"].value = pid or 0
        spec.variables["BY_PROCESS"].value = int(by_process)
        spec.variables["LATENCY"].value = int(latency)
        self._start(spec, lambda: self.kernel.attach_all())

    def _name(self, key: int) -> str:
        return process_name(key) if self.by_process else syscalls.name(key)

    def rows(self, *, reset: bool = False) -> list[SyscallCount]:
        """Counts since the start (or the last ``reset=True``), busiest first."""
        counts = dict(self.kernel.maps["counts"].items())
        totals = dict(self.kernel.maps["total_ns"].items()) if self.latency else {}
        out = []
        for key, n in counts.items():
            base_n, base_t = self._base.get(key, (0, 0))
            if n - base_n:
                ns = totals.get(key, 0) - base_t if self.latency else None
                out.append(SyscallCount(key, self._name(key), n - base_n, ns))
        if reset:
            self._base = {k: (n, totals.get(k, 0)) for k, n in counts.items()}
        return sorted(out, key=lambda r: (-r.count, r.key))
