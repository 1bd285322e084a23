"""funccount: count calls of user-space functions with ONE program and one cookie per function.

The kernel side is the pybpf.lang program below: it reads its BPF cookie —
the index of the function that fired — and adds one to that slot of a
per-CPU array.  The user side resolves the patterns
(:mod:`pybpf.tools.patterns`) and attaches the program once per target file
with ``attach_uprobe_multi`` and a cookie per function.  The library picks
the mechanism the kernel has: one uprobe_multi link (Linux 6.6), else one
perf link with a cookie per function (5.15), else a clone of the program per
cookie (4.17).

With ``pid`` only that process is counted (a filter in the program, and the
uprobe_multi link's own pid filter where available).

Example::

    with FuncCount(["c:malloc", "c:free"], pid=os.getpid()) as tool:
        buf = ctypes.create_string_buffer(10)   # calls malloc
        print(tool.counts())                    # [FunctionCount(function='malloc', ...), ...]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import pybpf
from pybpf import features
from pybpf.lang import Const, PerCpuArray, tgid, u32, u64, uprobe_multi
from pybpf.tools import patterns
from pybpf.tools.patterns import Probe
from pybpf.tools.session import Tracer

# -- kernel side (pybpf.lang) ------------------------------------------------------------------------

TARGET_TGID = Const(u32, 0)                           # 0: every process; set before load
counts = PerCpuArray(value=u64, max_entries=1)       # one slot per function; sized before load


@uprobe_multi
def count_call(ctx) -> int:
    if TARGET_TGID != 0 and tgid() != TARGET_TGID:
        return 0
    counts[ctx.cookie] += 1                          # the cookie is the function's index
    return 0


# -- user side ---------------------------------------------------------------------------------------

__all__ = ["FuncCount", "FunctionCount", "DEFAULT_PATTERNS", "WORKLOAD"]

#: What ``pybpf funccount`` traces with no argument: allocation, files and directories in libc.
DEFAULT_PATTERNS = ["c:malloc", "c:calloc", "c:realloc", "c:free", "c:open", "c:openat", "c:read", "c:write",
                    "c:close", "c:opendir", "c:readdir", "c:closedir", "c:getenv", "c:qsort"]

#: The built-in workload of ``pybpf funccount`` with no argument: a Python child that
#: walks a directory tree, reads and sorts what it finds and writes a summary.
WORKLOAD = """
import json, os, sys, tempfile
names, sizes = [], 0
for root, dirs, files in os.walk("/usr/share/doc"):
    for name in files[:3]:
        path = os.path.join(root, name)
        try:
            with open(path, "rb") as f:
                sizes += len(f.read(4096))
        except OSError:
            pass
        names.append(name)
    if len(names) > 2000:
        break
os.environ.get("HOME")
with tempfile.TemporaryFile("w") as out:
    json.dump({"files": sorted(names), "bytes": sizes}, out)
"""


@dataclass(frozen=True)
class FunctionCount:
    """One row of funccount's result."""

    function: str
    target: str
    count: int


class FuncCount(Tracer):
    """The funccount tracer: load, attach (on construction), read :meth:`counts`, :meth:`close`."""

    def __init__(self, function_patterns: Sequence[str], pid: int | None = None, *,
                 probes: Sequence[Probe] | None = None) -> None:
        self.probes = list(probes) if probes is not None else patterns.resolve(function_patterns, pid)
        self.pid = pid
        self._base = [0] * len(self.probes)
        spec = pybpf.compile(count_call)
        spec.maps["counts"].max_entries = len(self.probes)
        spec.variables["TARGET_TGID"].value = pid or 0
        self._start(spec, self._attach)

    def _attach(self) -> None:
        multi = features.has("uprobe_multi_link")
        prog = self.kernel.programs["count_call"]
        for target, (cookies, offsets) in patterns.by_target(self.probes).items():
            # Offsets, not names: aliases, IFUNCs and same-named local functions are resolved already.
            prog.attach_uprobe_multi(target, None, offsets=offsets, cookies=cookies, pid=self.pid if multi else None)

    def counts(self, *, reset: bool = False) -> list[FunctionCount]:
        """Calls per function since the start (or the last ``reset=True``), most called first."""
        counts = self.kernel.maps["counts"]
        totals = [sum(v) for _, v in counts.items()]
        rows = [FunctionCount(p.function, p.target, totals[i] - self._base[i]) for i, p in enumerate(self.probes)]
        if reset:
            self._base = totals
        return sorted(rows, key=lambda r: (-r.count, r.function))
