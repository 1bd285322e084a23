"""What every tracing tool does around its BPF programs: checks, a command on hold, the run loop.

- :func:`require_privileges` — one clear error naming the missing capabilities.
- :func:`check_pid` — a ``-p PID`` that names no process is a BadInputError.
- :class:`HeldCommand` — ``-- COMMAND ARGS...``: the command is forked and
  held before ``exec`` until the probes are attached, so its first calls are
  seen; a command that cannot start is a BadInputError.
- :func:`kernel_features` — the environment variable ``PYBPF_TOOLS_NO_COOKIES=1``
  makes a tool behave as on a kernel without BPF cookies, perf links and
  uprobe_multi (Linux < 5.15), so the fallback can be tested anywhere.
- :func:`run` — wait for the duration, the command's exit or Ctrl-C, calling
  back once per interval and refreshing a live view.
- :func:`stream_wait` — the ``wait`` of an event tool: records taken from a
  stream are all shown even when Ctrl-C arrives while they are being printed.

Example::

    with HeldCommand(["ls", "-l"]) as cmd:
        ...attach with pid=cmd.pid...
        cmd.release()
        elapsed = run(duration=None, command=cmd)
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Iterator, Sequence

from pybpf import features
from pybpf.errors import BPFError
from pybpf.tools import BadInputError

__all__ = ["require_privileges", "check_pid", "HeldCommand", "kernel_features", "run", "Tracer", "NO_COOKIES_ENV"]

NO_COOKIES_ENV = "PYBPF_TOOLS_NO_COOKIES"

_CAP_SYS_ADMIN, _CAP_PERFMON, _CAP_BPF = 21, 38, 39


def _effective_caps() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return 0


def missing_capabilities() -> list[str]:
    """The capabilities a tracing tool needs and this process lacks ([] when it may trace).

    Tracing needs CAP_BPF and CAP_PERFMON (Linux 5.8), or CAP_SYS_ADMIN.
    """
    caps = _effective_caps()
    if caps & (1 << _CAP_SYS_ADMIN):
        return []
    return [name for bit, name in ((_CAP_BPF, "CAP_BPF"), (_CAP_PERFMON, "CAP_PERFMON"))
            if not caps & (1 << bit)]


def require_privileges(tool: str) -> None:
    """Raise a BPFError naming the missing capabilities when this process may not trace."""
    missing = missing_capabilities()
    if missing:
        raise BPFError(f"{tool} needs {' and '.join(missing)} (or CAP_SYS_ADMIN), which this process lacks: "
                       "run as root")


def check_pid(pid: int | None) -> None:
    """BadInputError when ``pid`` names no process (None passes)."""
    if pid is None:
        return
    if pid <= 0 or not os.path.exists(f"/proc/{pid}"):
        raise BadInputError(f"no process {pid}")


@contextlib.contextmanager
def kernel_features() -> Iterator[None]:
    """Features as the kernel has them, or as on a kernel without cookies when NO_COOKIES_ENV is set."""
    if os.environ.get(NO_COOKIES_ENV, "") not in ("", "0"):
        with features.override(bpf_cookie=False, perf_link=False, uprobe_multi_link=False):
            yield
    else:
        yield


class HeldCommand:
    """A command forked and held just before ``exec`` until :meth:`release`.

    The child keeps its pid through ``exec``, so probes filtered on
    :attr:`pid` before the release see the command from its first
    instruction.  Leaving the ``with`` block kills a command still running.
    """

    def __init__(self, argv: Sequence[str]) -> None:
        if not argv:
            raise BadInputError("no command given after --")
        self.argv = list(argv)
        self.returncode: int | None = None
        import shutil   # here: shutil imports bz2, lzma and fnmatch

        exe = self.argv[0] if "/" in self.argv[0] else shutil.which(self.argv[0])
        if not exe or not os.path.isfile(exe):
            raise BadInputError(f"cannot start {self.argv[0]!r}: command not found")
        if not os.access(exe, os.X_OK):
            raise BadInputError(f"cannot start {self.argv[0]!r}: permission denied")
        go_r, self._go = os.pipe()
        self._err, err_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child; it execs or exits
            code = 127
            try:
                os.close(self._go)
                os.close(self._err)
                if os.read(go_r, 1) == b"g":
                    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT):
                        signal.signal(sig, signal.SIG_DFL)
                    os.execv(exe, self.argv)
            except OSError as exc:
                os.write(err_w, str(exc.errno or errno.ENOEXEC).encode())
            except BaseException:
                pass
            os._exit(code)
        os.close(go_r)
        os.close(err_w)
        self.pid = pid

    def release(self) -> None:
        """Let the command exec; BadInputError if it could not."""
        os.write(self._go, b"g")
        os.close(self._go)
        self._go = -1
        data = os.read(self._err, 32)   # closed by exec (O_CLOEXEC), or the errno on failure
        os.close(self._err)
        self._err = -1
        if data:
            self.wait()
            err = int(data)
            raise BadInputError(f"cannot start {self.argv[0]!r}: {os.strerror(err)}")

    def poll(self) -> int | None:
        """The exit status once the command has ended (negative: killed by that signal), else None."""
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def close(self) -> None:
        for fd in (self._go, self._err):
            if fd >= 0:
                os.close(fd)
        self._go = self._err = -1
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.wait()

    def __enter__(self) -> "HeldCommand":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Tracer:
    """A tool's loaded kernel side.  ``kernel`` is a loaded :class:`pybpf.Object`, which owns its
    programs, maps and every link attached through them: :meth:`close` detaches and frees it all."""

    kernel: Any = None

    def _start(self, spec: Any, attach: Callable[[], None]) -> None:
        """Load ``spec`` into :attr:`kernel` and run ``attach()``; on any error, close what was made."""
        self.kernel = spec.load()
        try:
            attach()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        kernel, self.kernel = self.kernel, None
        if kernel is not None:
            kernel.close()

    def __enter__(self) -> "Tracer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run(*, duration: float | None = None, interval: float | None = None, command: HeldCommand | None = None,
        on_interval: Callable[[float], None] | None = None, refresh: Callable[[float], None] | None = None,
        wait: Callable[[float], Any] = time.sleep, refresh_every: float = 0.5, ready: str = "") -> float:
    """Run until ``duration`` seconds, the command's exit or Ctrl-C; return the seconds elapsed.

    ``on_interval(elapsed)`` is called every ``interval`` seconds, ``refresh(elapsed)``
    every ``refresh_every`` seconds (a live view), and ``wait(timeout)`` sleeps
    between them (a stream reader's dispatch, for event tools).  Ctrl-C ends
    the run normally: the caller then prints what was collected and detaches.
    ``ready`` is printed on stderr as the run starts (scripts wait for it),
    inside the Ctrl-C handling, so an interrupt right after it ends the run normally.
    """
    start = time.monotonic()
    deadline = start + duration if duration is not None else None
    next_interval = start + interval if interval else None  # -i 0 means no intervals
    next_refresh = start + refresh_every if refresh else None
    try:
        if ready:
            print(ready, file=sys.stderr, flush=True)
        while True:
            now = time.monotonic()
            if command is not None and command.poll() is not None:
                break
            if deadline is not None and now >= deadline:
                break
            if next_interval is not None and now >= next_interval:
                on_interval and on_interval(now - start)
                next_interval += interval  # type: ignore[operator]
            if next_refresh is not None and now >= next_refresh:
                refresh(now - start)  # type: ignore[misc]
                next_refresh = now + refresh_every
            wake = [t for t in (deadline, next_interval, next_refresh) if t is not None]
            step = min([0.1 if command is not None else 1.0] + [t - now for t in wake])
            wait(max(step, 0.0))
    except KeyboardInterrupt:
        pass
    return time.monotonic() - start


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) until the block ends; a Ctrl-C that came meanwhile is raised after it.

    Records read from a ring buffer are consumed: if a KeyboardInterrupt hit
    between reading one and printing it, that record would be lost.  The
    handler is swapped rather than the signal masked: the kernel may deliver
    SIGINT to any thread, while Python runs its handlers in the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            signal.raise_signal(signal.SIGINT)   # now handled as it would have been


def stream_wait(ready: Callable[[float], Any], take: Callable[[], Any]) -> Callable[[float], None]:
    """A ``wait`` for :func:`run` that loses no record to Ctrl-C.

    ``ready(timeout)`` blocks until records wait (Ctrl-C ends it at once);
    ``take()`` then reads and shows every waiting record with Ctrl-C held.

    >>> wait = stream_wait(reader.wait, lambda: [show(r) for r in reader.poll(0)])
    >>> run(duration=None, wait=wait); wait(0)
    """
    def wait(timeout: float) -> None:
        if timeout:
            ready(timeout)
        with interrupts_held():
            take()
    return wait
