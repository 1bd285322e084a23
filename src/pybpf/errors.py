"""The pybpf exception hierarchy.

Every error pybpf raises on purpose derives from :class:`BPFError`.  Errors
gather context as they travel up through the layers, the way a path does::

    map 'counts': update: E2BIG (map is full, max_entries=1024)

The innermost layer raises with its own message; each outer layer calls
:meth:`BPFError.add_context` (or uses :func:`context`) to prefix what it
knows.  This module imports nothing from pybpf so every layer may use it.

Example::

    try:
        counts[key] = 1
    except pybpf.BPFError as err:
        print(err)          # "map 'counts': update: E2BIG (map is full, ...)"
        print(err.errno)    # errno.E2BIG for kernel failures, else None
"""

from __future__ import annotations

import contextlib
import errno as _errno

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator

__all__ = [
    "BPFError",
    "SyscallError",
    "ObjectError",
    "VerifierError",
    "NotSupportedError",
    "CompileError",
    "MapError",
    "MapFullError",
    "KeyNotFoundError",
    "NotFoundError",
    "NameNotFoundError",
    "LinkError",
    "RecordError",
    "ArgumentError",
    "FileError",
    "file_error",
    "context",
]


class BPFError(Exception):
    """Base class of every pybpf error.

    ``str(err)`` is ``"<context>: ... : <message>"``; ``err.hint`` is advice for
    a person (or None); ``err.errno`` is the kernel's errno when the error
    came from a system call.

    >>> err = BPFError("update: E2BIG", hint="map is full").add_context("map 'counts'")
    >>> str(err)
    "map 'counts': update: E2BIG (map is full)"
    """

    def __init__(self, message: str, *, hint: str | None = None, errno: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.errno = errno
        self.contexts: list[str] = []

    def add_context(self, ctx: str) -> "BPFError":
        """Prefix ``ctx`` (outermost last added) and return self for re-raising."""
        self.contexts.insert(0, ctx)
        return self

    def __str__(self) -> str:
        text = ": ".join([*self.contexts, self.message])
        if self.hint and self.hint not in text:
            text += f" ({self.hint})"
        return text


class SyscallError(BPFError, OSError):
    """A bpf(2), perf_event_open(2) or ioctl(2) call failed.

    It is also an :class:`OSError` whose ``errno`` is the kernel's, so
    ``except PermissionError`` style code keeps working through ``errno``.

    >>> import errno
    >>> err = SyscallError("load: permission denied", errno=errno.EPERM)
    >>> isinstance(err, OSError), err.errno_name
    (True, 'EPERM')
    """

    def __init__(self, message: str, *, errno: int, hint: str | None = None) -> None:
        BPFError.__init__(self, message, hint=hint, errno=errno)
        self.args = (message,)

    @property
    def errno_name(self) -> str:
        """The errno's symbolic name ("EPERM"), or its number as text."""
        return _errno.errorcode.get(self.errno or 0, str(self.errno))


class MapError(SyscallError):
    """A map operation failed in the kernel.

    >>> import errno
    >>> isinstance(MapError("update: EINVAL", errno=errno.EINVAL), SyscallError)
    True
    """


class MapFullError(MapError):
    """An update could not add a key because the map holds max_entries already.

    >>> import errno
    >>> isinstance(MapFullError("update: E2BIG", errno=errno.E2BIG), MapError)
    True
    """


class KeyNotFoundError(BPFError, KeyError):
    """A lookup or delete named a key that the map does not hold.

    >>> try:
    ...     raise KeyNotFoundError("lookup: key 7 not found").add_context("map 'counts'")
    ... except KeyError as err:          # also a KeyError
    ...     print(err)
    map 'counts': lookup: key 7 not found
    """

    def __str__(self) -> str:  # KeyError quotes its argument; we want our text.
        return BPFError.__str__(self)


class NotFoundError(BPFError, FileNotFoundError):
    """Something named by a path does not exist: a tracepoint, a cgroup, a uprobe's target file.

    It is also a :class:`FileNotFoundError` (errno ENOENT), so code written for plain Python
    file errors keeps working.

    >>> err = NotFoundError("no tracepoint syscalls:sys_enter_opnat (did you mean sys_enter_openat?)")
    >>> isinstance(err, FileNotFoundError), str(err.add_context("program 'p': attach"))
    (True, "program 'p': attach: no tracepoint syscalls:sys_enter_opnat (did you mean sys_enter_openat?)")
    """

    def __init__(self, message: str, *, filename: str | None = None, hint: str | None = None) -> None:
        BPFError.__init__(self, message, hint=hint, errno=_errno.ENOENT)
        self.args = (message,)
        self.strerror = message
        self.filename = filename


class NameNotFoundError(BPFError, KeyError):
    """A name that is not there: a network interface, a program or map of an object, a type.

    It is also a KeyError (``obj.maps["typo"]`` behaves as a dict does) and so a LookupError.

    >>> isinstance(NameNotFoundError("no network interface 'eth9'"), LookupError)
    True
    """

    def __str__(self) -> str:  # KeyError quotes its argument; we want our text.
        return BPFError.__str__(self)


class ObjectError(BPFError):
    """A BPF object (ELF, BTF, section, relocation) is malformed or unsupported.

    >>> str(ObjectError("BTF: bad magic 0000 at byte 0").add_context("x.bpf.o"))
    'x.bpf.o: BTF: bad magic 0000 at byte 0'
    """


class VerifierError(SyscallError):
    """The kernel verifier rejected a program.

    Attributes: ``log`` (the whole verifier log), ``summary`` (the failing
    instruction and the kernel's message), ``source_line`` (C or Python line
    of the failing instruction, when line info was given), ``hint``.

    >>> import errno
    >>> err = VerifierError("load: invalid program", errno=errno.EACCES, log="0: (95) exit\\nR0 !read_ok",
    ...                     summary="R0 !read_ok", source_line="prog.bpf.c:12: return x;")
    >>> print(err)
    load: invalid program
      at prog.bpf.c:12: return x;
    """

    def __init__(
        self,
        message: str,
        *,
        errno: int,
        log: str,
        summary: str,
        source_line: str | None = None,
        hint: str | None = None,
        insn_index: int | None = None,
    ) -> None:
        super().__init__(message, errno=errno, hint=hint)
        self.log = log
        self.summary = summary
        self.source_line = source_line
        self.insn_index = insn_index

    def __str__(self) -> str:
        text = BPFError.__str__(self)
        if self.source_line:
            text += f"\n  at {self.source_line}"
        return text


class NotSupportedError(BPFError):
    """The running kernel lacks a feature.

    ``NotSupportedError("bpf_cookie", "5.15")`` reads
    "bpf_cookie is not supported by this kernel (needs Linux 5.15)".

    >>> str(NotSupportedError("bpf_cookie", "5.15"))
    'bpf_cookie is not supported by this kernel (needs Linux 5.15)'

    ``new_enough=True`` says the running kernel is at least ``min_kernel``: its version is no
    explanation then, and the message gives ``detail`` (a config option that is off, lockdown)
    as the cause instead:

    >>> str(NotSupportedError("kprobes", "4.1", "CONFIG_KPROBES is off", new_enough=True))
    'kprobes is not supported by this kernel: CONFIG_KPROBES is off'
    """

    def __init__(self, feature: str, min_kernel: str | None = None, detail: str | None = None, *,
                 new_enough: bool = False) -> None:
        msg = f"{feature} is not supported by this kernel"
        if min_kernel and not (new_enough and detail):
            msg += f" (needs Linux {min_kernel})"
        if detail:
            msg += f": {detail}"
        super().__init__(msg)
        self.feature = feature
        self.min_kernel = min_kernel


class CompileError(BPFError):
    """A Python function could not be compiled to BPF (pybpf.lang).

    >>> str(CompileError("line 3: while loops are not supported").add_context("function 'count'"))
    "function 'count': line 3: while loops are not supported"
    """


class LinkError(BPFError):
    """An attach or link operation failed for a reason that is not a syscall errno.

    >>> str(LinkError("no such symbol 'func_b'").add_context("uprobe /bin/x"))
    "uprobe /bin/x: no such symbol 'func_b'"
    """


class RecordError(BPFError):
    """A record a stream reader could not hand over as declared (shorter than its type).

    Attributes: ``ring`` (index of the ring or CPU), ``length`` (bytes in the
    record), ``needed`` (bytes of the declared type), ``data`` (a copy of the
    record's bytes).  Also importable from :mod:`pybpf.readers`.

    >>> err = RecordError("ring 0: record of 4 bytes is shorter than <QQ (16 bytes)",
    ...                   ring=0, length=4, needed=16, data=b"abcd")
    >>> err.needed - err.length
    12
    """

    def __init__(self, message: str, *, ring: int, length: int, needed: int, data: bytes) -> None:
        super().__init__(message)
        self.ring = ring
        self.length = length
        self.needed = needed
        self.data = data


class ArgumentError(BPFError, ValueError):
    """A value does not fit the kernel field it would go to (it would wrap); also a ValueError.

    >>> str(ArgumentError("max_entries 4294967300 is out of range (u32: 0..4294967295)"))
    'max_entries 4294967300 is out of range (u32: 0..4294967295)'
    """


class FileError(BPFError, OSError):
    """A file pybpf had to read (a probe target, a pin, a tracefs entry) could not be used.

    Also an :class:`OSError` with the errno and ``filename``; :func:`file_error`
    picks the subclass that is also IsADirectoryError or PermissionError (or a
    :class:`NotFoundError`), so ``except IsADirectoryError`` keeps working.

    >>> import errno
    >>> err = file_error(IsADirectoryError(errno.EISDIR, "Is a directory", "/usr"), "uprobe target /usr")
    >>> isinstance(err, IsADirectoryError), str(err)
    (True, 'uprobe target /usr: is a directory')
    """

    def __init__(self, message: str, *, errno: int | None = None, filename: str | None = None,
                 hint: str | None = None) -> None:
        BPFError.__init__(self, message, hint=hint, errno=errno)
        self.args = (message,)
        self.filename = filename


class _DirectoryError(FileError, IsADirectoryError):
    """A directory where pybpf needs a file."""


class _FilePermissionError(FileError, PermissionError):
    """A file pybpf may not open (its permissions)."""


_FILE_ERRORS = {_errno.EISDIR: _DirectoryError, _errno.EACCES: _FilePermissionError,
                _errno.EPERM: _FilePermissionError}


def file_error(exc: OSError, what: str, *, hint: str | None = None) -> "FileError | NotFoundError":
    """The BPFError for ``exc`` about ``what`` ("uprobe target /x"), of the matching OSError kind."""
    code = exc.errno or _errno.EIO
    reason = (exc.strerror or _errno.errorcode.get(code, str(code))).lower()
    if code == _errno.ENOENT:
        return NotFoundError(f"{what}: {reason}", filename=exc.filename, hint=hint)
    return _FILE_ERRORS.get(code, FileError)(f"{what}: {reason}", errno=code, filename=exc.filename, hint=hint)


@contextlib.contextmanager
def context(ctx: str) -> Iterator[None]:
    """Add ``ctx`` to any BPFError raised inside the block.

    >>> with context("map 'counts'"):
    ...     raise BPFError("update: E2BIG")
    Traceback (most recent call last):
    pybpf.errors.BPFError: map 'counts': update: E2BIG
    """
    try:
        yield
    except BPFError as err:
        err.add_context(ctx)
        raise
