"""``pybpf execsnoop``: print every program execution as it happens.

Usage::

    pybpf execsnoop [-d SECONDS] [-x] [--json]

One line per exec: time, pid, parent pid, command name, return code and
argv; failed execs (a shell trying each ``$PATH`` directory) only with
``-x``.  ``--json`` prints one JSON object per line:
``{"pid", "ppid", "comm", "argv", "ret"}``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from typing import Any

from pybpf.tools import session


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pybpf execsnoop`` to the command's subparsers."""
    parser = subparsers.add_parser(
        "execsnoop", help="trace program executions (pid, ppid, comm, argv, result)",
        description="Trace execve() system-wide through tracepoints and a ring buffer.")
    parser.add_argument("-d", "--duration", type=float, help="stop after this many seconds")
    parser.add_argument("-x", "--fails", action="store_true", help="also show failed execs")
    parser.add_argument("--json", action="store_true", help="print one JSON object per exec")
    parser.set_defaults(func=run)


_FORMAT = "{:<8} {:<7} {:<7} {:<16} {:>4}  {}"


def _show(event: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(event.asdict()), flush=True)
    else:
        print(_FORMAT.format(time.strftime("%H:%M:%S"), event.pid, event.ppid, event.comm, event.ret,
                             shlex.join(event.argv)), flush=True)


def run(args: argparse.Namespace) -> int:
    """``pybpf execsnoop ...``; the exit status."""
    from pybpf.tools.execsnoop import ExecSnoop

    session.require_privileges("execsnoop")
    with ExecSnoop() as tool:
        if not args.json:
            print(_FORMAT.format("TIME", "PID", "PPID", "COMM", "RET", "ARGS"), flush=True)

        def show_waiting() -> None:
            for event in tool.poll(0):
                if event.ret == 0 or args.fails:
                    _show(event, args.json)
        wait = session.stream_wait(tool.wait, show_waiting)
        session.run(duration=args.duration, wait=wait, ready="tracing execs; Ctrl-C to end")
        wait(0)    # what arrived before the end
    return 0
