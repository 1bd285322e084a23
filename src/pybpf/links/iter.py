"""BPF iterators: a TRACING program (``SEC("iter/<target>")``) that walks kernel objects.

``attach_iter(prog)`` creates the iterator link (``BPF_LINK_CREATE`` with
``BPF_TRACE_ITER``, Linux 5.8); every :meth:`IterLink.open` makes a new
iterator (``BPF_ITER_CREATE``) whose reads run the program over the objects
and return what it wrote with ``bpf_seq_printf``/``bpf_seq_write``;
:meth:`IterLink.read` returns the whole output at once.  ``map=`` selects the
map of a ``bpf_map_elem`` iterator, ``pid=``/``tid=`` the task(s) of a task
iterator (5.19), ``cgroup=`` the cgroup of a cgroup iterator (6.1).

The program is loaded with ``expected_attach_type=BPF_TRACE_ITER`` and
``attach_btf_id`` of the kernel function ``bpf_iter_<target>``.

Example::

    with attach_iter(prog) as it:
        text = it.read().decode()
"""

from __future__ import annotations

import ctypes
import io
import os

from pybpf._sys.attrs import LinkCreateAttr
from pybpf._sys.commands import iter_create, link_create
from pybpf._sys.uapi import AttachType, LinkType, ProgType
from pybpf.errors import LinkError, context
from pybpf.links.base import _label, check_program, prog_fd
from pybpf.links.link import Link
from pybpf.links.hook import Hook

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["attach_iter", "IterLink"]


class _IterInfo(ctypes.Union):
    """``union bpf_iter_link_info`` (16 bytes)."""

    class _Map(ctypes.Structure):
        _fields_ = [("map_fd", ctypes.c_uint32)]

    class _Cgroup(ctypes.Structure):
        _fields_ = [("order", ctypes.c_uint32), ("cgroup_fd", ctypes.c_uint32), ("cgroup_id", ctypes.c_uint64)]

    class _Task(ctypes.Structure):
        _fields_ = [("tid", ctypes.c_uint32), ("pid", ctypes.c_uint32), ("pid_fd", ctypes.c_uint32)]

    _fields_ = [("map", _Map), ("cgroup", _Cgroup), ("task", _Task)]


class IterLink(Link):
    """An iterator link: :meth:`open` a new pass over the objects, or :meth:`read` one whole pass."""

    def open(self) -> io.BufferedReader:
        """A new iterator as a binary file; close it when done (``with``)."""
        if self.closed:
            raise LinkError(f"{self._what}: the link is closed")
        with context(self._what):
            fd = iter_create(self._fd.fileno())  # type: ignore[union-attr]
        return os.fdopen(fd.take(), "rb")

    def read(self) -> bytes:
        """Run the iterator once and return everything it wrote."""
        with self.open() as f:
            chunks = []
            while True:
                chunk = f.read(1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
        return b"".join(chunks)

    def read_text(self) -> str:
        return self.read().decode(errors="replace")


def attach_iter(program: Any, *, map: Any = None, pid: int | None = None, tid: int | None = None,
                cgroup: Any = None, cgroup_order: int = 0) -> IterLink:
    """Create the iterator link of an ``iter/...`` program (see the module docs); Linux 5.8.

    Example: ``print(prog.attach_iter().read().decode())``.
    """
    check_program(program, (ProgType.TRACING,), "attach_iter", attach_types=(AttachType.TRACE_ITER,))
    info = _IterInfo()
    used = False
    cg_fd = None
    if map is not None:
        info.map.map_fd = prog_fd(map)
        used = True
    if pid is not None or tid is not None:
        info.task.pid = pid or 0
        info.task.tid = tid or 0
        used = True
    try:
        if cgroup is not None:
            if isinstance(cgroup, (str, os.PathLike)):
                cg_fd = os.open(os.fspath(cgroup), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                info.cgroup.cgroup_fd = cg_fd
            else:
                info.cgroup.cgroup_id = int(cgroup)
            info.cgroup.order = cgroup_order
            used = True
        with context(_label(program)), context("attach_iter"):
            attr = LinkCreateAttr(prog_fd=prog_fd(program), attach_type=AttachType.TRACE_ITER)
            if used:
                attr.u.iter.iter_info = ctypes.addressof(info)
                attr.u.iter.iter_info_len = ctypes.sizeof(info)
            fd = link_create(attr, what="iterator link")
    finally:
        if cg_fd is not None:
            os.close(cg_fd)
    return IterLink(fd, program=program, kind="iter", target=program.name or "iter")


HOOKS = (
    Hook(attach_iter, sections=("iter",), prog_types=(ProgType.TRACING,), attach_types=(AttachType.TRACE_ITER,),
         section_args=lambda info: {}, target_format="TARGET (task, bpf_map_elem, ...)", min_kernel="5.8"),
)

LINK_CLASSES = {LinkType.ITER: IterLink}   # Link.from_pin/from_id of an iterator link: one that reads
