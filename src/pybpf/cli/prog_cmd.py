"""``pybpf prog list``: the BPF programs loaded in the kernel (id, type, name, tag)."""

from __future__ import annotations

import argparse
import errno
import sys

from pybpf._sys.commands import prog_fd_by_id, prog_ids, prog_info
from pybpf._sys.uapi import ProgType
from pybpf.cli._output import print_json, print_table
from pybpf.errors import SyscallError, context


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("prog", help="inspect BPF programs in the kernel")
    actions = parser.add_subparsers(title="actions", metavar="ACTION")
    listing = actions.add_parser("list", help="list loaded programs (needs root)")
    listing.add_argument("--json", action="store_true", help="print a JSON list of objects")
    listing.set_defaults(func=run_list)
    parser.set_defaults(func=lambda args: (parser.print_help(sys.stderr), 2)[1])


def type_name(value: int) -> str:
    try:
        return ProgType(value).name.lower()
    except ValueError:
        return f"type {value}"


def programs() -> list[dict]:
    """One dict per loaded program: id, type, name, tag, run_cnt, run_time_ns."""
    result = []
    with context("list programs"):
        ids = list(prog_ids())
    for prog_id in ids:
        try:
            fd = prog_fd_by_id(prog_id)
        except SyscallError as exc:
            if exc.errno == errno.ENOENT:
                continue  # unloaded between the two calls
            raise
        with fd:
            info = prog_info(fd.fileno())
        result.append({
            "id": info.id, "type": type_name(info.type), "name": info.name.decode(errors="replace"),
            "tag": bytes(info.tag).hex(), "run_cnt": info.run_cnt, "run_time_ns": info.run_time_ns,
        })
    return result


def run_list(args: argparse.Namespace) -> int:
    progs = programs()
    if args.json:
        print_json(progs)
    else:
        print_table(["ID", "TYPE", "NAME", "TAG"], [[p["id"], p["type"], p["name"], p["tag"]] for p in progs])
    return 0
