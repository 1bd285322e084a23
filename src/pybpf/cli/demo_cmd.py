"""``pybpf demo``: a live syscall counter, built and loaded with nothing but Python.

The demo assembles a raw tracepoint program for ``sys_enter`` with
:mod:`pybpf.asm`, loads it, attaches it with BPF_RAW_TRACEPOINT_OPEN, and
prints the busiest system calls from its hash map every second — the
syscall counter of the eBPF life-cycle article, with no clang and no libbpf.

Example::

    pybpf demo --seconds 3 --top 5
"""

from __future__ import annotations

import argparse
import time

from pybpf._sys import commands
from pybpf._sys.uapi import HelperID, ProgType
from pybpf.asm import builder as b
from pybpf.asm.opcodes import ALUOp, AtomicOp, JmpOp, Size
from pybpf.maps import HashMap
from pybpf.program import Program


def syscall_counter(counts: HashMap, *, tgid: int | None = None) -> list:
    """Instructions of ``counts[syscall nr] += 1`` for raw_tp/sys_enter (args[1] is the nr).

    With ``tgid``, only the system calls of that process are counted.

    Raw tracepoint programs need Linux 4.17.

    >>> with HashMap(key="u32", value="u64", max_entries=1024) as counts:    # doctest: +SKIP
    ...     len(syscall_counter(counts))
    22
    """
    only_tgid = [] if tgid is None else [
        b.mov64_reg(6, 1),
        b.call_helper(HelperID.get_current_pid_tgid),
        b.alu64_imm(ALUOp.RSH, 0, 32),          # the upper half is the process id
        b.jmp_imm(JmpOp.JNE, 0, tgid, "out"),
        b.mov64_reg(1, 6),
    ]
    return b.assemble([
        *only_tgid,
        b.ldx_mem(Size.DW, 6, 1, 8),            # r6 = ctx->args[1]: the syscall number
        b.stx_mem(Size.W, 10, 6, -4),           # key on the stack
        b.ld_map_fd(1, counts.fd),
        b.mov64_reg(2, 10), b.alu64_imm(0x00, 2, -4),
        b.call_helper(HelperID.map_lookup_elem),
        b.jmp_imm(JmpOp.JEQ, 0, 0, "first"),
        b.mov64_imm(1, 1),
        b.atomic_op(Size.DW, AtomicOp.ADD, 0, 1, 0),
        b.ja("out"),
        b.label("first"),
        b.st_mem(Size.DW, 10, -16, 1),
        b.ld_map_fd(1, counts.fd),
        b.mov64_reg(2, 10), b.alu64_imm(0x00, 2, -4),
        b.mov64_reg(3, 10), b.alu64_imm(0x00, 3, -16),
        b.mov64_imm(4, 0),                      # BPF_ANY: a racing CPU may have added it
        b.call_helper(HelperID.map_update_elem),
        b.label("out"),
        b.mov64_imm(0, 0),
        b.exit_(),
    ])


def run(args: argparse.Namespace) -> int:
    """``pybpf demo``: count system calls for ``args.seconds``, printing the ``args.top`` busiest."""
    with HashMap(key="u32", value="u64", max_entries=1024, name="demo_counts") as counts, \
            Program.load(syscall_counter(counts), prog_type=ProgType.RAW_TRACEPOINT,
                         name="demo_sys_enter") as prog, \
            commands.raw_tracepoint_open(prog.fd, "sys_enter"):
        print(f"counting system calls for {args.seconds:g} s "
              f"(program id {prog.id}, map id {counts.id}) ...")
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            snapshot = dict(counts.items())
            total = sum(snapshot.values())
            top = sorted(snapshot.items(), key=lambda kv: kv[1], reverse=True)[: args.top]
            print(f"{total:>10} syscalls, {len(snapshot)} distinct; busiest: "
                  + ", ".join(f"#{nr}={n}" for nr, n in top))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pybpf demo`` to the command's subparsers."""
    parser = subparsers.add_parser("demo", help="live syscall counter assembled in Python")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to count (default 5)")
    parser.add_argument("--top", type=int, default=5, help="how many syscalls to show")
    parser.set_defaults(func=run)
