"""execsnoop: every program execution, with its pid, parent, command name, argv and result.

The kernel side is the two pybpf.lang programs below.  On
``syscalls/sys_enter_execve`` one record per argument goes to a ring buffer:
the pid, the parent's pid (``current_task().real_parent.tgid``, a CO-RE read)
and the argument, read from the new program's ``argv`` with
``probe_read_user_str``.  On ``syscalls/sys_exit_execve`` a last record
carries the return code and the command name (after a successful exec, the
new program's).  The user side joins the records by pid.

Minimum kernel: 5.8 (ring buffer); bounded loops 5.3.

Example::

    with ExecSnoop() as tool:
        subprocess.run(["true", "hello"])
        for e in tool.poll(timeout=1.0):
            print(e.pid, e.comm, e.argv, e.ret)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import pybpf
from pybpf.lang import (
    RingBuf, Struct, current_task, get_current_comm, i32, probe_read_user, probe_read_user_str, tgid,
    tracepoint, u8, u32, u64,
)
from pybpf.readers import RingBufReader
from pybpf.tools.session import Tracer

__all__ = ["ExecSnoop", "Exec"]

# -- kernel side (pybpf.lang) ------------------------------------------------------------------------


class ExecEvent(Struct):
    kind: u32        # ARG or RET
    pid: u32
    ppid: u32
    value: i32       # ARG: the argument's index; RET: execve's return code
    text: u8[128]    # ARG: the argument; RET: the command name after the exec


class UserPtr(Struct):
    value: u64


ARG = 1
RET = 2
MAX_ARGS = 20
events = RingBuf(1 << 20)


@tracepoint("syscalls/sys_enter_execve")
def exec_enter(ctx) -> int:
    ppid = current_task().real_parent.tgid
    argv = ctx.argv
    slot = UserPtr()
    for i in range(MAX_ARGS):
        if probe_read_user(slot, argv + 8 * i) != 0 or slot.value == 0:
            break
        e = events.reserve(ExecEvent)
        if not e:
            return 0
        e.kind = ARG
        e.pid = tgid()
        e.ppid = ppid
        e.value = i
        probe_read_user_str(e.text, slot.value)
        events.submit(e)
    return 0


@tracepoint("syscalls/sys_exit_execve")
def exec_exit(ctx) -> int:
    e = events.reserve(ExecEvent)
    if not e:
        return 0
    e.kind = RET
    e.pid = tgid()
    e.ppid = current_task().real_parent.tgid
    e.value = ctx.ret
    get_current_comm(e.text)
    events.submit(e)
    return 0


# -- user side ---------------------------------------------------------------------------------------

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


class ExecSnoop(Tracer):
    """The execsnoop tracer: attaches on construction; :meth:`poll` yields :class:`Exec` events."""

    def __init__(self) -> None:
        self._pending: dict[int, Exec] = {}
        self.reader: RingBufReader | None = None
        self._start(pybpf.compile(exec_enter, exec_exit), self._attach)

    def _attach(self) -> None:
        self.reader = RingBufReader(self.kernel.maps["events"], record=ExecEvent.btf())
        self.kernel.attach_all()

    def _decode(self, record: Any) -> Exec | None:
        kind, pid, ppid, value, text = record.kind, record.pid, record.ppid, record.value, bytes(record.text)
        if kind == ARG:
            event = self._pending.setdefault(pid, Exec(pid, ppid, ""))
            if value == 0:
                event.argv = []          # a new exec of this process (an earlier one failed)
            event.argv.append(_cstr(text))
            return None
        event = self._pending.pop(pid, None) or Exec(pid, ppid, "")
        event.ret = value
        event.comm = _cstr(text)
        return event

    def wait(self, timeout: float | None = None) -> bool:
        """Block until events wait (True), or ``timeout`` seconds pass (False)."""
        assert self.reader is not None
        return self.reader.wait(timeout)

    def poll(self, timeout: float | None = 0) -> Iterator[Exec]:
        """The executions finished since the last call, waiting up to ``timeout`` seconds for the first."""
        assert self.reader is not None
        for record in self.reader.poll(timeout):
            event = self._decode(record)
            if event is not None:
                yield event

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None
        super().close()
