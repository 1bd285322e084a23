"""``pybpf prog list``: the BPF programs loaded in the kernel (id, type, name, tag).

Example::

    $ pybpf prog list
    ID  TYPE            NAME            TAG
    42  raw_tracepoint  demo_sys_enter  8e4a1b6d0c2f9e31
"""

from __future__ import annotations

import argparse

from pybpf._sys.commands import prog_fd_by_id, prog_ids, prog_info
from pybpf._sys.uapi import ProgType
from pybpf.cli._output import enum_name, kernel_objects, print_json, print_table, register_list


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pybpf prog list`` to the command's subparsers."""
    register_list(subparsers, "prog", "inspect BPF programs in the kernel", "list loaded programs (needs root)",
                  run_list)


def type_name(value: int) -> str:
    """``xdp``, ``kprobe``... for a program type number (``type N`` when unknown).

    >>> type_name(6)
    'xdp'
    """
    return enum_name(ProgType, value)


def programs() -> list[dict]:
    """One dict per loaded program: id, type, name, tag, run_cnt, run_time_ns.

    >>> [p["id"] for p in programs() if p["type"] == "xdp"]      # doctest: +SKIP
    [42]
    """
    return [{
        "id": info.id, "type": type_name(info.type), "name": info.name.decode(errors="replace"),
        "tag": bytes(info.tag).hex(), "run_cnt": info.run_cnt, "run_time_ns": info.run_time_ns,
    } for info in kernel_objects("programs", prog_ids, prog_fd_by_id, prog_info)]


def run_list(args: argparse.Namespace) -> int:
    """``pybpf prog list [--json]``: print the programs; the exit status."""
    progs = programs()
    if args.json:
        print_json(progs)
    else:
        print_table(["ID", "TYPE", "NAME", "TAG"], [[p["id"], p["type"], p["name"], p["tag"]] for p in progs])
    return 0
