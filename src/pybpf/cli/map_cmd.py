"""``pybpf map list``: the BPF maps in the kernel (id, type, name, sizes)."""

from __future__ import annotations

import argparse
import errno
import sys

from pybpf._sys.commands import map_fd_by_id, map_ids, map_info
from pybpf._sys.uapi import MapType
from pybpf.cli._output import print_json, print_table
from pybpf.errors import SyscallError, context


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("map", help="inspect BPF maps in the kernel")
    actions = parser.add_subparsers(title="actions", metavar="ACTION")
    listing = actions.add_parser("list", help="list maps (needs root)")
    listing.add_argument("--json", action="store_true", help="print a JSON list of objects")
    listing.set_defaults(func=run_list)
    parser.set_defaults(func=lambda args: (parser.print_help(sys.stderr), 2)[1])


def type_name(value: int) -> str:
    try:
        return MapType(value).name.lower()
    except ValueError:
        return f"type {value}"


def maps() -> list[dict]:
    """One dict per map: id, type, name, key_size, value_size, max_entries, flags."""
    result = []
    with context("list maps"):
        ids = list(map_ids())
    for map_id in ids:
        try:
            fd = map_fd_by_id(map_id)
        except SyscallError as exc:
            if exc.errno == errno.ENOENT:
                continue  # freed between the two calls
            raise
        with fd:
            info = map_info(fd.fileno())
        result.append({
            "id": info.id, "type": type_name(info.type), "name": info.name.decode(errors="replace"),
            "key_size": info.key_size, "value_size": info.value_size,
            "max_entries": info.max_entries, "flags": info.map_flags,
        })
    return result


def run_list(args: argparse.Namespace) -> int:
    found = maps()
    if args.json:
        print_json(found)
    else:
        print_table(["ID", "TYPE", "NAME", "KEY", "VALUE", "MAX_ENTRIES", "FLAGS"],
                    [[m["id"], m["type"], m["name"], m["key_size"], m["value_size"], m["max_entries"],
                      hex(m["flags"])] for m in found])
    return 0
