"""``pybpf syscount``: system calls counted by name, per process, with latency.

Usage::

    pybpf syscount [-p PID] [--by-process] [--latency] [-d SECONDS] [-i SECONDS] [--json]

``--json`` prints ``{"syscalls": [{"syscall": "read", "nr": 0, "count": 12, ...}], "duration_s": ...}``
(``"processes"`` with ``pid`` and ``comm`` under ``--by-process``; ``total_ns``
with ``--latency``).
"""

from __future__ import annotations

import argparse
import time

from pybpf.tools import session
from pybpf.tools.output import LiveView, print_json, print_table


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pybpf syscount`` to the command's subparsers."""
    parser = subparsers.add_parser(
        "syscount", help="count system calls by name",
        description="Count system calls by name (raw_syscalls tracepoints), optionally per process and with "
                    "the time spent in them.")
    parser.add_argument("-p", "--pid", type=int, help="count this process only")
    parser.add_argument("--by-process", action="store_true", help="count per process instead of per system call")
    parser.add_argument("--latency", action="store_true", help="also measure the time spent in the calls")
    parser.add_argument("-d", "--duration", type=float, help="stop after this many seconds")
    parser.add_argument("-i", "--interval", type=float, help="print the counts of every interval of SECONDS")
    parser.add_argument("-t", "--top", type=int, default=0, help="print only the N busiest (default: all)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def _report(rows: list, args: argparse.Namespace, elapsed: float) -> None:
    if args.top:
        rows = rows[: args.top]
    if args.json:
        items = []
        for r in rows:
            item: dict = {"pid": r.key, "comm": r.name} if args.by_process else {"syscall": r.name, "nr": r.key}
            item["count"] = r.count
            if args.latency:
                item["total_ns"] = r.total_ns
            items.append(item)
        print_json({"processes" if args.by_process else "syscalls": items, "duration_s": round(elapsed, 3)})
        return
    headers = ["PID", "COMM", "COUNT"] if args.by_process else ["SYSCALL", "COUNT"]
    table = [[r.key, r.name, r.count] if args.by_process else [r.name, r.count] for r in rows]
    if args.latency:
        headers += ["TOTAL_MS", "AVG_US"]
        for row, r in zip(table, rows):
            ns = r.total_ns or 0
            row += [f"{ns / 1e6:.3f}", f"{ns / 1e3 / r.count:.2f}" if r.count else "-"]
    print_table(headers, table)


def run(args: argparse.Namespace) -> int:
    """``pybpf syscount ...``; the exit status."""
    from pybpf.tools.syscount import SysCount

    session.require_privileges("syscount")
    session.check_pid(args.pid)
    with SysCount(args.pid, by_process=args.by_process, latency=args.latency) as tool:

        def interval(elapsed: float) -> None:
            if not args.json:
                print(time.strftime("%H:%M:%S"))
            _report(tool.rows(reset=True), args, args.interval)

        with LiveView(enabled=not args.interval and not args.json) as live:
            def refresh(elapsed: float) -> None:
                rows = tool.rows()[:20]
                live.update(f"syscount: {elapsed:.1f} s", ["PID" if args.by_process else "SYSCALL", "COUNT"],
                            [[r.key if args.by_process else r.name, r.count] for r in rows])
            elapsed = session.run(duration=args.duration, interval=args.interval, on_interval=interval,
                                  refresh=refresh if live.active else None,
                                  ready="counting system calls" + (f" of process {args.pid}" if args.pid else "")
                                  + "; Ctrl-C to end")
        if args.interval:
            interval(elapsed)
        else:
            _report(tool.rows(), args, elapsed)
    return 0
