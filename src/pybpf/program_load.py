"""BPF_PROG_LOAD for :class:`pybpf.Program`: the attr, the verifier log strategy.

:meth:`Program.load` prepares the load (instructions encoded, the attr and
the buffers it points to: ``Program._prepare`` with a :class:`LoadOptions`;
:func:`prog_load_attr` makes the attr), then makes the syscall with the log
strategy of :func:`_prog_load_attr` (first without a log; if that fails,
again with a log buffer that grows until the whole log fits, and a
:class:`~pybpf.VerifierError` made from it).  A loader with many programs
(:mod:`pybpf.object.loader`) makes their attrs with :func:`prog_load_attr`
and loads them back to back with :func:`pybpf._sys.syscall.bpf_each`; a
program that fails there is loaded again this way, for its log and error.

Minimum kernel: 4.4 (socket filters); ``log_true_size`` 6.4.

Example::

    prepared = Program._prepare(insns, LoadOptions(ProgType.XDP, name="pass"))
    prog = Program._complete(prepared, None)
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import struct

from pybpf._record import FrozenRecord
from pybpf._sys.attrs import ProgLoadAttr, packer
from pybpf._sys.syscall import FD, bpf, eperm_hint, error, fd_of, lockdown_mode, object_name
from pybpf._sys.uapi import AttachType, Cmd, ProgType
from pybpf.asm.instruction import decode_all
from pybpf.errors import BPFError, SyscallError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Mapping, Sequence

__all__ = ["DEFAULT_LOG_SIZE", "MAX_LOG_SIZE", "MIN_LOG_SIZE", "LoadOptions", "prog_load_attr", "prog_load_attrs"]


DEFAULT_LOG_SIZE = 64 * 1024
"""First verifier log buffer; it grows by four (or to the size the kernel asks for) on ENOSPC."""

MAX_LOG_SIZE = 0xFFFFFFFF >> 2
"""Largest log buffer the kernel accepts (UINT_MAX >> 2 since Linux 5.2; UINT_MAX >> 8 before)."""

MIN_LOG_SIZE = 128  # kernels before 6.4 refuse smaller log buffers with EINVAL


class LoadOptions(FrozenRecord):
    """The keyword arguments of :meth:`Program.load`, as one value (see there for each).

    ``prog_type`` and ``expected_attach_type`` become :class:`ProgType` /
    :class:`AttachType` members when the enums know them.

    >>> LoadOptions(ProgType.XDP, name="pass").replace(log_level=1).log_level
    1
    """

    __slots__ = ("prog_type", "expected_attach_type", "license", "name", "kern_version", "flags", "btf_fd",
                 "func_info", "func_info_rec_size", "line_info", "line_info_rec_size", "attach_btf_id",
                 "attach_btf_obj_fd", "attach_prog_fd", "fd_array", "log_level", "log_size", "line_table")

    def __init__(self, prog_type: ProgType | int, expected_attach_type: AttachType | int | None = None,
                 license: str = "GPL", name: str = "", kern_version: int = 0, flags: int = 0,
                 btf_fd: Any = None, func_info: bytes | None = None, func_info_rec_size: int = 8,
                 line_info: bytes | None = None, line_info_rec_size: int = 16, attach_btf_id: int = 0,
                 attach_btf_obj_fd: Any = 0, attach_prog_fd: Any = 0, fd_array: Sequence[Any] | None = None,
                 log_level: int = 0, log_size: int = DEFAULT_LOG_SIZE,
                 line_table: Mapping[int, str] | None = None) -> None:
        if expected_attach_type is not None:
            expected_attach_type = _ATTACH_TYPES.get(expected_attach_type, expected_attach_type)
        super().__init__(
            prog_type=_PROG_TYPES.get(prog_type, prog_type), expected_attach_type=expected_attach_type,
            license=license, name=name, kern_version=kern_version, flags=flags, btf_fd=btf_fd,
            func_info=func_info, func_info_rec_size=func_info_rec_size, line_info=line_info,
            line_info_rec_size=line_info_rec_size, attach_btf_id=attach_btf_id,
            attach_btf_obj_fd=attach_btf_obj_fd, attach_prog_fd=attach_prog_fd, fd_array=fd_array,
            log_level=log_level, log_size=log_size, line_table=line_table)

    def replace(self, **changes: Any) -> "LoadOptions":
        """A copy with ``changes`` (keyword names as in :meth:`Program.load`)."""
        return LoadOptions(**{**self._asdict(), **changes})

    def as_dict(self) -> dict[str, Any]:
        """The options as :meth:`Program.load` keywords (values not copied)."""
        return self._asdict()


# How EPERM on a trampoline-based load is explained.
_TRACING_KINDS = {
    AttachType.TRACE_FENTRY: "fentry",
    AttachType.TRACE_FEXIT: "fexit",
    AttachType.MODIFY_RETURN: "fmod_ret",
    AttachType.LSM_MAC: "lsm",
    AttachType.LSM_CGROUP: "lsm_cgroup",
    AttachType.TRACE_RAW_TP: "tp_btf",
    AttachType.TRACE_ITER: "iter",
}
_TRACING_TYPES = {ProgType.TRACING: "tracing", ProgType.LSM: "lsm", ProgType.EXT: "freplace"}


_PROG_TYPES: dict[Any, ProgType] = {**{int(t): t for t in ProgType}, **{t: t for t in ProgType}}
_ATTACH_TYPES: dict[Any, AttachType] = {**{int(t): t for t in AttachType}, **{t: t for t in AttachType}}


def _encode(insns: bytes | bytearray | memoryview | Sequence[Any]) -> bytes:
    if insns.__class__ is bytes:
        code = insns
    elif isinstance(insns, (bytes, bytearray, memoryview)):
        code = bytes(insns)
    else:
        parts = []
        for index, insn in enumerate(insns):
            try:
                parts.append(insn.encode())
            except AttributeError:
                raise BPFError(f"instruction {index}: {type(insn).__name__} has no encode()") from None
            except (ValueError, TypeError) as exc:
                raise BPFError(f"instruction {index}: {exc}") from None
        code = b"".join(parts)
    if not code:
        raise BPFError("no instructions")
    if len(code) % 8:
        raise BPFError(f"instructions are {len(code)} bytes, not a multiple of 8")
    return code


def _decoded(insns: Any, code: bytes) -> Sequence[Any] | None:
    """Instruction objects for the verifier analysis (decoded from bytes when given bytes)."""
    if not isinstance(insns, (bytes, bytearray, memoryview)):
        return insns
    return decode_all(code)


def _load_eperm_hint(prog_type: int, attach_type: int | None) -> str:
    """Why EPERM: names the program kind when lockdown refuses trampoline-based programs."""
    kind = _TRACING_KINDS.get(attach_type) if attach_type is not None else None  # type: ignore[arg-type]
    kind = kind or _TRACING_TYPES.get(prog_type)  # type: ignore[call-overload]
    if kind and os.geteuid() == 0:
        mode = lockdown_mode()
        if mode and mode != "none":
            return f"{kind} is refused under lockdown={mode}"
    return eperm_hint()


_LICENSES: dict[str, ctypes.Array] = {}   # license strings as C buffers (never written)
_PROG_LOAD = int(Cmd.PROG_LOAD)


def _license(text: str) -> ctypes.Array:
    """``text`` as a C string, made once per license (the attr's keep list holds it too)."""
    buf = _LICENSES.get(text)
    if buf is None:
        if len(_LICENSES) > 64:
            _LICENSES.clear()
        buf = _LICENSES[text] = ctypes.create_string_buffer(text.encode() + b"\0")
    return buf


class _Prepared:
    """A program ready for BPF_PROG_LOAD: the attr, the buffers it points to, the options."""

    __slots__ = ("code", "kept", "options", "attr", "keep")

    def __init__(self, code: bytes, kept: Any, options: LoadOptions, attr: ProgLoadAttr,
                 keep: list[Any]) -> None:
        self.code = code
        self.kept = kept
        self.options = options
        self.attr = attr
        self.keep = keep


# The fields a load sets (the log fields are set on the attr when a load is retried with a log).
_prog_load_attr_of = packer(ProgLoadAttr, (
    "prog_type", "insn_cnt", "insns", "license", "kern_version", "prog_flags", "prog_name",
    "expected_attach_type", "prog_btf_fd", "func_info_rec_size", "func_info", "func_info_cnt",
    "line_info_rec_size", "line_info", "line_info_cnt", "attach_btf_id", "attach_prog_fd", "fd_array"))
_c_char_at = ctypes.c_char.from_buffer
_addressof = ctypes.addressof


def _load_attr(code: bytes, options: LoadOptions) -> tuple[ProgLoadAttr, list[Any]]:
    """The BPF_PROG_LOAD attr for ``code`` and ``options``, and the buffers it points to."""
    target_obj, target_prog = options.attach_btf_obj_fd, options.attach_prog_fd
    if target_obj and target_prog:
        raise BPFError("load: attach_btf_obj_fd and attach_prog_fd share one field; give one of them")
    func_info, line_info = options.func_info, options.line_info
    fi_size, li_size = options.func_info_rec_size, options.line_info_rec_size
    if func_info and (fi_size <= 0 or len(func_info) % fi_size):
        raise _bad_records("func_info", func_info, fi_size)
    if line_info and (li_size <= 0 or len(line_info) % li_size):
        raise _bad_records("line_info", line_info, li_size)
    return prog_load_attr(
        bytearray(code), options.prog_type, options.expected_attach_type or 0, _license(options.license),
        object_name(options.name) if options.name else b"", options.kern_version or 0, options.flags or 0,
        fd_of(options.btf_fd) if options.btf_fd is not None else 0, func_info, fi_size, line_info, li_size,
        options.attach_btf_id or 0, fd_of(target_obj or target_prog) if target_obj or target_prog else 0,
        options.fd_array)


def prog_load_attr(code: bytearray, prog_type: int, expected_attach_type: int, license: ctypes.Array,
                   name: bytes, kern_version: int, flags: int, btf_fd: int, func_info: bytes | None,
                   fi_size: int, line_info: bytes | None, li_size: int, attach_btf_id: int, attach_prog_fd: int,
                   fd_array: Sequence[Any] | None) -> tuple[ProgLoadAttr, list[Any]]:
    """The BPF_PROG_LOAD attr and the buffers it points to, from values ready for the kernel.

    ``code`` (a bytearray this function may extend) gets the func_info and
    line_info records appended: one buffer holds them all, and the attr is
    filled at once (see :func:`pybpf._sys.attrs.packer`).  ``license`` is a
    C string (:func:`_license`), ``name`` the kernel's object name.

    >>> attr, keep = prog_load_attr(bytearray(code), ProgType.XDP, 0, _license("GPL"), b"pass", 0, 0, 0,
    ...                             None, 8, None, 16, 0, 0, None)   # doctest: +SKIP
    >>> attr.insn_cnt == len(code) // 8                              # doctest: +SKIP
    True
    """
    n = len(code)
    fi_cnt = li_cnt = 0
    if func_info:
        fi_cnt = len(func_info) // fi_size
        code += func_info
    if line_info:
        li_cnt = len(line_info) // li_size
        code += line_info
    buf = _c_char_at(code)   # (see c_copy: no new ctypes array type per length)
    insns = _addressof(buf)
    keep: list[Any] = [license, buf]  # buffers that must outlive the syscall
    fd_array_addr = 0
    if fd_array is not None:
        fds = (ctypes.c_int32 * len(fd_array))(*(fd_of(f) for f in fd_array))
        keep.append(fds)
        fd_array_addr = _addressof(fds)
    return _prog_load_attr_of((
        prog_type, n >> 3, insns, _addressof(license), kern_version, flags, name, expected_attach_type, btf_fd,
        fi_size if fi_cnt else 0, insns + n if fi_cnt else 0, fi_cnt,
        li_size if li_cnt else 0, insns + n + fi_cnt * fi_size if li_cnt else 0, li_cnt,
        attach_btf_id, attach_prog_fd, fd_array_addr,
    )), keep


_PROG_LOAD_SIZE = ctypes.sizeof(ProgLoadAttr)
_pack_prog_load_attr = _prog_load_attr_of.layout.pack_into   # type: ignore[attr-defined]


def prog_load_attrs(rows: Sequence[tuple[Any, ...]], pieces: Sequence[bytes]) -> tuple[list[int | None], list[Any]]:
    """The BPF_PROG_LOAD attrs of many programs, in two buffers in all.

    ``pieces`` (joined into one buffer) holds the instructions, func_info
    (8-byte records) and line_info (16-byte records) of every program;
    each row of ``rows`` is (prog_type, insn_cnt, offset of the
    instructions in that buffer, address of the license C string,
    kern_version, flags, name, expected_attach_type, btf_fd, offset of the
    func_info, its count, offset of the line_info, its count,
    attach_btf_id, attach_prog_fd, address of the fd_array or 0).  The
    attrs lie side by side in a second buffer.  Returns the address of
    each program's attr (None where a value does not fit its field: that
    program is prepared the ordinary way, which says which) and the
    buffers that must outlive the syscalls.  Two ctypes buffers, not two
    per program: making one costs as much as packing a whole attr.
    """
    code = _c_char_at(bytearray().join(pieces))   # (the c_char keeps its bytearray alive)
    base = _addressof(code)
    attrs = bytearray(_PROG_LOAD_SIZE * len(rows))
    block = _c_char_at(attrs)
    at = _addressof(block)
    pack = _pack_prog_load_attr
    addresses: list[int | None] = []
    append = addresses.append
    offset = 0
    for (prog_type, insn_cnt, insns, license, kern_version, flags, name, eat, btf_fd, fi, fi_cnt, li, li_cnt,
         attach_btf_id, attach_prog_fd, fd_array) in rows:
        try:
            pack(attrs, offset, prog_type, insn_cnt, base + insns, license, kern_version, flags, name, eat, btf_fd,
                 8 if fi_cnt else 0, base + fi if fi_cnt else 0, fi_cnt, 16 if li_cnt else 0,
                 base + li if li_cnt else 0, li_cnt, attach_btf_id, attach_prog_fd, fd_array)
            append(at + offset)
        except struct.error:
            append(None)
        offset += _PROG_LOAD_SIZE
    return addresses, [code, block]


def _bad_records(kind: str, records: bytes, rec_size: int) -> BPFError:
    return BPFError(f"load: {kind} is {len(records)} bytes, not a multiple of its record size {rec_size}")


def _prog_load_attr(attr: ProgLoadAttr, code: bytes, insns: Any, options: LoadOptions) -> tuple[FD, str]:
    """Load ``attr`` (made by :func:`_load_attr`), with the verifier log when it fails."""
    prog_type = options.prog_type
    eat = options.expected_attach_type
    log_level = options.log_level
    first_errno: int | None = None
    if not log_level:
        # Fast path: most programs load, and the log costs time and memory.
        try:
            return FD(bpf(_PROG_LOAD, attr, op="load"), "program"), ""
        except SyscallError as exc:
            first_errno = exc.errno
        log_level = 1

    size = min(max(options.log_size, MIN_LOG_SIZE), MAX_LOG_SIZE)
    while True:
        log_buf = ctypes.create_string_buffer(size)
        attr.log_level, attr.log_size, attr.log_buf, attr.log_true_size = log_level, size, ctypes.addressof(log_buf), 0
        try:
            fd = FD(bpf(Cmd.PROG_LOAD, attr, op="load"), "program")
        except SyscallError as exc:
            err = exc.errno or 0
        else:
            return fd, _text(log_buf)
        if err == _errno.ENOSPC and size < MAX_LOG_SIZE:
            # The log did not fit.  Linux 6.4+ says how big it is (log_true_size,
            # counting the NUL) and keeps its end; older kernels keep its start.
            size = min(MAX_LOG_SIZE, max(size * 4, attr.log_true_size))
            continue
        break

    from pybpf import verifier as _verifier   # only a failed load reads the log

    log = _text(log_buf)
    if err == _errno.ENOSPC and first_errno is not None:
        err = first_errno  # the log stayed truncated at the maximum size; report the real failure
    if err == _errno.EPERM and not _verifier.has_verifier_message(log):
        raise error(err, "load", hint=_load_eperm_hint(prog_type, eat))
    if _verifier.has_verifier_message(log):
        raise _verifier.verifier_error(log, errno=err, insns=_decoded(insns, code),
                                       line_table=options.line_table)
    hint = None
    if err == _errno.E2BIG and len(code) // 8 > 1_000_000:
        hint = f"{len(code) // 8} instructions: the kernel takes at most 1,000,000"
    exc = error(err, "load", hint=hint)
    if log.strip():
        exc.log = log  # type: ignore[attr-defined]
    raise exc


def _text(buf: ctypes.Array) -> str:
    return buf.value.decode(errors="replace")
