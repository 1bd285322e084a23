"""The ``pybpf`` command.

Usage::

    pybpf features [--json] [-v]     what the running kernel supports
    pybpf prog list [--json]         BPF programs loaded in the kernel
    pybpf map list [--json]          BPF maps in the kernel
    pybpf vmlinux-h > vmlinux.h      the kernel's types as C, from its BTF
    pybpf exporter --config DIR      serve BPF maps as Prometheus metrics
    pybpf build prog.bpf.c [-o x.o]  compile a BPF C program with clang
    pybpf --version

Also ``python3 -m pybpf.cli``.  Subcommands live in their own modules, listed
in :data:`COMMANDS`; each module has ``register(subparsers)``, which adds its
parser(s) and sets ``func`` (``func(args) -> int``, the exit status) as a
parser default.  Adding a command is one module plus one line here.

Errors: a :class:`pybpf.BPFError` prints ``pybpf: error: <message>`` on
stderr and exits 1 (the message says "run as root" when privileges are
missing); bad usage exits 2 (argparse).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

import pybpf
from pybpf.errors import BPFError

# Subcommand modules, in the order ``pybpf --help`` lists them.
COMMANDS: list[str] = [
    "pybpf.cli.features_cmd",
    "pybpf.cli.prog_cmd",
    "pybpf.cli.map_cmd",
    "pybpf.cli.link_cmd",
    "pybpf.cli.btf_cmd",
    "pybpf.cli.demo_cmd",
    "pybpf.cli.build_cmd",
    "pybpf.cli.vmlinux_cmd",
    "pybpf.cli.funccount_cmd",
    "pybpf.cli.syscount_cmd",
    "pybpf.cli.funclatency_cmd",
    "pybpf.cli.execsnoop_cmd",
    "pybpf.cli.run_cmd",
    "pybpf.exporter.command",
]


def build_parser() -> argparse.ArgumentParser:
    """The ``pybpf`` argument parser with every subcommand of :data:`COMMANDS`.

    >>> build_parser().parse_args(["features", "--json"]).json
    True
    """
    parser = argparse.ArgumentParser(
        prog="pybpf", description="pybpf: a pure-Python eBPF toolkit",
    )
    parser.add_argument("--version", action="version", version=f"pybpf {pybpf.__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module in COMMANDS:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``pybpf`` command with ``argv`` (default: sys.argv[1:]); return the exit status.

    >>> main(["features", "--json"])          # doctest: +SKIP
    {"bpf_syscall": true, ...}
    0
    """
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in argv:  # ``pybpf funccount c:malloc -- ls -l``: what follows ``--`` is a command to run
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1:]
    args = parser.parse_args(argv)
    if command and not hasattr(args, "command"):
        parser.error("this command does not run a COMMAND after --")
    if hasattr(args, "command"):
        args.command = command
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args) or 0)
    except BPFError as err:
        print(f"pybpf: error: {err}", file=sys.stderr)
        return getattr(err, "exit_status", 1)  # 2 for bad input (pybpf.tools.BadInputError)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``pybpf prog list | head``): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0


__all__ = ["COMMANDS", "build_parser", "main"]
