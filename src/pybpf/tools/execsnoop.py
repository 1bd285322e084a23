"""execsnoop: every program execution, with its pid, parent, command name, argv and result.

The kernel side (:func:`pybpf.tools.execsnoop_asm.execsnoop`, in pybpf.asm) has two
tracepoint programs.  On ``syscalls/sys_enter_execve`` it reserves a record
in a ring buffer and fills in the pid, the parent's pid (``task->real_parent
->tgid``, offsets from the kernel's BTF) and up to 20 arguments, each read
from the new program's ``argv`` with ``bpf_probe_read_user_str``.  On
``syscalls/sys_exit_execve`` it sends the return code and the command name
(after a successful exec, the new program's).  The user side joins the two
records by pid.

Minimum kernel: 5.8 (ring buffer).

Example::

    with ExecSnoop() as tool:
        subprocess.run(["true", "hello"])
        for e in tool.poll(timeout=1.0):
            print(e.pid, e.comm, e.argv, e.ret)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Iterator

from pybpf.readers import RingBufReader
from pybpf.tools import execsnoop_asm

__all__ = ["ExecSnoop", "Exec"]

_ENTER, _EXIT = 1, 2
_HEAD = struct.Struct("<IIII")        # kind, pid, ppid | ret, argc


@dataclass
class Exec:
    """One execve: ``ret`` is 0 on success or a negative errno."""

    pid: int
    ppid: int
    comm: str
    argv: list[str] = field(default_factory=list)
    ret: int = 0

    def asdict(self) -> dict:
        return {"pid": self.pid, "ppid": self.ppid, "comm": self.comm, "argv": self.argv, "ret": self.ret}


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


class ExecSnoop:
    """The execsnoop tracer: attaches on construction; :meth:`poll` yields :class:`Exec` events."""

    def __init__(self) -> None:
        self.kernel = execsnoop_asm.execsnoop()
        self.links: list[Any] = []
        self._pending: dict[int, Exec] = {}
        self.reader: RingBufReader | None = None
        try:
            self.reader = RingBufReader(self.kernel.maps["events"])
            self.links.append(self.kernel.programs["exec_enter"].attach_tracepoint("syscalls", "sys_enter_execve"))
            self.links.append(self.kernel.programs["exec_exit"].attach_tracepoint("syscalls", "sys_exit_execve"))
        except BaseException:
            self.close()
            raise

    def _decode(self, record: Any) -> Exec | None:
        raw = bytes(record)
        kind, pid, third, argc = _HEAD.unpack_from(raw)
        if kind == _ENTER:
            size = execsnoop_asm.EXEC_ARG_SIZE
            argv = [_cstr(raw[16 + i * size: 16 + (i + 1) * size]) for i in range(min(argc, execsnoop_asm.EXEC_MAX_ARGS))]
            self._pending[pid] = Exec(pid, third, "", argv)
            return None
        ret = third - (1 << 32) if third >= 1 << 31 else third
        event = self._pending.pop(pid, None) or Exec(pid, 0, "")
        event.ret = ret
        event.comm = _cstr(raw[16:32])
        return event

    def poll(self, timeout: float | None = 0) -> Iterator[Exec]:
        """The executions finished since the last call, waiting up to ``timeout`` seconds for the first."""
        assert self.reader is not None
        for record in self.reader.poll(timeout):
            event = self._decode(record)
            if event is not None:
                yield event

    def close(self) -> None:
        for link in self.links:
            link.close()
        self.links.clear()
        if self.reader is not None:
            self.reader.close()
        self.kernel.close()

    def __enter__(self) -> "ExecSnoop":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
