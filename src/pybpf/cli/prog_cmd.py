"""``pybpf prog``: the BPF programs loaded in the kernel.

Usage::

    pybpf prog list [--json]        id, type, name, tag, runs
    pybpf prog show ID [--json]     everything the kernel reports about one program, and its links
    pybpf prog dump ID [--json]     its instructions as the kernel keeps them, with source lines from BTF

Example::

    $ pybpf prog list
    ID  TYPE            NAME            TAG
    42  raw_tracepoint  demo_sys_enter  8e4a1b6d0c2f9e31
    $ pybpf prog dump 42
    ; count_call  (counts.py:12)
    ;   if TARGET_TGID != 0 and tgid() != TARGET_TGID:
    0: (bf) r6 = r1
    ...
"""

from __future__ import annotations

import argparse
import ctypes
import struct
import sys
from typing import Any

from pybpf._sys.attrs import ProgInfo
from pybpf._sys.commands import obj_info, prog_fd_by_id, prog_ids, prog_info
from pybpf._sys.uapi import ProgType
from pybpf.cli._output import (
    enum_name, kernel_objects, open_by_id, print_json, print_table, register_list, show_fields,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pybpf prog list|show|dump`` to the command's subparsers."""
    actions = register_list(subparsers, "prog", "inspect BPF programs in the kernel",
                            "list loaded programs (needs root)", run_list)
    show = actions.add_parser("show", help="what the kernel reports about one program")
    show.add_argument("id", type=int, metavar="ID")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(func=run_show)
    dump = actions.add_parser("dump", help="a program's instructions, with source lines when BTF has them")
    dump.add_argument("id", type=int, metavar="ID")
    dump.add_argument("--json", action="store_true", help="print a JSON list of instructions")
    dump.set_defaults(func=run_dump)


def type_name(value: int) -> str:
    """``xdp``, ``kprobe``... for a program type number (``type N`` when unknown).

    >>> type_name(6)
    'xdp'
    """
    return enum_name(ProgType, value)


def _summary(info: Any) -> dict:
    return {"id": info.id, "type": type_name(info.type), "name": info.name.decode(errors="replace"),
            "tag": bytes(info.tag).hex(), "run_cnt": info.run_cnt, "run_time_ns": info.run_time_ns}


def programs() -> list[dict]:
    """One dict per loaded program: id, type, name, tag, run_cnt, run_time_ns.

    >>> [p["id"] for p in programs() if p["type"] == "xdp"]      # doctest: +SKIP
    [42]
    """
    return [_summary(info) for info in kernel_objects("programs", prog_ids, prog_fd_by_id, prog_info)]


def run_list(args: argparse.Namespace) -> int:
    """``pybpf prog list [--json]``: print the programs; the exit status."""
    progs = programs()
    if args.json:
        print_json(progs)
    else:
        print_table(["ID", "TYPE", "NAME", "TAG", "RUNS"],
                    [[p["id"], p["type"], p["name"], p["tag"], p["run_cnt"]] for p in progs])
    return 0


def _details(fd: int) -> dict:
    """Every field of bpf_prog_info worth showing, with the map ids."""
    info = prog_info(fd)
    ids = (ctypes.c_uint32 * max(info.nr_map_ids, 1))()
    info = obj_info(fd, ProgInfo(nr_map_ids=info.nr_map_ids, map_ids=ctypes.addressof(ids)))
    out = _summary(info)
    out.update(xlated_size=info.xlated_prog_len, jited_size=info.jited_prog_len,
               verified_insns=info.verified_insns, map_ids=list(ids[: info.nr_map_ids]), btf_id=info.btf_id,
               gpl_compatible=bool(info.gpl_compatible), load_time_ns=info.load_time,
               created_by_uid=info.created_by_uid, recursion_misses=info.recursion_misses,
               func_info=info.nr_func_info, line_info=info.nr_line_info)
    return out


def run_show(args: argparse.Namespace) -> int:
    """``pybpf prog show ID [--json]``; the exit status."""
    from pybpf.cli.link_cmd import links

    with open_by_id("program", args.id, prog_fd_by_id) as fd:
        details = _details(fd.fileno())
    details["link_ids"] = [link["id"] for link in links() if link["prog_id"] == args.id]
    if args.json:
        print_json(details)
    else:
        show_fields(details)
    return 0


def _line_table(fd: int, info: Any) -> tuple[dict[int, list[str]], Any]:
    """Instruction index → comment lines (function names, source lines), from the program's BTF."""
    notes: dict[int, list[str]] = {}
    if not info.btf_id or not (info.nr_line_info or info.nr_func_info):
        return notes, None
    from pybpf.object.targets import _read_btf

    btf = _read_btf(info.btf_id, f"program id {info.id}")
    lines = ctypes.create_string_buffer(max(info.nr_line_info * info.line_info_rec_size, 1))
    funcs = ctypes.create_string_buffer(max(info.nr_func_info * info.func_info_rec_size, 1))
    obj_info(fd, ProgInfo(nr_line_info=info.nr_line_info, line_info_rec_size=info.line_info_rec_size,
                          line_info=ctypes.addressof(lines), nr_func_info=info.nr_func_info,
                          func_info_rec_size=info.func_info_rec_size, func_info=ctypes.addressof(funcs)))
    for i in range(info.nr_func_info):
        insn_off, type_id = struct.unpack_from("<II", funcs, i * info.func_info_rec_size)
        name = getattr(btf.type_by_id(type_id), "name", "") or f"func#{type_id}"
        notes.setdefault(insn_off, []).append(f"; {name}")
    last = None
    for i in range(info.nr_line_info):
        insn_off, file_off, line_off, line_col = struct.unpack_from("<IIII", lines, i * info.line_info_rec_size)
        text = btf.strings[line_off].strip() if line_off else ""
        where = f"{btf.strings[file_off].rsplit('/', 1)[-1]}:{line_col >> 10}"
        if (text, where) != last and (text or where):
            notes.setdefault(insn_off, []).append(f"; {text}  [{where}]" if text else f"; [{where}]")
            last = (text, where)
    return notes, btf


def run_dump(args: argparse.Namespace) -> int:
    """``pybpf prog dump ID [--json]``: the translated instructions; the exit status."""
    from pybpf.asm import decode_all
    from pybpf.asm.disasm import format_instruction

    with open_by_id("program", args.id, prog_fd_by_id) as fd:
        info = prog_info(fd.fileno())
        if not info.xlated_prog_len:
            print(f"pybpf: program {args.id} shows no instructions (kernel.kptr_restrict or no CAP_SYS_ADMIN)",
                  file=sys.stderr)
            return 1
        buf = ctypes.create_string_buffer(info.xlated_prog_len)
        obj_info(fd.fileno(), ProgInfo(xlated_prog_len=info.xlated_prog_len, xlated_prog_insns=ctypes.addressof(buf)))
        notes, _ = _line_table(fd.fileno(), info)
    insns = decode_all(buf.raw)
    rows = []
    i = 0
    while i < len(insns):
        wide = insns[i].code == 0x18
        text = format_instruction(insns[i], i, insns[i + 1] if wide and i + 1 < len(insns) else None)
        rows.append({"index": i, "text": text.split(") ", 1)[1], "code": f"{insns[i].code:02x}",
                     "source": [n[2:] for n in notes.get(i, [])]})
        i += 2 if wide else 1
    if args.json:
        print_json(rows)
        return 0
    for row in rows:
        for note in notes.get(row["index"], []):
            print(note)
        print(f"{row['index']:>4}: ({row['code']}) {row['text']}")
    return 0
