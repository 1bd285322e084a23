"""``pybpf map list``: the BPF maps in the kernel (id, type, name, sizes).

Example::

    $ pybpf map list
    ID  TYPE     NAME    KEY  VALUE  MAX_ENTRIES  FLAGS
    3   hash     counts  4    8      1024         0x0
"""

from __future__ import annotations

import argparse

from pybpf._sys.commands import map_fd_by_id, map_ids, map_info
from pybpf._sys.uapi import MapType
from pybpf.cli._output import enum_name, kernel_objects, print_json, print_table, register_list


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pybpf map list`` to the command's subparsers."""
    register_list(subparsers, "map", "inspect BPF maps in the kernel", "list maps (needs root)", run_list)


def type_name(value: int) -> str:
    """``hash``, ``ringbuf``... for a map type number (``type N`` when unknown).

    >>> type_name(1)
    'hash'
    """
    return enum_name(MapType, value)


def maps() -> list[dict]:
    """One dict per map: id, type, name, key_size, value_size, max_entries, flags.

    >>> [m["name"] for m in maps() if m["type"] == "ringbuf"]     # doctest: +SKIP
    ['events']
    """
    return [{
        "id": info.id, "type": type_name(info.type), "name": info.name.decode(errors="replace"),
        "key_size": info.key_size, "value_size": info.value_size,
        "max_entries": info.max_entries, "flags": info.map_flags,
    } for info in kernel_objects("maps", map_ids, map_fd_by_id, map_info)]


def run_list(args: argparse.Namespace) -> int:
    """``pybpf map list [--json]``: print the maps; the exit status."""
    found = maps()
    if args.json:
        print_json(found)
    else:
        print_table(["ID", "TYPE", "NAME", "KEY", "VALUE", "MAX_ENTRIES", "FLAGS"],
                    [[m["id"], m["type"], m["name"], m["key_size"], m["value_size"], m["max_entries"],
                      hex(m["flags"])] for m in found])
    return 0
