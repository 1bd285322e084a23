"""The bpf(2) system call, file descriptors and errno translation.

This is the only module in pybpf that calls ``syscall()`` (perf_event_open
lives beside it in :mod:`pybpf._sys.perf`).  ``bpf(cmd, attr)`` returns the
kernel's result or raises :class:`pybpf.errors.SyscallError` naming the
command and the errno, with a hint for the errors people meet often.

Example::

    from pybpf._sys import Cmd, MapCreateAttr, MapType, bpf, FD
    attr = MapCreateAttr(map_type=MapType.ARRAY, key_size=4, value_size=8, max_entries=1)
    with FD(bpf(Cmd.MAP_CREATE, attr), "map") as fd:
        ...
"""

from __future__ import annotations

import ctypes
import errno as _errno
import functools
import os
import resource
import sys
from _thread import allocate_lock, start_new_thread   # threading's Lock and thread, without importing threading

from pybpf.errors import SyscallError
from pybpf._sys.uapi import Cmd

_NR = {
    # machine: (bpf, perf_event_open)
    "x86_64": (321, 298),
    "aarch64": (280, 241),
    "riscv64": (280, 241),
    "ppc64le": (361, 319),
    "s390x": (351, 331),
}
try:
    NR_BPF, NR_PERF_EVENT_OPEN = _NR[os.uname().machine]
except KeyError as exc:  # pragma: no cover - other architectures
    raise ImportError(f"pybpf does not know the bpf(2) syscall number on {os.uname().machine}") from exc

_libc = ctypes.CDLL(None, use_errno=True)
# Indexing gives a fresh function object each time, so the argtypes set here
# stay private to bpf(2) and do not leak into other users of syscall().
_syscall4 = _libc["syscall"]
_syscall4.restype = ctypes.c_long
_syscall4.argtypes = (ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_ulong)



# Commands that charge RLIMIT_MEMLOCK on kernels before 5.11 (memcg accounting).
_MEMLOCK_CMDS = frozenset({Cmd.MAP_CREATE, Cmd.PROG_LOAD, Cmd.BTF_LOAD})
_memlock_raised = False
_memlock_lock = allocate_lock()


def _raise_memlock() -> bool:
    """Lift RLIMIT_MEMLOCK to infinity once; True if it changed anything."""
    global _memlock_raised
    with _memlock_lock:
        if _memlock_raised:
            return False
        _memlock_raised = True
        soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
        if soft == resource.RLIM_INFINITY:
            return False
        try:
            resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        except (ValueError, OSError):
            return False
        return True


def sys_bpf(cmd: int, addr: int, size: int) -> int:
    """Raw bpf(2): the result, or ``-errno``.  No exceptions: for hot paths."""
    res = _syscall4(NR_BPF, cmd, addr, size)
    if res < 0:
        return -ctypes.get_errno()
    return res


# bpf() hands _syscall4 ready-made ctypes arguments: an instance of a declared
# argtype passes through as is, where a Python int is converted into a new
# object on every call (about 100 ns per argument).  The command and size
# objects are made once per command and per attr type.
_C_NR_BPF = ctypes.c_long(NR_BPF)
_C_CMDS: dict[int, ctypes.c_long] = {}
_C_SIZES: dict[type, ctypes.c_ulong] = {}
_byref = ctypes.byref


def _c_cmd(cmd: int) -> ctypes.c_long:
    c = _C_CMDS[cmd] = ctypes.c_long(int(cmd))
    return c


def _c_size(kind: type) -> ctypes.c_ulong:
    c = _C_SIZES[kind] = ctypes.c_ulong(ctypes.sizeof(kind))
    return c


