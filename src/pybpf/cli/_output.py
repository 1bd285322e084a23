"""Helpers shared by the subcommands: tables, JSON, and the ``list`` actions of ``prog`` and ``map``."""

from __future__ import annotations

import argparse
import errno
import json
import sys
from enum import IntEnum
from typing import Any, Callable, Iterator, Sequence, TextIO, TypeVar

from pybpf._sys.syscall import FD
from pybpf.errors import SyscallError, context

_Info = TypeVar("_Info")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO | None = None) -> None:
    """Print rows under headers in left-aligned columns (the last column is not padded).

    >>> print_table(["ID", "NAME"], [[1, "counts"], [12, "events"]])
    ID  NAME
    1   counts
    12  events
    """
    out = out or sys.stdout
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        padded = [c.ljust(w) for c, w in zip(row[:-1], widths)] + [row[-1]]
        print("  ".join(padded).rstrip(), file=out)


def print_json(value: Any, out: TextIO | None = None) -> None:
    """Print ``value`` as one JSON document and a newline.

    >>> print_json({"bpf_cookie": True})
    {"bpf_cookie": true}
    """
    out = out or sys.stdout
    json.dump(value, out)
    out.write("\n")


def enum_name(enum: type[IntEnum], value: int) -> str:
    """The lower-case name of ``value`` in ``enum``, or ``type N`` for a number it does not know.

    >>> from pybpf._sys.uapi import MapType
    >>> enum_name(MapType, 27), enum_name(MapType, 999)
    ('ringbuf', 'type 999')
    """
    try:
        return enum(value).name.lower()
    except ValueError:
        return f"type {value}"


def kernel_objects(what: str, ids: Callable[[], Iterator[int]], fd_by_id: Callable[[int], FD],
                   info: Callable[[int], _Info]) -> Iterator[_Info]:
    """The info of every kernel object ``ids()`` lists; objects freed meanwhile are skipped.

    >>> from pybpf._sys.commands import map_fd_by_id, map_ids, map_info
    >>> [i.id for i in kernel_objects("maps", map_ids, map_fd_by_id, map_info)]   # doctest: +SKIP
    [3, 17]
    """
    with context(f"list {what}"):
        found = list(ids())
    for obj_id in found:
        try:
            fd = fd_by_id(obj_id)
        except SyscallError as exc:
            if exc.errno == errno.ENOENT:
                continue  # freed between the two calls
            raise
        with fd:
            yield info(fd.fileno())


def register_list(subparsers: argparse._SubParsersAction, command: str, help: str,
                  list_help: str, run_list: Callable[[argparse.Namespace], int]) -> argparse._SubParsersAction:
    """Add ``pybpf <command> list [--json]``; ``pybpf <command>`` alone prints its help (exit 2).

    Returns the command's actions, for more of them (``show``, ``dump``).

    >>> parser = argparse.ArgumentParser(prog="pybpf")
    >>> actions = register_list(parser.add_subparsers(), "map", "inspect maps", "list maps", lambda args: 0)
    >>> parser.parse_args(["map", "list", "--json"]).json
    True
    """
    parser = subparsers.add_parser(command, help=help)
    actions = parser.add_subparsers(title="actions", metavar="ACTION")
    listing = actions.add_parser("list", help=list_help)
    listing.add_argument("--json", action="store_true", help="print a JSON list of objects")
    listing.set_defaults(func=run_list)
    parser.set_defaults(func=lambda args: (parser.print_help(sys.stderr), 2)[1])
    return actions


def open_by_id(what: str, obj_id: int, fd_by_id: Callable[[int], FD]) -> FD:
    """The fd of kernel object ``obj_id``; a BadInputError (exit 2) when there is none.

    >>> from pybpf._sys.commands import map_fd_by_id
    >>> open_by_id("map", 4194304, map_fd_by_id)          # doctest: +SKIP
    Traceback (most recent call last):
    pybpf.tools.BadInputError: no map with id 4194304 (pybpf map list shows them)
    """
    from pybpf.tools import BadInputError

    try:
        return fd_by_id(obj_id)
    except SyscallError as exc:
        if exc.errno == errno.ENOENT:
            listing = {"program": "prog", "BTF object": "btf"}.get(what, what)
            raise BadInputError(f"no {what} with id {obj_id} (pybpf {listing} list shows them)") from None
        raise


def show_fields(fields: dict, out: TextIO | None = None) -> None:
    """Print ``name: value`` lines with the values aligned.

    >>> show_fields({"id": 3, "name": "counts"})
    id:   3
    name: counts
    """
    out = out or sys.stdout
    width = max((len(k) for k in fields), default=0) + 2
    for key, value in fields.items():
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value) or "-"
        print(f"{key + ':':<{width}}{value}", file=out)
