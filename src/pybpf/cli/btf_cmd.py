"""``pybpf btf``: BTF type information loaded in the kernel or stored in a file.

Usage::

    pybpf btf list [--json]           BTF objects in the kernel (vmlinux, modules, programs')
    pybpf btf dump ID|FILE [--json] [--format raw|c]
                                      every type of one BTF object, by kernel id or from a file
                                      (raw BTF such as /sys/kernel/btf/vmlinux, or an ELF object's .BTF);
                                      ``--format c`` writes them as C declarations (pybpf.btf.cdump)

One line per type, with what it refers to resolved to names::

    [1] INT 'long unsigned int' size=8
    [114] STRUCT 'task_struct' size=3264
        thread_info: struct thread_info  (bit 0)
"""

from __future__ import annotations

import argparse
import ctypes
import os
from typing import Any, Iterator

from pybpf._sys.attrs import BtfInfo
from pybpf._sys.commands import btf_fd_by_id, btf_ids, obj_info
from pybpf.cli._output import kernel_objects, open_by_id, print_json, print_table, register_list


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pybpf btf list|dump`` to the command's subparsers."""
    actions = register_list(subparsers, "btf", "inspect BTF type information", "list BTF objects (needs root)",
                            run_list)
    dump = actions.add_parser("dump", help="the types of a BTF object (kernel id or file)")
    dump.add_argument("source", metavar="ID|FILE")
    dump.add_argument("--json", action="store_true", help="print a JSON list of types")
    dump.add_argument("--format", choices=("raw", "c"), default="raw",
                      help="raw: one line per type (default); c: C declarations")
    dump.set_defaults(func=run_dump)


def _named_info(fd: int) -> Any:
    name = ctypes.create_string_buffer(64)
    info = obj_info(fd, BtfInfo(name=ctypes.addressof(name), name_len=64))
    info.name_text = name.value.decode(errors="replace")
    return info


def run_list(args: argparse.Namespace) -> int:
    """``pybpf btf list [--json]``; the exit status."""
    found = [{"id": i.id, "name": i.name_text, "size": i.btf_size, "kernel": bool(i.kernel_btf)}
             for i in kernel_objects("BTF objects", btf_ids, btf_fd_by_id, _named_info)]
    if args.json:
        print_json(found)
    else:
        print_table(["ID", "NAME", "SIZE", "KERNEL"],
                    [[b["id"], b["name"] or "-", b["size"], "yes" if b["kernel"] else "no"] for b in found])
    return 0


def _spec_of(source: str) -> Any:
    """The parsed BTF of a kernel id or a file (raw BTF or an ELF object's .BTF section)."""
    from pybpf.btf import Spec, kernel_spec, module_spec
    from pybpf.tools import BadInputError

    if source.isdigit():
        with open_by_id("BTF object", int(source), btf_fd_by_id) as fd:
            info = _named_info(fd.fileno())
        if info.kernel_btf:
            return kernel_spec() if info.name_text == "vmlinux" else module_spec(info.name_text)
        from pybpf.object.targets import _read_btf

        return _read_btf(int(source), "btf")
    try:
        with open(source, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise BadInputError(f"cannot read {source}: {exc.strerror}") from None
    if os.path.realpath(source) == "/sys/kernel/btf/vmlinux":
        return kernel_spec()
    if os.path.dirname(os.path.realpath(source)) == "/sys/kernel/btf":
        return module_spec(os.path.basename(source))
    if data[:4] == b"\x7fELF":
        from pybpf.object import ObjectSpec

        spec = ObjectSpec.from_file(source)
        if spec.btf is None:
            raise BadInputError(f"{source} has no .BTF section (build it with clang -g)")
        return spec.btf
    return Spec.parse(data)


def _describe(t: Any) -> tuple[str, list[str]]:
    """``KIND 'name' details`` and indented lines for members, values, parameters."""
    from pybpf.btf import type_name

    kind = type(t).__name__.upper()
    name = getattr(t, "name", "") or ""
    head = f"{kind} '{name}'" if name else kind
    extra, lines = [], []
    if hasattr(t, "size") and kind not in ("DATASEC",):
        extra.append(f"size={t.size}")
    if kind in ("STRUCT", "UNION"):
        lines = [f"    {m.name or '(anon)'}: {type_name(m.type)}  (bit {m.bit_offset}"
                 + (f", {m.bitfield_size} bits)" if m.bitfield_size else ")") for m in t.members]
    elif kind in ("ENUM", "ENUM64"):
        lines = [f"    {v.name} = {v.value}" for v in t.values]
    elif kind == "TYPEDEF":
        extra.append(f"-> {type_name(t.type)}")
    elif kind in ("POINTER", "CONST", "VOLATILE", "RESTRICT", "ARRAY", "VAR", "FUNC", "TYPETAG"):
        extra.append(f"-> {type_name(t)}")
    elif kind == "FUNCPROTO":
        extra.append(type_name(t))
    elif kind == "DATASEC":
        lines = [f"    {getattr(v.var, 'name', '?')}: offset {v.offset}, size {v.size}" for v in t.vars]
    return " ".join([head, *extra]), lines


def _types(spec: Any) -> Iterator[tuple[int, Any]]:
    for tid in range(spec.first_id, len(spec)):
        yield tid, spec.type_by_id(tid)


def run_dump(args: argparse.Namespace) -> int:
    """``pybpf btf dump ID|FILE [--json]``; the exit status."""
    spec = _spec_of(args.source)
    if args.format == "c":
        from pybpf.btf.cdump import dump_c

        print(dump_c(spec, vmlinux_h=False), end="")
        return 0
    if args.json:
        from pybpf.btf import type_name

        print_json([{"id": tid, "kind": type(t).__name__.lower(), "name": getattr(t, "name", "") or "",
                     "c": type_name(t)} for tid, t in _types(spec)])
        return 0
    for tid, t in _types(spec):
        head, lines = _describe(t)
        print(f"[{tid}] {head}")
        for line in lines:
            print(line)
    return 0
