"""``pybpf link list``: the BPF links in the kernel — what is attached where.

Example::

    $ pybpf link list
    ID  TYPE          PROG  TARGET
    7   uprobe_multi  42    /usr/lib/x86_64-linux-gnu/libc.so.6 (14 points, pid 1234)
    8   perf_event    43    tracepoint syscalls:sys_enter_execve
"""

from __future__ import annotations

import argparse

from pybpf._sys.commands import link_fd_by_id, link_ids
from pybpf.cli._output import kernel_objects, print_json, print_table, register_list
from pybpf.links.info import read_link_info


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pybpf link list`` to the command's subparsers."""
    register_list(subparsers, "link", "inspect BPF links in the kernel", "list links (needs root)", run_list)


def _target(details: dict) -> str:
    """A short description of where a link is attached, from its type-specific fields."""
    if "path" in details:
        pid = f", pid {details['pid']}" if details.get("pid") else ""
        return f"{details['path']} ({details.get('count', 0)} points{pid})"
    if "file_name" in details:
        return f"{details.get('perf_type', 'uprobe')} {details['file_name']}+{details.get('offset', 0):#x}"
    if "tp_name" in details:
        return f"{details.get('perf_type', 'raw_tracepoint')} {details['tp_name']}"
    if "func_name" in details:
        return f"{details.get('perf_type', 'kprobe')} {details['func_name']}"
    if "ifindex" in details:
        return f"ifindex {details['ifindex']}"
    if "cgroup_id" in details:
        return f"cgroup {details['cgroup_id']}"
    return ", ".join(f"{k}={v}" for k, v in details.items() if not isinstance(v, list))


def _plain(value: object) -> object:
    return value if isinstance(value, (int, str, bool, float, list, type(None))) else str(value)


def links() -> list[dict]:
    """One dict per link: id, type, prog_id, target and the kernel's type-specific fields."""
    out = []
    for info in kernel_objects("links", link_ids, link_fd_by_id, read_link_info):
        out.append({"id": info.id, "type": getattr(info.type, "name", str(info.type)).lower(),
                    "prog_id": info.prog_id, "target": _target(info.details),
                    **{k: _plain(v) for k, v in info.details.items()}})
    return out


def run_list(args: argparse.Namespace) -> int:
    """``pybpf link list [--json]``: print the links; the exit status."""
    found = links()
    if args.json:
        print_json(found)
    else:
        print_table(["ID", "TYPE", "PROG", "TARGET"], [[k["id"], k["type"], k["prog_id"], k["target"]] for k in found])
    return 0
