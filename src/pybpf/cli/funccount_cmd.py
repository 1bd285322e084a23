"""``pybpf funccount``: count calls of user-space functions (one program, one cookie per function).

Usage::

    pybpf funccount [-p PID] [-d SECONDS] [-i SECONDS] [--json] PATTERN... [-- COMMAND ARGS...]
    pybpf funccount                       # libc calls of a small built-in workload

PATTERN is ``lib:glob`` or ``/path/to/file:glob`` (``c:malloc``, ``c:str*``,
``/usr/bin/python3:PyObject_*``).  With a COMMAND, pybpf starts it, counts
its calls only, and stops when it exits.  ``--json`` prints one object::

    {"functions": [{"function": "malloc", "target": "/usr/lib/.../libc.so.6", "count": 812}, ...],
     "duration_s": 1.52}
"""

from __future__ import annotations

import argparse
import sys
import time

from pybpf import features
from pybpf.tools import BadInputError, session
from pybpf.tools.output import LiveView, print_json, print_table


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pybpf funccount`` to the command's subparsers."""
    parser = subparsers.add_parser(
        "funccount", help="count calls of user-space functions (the main job)",
        description="Count calls of user-space functions with one BPF program and a cookie per function. "
                    "With no pattern: libc calls of a small built-in workload.",
        epilog="Examples: pybpf funccount c:malloc c:free -d 5;  pybpf funccount 'c:str*' -- ls -l /")
    parser.add_argument("patterns", nargs="*", metavar="PATTERN", help="lib:glob or /path:glob")
    parser.add_argument("-p", "--pid", type=int, help="count this process only")
    parser.add_argument("-d", "--duration", type=float, help="stop after this many seconds")
    parser.add_argument("-i", "--interval", type=float, help="print the counts of every interval of SECONDS")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run, command=[])


def mechanism() -> str:
    """How the probes are attached on this kernel (what ``features`` says)."""
    if features.has("uprobe_multi_link"):
        return "one uprobe_multi link per file"
    if features.has("bpf_cookie") and features.has("perf_link"):
        return "one perf link with a cookie per function"
    return "a program clone per function (no BPF cookies on this kernel)"


def _report(rows: list, elapsed: float, as_json: bool) -> None:
    if as_json:
        print_json({"functions": [{"function": r.function, "target": r.target, "count": r.count} for r in rows],
                    "duration_s": round(elapsed, 3)})
        return
    shown = [r for r in rows if r.count]
    print_table(["FUNCTION", "TARGET", "COUNT"], [[r.function, r.target, r.count] for r in shown])
    quiet = len(rows) - len(shown)
    if quiet:
        print(f"({quiet} more function{'s' if quiet > 1 else ''} not called)")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    """``pybpf funccount ...``; the exit status."""
    from pybpf.tools import funccount   # the kernel side compiles on import: only for this command

    session.require_privileges("funccount")
    argv = list(args.command)
    patterns = list(args.patterns)
    if not patterns:
        if args.pid is not None or argv:
            raise BadInputError("give at least one PATTERN, like c:malloc")
        patterns = funccount.DEFAULT_PATTERNS
        argv = [sys.executable, "-c", funccount.WORKLOAD]
        print(f"no pattern given: counting {len(patterns)} libc functions while a built-in workload runs "
              "(Python walking /usr/share/doc); try also: pybpf funccount 'c:str*' -- ls -l /", file=sys.stderr)
    session.check_pid(args.pid)
    with session.kernel_features():
        command = session.HeldCommand(argv) if argv else None
        try:
            pid = command.pid if command else args.pid
            with funccount.FuncCount(patterns, pid) as tool:
                files = len({p.target for p in tool.probes})
                ready = (f"tracing {len(tool.probes)} function{'s' if len(tool.probes) > 1 else ''} in {files} "
                         f"file{'s' if files > 1 else ''} ({mechanism()}); "
                         + ("until the command exits" if command else "Ctrl-C to end"))
                if command:
                    command.release()

                def interval(elapsed: float) -> None:
                    if not args.json:
                        print(time.strftime("%H:%M:%S"))
                    _report(tool.counts(reset=True), args.interval, args.json)

                with LiveView(enabled=not args.interval and not args.json) as live:
                    def refresh(elapsed: float) -> None:
                        rows = [r for r in tool.counts() if r.count][:20]
                        live.update(f"funccount: {elapsed:.1f} s", ["FUNCTION", "COUNT"],
                                    [[r.function, r.count] for r in rows])
                    elapsed = session.run(duration=args.duration, interval=args.interval, command=command,
                                          on_interval=interval, refresh=refresh if live.active else None,
                                          ready=ready)
                if args.interval:
                    interval(elapsed)       # the last, partial interval
                else:
                    _report(tool.counts(), elapsed, args.json)
        finally:
            if command:
                command.close()
    return 0
