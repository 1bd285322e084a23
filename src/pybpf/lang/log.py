"""``print(...)`` in a BPF program: records in a ring buffer, formatted by the user side.

Like aya-log, and unlike ``bpf_trace_printk``, nothing is formatted in the
kernel and nothing goes through trace_pipe: each ``print`` call site gets a
format (its constant strings and the types of its integer arguments) kept
in the compiled spec, and the program sends only ``[u64 site, u64 arg...]``
to the ring buffer map ``pybpf_log`` (Linux 5.8).  :class:`LogReader`
turns the records back into the text CPython's ``print`` would write for
the same values.

Example::

    @tracepoint("syscalls/sys_enter_getppid")
    def hello(ctx) -> int:
        print("getppid from", tgid())
        return 0

    with pybpf.compile(hello).load() as obj, LogReader(obj) as log:
        with obj.programs["hello"].attach():
            os.getppid()
        for line in log.read(timeout=1):
            print(line)            # "getppid from 1234"
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Iterator

from pybpf.lang.types import wrap

__all__ = ["LOG_MAP", "LogFormat", "LogReader", "format_record"]

LOG_MAP = "pybpf_log"
LOG_SIZE = 1 << 16


@dataclass(frozen=True)
class LogFormat:
    """One print() call site: text pieces (None where an integer goes) and the integers' (bits, signed)."""

    pieces: tuple[str | None, ...]
    args: tuple[tuple[int, bool], ...]
    sep: str = " "
    where: str = ""


def format_record(formats: list[LogFormat], data: bytes) -> str:
    """The line a log record stands for."""
    if len(data) < 8:
        return f"<short log record of {len(data)} bytes>"
    site = struct.unpack_from("<Q", data)[0]
    if site >= len(formats):
        return f"<log record of unknown site {site}>"
    fmt = formats[site]
    values = struct.unpack_from(f"<{len(fmt.args)}Q", data, 8) if fmt.args else ()
    out: list[str] = []
    k = 0
    for piece in fmt.pieces:
        if piece is None:
            bits, signed = fmt.args[k]
            out.append(str(wrap(values[k], bits, signed)))
            k += 1
        else:
            out.append(piece)
    return fmt.sep.join(out)


class LogReader:
    """Reads the ``print`` records of a loaded compiled object and formats them.

    ``read(timeout)`` yields lines; ``print_all(timeout)`` prints them.
    """

    def __init__(self, obj: Any) -> None:
        from pybpf.readers import RingBufReader

        self.formats: list[LogFormat] = list(getattr(obj.spec, "lang_log_formats", None) or [])
        if LOG_MAP not in obj.maps:
            raise LookupError("this object has no print() calls (no 'pybpf_log' ring buffer)")
        self._reader = RingBufReader(obj.maps[LOG_MAP])

    def read(self, timeout: float | None = 0) -> Iterator[str]:
        for rec in self._reader.poll(timeout=timeout):
            yield format_record(self.formats, bytes(rec))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until lines wait (True), or ``timeout`` seconds pass (False)."""
        return self._reader.wait(timeout)

    def print_all(self, timeout: float | None = 0) -> int:
        n = 0
        for line in self.read(timeout):
            print(line)
            n += 1
        return n

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> "LogReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