def bpf(cmd: Cmd, attr: ctypes.Structure, *, op: str | None = None, hint_for: Callable[[int], str | None] | None = None) -> int:
    """Run bpf(``cmd``, ``attr``) and return its result; raise SyscallError on failure.

    ``op`` names the operation in the error ("update", "load"); it defaults
    to the command name.  ``hint_for(errno)`` may return a hint that replaces
    the default one.
    """
    ccmd = _C_CMDS.get(cmd)
    if ccmd is None:   # (not "or": c_long(0), BPF_MAP_CREATE's, is false)
        ccmd = _c_cmd(cmd)
    csize = _C_SIZES.get(attr.__class__) or _c_size(attr.__class__)
    ptr = _byref(attr)
    attempts = 0
    while True:
        res = _syscall4(_C_NR_BPF, ccmd, ptr, csize)
        if res >= 0:
            return res
        err = ctypes.get_errno()
        attempts += 1
        if err == _errno.EINTR and attempts < 10:
            continue
        if err == _errno.EAGAIN and cmd == Cmd.PROG_LOAD and attempts < 5:
            continue  # the verifier may give up on a signal; libbpf retries too
        if err == _errno.EPERM and cmd in _MEMLOCK_CMDS and _raise_memlock():
            continue  # kernels before 5.11 charge memlock; lifted once, then retried
        raise error(err, op or cmd_name(cmd), hint=(hint_for(err) if hint_for else None))


def bpf_each(cmd: int, attrs: Sequence[Any], size: int, results: list[int]) -> None:
    """bpf(``cmd``, attr) for each of ``attrs`` (``ctypes.byref`` of attrs of ``size`` bytes), back to back.

    Appends each result to ``results``, in the order of ``attrs``: the new
    fd, or -1 where the call failed or was not made (the errno is not kept: a
    caller redoes a failed call with :func:`bpf`, which retries, explains and
    raises).  The caller owns the fds in ``results``, also when this is
    interrupted.

    The calls must not depend on one another.  Where the process may run on
    more than one CPU, a helper thread takes the next call whenever it is
    free, as this one does: the kernel runs two BPF_PROG_LOADs side by side
    (ten small XDP programs: 0.92 ms one after the other, 0.58 ms on two
    threads, Linux 6.18, 2 CPUs), and neither thread waits for the other
    longer than one call.  No Python work runs between two calls of one
    thread: it would evict the caches the verifier and the JIT run in.
    """
    out = [-1] * len(attrs)
    todo = enumerate(attrs)   # shared: each call is taken by one thread (the GIL guards next())
    helper = (_helper or _start_helper()) if len(attrs) > 1 and _cpus() > 1 else None
    if helper is None or not helper.busy.acquire(False):   # (another thread is using it: no wait)
        _issue(cmd, todo, size, out)
        results.extend(out)
        return
    try:
        helper.job = (cmd, todo, size, out)
        helper.go.release()
        try:
            _issue(cmd, todo, size, out)
        except BaseException:
            for _ in todo:   # (interrupted) the helper stops after the call it is making
                pass
            raise
        finally:
            helper.wait()   # its fds reach ``results`` whatever happened here
            results.extend(out)
            error, helper.error = helper.error, None
        if error is not None:
            raise error
    finally:
        helper.busy.release()


def _issue(cmd: int, todo: Iterator[tuple[int, Any]], size: int, out: list[int]) -> None:
    call, nr, ccmd, csize = _syscall4, _C_NR_BPF, ctypes.c_long(cmd), ctypes.c_ulong(size)
    for i, attr in todo:
        out[i] = call(nr, ccmd, attr, csize)


