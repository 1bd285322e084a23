"""``pybpf map``: the BPF maps in the kernel, their entries typed through BTF.

Usage::

    pybpf map list [--json]         id, type, name, sizes
    pybpf map show ID [--json]      what the kernel reports about one map, with its BTF key and value types
    pybpf map dump ID [--json]      its entries, decoded with the map's BTF (hex bytes without BTF)

Example::

    $ pybpf map list
    ID  TYPE     NAME    KEY  VALUE  MAX_ENTRIES  FLAGS
    3   hash     counts  8    8      1024         0x0
    $ pybpf map dump 3
    KEY  VALUE
    110  4321
"""

from __future__ import annotations

import argparse
from typing import Any

from pybpf._sys.commands import map_fd_by_id, map_ids, map_info
from pybpf._sys.uapi import MapType
from pybpf.cli._output import (
    enum_name, kernel_objects, open_by_id, print_json, print_table, register_list, show_fields,
)
from pybpf.tools.output import plain

# Map types whose contents are not key/value entries one can list.
_NOT_DUMPABLE = {MapType.RINGBUF, MapType.USER_RINGBUF, MapType.PERF_EVENT_ARRAY, MapType.BLOOM_FILTER,
                 MapType.QUEUE, MapType.STACK, MapType.STRUCT_OPS}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pybpf map list|show|dump`` to the command's subparsers."""
    actions = register_list(subparsers, "map", "inspect BPF maps in the kernel", "list maps (needs root)", run_list)
    for name, help_text, func in (("show", "what the kernel reports about one map", run_show),
                                  ("dump", "a map's entries, typed through its BTF", run_dump)):
        action = actions.add_parser(name, help=help_text)
        action.add_argument("id", type=int, metavar="ID")
        action.add_argument("--json", action="store_true", help="print JSON")
        action.set_defaults(func=func)


def type_name(value: int) -> str:
    """``hash``, ``ringbuf``... for a map type number (``type N`` when unknown).

    >>> type_name(1)
    'hash'
    """
    return enum_name(MapType, value)


def _summary(info: Any) -> dict:
    return {"id": info.id, "type": type_name(info.type), "name": info.name.decode(errors="replace"),
            "key_size": info.key_size, "value_size": info.value_size,
            "max_entries": info.max_entries, "flags": info.map_flags}


def maps() -> list[dict]:
    """One dict per map: id, type, name, key_size, value_size, max_entries, flags.

    >>> [m["name"] for m in maps() if m["type"] == "ringbuf"]     # doctest: +SKIP
    ['events']
    """
    return [_summary(info) for info in kernel_objects("maps", map_ids, map_fd_by_id, map_info)]


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


def _btf_types(info: Any) -> tuple[Any, Any]:
    """The BTF types of the map's key and value (None where the map has none)."""
    if not info.btf_id or not (info.btf_key_type_id or info.btf_value_type_id):
        return None, None
    from pybpf.object.targets import _read_btf

    btf = _read_btf(info.btf_id, f"map id {info.id}")
    return (btf.type_by_id(info.btf_key_type_id) if info.btf_key_type_id else None,
            btf.type_by_id(info.btf_value_type_id) if info.btf_value_type_id else None)


def run_show(args: argparse.Namespace) -> int:
    """``pybpf map show ID [--json]``; the exit status."""
    from pybpf.btf import type_name as btf_type_name

    with open_by_id("map", args.id, map_fd_by_id) as fd:
        info = map_info(fd.fileno())
        key_t, value_t = _btf_types(info)
    details = _summary(info)
    details.update(btf_id=info.btf_id, key_type=btf_type_name(key_t) if key_t is not None else None,
                   value_type=btf_type_name(value_t) if value_t is not None else None, map_extra=info.map_extra)
    if args.json:
        print_json(details)
    else:
        details["flags"] = hex(details["flags"])
        show_fields(details)
    return 0


def run_dump(args: argparse.Namespace) -> int:
    """``pybpf map dump ID [--json]``: the entries; the exit status."""
    from pybpf.btf.codec import codec_for
    from pybpf.maps import Map
    from pybpf.tools import BadInputError

    with open_by_id("map", args.id, map_fd_by_id) as fd:
        info = map_info(fd.fileno())
        if info.type in _NOT_DUMPABLE:
            raise BadInputError(f"map {args.id} is a {type_name(info.type)} map: it has no entries to list")
        key_t, value_t = _btf_types(info)
    m = Map.from_id(args.id, key=codec_for(key_t) if key_t is not None else None,
                    value=codec_for(value_t) if value_t is not None else None)
    with m:
        entries = [{"key": plain(k), "value": plain(v)} for k, v in m.items()]
    if args.json:
        print_json(entries)
    else:
        print_table(["KEY", "VALUE"], [[e["key"], e["value"]] for e in entries])
    return 0
