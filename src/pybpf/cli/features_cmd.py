"""``pybpf features``: which BPF features the running kernel has.

Each row is a feature of :mod:`pybpf.features`, whether this kernel has it,
the first Linux release with it and what it is.  ``--json`` prints one JSON
object mapping each feature name to true/false; ``-v`` adds why a feature is
missing and how long probing took.

Example::

    $ pybpf features --json
    {"bpf_syscall": true, "jit": true, ..., "bpf_cookie": true, ...}
"""

from __future__ import annotations

import argparse
import os
import time

from pybpf import features
from pybpf.cli._output import print_json, print_table


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pybpf features`` to the command's subparsers."""
    parser = subparsers.add_parser(
        "features", help="show which BPF features this kernel supports",
        description="Probe the running kernel for BPF features (needs root).",
    )
    parser.add_argument("--json", action="store_true", help='print {"feature": true|false, ...}')
    parser.add_argument("-v", "--verbose", action="store_true", help="say why features are missing")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``pybpf features [--json] [-v]``: probe and print; the exit status."""
    start = time.perf_counter()
    table = features.all_features()
    elapsed = time.perf_counter() - start
    if args.json:
        print_json(table)
        return 0
    headers = ["FEATURE", "SUPPORTED", "MIN KERNEL", "DESCRIPTION"]
    rows = []
    for name, ok in table.items():
        info = features.FEATURES[name]
        description = info.description
        if args.verbose and not ok:
            description += f" [{features.reason(name)}]"
        rows.append([name, "yes" if ok else "no", info.min_kernel, description])
    print_table(headers, rows)
    if args.verbose:
        print(f"\n{sum(table.values())} of {len(table)} features on Linux {os.uname().release}, "
              f"probed in {elapsed * 1000:.0f} ms")
    return 0
