"""Socket filters: a SOCKET_FILTER program on one socket (``SO_ATTACH_BPF``).

``attach_socket(prog, sock)`` runs the program on every packet the socket
receives; it returns how many bytes to keep (0 drops the packet).  The
returned link holds a duplicate of the socket's fd, so detaching
(``SO_DETACH_BPF`` on close) always reaches the right socket; closing the
link releases the duplicate.

Minimum kernel: 3.19.

Example::

    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with attach_socket(prog, b):
        a.send(b"x")
"""

from __future__ import annotations

import errno as _errno
import os

from pybpf._sys.syscall import error
from pybpf._sys.uapi import ProgType
from pybpf.errors import context
from pybpf.links.base import _label, check_program, prog_fd
from pybpf.links.link import Link
from pybpf.links.hook import Hook

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["attach_socket"]

SO_ATTACH_BPF = 50
SO_DETACH_BPF = 27  # = SO_DETACH_FILTER


def _sock_fd(sock: Any) -> int:
    if isinstance(sock, int) and not isinstance(sock, bool):
        return sock
    if hasattr(sock, "fileno"):
        return sock.fileno()
    raise TypeError(f"attach_socket takes a socket or its fd, not {type(sock).__name__}")


def attach_socket(program: Any, sock: Any) -> Link:
    """Attach a SOCKET_FILTER program to ``sock`` (a socket object or fd); Linux 3.19.

    Example: ``prog.attach_socket(sock)``.
    """
    import socket as _socket   # here: importing the hooks must not import the socket stack

    check_program(program, (ProgType.SOCKET_FILTER,), "attach_socket")
    fd = _sock_fd(sock)
    with context(_label(program)), context("attach_socket"):
        try:
            own = _socket.socket(fileno=os.dup(fd))
        except OSError as exc:
            raise error(exc.errno or _errno.EBADF, f"duplicate socket fd {fd}") from None
        try:
            own.setsockopt(_socket.SOL_SOCKET, SO_ATTACH_BPF, prog_fd(program))
        except OSError as exc:
            own.close()
            raise error(exc.errno or _errno.EINVAL, "setsockopt SO_ATTACH_BPF") from None

    def detach() -> None:
        try:
            own.setsockopt(_socket.SOL_SOCKET, SO_DETACH_BPF, 0)
        except OSError:
            pass
        finally:
            own.close()
    return Link(None, program=program, kind="socket_filter", target=f"socket fd {fd}", cleanups=[detach],
                local_info=dict(socket_fd=fd))


HOOKS = (
    Hook(attach_socket, sections=("socket",), prog_types=(ProgType.SOCKET_FILTER,), section_args=lambda info: {},
         needs={"sock": "a socket filter needs a socket"}, aliases={"socket": "sock"}, min_kernel="3.19"),
)