class _Helper:
    """A thread that takes :func:`bpf_each`'s calls beside the caller, started on first use and kept.

    It blocks every signal, so that they reach the main thread as they would
    without it; ctypes lets go of the GIL for the length of each syscall.
    """

    def __init__(self) -> None:
        self.busy = allocate_lock()   # held by the bpf_each that hands it a job
        self.go = allocate_lock()
        self.go.acquire()
        self.finished = allocate_lock()
        self.finished.acquire()
        self.job: tuple[int, Iterator[tuple[int, Any]], int, list[int]] | None = None
        self.error: BaseException | None = None
        start_new_thread(self._run, ())

    def _run(self) -> None:
        try:
            import signal

            signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        except (ImportError, OSError, ValueError):   # the thread must live: callers wait for it
            pass
        while True:
            self.go.acquire()
            try:
                _issue(*self.job)
            except BaseException as exc:   # (a bad attr) raised by the caller, as without the helper
                self.error = exc
            finally:
                self.job = None
                self.finished.release()

    def wait(self) -> None:
        """Until the job handed over is done; an interruption waits too, and is raised afterwards."""
        interrupted: BaseException | None = None
        while True:
            try:
                self.finished.acquire()
                break
            except BaseException as exc:  # KeyboardInterrupt: the helper's fds must reach the caller first
                interrupted = exc
        if interrupted is not None:
            raise interrupted


_helper: _Helper | None = None
_helper_lock = allocate_lock()


def _start_helper() -> _Helper:
    global _helper
    with _helper_lock:
        if _helper is None:
            _helper = _Helper()
        return _helper


def _forget_helper() -> None:
    global _helper, _helper_lock
    _helper, _helper_lock = None, allocate_lock()   # a forked child has no helper thread


os.register_at_fork(after_in_child=_forget_helper)


@functools.lru_cache(maxsize=None)
def _cpus() -> int:
    """How many CPUs this process may run on (read once); 1 on a free-threaded build, where the
    iterator bpf_each's threads share is not guarded by the GIL."""
    if not getattr(sys, "_is_gil_enabled", lambda: True)():
        return 1
    try:
        return len(os.sched_getaffinity(0))
    except OSError:
        return 1


def cmd_name(cmd: int) -> str:
    try:
        return Cmd(cmd).name.lower()
    except ValueError:
        return f"bpf cmd {cmd}"


#: The kernel-internal "not supported" (include/linux/errno.h) that some bpf(2) paths leak to user space;
#: Python's errno module does not know it.
ENOTSUPP = 524


def errno_name(err: int) -> str:
    """``EINVAL``, ``ENOTSUPP``... for an errno."""
    return "ENOTSUPP" if err == ENOTSUPP else _errno.errorcode.get(err, f"errno {err}")


def lockdown_mode() -> str | None:
    """The kernel lockdown mode ("none", "integrity", "confidentiality") if it can be read."""
    try:
        with open("/sys/kernel/security/lockdown") as f:
            text = f.read()
        for word in text.split():
            if word.startswith("["):
                return word.strip("[]")
    except OSError:
        pass
    try:
        with open("/proc/cmdline") as f:
            for word in f.read().split():
                if word.startswith("lockdown="):
                    return word.split("=", 1)[1]
    except OSError:
        pass
    return None


def eperm_hint() -> str:
    if os.geteuid() != 0:
        return "operation not permitted: run as root or grant CAP_BPF and CAP_PERFMON (CAP_SYS_ADMIN on kernels before 5.8)"
    mode = lockdown_mode()
    if mode and mode != "none":
        return f"operation not permitted: the kernel runs lockdown={mode}, which refuses this even to root"
    return "operation not permitted: missing capability, or refused by an LSM or kernel lockdown"


_DEFAULT_HINTS = {
    _errno.ENOENT: "no such object",
    _errno.E2BIG: "argument too big, or a field this kernel does not know is non-zero",
    _errno.EINVAL: "invalid argument: this kernel may not support the request",
    _errno.EBADF: "bad file descriptor",
    _errno.ENOSPC: "no space left",
    _errno.EEXIST: "already exists",
    _errno.ENOMEM: "out of memory",
    _errno.EOPNOTSUPP: "not supported by this kernel or object",
    ENOTSUPP: "not supported by this kernel",
    _errno.EBUSY: "busy: something is already attached",
    _errno.EFAULT: "bad address",
    _errno.EACCES: "permission denied (the verifier or an LSM refused it)",
}


