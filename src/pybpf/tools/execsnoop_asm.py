"""execsnoop's kernel side, assembled with :mod:`pybpf.asm.builder` — kept apart from the pybpf.lang tools.

The other tools' kernel sides are written in pybpf.lang.  This one is not
yet: it needs what the language's first slice lacks — a C-layout record
reserved in a ring buffer (``bpf_ringbuf_reserve``), ``bpf_probe_read_user``/
``_str`` for the new program's argv, and a read of ``current->real_parent->tgid``
(offsets from the kernel's BTF).  :func:`execsnoop` loads the maps and
programs and returns a :class:`Kernel` shaped like a loaded
:class:`pybpf.Object` (``programs``, ``maps``, ``close()``).

Records (little-endian)::

    enter: u32 kind=1, u32 pid, u32 ppid, u32 argc, char argv[20][128]
    exit:  u32 kind=2, u32 pid, i32 ret,  u32 0,    char comm[16]

Register use follows the BPF calling convention: r1-r5 are arguments and
clobbered by calls, r0 the result, r6-r9 survive calls, r10 the frame.

Minimum kernel: 5.8 (ring buffer); tracepoints 4.7.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pybpf._sys.uapi import HelperID as H, ProgType
from pybpf.asm import builder as b
from pybpf.asm.opcodes import ADD, DW, JEQ, JNE, RSH, W
from pybpf.lang.ctx import tracepoint_fields
from pybpf.maps import RingBuf
from pybpf.program import Program

__all__ = ["Kernel", "execsnoop", "EXEC_MAX_ARGS", "EXEC_ARG_SIZE"]

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


def _exit(label: str = "out") -> list:
    return [b.label(label), b.mov64_imm(0, 0), b.exit_()]


def _load(insns: list, name: str, prog_type: ProgType) -> Program:
    return Program.load(b.assemble(insns), prog_type=prog_type, name=name)


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
    enter_f = tracepoint_fields("syscalls/sys_enter_execve")
    exit_f = tracepoint_fields("syscalls/sys_exit_execve")
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
            b.ldx_mem(DW, 8, 6, enter_f["argv"].offset),
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
            b.ldx_mem(DW, 0, 6, exit_f["ret"].offset), b.stx_mem(W, 7, 0, 8),
            b.mov64_reg(1, 7), b.alu64_imm(ADD, 1, 16), b.mov64_imm(2, 16), b.call_helper(H.get_current_comm),
            b.mov64_reg(1, 7), b.mov64_imm(2, 0), b.call_helper(H.ringbuf_submit),
            *_exit(),
        ], "exec_exit", ProgType.TRACEPOINT)
    except BaseException:
        k.close()
        raise
    return k
