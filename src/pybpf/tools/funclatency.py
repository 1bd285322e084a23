"""funclatency: how long user-space functions take, entry to return, as log2 histograms.

The kernel side is the two pybpf.lang programs below, attached with one
cookie per function (the function's index): on entry ``start[cookie, tid] =
now``; on return the elapsed nanoseconds go to ``hist[cookie, log2(ns)]``
and ``total_ns[cookie]``.  Both are attached with
``attach_uprobe_multi`` (entry, and ``retprobe=True``), so the library picks
uprobe_multi, perf links with cookies or program clones as the kernel allows.

Example::

    with FuncLatency(["c:getpid"], pid=os.getpid()) as tool:
        os.getpid()
        (fn,) = tool.functions()
        print(fn.count, fn.buckets)         # 1 {9: 1}: one call of 512..1023 ns
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import pybpf
from pybpf import features
from pybpf.lang import Const, HashMap, ktime_get_ns, pid, tgid, u32, u64, uprobe_multi, uretprobe_multi
from pybpf.tools import patterns
from pybpf.tools.session import Tracer

# -- kernel side (pybpf.lang) ------------------------------------------------------------------------

TARGET_TGID = Const(u32, 0)                                  # 0: every process
start = HashMap(key=u64, value=u64, max_entries=10240)      # (cookie << 32 | thread) -> entry time
hist = HashMap(key=u64, value=u64, max_entries=10240)       # (cookie << 8 | log2 bucket) -> calls
total_ns = HashMap(key=u64, value=u64, max_entries=4096)    # cookie -> nanoseconds


@uprobe_multi
def on_entry(ctx) -> int:
    if TARGET_TGID != 0 and tgid() != TARGET_TGID:
        return 0
    start[ctx.cookie << 32 | pid()] = ktime_get_ns()
    return 0


@uretprobe_multi
def on_return(ctx) -> int:
    if TARGET_TGID != 0 and tgid() != TARGET_TGID:
        return 0
    cookie = ctx.cookie
    key = cookie << 32 | pid()
    if key not in start:
        return 0
    ns = ktime_get_ns() - start[key]
    del start[key]
    total_ns[cookie] += ns
    bucket = u64(0)
    for i in range(6):              # binary search for the highest set bit: log2, rounded down
        shift = u64(32) >> i
        if ns >> shift:
            ns >>= shift
            bucket += shift
    hist[cookie << 8 | bucket] += 1
    return 0


# -- user side ---------------------------------------------------------------------------------------

__all__ = ["FuncLatency", "FunctionLatency"]


@dataclass
class FunctionLatency:
    """Latency of one function: calls, total nanoseconds, log2 buckets (bucket → calls)."""

    function: str
    target: str
    count: int = 0
    total_ns: int = 0
    buckets: dict[int, int] = field(default_factory=dict)

    @property
    def average_ns(self) -> float:
        return self.total_ns / self.count if self.count else 0.0


class FuncLatency(Tracer):
    """The funclatency tracer: attaches on construction; :meth:`functions`, :meth:`close`."""

    def __init__(self, function_patterns: Sequence[str], pid: int | None = None) -> None:
        self.probes = patterns.resolve(function_patterns, pid)
        self.pid = pid
        spec = pybpf.compile(on_entry, on_return)
        spec.variables["TARGET_TGID"].value = pid or 0
        self._start(spec, self._attach)

    def _attach(self) -> None:
        multi = features.has("uprobe_multi_link")
        for target, (cookies, offsets) in patterns.by_target(self.probes).items():
            for name in ("on_entry", "on_return"):
                self.kernel.programs[name].attach_uprobe_multi(target, None, offsets=offsets, cookies=cookies,
                                                               retprobe=name == "on_return",
                                                               pid=self.pid if multi else None)

    def functions(self) -> list[FunctionLatency]:
        """One result per probed function, in pattern order."""
        out = [FunctionLatency(p.function, p.target) for p in self.probes]
        for key, n in self.kernel.maps["hist"].items():
            fn = out[key >> 8]
            fn.buckets[key & 0xFF] = n
            fn.count += n
        for cookie, ns in self.kernel.maps["total_ns"].items():
            out[cookie].total_ns = ns
        return out


def plot(functions: Sequence[FunctionLatency], path: str) -> None:
    """Write the histograms as a PNG bar chart (needs matplotlib: the ``plot`` extra)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from pybpf.errors import BPFError
        raise BPFError("--plot needs matplotlib: pip install 'pybpf[plot]'") from None
    from pybpf.tools.output import bucket_range

    shown = [f for f in functions if f.count] or list(functions[:1])
    fig, axes = plt.subplots(len(shown), 1, figsize=(8, 2.5 * len(shown)), squeeze=False)
    for ax, fn in zip(axes[:, 0], shown):
        last = max(fn.buckets, default=0)
        keys = list(range(0, last + 1))
        ax.bar(range(len(keys)), [fn.buckets.get(k, 0) for k in keys])
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels([_short(bucket_range(k)[0]) for k in keys], rotation=60, fontsize=7)
        ax.set_title(f"{fn.function} ({fn.count} calls, avg {fn.average_ns:.0f} ns)", fontsize=9)
        ax.set_ylabel("calls")
    axes[-1, 0].set_xlabel("latency, ns (lower bound of each log2 bucket)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _short(ns: int) -> str:
    for unit, scale in (("s", 10**9), ("ms", 10**6), ("us", 10**3)):
        if ns >= scale:
            return f"{ns // scale}{unit}"
    return str(ns)
