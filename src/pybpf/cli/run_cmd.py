"""``pybpf run FILE.py`` and ``pybpf load OBJ.o``: load, attach every program, show the maps at the end.

Usage::

    pybpf run FILE.py [-d SECONDS] [--var NAME=VALUE ...] [--json]    programs written in pybpf.lang
    pybpf load OBJ.o [-d SECONDS] [--var NAME=VALUE ...] [--json]     a clang-built object

Every program whose section names its target is attached (libbpf's
auto-attach); the lines its ``print()`` calls send are printed as they come;
at Ctrl-C or after ``--duration`` the maps (typed through BTF)
and globals are printed and everything is detached.  ``--var`` sets a global
(``Const`` / ``const volatile``) before the load.
"""

from __future__ import annotations

import argparse
import sys

from pybpf.tools import session
from pybpf.tools.output import LiveView, print_json, print_table


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pybpf run`` and ``pybpf load`` to the command's subparsers."""
    for name, what, help_text in (("run", "FILE.py", "compile, load and attach the pybpf.lang programs of a file"),
                                  ("load", "OBJ.o", "load and attach the programs of a clang-built object")):
        parser = subparsers.add_parser(name, help=help_text, description=help_text + "; print its maps at the end.")
        parser.add_argument("path", metavar=what)
        parser.add_argument("-d", "--duration", type=float, help="detach after this many seconds")
        parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                            help="set a global before the load (repeatable)")
        parser.add_argument("--json", action="store_true", help="print the maps and globals as one JSON object")
        parser.set_defaults(func=run)


def _print(snapshot: dict) -> None:
    for name, entries in snapshot["maps"].items():
        print(f"{name}:")
        print_table(["  KEY", "VALUE"], [[f"  {e['key']}", e["value"]] for e in entries])
    if snapshot["variables"]:
        print("globals:")
        print_table(["  NAME", "VALUE"], [[f"  {k}", v] for k, v in snapshot["variables"].items()])


def run(args: argparse.Namespace) -> int:
    """``pybpf run|load PATH ...``; the exit status."""
    from pybpf.tools.runner import Runner, parse_assignments

    session.require_privileges(f"pybpf {'run' if args.path.endswith('.py') else 'load'}")
    with Runner(args.path, parse_assignments(args.var)) as runner:
        attached = ", ".join(f"{name} ({getattr(link, 'kind', '?')})" for name, link in runner.links.items())
        if runner.unattached:
            print(f"not attached (their section names no target): {', '.join(runner.unattached)}", file=sys.stderr)
        with LiveView(enabled=not args.json) as live:
            def refresh(elapsed: float) -> None:
                snap = runner.snapshot()
                live.update(f"{args.path}: {elapsed:.1f} s", ["MAP", "ENTRIES"],
                            [[name, len(entries)] for name, entries in snap["maps"].items()])
            def print_waiting() -> None:
                for line in runner.log_lines():
                    print(line, file=sys.stderr if args.json else sys.stdout, flush=True)
            wait = session.stream_wait(runner.wait_log, print_waiting)
            session.run(duration=args.duration, refresh=refresh if live.active else None, wait=wait,
                        ready=f"attached {attached or 'nothing'}; Ctrl-C to detach")
            wait(0)
        snapshot = runner.snapshot()
    if args.json:
        print_json(snapshot)
    else:
        _print(snapshot)
    return 0
