"""syscount: system calls counted by name (the life-cycle article's sys_enter counter, grown up).

The kernel side (:func:`pybpf.tools.kernels_asm.syscount`) runs on the
``raw_syscalls/sys_enter`` tracepoint and adds one to ``counts[nr]`` (or
``counts[tgid]`` with ``by_process``); with ``latency`` it also notes the
entry time per thread and, on ``raw_syscalls/sys_exit``, adds the time spent
to ``total_ns``.  Names come from :mod:`pybpf.tools.syscalls`.

Example::

    with SysCount(pid=os.getpid()) as tool:
        os.getppid()
        print(tool.rows()[0])            # SyscallCount(key=110, name='getppid', count=1, total_ns=None)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pybpf.tools import kernels_asm, syscalls

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


class SysCount:
    """The syscount tracer: attaches on construction; :meth:`rows`, :meth:`close`."""

    def __init__(self, pid: int | None = None, *, by_process: bool = False, latency: bool = False) -> None:
        self.by_process = by_process
        self.latency = latency
        self.kernel = kernels_asm.syscount(pid or 0, by_process=by_process, latency=latency)
        self.links: list[Any] = []
        self._base: dict[int, tuple[int, int]] = {}
        try:
            self.links.append(self.kernel.programs["sys_enter"].attach_tracepoint("raw_syscalls", "sys_enter"))
            if latency:
                self.links.append(self.kernel.programs["sys_exit"].attach_tracepoint("raw_syscalls", "sys_exit"))
        except BaseException:
            self.close()
            raise

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

    def close(self) -> None:
        for link in self.links:
            link.close()
        self.links.clear()
        self.kernel.close()

    def __enter__(self) -> "SysCount":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