def error(err: int, op: str, *, hint: str | None = None, cls: type[SyscallError] = SyscallError) -> SyscallError:
    """Build the exception for a failed call: ``"<op>: <ERRNAME>"`` plus a hint."""
    if hint is None:
        hint = eperm_hint() if err == _errno.EPERM else _DEFAULT_HINTS.get(err) or os.strerror(err)
    return cls(f"{op}: {errno_name(err)}", errno=err, hint=hint)


TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator, Protocol, Sequence, Union

    class HasFD(Protocol):
        """Anything that owns a kernel file descriptor: maps, programs, links, BTF, sockets, files."""

        def fileno(self) -> int: ...

    FdLike = Union[int, HasFD]


def fd_of(obj: FdLike, what: str = "a file descriptor") -> int:
    """The fd number of an int, or of anything with ``fileno()`` (or an int ``fd`` attribute).

    >>> fd_of(7)
    7
    """
    if isinstance(obj, int) and not isinstance(obj, bool):
        return obj
    fileno = getattr(obj, "fileno", None)
    if fileno is not None:
        return int(fileno())
    fd = getattr(obj, "fd", None)
    if isinstance(fd, int) and not isinstance(fd, bool):
        return fd
    raise TypeError(f"expected {what}, not {type(obj).__name__}")


class FD:
    """An owned kernel file descriptor: closed by ``close()``, ``with``, or GC.

    >>> fd = FD(os.open("/dev/null", os.O_RDONLY), "null")
    >>> fd.close(); fd.closed
    True

    Garbage collection closes the fd through ``__del__`` (a ``weakref.finalize``
    per fd cost a few microseconds to make and to detach, on every map and
    program a loader creates).
    """

    __slots__ = ("_fd", "what", "__weakref__")

    def __init__(self, fd: int, what: str = "fd") -> None:
        if fd < 0:
            self._fd = -1   # (__del__ reads it)
            raise ValueError(f"invalid file descriptor {fd} for {what}")
        self._fd = fd
        self.what = what

    def fileno(self) -> int:
        if self._fd < 0:
            raise ValueError(f"{self.what}: file descriptor is closed")
        return self._fd

    def __int__(self) -> int:
        return self.fileno()

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def close(self, _close=os.close) -> None:
        fd = self._fd
        if fd >= 0:
            self._fd = -1
            _close(fd)

    def __del__(self, _close=os.close) -> None:
        fd = self._fd
        if fd >= 0:
            self._fd = -1
            try:
                _close(fd)
            except OSError:
                pass

    def dup(self) -> "FD":
        return FD(os.dup(self.fileno()), self.what)

    def take(self) -> int:
        """Give up ownership: return the raw fd, which the caller must close."""
        fd = self.fileno()
        self._fd = -1
        return fd

    def __enter__(self) -> "FD":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FD({self._fd}, {self.what!r})" if self._fd >= 0 else f"FD(closed, {self.what!r})"


def cstr(text: str | bytes) -> ctypes.Array:
    """A NUL-terminated buffer that stays alive while the caller holds it."""
    data = text.encode() if isinstance(text, str) else text
    return ctypes.create_string_buffer(data)


def c_copy(data: bytes | bytearray) -> tuple[ctypes.c_char, int]:
    """A C copy of ``data`` and its address (the first value keeps the copy alive).

    A ``c_char`` over a bytearray, not a ``c_char * len`` array: ctypes makes a
    new array type for every new length (about 9 us, and a reference cycle
    the garbage collector must free later).
    """
    view = ctypes.c_char.from_buffer(bytearray(data) or bytearray(1))
    return view, ctypes.addressof(view)


def address(buf: ctypes.Array | ctypes.Structure | None) -> int:
    """The address of a ctypes buffer (0 for None)."""
    return 0 if buf is None else ctypes.addressof(buf)


@functools.lru_cache(maxsize=1024)
def object_name(name: str) -> bytes:
    """A kernel object name: at most 15 bytes of ``[A-Za-z0-9_.]``."""
    cleaned = "".join(c if (c.isascii() and (c.isalnum() or c in "_.")) else "_" for c in name)
    return cleaned[:15].encode()
