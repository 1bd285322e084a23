"""The tools' kernel sides assembled with :mod:`pybpf.asm.builder` (the stand-in for pybpf.lang).

Each function loads the maps and programs of one tool and returns a
:class:`Kernel` with the same shape as a loaded :class:`pybpf.Object`
(``programs``, ``maps``, ``close()``), so a tool's user side does not care
which way its kernel side was built.  A process filter is compiled in as a
constant (``tgid`` 0: every process).

Register use follows the BPF calling convention: r1-r5 are arguments and
clobbered by calls, r0 the result, r6-r9 survive calls, r10 the frame.

Minimum kernel: 5.15 for cookies (the fallback clones the programs before),
5.8 for ring buffers (execsnoop), 4.7 for tracepoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from pybpf._sys.uapi import AttachType, HelperID as H, ProgType
from pybpf.asm import builder as b
from pybpf.asm.opcodes import ADD, AND, DW, JEQ, JNE, JLT, LSH, OR, RSH, SUB, W, AtomicOp
from pybpf.maps import HashMap, PerCPUArrayMap, RingBuf
from pybpf.program import Program

__all__ = ["Kernel", "funccount", "syscount", "funclatency", "execsnoop", "tracepoint_fields",
           "EXEC_MAX_ARGS", "EXEC_ARG_SIZE"]

EXEC_MAX_ARGS = 20
EXEC_ARG_SIZE = 128


@dataclass
class Kernel:
    """Loaded programs and maps, by name; ``close()`` closes them all."""

    programs: dict[str, Program] = field(default_factory=dict)
    maps: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        for obj in [*self.programs.values(), *self.maps.values()]:
            obj.close()

    def __enter__(self) -> "Kernel":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def tracepoint_fields(category: str, name: str) -> dict[str, int]:
    """Field name → offset in the context of tracepoint ``category/name`` (from its tracefs format)."""
    from pybpf.links._tracefs import tracefs_root

    out: dict[str, int] = {}
    with open(os.path.join(tracefs_root(), "events", category, name, "format")) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("field:"):
                continue
            parts = dict(p.strip().split(":", 1) for p in line.rstrip(";").split(";") if ":" in p)
            decl = parts["field"].strip()
            fname = decl.split()[-1].split("[")[0].lstrip("*")
            out[fname] = int(parts["offset"])
    return out


def _tgid_filter(tgid: int, out: str) -> list:
    """Leave for ``out`` unless the current process is ``tgid`` (nothing when tgid is 0)."""
    if not tgid:
        return []
    return [b.call_helper(H.get_current_pid_tgid), b.alu64_imm(RSH, 0, 32), b.jmp_imm(JNE, 0, tgid, out)]


def _add(m: Any, key_off: int, value_reg: int, tmp_off: int, tag: str) -> list:
    """``m[*(r10+key_off)] += value_reg``: an atomic add, or an insert of the value when absent."""
    return [
        b.ld_map_fd(1, m.fd), b.mov64_reg(2, 10), b.alu64_imm(ADD, 2, key_off),
        b.call_helper(H.map_lookup_elem),
        b.jmp_imm(JEQ, 0, 0, f"{tag}_new"),
        b.atomic_op(DW, AtomicOp.ADD, 0, value_reg, 0),
        b.ja(f"{tag}_done"),
        b.label(f"{tag}_new"),
        b.stx_mem(DW, 10, value_reg, tmp_off),
        b.ld_map_fd(1, m.fd), b.mov64_reg(2, 10), b.alu64_imm(ADD, 2, key_off),
        b.mov64_reg(3, 10), b.alu64_imm(ADD, 3, tmp_off), b.mov64_imm(4, 0),
        b.call_helper(H.map_update_elem),
        b.label(f"{tag}_done"),
    ]


def _exit(label: str = "out") -> list:
    return [b.label(label), b.mov64_imm(0, 0), b.exit_()]


def _load(insns: list, name: str, prog_type: ProgType, expected: Any = None) -> Program:
    return Program.load(b.assemble(insns), prog_type=prog_type, expected_attach_type=expected, name=name)


def _uprobe_attach_type(multi: bool) -> Any:
    return AttachType.TRACE_UPROBE_MULTI if multi else None


def funccount(nfuncs: int, tgid: int = 0, *, multi: bool = True) -> Kernel:
    """``counts[cookie] += 1`` on every probed call (per-CPU, no atomics)."""
    k = Kernel()
    try:
        counts = k.maps["counts"] = PerCPUArrayMap(value="u64", max_entries=max(nfuncs, 1), name="counts")
        k.programs["count_call"] = _load([
            b.mov64_reg(6, 1),
            *_tgid_filter(tgid, "out"),
            b.mov64_reg(1, 6), b.call_helper(H.get_attach_cookie),
            b.stx_mem(W, 10, 0, -4),
            b.ld_map_fd(1, counts.fd), b.mov64_reg(2, 10), b.alu64_imm(ADD, 2, -4),
            b.call_helper(H.map_lookup_elem),
            b.jmp_imm(JEQ, 0, 0, "out"),
            b.ldx_mem(DW, 1, 0, 0), b.alu64_imm(ADD, 1, 1), b.stx_mem(DW, 0, 1, 0),
            *_exit(),
        ], "count_call", ProgType.KPROBE, _uprobe_attach_type(multi))
    except BaseException:
        k.close()
        raise
    return k


def syscount(tgid: int = 0, *, by_process: bool = False, latency: bool = False) -> Kernel:
    """``counts[nr or tgid] += 1`` at sys_enter; with latency, ``total_ns[...] += exit - enter``."""
    enter_f = tracepoint_fields("raw_syscalls", "sys_enter")
    exit_f = tracepoint_fields("raw_syscalls", "sys_exit")
    k = Kernel()

    def key_of(field_off: int) -> list:   # r8 := the key, from r6 (ctx) and r7 (pid_tgid)
        if by_process:
            return [b.mov64_reg(8, 7), b.alu64_imm(RSH, 8, 32)]
        return [b.ldx_mem(DW, 8, 6, field_off), b.mov32_reg(8, 8)]

    def prologue() -> list:
        return [b.mov64_reg(6, 1), b.call_helper(H.get_current_pid_tgid), b.mov64_reg(7, 0),
                *([b.mov64_reg(1, 7), b.alu64_imm(RSH, 1, 32), b.jmp_imm(JNE, 1, tgid, "out")] if tgid else [])]
    try:
        counts = k.maps["counts"] = HashMap(key="u64", value="u64", max_entries=10240, name="counts")
        enter = [*prologue(), *key_of(enter_f["id"]), b.stx_mem(DW, 10, 8, -8),
                 b.mov64_imm(9, 1), *_add(counts, -8, 9, -16, "count")]
        if latency:
            start = k.maps["start"] = HashMap(key="u64", value="u64", max_entries=10240, name="start")
            total = k.maps["total_ns"] = HashMap(key="u64", value="u64", max_entries=10240, name="total_ns")
            enter += [b.stx_mem(DW, 10, 7, -24), b.call_helper(H.ktime_get_ns), b.stx_mem(DW, 10, 0, -32),
                      b.ld_map_fd(1, start.fd), b.mov64_reg(2, 10), b.alu64_imm(ADD, 2, -24),
                      b.mov64_reg(3, 10), b.alu64_imm(ADD, 3, -32), b.mov64_imm(4, 0),
                      b.call_helper(H.map_update_elem)]
            k.programs["sys_exit"] = _load([
                *prologue(),
                b.stx_mem(DW, 10, 7, -24),
                b.ld_map_fd(1, start.fd), b.mov64_reg(2, 10), b.alu64_imm(ADD, 2, -24),
                b.call_helper(H.map_lookup_elem),
                b.jmp_imm(JEQ, 0, 0, "out"),
                b.ldx_mem(DW, 9, 0, 0),
                b.ld_map_fd(1, start.fd), b.mov64_reg(2, 10), b.alu64_imm(ADD, 2, -24),
                b.call_helper(H.map_delete_elem),
                b.call_helper(H.ktime_get_ns), b.alu64_reg(SUB, 0, 9), b.mov64_reg(9, 0),
                *key_of(exit_f["id"]), b.stx_mem(DW, 10, 8, -8),
                *_add(total, -8, 9, -16, "lat"),
                *_exit(),
            ], "sys_exit", ProgType.TRACEPOINT)
        k.programs["sys_enter"] = _load([*enter, *_exit()], "sys_enter", ProgType.TRACEPOINT)
    except BaseException:
        k.close()
        raise
    return k


def _log2(src: int, dst: int, tmp: int) -> list:
    """``dst = floor(log2(src))`` (0 for 0 and 1) by halving; ``src`` is consumed."""
    out = [b.mov64_imm(dst, 0)]
    for shift in (32, 16, 8, 4, 2, 1):
        out += [b.mov64_reg(tmp, src), b.alu64_imm(RSH, tmp, shift), b.jmp_imm(JEQ, tmp, 0, f"log_{shift}"),
                b.mov64_reg(src, tmp), b.alu64_imm(ADD, dst, shift), b.label(f"log_{shift}")]
    return out


def funclatency(tgid: int = 0, *, multi: bool = True) -> Kernel:
    """Entry: ``start[cookie, tid] = now``; return: ``hist[cookie, log2(ns)] += 1``, ``total_ns[cookie] += ns``."""
    k = Kernel()

    def prologue() -> list:   # r6 := cookie, r7 := (cookie << 32) | tid
        return [b.mov64_reg(6, 1), *_tgid_filter(tgid, "out"),
                b.mov64_reg(1, 6), b.call_helper(H.get_attach_cookie), b.mov64_reg(6, 0),
                b.call_helper(H.get_current_pid_tgid), b.mov32_reg(7, 0),
                b.mov64_reg(1, 6), b.alu64_imm(LSH, 1, 32), b.alu64_reg(OR, 7, 1),
                b.stx_mem(DW, 10, 7, -8)]
    try:
        start = k.maps["start"] = HashMap(key="u64", value="u64", max_entries=10240, name="start")
        hist = k.maps["hist"] = HashMap(key="u64", value="u64", max_entries=10240, name="hist")
        total = k.maps["total_ns"] = HashMap(key="u64", value="u64", max_entries=4096, name="total_ns")
        expected = _uprobe_attach_type(multi)
        k.programs["on_entry"] = _load([
            *prologue(),
            b.call_helper(H.ktime_get_ns), b.stx_mem(DW, 10, 0, -16),
            b.ld_map_fd(1, start.fd), b.mov64_reg(2, 10), b.alu64_imm(ADD, 2, -8),
            b.mov64_reg(3, 10), b.alu64_imm(ADD, 3, -16), b.mov64_imm(4, 0),
            b.call_helper(H.map_update_elem),
            *_exit(),
        ], "on_entry", ProgType.KPROBE, expected)
        k.programs["on_return"] = _load([
            *prologue(),
            b.ld_map_fd(1, start.fd), b.mov64_reg(2, 10), b.alu64_imm(ADD, 2, -8),
            b.call_helper(H.map_lookup_elem),
            b.jmp_imm(JEQ, 0, 0, "out"),
            b.ldx_mem(DW, 8, 0, 0),
            b.ld_map_fd(1, start.fd), b.mov64_reg(2, 10), b.alu64_imm(ADD, 2, -8),
            b.call_helper(H.map_delete_elem),
            b.call_helper(H.ktime_get_ns), b.alu64_reg(SUB, 0, 8), b.mov64_reg(8, 0),   # r8 = ns
            b.stx_mem(DW, 10, 6, -24), *_add(total, -24, 8, -32, "total"),
            *_log2(8, 9, 1),                                                             # r9 = bucket
            b.mov64_reg(1, 6), b.alu64_imm(LSH, 1, 8), b.alu64_reg(OR, 1, 9), b.stx_mem(DW, 10, 1, -24),
            b.mov64_imm(9, 1), *_add(hist, -24, 9, -32, "hist"),
            *_exit(),
        ], "on_return", ProgType.KPROBE, expected)
    except BaseException:
        k.close()
        raise
    return k


def _task_ppid(dst_off: int) -> list:
    """``*(u32 *)(r7 + dst_off) = current->real_parent->tgid`` through probe_read_kernel (offsets from BTF)."""
    from pybpf.btf import BTFKind, kernel_spec

    task = kernel_spec().find("task_struct", BTFKind.STRUCT)
    parent_off = task.member("real_parent").offset
    tgid_off = task.member("tgid").offset
    return [
        b.st_mem(DW, 10, -8, 0),
        b.call_helper(H.get_current_task), b.mov64_reg(3, 0), b.alu64_imm(ADD, 3, parent_off),
        b.mov64_reg(1, 10), b.alu64_imm(ADD, 1, -8), b.mov64_imm(2, 8), b.call_helper(H.probe_read_kernel),
        b.ldx_mem(DW, 3, 10, -8), b.alu64_imm(ADD, 3, tgid_off), b.st_mem(DW, 10, -8, 0),
        b.mov64_reg(1, 10), b.alu64_imm(ADD, 1, -8), b.mov64_imm(2, 4), b.call_helper(H.probe_read_kernel),
        b.ldx_mem(W, 0, 10, -8), b.stx_mem(W, 7, 0, dst_off),
    ]


def execsnoop() -> Kernel:
    """sys_enter_execve: {1, pid, ppid, argc, argv[20][128]}; sys_exit_execve: {2, pid, ret, 0, comm[16]}."""
    enter_f = tracepoint_fields("syscalls", "sys_enter_execve")
    exit_f = tracepoint_fields("syscalls", "sys_exit_execve")
    start_size = 16 + EXEC_MAX_ARGS * EXEC_ARG_SIZE
    k = Kernel()
    try:
        events = k.maps["events"] = RingBuf(size=1 << 20, name="events")
        args = []
        for i in range(EXEC_MAX_ARGS):
            args += [
                b.mov64_reg(1, 10), b.alu64_imm(ADD, 1, -16), b.mov64_imm(2, 8),
                b.mov64_reg(3, 8), b.alu64_imm(ADD, 3, 8 * i), b.call_helper(H.probe_read_user),
                b.jmp_imm(JNE, 0, 0, "done"),
                b.ldx_mem(DW, 3, 10, -16), b.jmp_imm(JEQ, 3, 0, "done"),
                b.mov64_reg(1, 7), b.alu64_imm(ADD, 1, 16 + i * EXEC_ARG_SIZE), b.mov64_imm(2, EXEC_ARG_SIZE),
                b.call_helper(H.probe_read_user_str),
                b.st_mem(W, 7, 12, i + 1),
            ]
        k.programs["exec_enter"] = _load([
            b.mov64_reg(6, 1),
            b.ld_map_fd(1, events.fd), b.mov64_imm(2, start_size), b.mov64_imm(3, 0),
            b.call_helper(H.ringbuf_reserve), b.jmp_imm(JEQ, 0, 0, "out"), b.mov64_reg(7, 0),
            b.st_mem(W, 7, 0, 1), b.st_mem(W, 7, 12, 0),
            b.call_helper(H.get_current_pid_tgid), b.alu64_imm(RSH, 0, 32), b.stx_mem(W, 7, 0, 4),
            *_task_ppid(8),
            b.ldx_mem(DW, 8, 6, enter_f["argv"]),
            *args,
            b.label("done"),
            b.mov64_reg(1, 7), b.mov64_imm(2, 0), b.call_helper(H.ringbuf_submit),
            *_exit(),
        ], "exec_enter", ProgType.TRACEPOINT)
        k.programs["exec_exit"] = _load([
            b.mov64_reg(6, 1),
            b.ld_map_fd(1, events.fd), b.mov64_imm(2, 32), b.mov64_imm(3, 0),
            b.call_helper(H.ringbuf_reserve), b.jmp_imm(JEQ, 0, 0, "out"), b.mov64_reg(7, 0),
            b.st_mem(W, 7, 0, 2), b.st_mem(W, 7, 12, 0),
            b.call_helper(H.get_current_pid_tgid), b.alu64_imm(RSH, 0, 32), b.stx_mem(W, 7, 0, 4),
            b.ldx_mem(DW, 0, 6, exit_f["ret"]), b.stx_mem(W, 7, 0, 8),
            b.mov64_reg(1, 7), b.alu64_imm(ADD, 1, 16), b.mov64_imm(2, 16), b.call_helper(H.get_current_comm),
            b.mov64_reg(1, 7), b.mov64_imm(2, 0), b.call_helper(H.ringbuf_submit),
            *_exit(),
        ], "exec_exit", ProgType.TRACEPOINT)
    except BaseException:
        k.close()
        raise
    return k
