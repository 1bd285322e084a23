"""``pybpf funclatency``: time from entry to return of user-space functions, as log2 histograms.

Usage::

    pybpf funclatency PATTERN... [-p PID] [-d SECONDS] [--plot FILE.png] [--json] [-- COMMAND ARGS...]

``--json`` prints ``{"functions": [{"function", "target", "count", "total_ns",
"buckets": {"<low ns>": calls, ...}}], "duration_s"}``.  ``--plot`` writes the
histograms to a PNG (matplotlib, the ``plot`` extra).
"""

from __future__ import annotations

import argparse
import sys

from pybpf.tools import session
from pybpf.tools.output import LiveView, bucket_range, log2_hist_lines, print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pybpf funclatency`` to the command's subparsers."""
    parser = subparsers.add_parser(
        "funclatency", help="latency histograms of user-space functions",
        description="Time user-space functions from entry to return (uprobes and uretprobes with a cookie per "
                    "function) and print log2 histograms.",
        epilog="Example: pybpf funclatency c:getaddrinfo -d 10 --plot lat.png")
    parser.add_argument("patterns", nargs="+", metavar="PATTERN", help="lib:glob or /path:glob")
    parser.add_argument("-p", "--pid", type=int, help="time calls of this process only")
    parser.add_argument("-d", "--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--plot", metavar="FILE.png", help="also write the histograms as a PNG")
    parser.add_argument("--json", action="store_true", help="print JSON instead of histograms")
    parser.set_defaults(func=run, command=[])


def _report(functions: list, elapsed: float, as_json: bool) -> None:
    if as_json:
        print_json({"functions": [{
            "function": f.function, "target": f.target, "count": f.count, "total_ns": f.total_ns,
            "buckets": {str(bucket_range(k)[0]): n for k, n in sorted(f.buckets.items())},
        } for f in functions], "duration_s": round(elapsed, 3)})
        return
    for f in functions:
        print(f"\n{f.function} ({f.target}): {f.count} calls, average {f.average_ns:.0f} ns")
        print("\n".join(log2_hist_lines(f.buckets, "nsecs")))


def run(args: argparse.Namespace) -> int:
    """``pybpf funclatency ...``; the exit status."""
    from pybpf.tools.funclatency import FuncLatency, plot

    session.require_privileges("funclatency")
    session.check_pid(args.pid)
    with session.kernel_features():
        command = session.HeldCommand(args.command) if args.command else None
        try:
            with FuncLatency(args.patterns, command.pid if command else args.pid) as tool:
                ready = (f"timing {len(tool.probes)} function{'s' if len(tool.probes) > 1 else ''}; "
                         + ("until the command exits" if command else "Ctrl-C to end"))
                if command:
                    command.release()
                with LiveView(enabled=not args.json) as live:
                    def refresh(elapsed: float) -> None:
                        live.update(f"funclatency: {elapsed:.1f} s", ["FUNCTION", "AVG_NS", "CALLS"],
                                    [[f.function, f"{f.average_ns:.0f}", f.count] for f in tool.functions()])
                    elapsed = session.run(duration=args.duration, command=command,
                                          refresh=refresh if live.active else None, ready=ready)
                functions = tool.functions()
            _report(functions, elapsed, args.json)
            if args.plot:
                plot(functions, args.plot)
                print(f"histograms written to {args.plot}", file=sys.stderr)
        finally:
            if command:
                command.close()
    return 0
