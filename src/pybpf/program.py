"""BPF programs in the kernel: load (with verifier log analysis), test_run, info, pinning.

A :class:`Program` owns the file descriptor of one loaded program.  It is
made by :meth:`Program.load` from instructions (``bytes``, or objects with an
``encode()`` method such as :class:`pybpf.asm.Instruction`), or opened from
a pin, an id or a file descriptor.  When the verifier refuses a program,
:meth:`Program.load` raises :class:`pybpf.VerifierError` with the whole log,
a summary, the source line and a hint (see :mod:`pybpf.verifier`).

Attaching is the job of :mod:`pybpf.links`; the ``attach_*`` methods that
the hooks add import it lazily.

Minimum kernel: 4.4 for socket filters; ``BPF_PROG_TEST_RUN`` 4.12,
program info 4.13, ``verified_insns`` 5.16, ``log_true_size`` 6.4.

Example::

    from pybpf import Program
    from pybpf.asm import builder as b, opcodes as op
    from pybpf._sys import ProgType

    insns = b.assemble([b.mov64_imm(op.R0, 2), b.exit_()])          # XDP_PASS
    with Program.load(insns, prog_type=ProgType.XDP, name="pass") as prog:
        res = prog.test_run(b"\\x00" * 64, repeat=10)
        assert res.retval == 2
        print(prog.info().verified_insns)
"""

from __future__ import annotations

import contextlib
import ctypes
import errno as _errno
import os
import types

from pybpf._record import FrozenRecord
from pybpf._sys import commands as _cmd
from pybpf._sys.attrs import ProgInfo, TestRunAttr
from pybpf._sys.pin import Pinnable
from pybpf._sys.syscall import ENOTSUPP, FD, address, bpf, error, fd_of
from pybpf._sys.uapi import AttachType, Cmd, ProgType, StatsType
from pybpf.errors import BPFError, NotSupportedError, SyscallError, context
from pybpf.asm.cookie import COOKIE_CALL, zero_cookie_calls
from pybpf.program_attach import AttachMethods
from pybpf.program_load import (
    DEFAULT_LOG_SIZE, MAX_LOG_SIZE, LoadOptions, _encode, _load_attr, _prog_load_attr, _Prepared,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator, Mapping, Sequence

    from pybpf._sys.syscall import FdLike

__all__ = ["Program", "ProgramInfo", "TestRunResult", "enable_stats", "DEFAULT_LOG_SIZE", "MAX_LOG_SIZE"]


# Program types whose BPF_PROG_TEST_RUN takes a context only: no data, no
# data_out/ctx_out, and repeat must be 0 (net/bpf/test_run.c).
_CTX_ONLY_TYPES = frozenset({ProgType.RAW_TRACEPOINT, ProgType.SYSCALL})

class ProgramInfo(FrozenRecord):
    """What the kernel reports about a loaded program (``bpf_prog_info``).

    ``run_time_ns`` and ``run_count`` only grow while statistics are on
    (:func:`enable_stats`).  ``load_time`` is nanoseconds since boot
    (CLOCK_BOOTTIME).  ``memlock`` (bytes) is read from ``/proc/self/fdinfo``
    and is None when unavailable.
    """

    __slots__ = ("id", "name", "type", "tag", "xlated_size", "jited_size", "verified_insns", "run_time_ns",
                 "run_count", "map_ids", "btf_id", "load_time", "created_by_uid", "memlock", "gpl_compatible",
                 "recursion_misses", "attach_btf_id", "attach_btf_obj_id")

    def __init__(self, *, id: int, name: str, type: ProgType | int, tag: str, xlated_size: int, jited_size: int,
                 verified_insns: int, run_time_ns: int, run_count: int, map_ids: tuple[int, ...], btf_id: int,
                 load_time: int, created_by_uid: int, memlock: int | None, gpl_compatible: bool = False,
                 recursion_misses: int = 0, attach_btf_id: int = 0, attach_btf_obj_id: int = 0) -> None:
        super().__init__(id=id, name=name, type=type, tag=tag, xlated_size=xlated_size, jited_size=jited_size,
                         verified_insns=verified_insns, run_time_ns=run_time_ns, run_count=run_count,
                         map_ids=map_ids, btf_id=btf_id, load_time=load_time, created_by_uid=created_by_uid,
                         memlock=memlock, gpl_compatible=gpl_compatible, recursion_misses=recursion_misses,
                         attach_btf_id=attach_btf_id, attach_btf_obj_id=attach_btf_obj_id)


class TestRunResult(FrozenRecord):
    """The outcome of :meth:`Program.test_run`.

    ``retval`` is the program's return value as the kernel reports it (u32);
    ``data_out``/``ctx_out`` are None when the run had none; ``duration_ns``
    is the average time of one run (0 for program types the kernel does not time).
    """

    __test__ = False  # not a pytest test class
    __slots__ = ("retval", "data_out", "ctx_out", "duration_ns")

    def __init__(self, retval: int, data_out: bytes | None, ctx_out: bytes | None, duration_ns: int) -> None:
        super().__init__(retval=retval, data_out=data_out, ctx_out=ctx_out, duration_ns=duration_ns)


def _type_name(value: int | None, enum: type) -> str:
    if value is None:
        return "unknown"
    try:
        return enum(value).name.lower()
    except ValueError:
        return str(value)


def program_fd(program: FdLike) -> int:
    """The fd number of a :class:`Program`, an int fd, or anything with ``fileno()``.

    >>> program_fd(7)
    7
    """
    return fd_of(program, "a pybpf.Program or a program fd")


def _lacks_cookies() -> bool:
    """True on a kernel (or under features.override) without bpf_get_attach_cookie (Linux 5.15).

    Such a kernel refuses a program calling the helper, so pybpf loads it with
    ``r0 = 0`` in the helper's place; :mod:`pybpf.links.fallback` then loads
    one clone per cookie from the original instructions, with the constant.
    """
    from pybpf import features

    return not features.has("bpf_cookie")


class Program(Pinnable, AttachMethods):
    """A loaded BPF program.  Close it with :meth:`close`, ``with``, or let GC do it.

    Attributes: ``name`` (as given; the kernel keeps the first 15 bytes),
    ``type`` (:class:`ProgType`), ``expected_attach_type``, ``insns`` (what was
    loaded, kept for :meth:`clone`; None when opened from the kernel),
    ``license``, ``verifier_log`` (the log when ``log_level`` was given).
    Programs loaded from an object also have ``section`` (the ELF section,
    which :meth:`attach` reads), ``spec`` (the ProgramSpec) and ``object``.
    The ``attach_*`` methods come from :class:`pybpf.program_attach.AttachMethods`.
    """

    # What most programs never set: class defaults, not an assignment per program.
    _pinned: str | None = None
    _id: int | None = None
    _tag: str | None = None
    section: str | None = None
    spec: Any = None
    object: Any = None
    _links: Any = None   # the links attached through it ({id: Link} in the instance, see AttachMethods)

    def __init__(
        self,
        fd: FD,
        *,
        name: str,
        type: ProgType | int,
        expected_attach_type: AttachType | int | None = None,
        insns: Any = None,
        license: str = "",
        verifier_log: str = "",
        load_options: LoadOptions | Callable[[], LoadOptions] | None = None,
    ) -> None:
        """``load_options``: the options, or a function that makes them when first asked for
        (the object loader's: most programs are never cloned)."""
        self._fd = fd
        self.name = name
        self.type = type
        self.expected_attach_type = expected_attach_type
        self.insns = insns
        self.license = license
        self.verifier_log = verifier_log
        self._load_options = load_options

    @classmethod
    def _loaded(cls, fd: int, name: str, type: ProgType, expected_attach_type: Any, insns: bytes, license: str,
                load_options: Callable[[], LoadOptions], section: str, spec: Any, obj: Any) -> "Program":
        """The Program of an object loader's program: the fd it loaded (now owned here), what
        :meth:`__init__` sets, and ``section``, ``spec`` and ``object`` (no keyword arguments:
        made once per program of every load)."""
        self = cls.__new__(cls)
        self._fd = FD(fd, "program")
        self.name = name
        self.type = type
        self.expected_attach_type = expected_attach_type
        self.insns = insns
        self.license = license
        self.verifier_log = ""
        self._load_options = load_options
        self.section = section
        self.spec = spec
        self.object = obj
        return self

    def _options(self) -> LoadOptions | None:
        options = self._load_options
        if options is not None and not isinstance(options, LoadOptions):
            options = self._load_options = options()
        return options

    @property
    def load_options(self) -> Mapping[str, Any]:
        """The keyword arguments this program was loaded with (read-only; empty if opened from the kernel)."""
        options = self._options()
        return types.MappingProxyType(options.as_dict() if options is not None else {})

    # -- loading ------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        insns: bytes | Sequence[Any],
        *,
        prog_type: ProgType,
        expected_attach_type: AttachType | None = None,
        license: str = "GPL",
        name: str = "",
        kern_version: int = 0,
        flags: int = 0,
        btf_fd: Any = None,
        func_info: bytes | None = None,
        func_info_rec_size: int = 8,
        line_info: bytes | None = None,
        line_info_rec_size: int = 16,
        attach_btf_id: int = 0,
        attach_btf_obj_fd: Any = 0,
        attach_prog_fd: Any = 0,
        fd_array: Sequence[Any] | None = None,
        log_level: int = 0,
        log_size: int = DEFAULT_LOG_SIZE,
        line_table: Mapping[int, str] | None = None,
    ) -> "Program":
        """Load ``insns`` into the kernel; raise :class:`VerifierError` when it is refused.

        The first attempt runs without a verifier log.  If it fails, the load is
        repeated with ``log_level`` 1 (or the caller's) and a log buffer of
        ``log_size`` bytes that grows on ENOSPC until the whole log fits.  With
        ``log_level`` > 0 the log is always collected and kept in
        ``verifier_log``.  ``func_info``/``line_info`` are the kernel's records
        (``bpf_func_info``/``bpf_line_info``, ``insn_off`` counted in
        instructions) for the BTF in ``btf_fd``.  ``line_table`` maps an
        instruction index to a source line for error messages.
        """
        prepared = cls._prepare(insns, LoadOptions(
            prog_type, expected_attach_type, license, name, kern_version, flags, btf_fd, func_info,
            func_info_rec_size, line_info, line_info_rec_size, attach_btf_id, attach_btf_obj_fd, attach_prog_fd,
            fd_array, log_level, log_size, line_table))
        return cls._complete(prepared, None)

    # Loading in two steps: a loader whose fast path failed loads the program again with these,
    # for the verifier log and the error (see pybpf.object.loader).

    @classmethod
    def _prepare(cls, insns: bytes | Sequence[Any], options: LoadOptions) -> "_Prepared":
        """Everything :meth:`load` does before BPF_PROG_LOAD: the attr and its buffers."""
        name, prog_type = options.name, options.prog_type
        if insns.__class__ is bytes:
            kept: Any = insns
        elif isinstance(insns, (bytes, bytearray, memoryview)):
            kept = bytes(insns)
        else:
            kept = list(insns)
        try:
            code = _encode(kept)
        except BPFError as exc:
            raise exc.add_context("load").add_context(cls._label_for(name, prog_type)) from None
        if COOKIE_CALL in code and _lacks_cookies():
            code = zero_cookie_calls(code)  # kept instructions still call it: clones use them
        try:
            attr, keep = _load_attr(code, options)
        except BPFError as exc:
            raise exc.add_context(cls._label_for(name, prog_type))
        return _Prepared(code, kept, options, attr, keep)

    @classmethod
    def _complete(cls, prepared: "_Prepared", fd: FD | None) -> "Program":
        """The Program for ``prepared``, loaded as :meth:`load` does unless ``fd`` already holds it."""
        options = prepared.options
        log = ""
        if fd is None:
            try:
                fd, log = _prog_load_attr(prepared.attr, prepared.code, prepared.kept, options)
            except BPFError as exc:
                raise exc.add_context(cls._label_for(options.name, options.prog_type))
        return cls(
            fd, name=options.name, type=options.prog_type, expected_attach_type=options.expected_attach_type,
            insns=prepared.kept, license=options.license, verifier_log=log, load_options=options,
        )

    def clone(self, insns: bytes | Sequence[Any] | None = None, **overrides: Any) -> "Program":
        """Load another program with this one's options; ``insns``/options may be replaced.

        Used by the cookie fallback of :mod:`pybpf.links`, which reloads a
        program with ``bpf_get_attach_cookie()`` rewritten to a constant.
        """
        options = self._options()
        if options is None or self.insns is None:
            raise BPFError(f"{self._label}: clone: the program was not loaded by pybpf, its instructions are unknown")
        options = options.replace(**overrides)
        return type(self)._complete(type(self)._prepare(self.insns if insns is None else insns, options), None)

    # -- opening existing programs ------------------------------------------------------

    @classmethod
    def from_fd(cls, fd: int, dup: bool = True) -> "Program":
        """A Program for an existing program fd; with ``dup=False`` it takes ownership of ``fd``."""
        with context("program"):
            try:
                owned = FD(os.dup(fd) if dup else fd, "program")
            except OSError as exc:
                raise error(exc.errno or _errno.EBADF, f"open fd {fd}") from None
            return cls._from_owned(owned)

    @classmethod
    def from_id(cls, prog_id: int) -> "Program":
        """Open the program with kernel id ``prog_id``."""
        with context("program"):
            return cls._from_owned(_cmd.prog_fd_by_id(prog_id))

    @classmethod
    def from_pin(cls, path: str | os.PathLike[str]) -> "Program":
        """Open a program pinned in bpffs at ``path``."""
        path = os.fspath(path)
        with context("program"):
            prog = cls._from_owned(_cmd.obj_get(path, what="program"))
        prog._pinned = path
        return prog

    @classmethod
    def _from_owned(cls, fd: FD) -> "Program":
        try:
            # BPF_OBJ_GET_INFO_BY_FD answers for maps, links and BTF too: check the kind first.
            kind = _fd_kind(fd.fileno())
            if kind is not None and kind != "bpf-prog":
                raise error(_errno.EINVAL, f"open fd {fd.fileno()}", hint=f"not a BPF program but {kind}")
            raw = _cmd.prog_info(fd.fileno())
        except BaseException:
            fd.close()
            raise
        try:
            ptype: ProgType | int = ProgType(raw.type)
        except ValueError:
            ptype = raw.type
        prog = cls(fd, name=raw.name.decode(errors="replace"), type=ptype)
        prog._id = raw.id
        prog._tag = bytes(raw.tag).hex()
        return prog

    # -- the file descriptor ------------------------------------------------------------

    @staticmethod
    def _label_for(name: str, prog_type: int) -> str:
        return f"program '{name}'" if name else f"{_type_name(prog_type, ProgType)} program"

    @property
    def _label(self) -> str:
        return self._label_for(self.name, self.type)

    @property
    def fd(self) -> int:
        """The program's file descriptor number (it stays owned by this object)."""
        with context(self._label):
            return self._fileno()

    def _fileno(self) -> int:
        if self._fd.closed:
            raise BPFError("the program is closed")
        return self._fd.fileno()

    def fileno(self) -> int:
        return self.fd

    @property
    def closed(self) -> bool:
        return self._fd.closed

    def close(self) -> None:
        """Detach the links attached through this program, then close its fd.

        The kernel frees the program once no link, pin or fd holds it.
        """
        if self._links is not None:   # (most programs never had one)
            self.close_links()
        self._fd.close()

    def __enter__(self) -> "Program":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._fd.closed else f"fd={self._fd.fileno()}"
        return f"<Program {self.name!r} {_type_name(self.type, ProgType)} {state}>"

    # -- identity -----------------------------------------------------------------------

    def _fill_identity(self) -> None:
        with context(self._label):
            raw = _cmd.prog_info(self._fileno())
        self._id = raw.id
        self._tag = bytes(raw.tag).hex()

    @property
    def id(self) -> int:
        """The kernel's id of this program (unique while it is loaded)."""
        if self._id is None:
            self._fill_identity()
        return self._id  # type: ignore[return-value]

    @property
    def tag(self) -> str:
        """The kernel's tag: a hash of the instructions, as 16 hex digits."""
        if self._tag is None:
            self._fill_identity()
        return self._tag  # type: ignore[return-value]

    # -- info ---------------------------------------------------------------------------

    def info(self) -> ProgramInfo:
        """Ask the kernel about this program (BPF_OBJ_GET_INFO_BY_FD)."""
        with context(self._label):
            fd = self._fileno()
            raw = _cmd.prog_info(fd)
            map_ids: tuple[int, ...] = ()
            if raw.nr_map_ids:
                count = raw.nr_map_ids
                ids = (ctypes.c_uint32 * count)()
                raw = _cmd.obj_info(fd, ProgInfo(nr_map_ids=count, map_ids=ctypes.addressof(ids)))
                map_ids = tuple(ids[: min(count, raw.nr_map_ids)])
        try:
            ptype: ProgType | int = ProgType(raw.type)
        except ValueError:
            ptype = raw.type
        return ProgramInfo(
            id=raw.id, name=raw.name.decode(errors="replace"), type=ptype, tag=bytes(raw.tag).hex(),
            xlated_size=raw.xlated_prog_len, jited_size=raw.jited_prog_len,
            verified_insns=raw.verified_insns, run_time_ns=raw.run_time_ns, run_count=raw.run_cnt,
            map_ids=map_ids, btf_id=raw.btf_id, load_time=raw.load_time,
            created_by_uid=raw.created_by_uid, memlock=_fdinfo_int(fd, "memlock"),
            gpl_compatible=bool(raw.gpl_compatible), recursion_misses=raw.recursion_misses,
            attach_btf_id=raw.attach_btf_id, attach_btf_obj_id=raw.attach_btf_obj_id,
        )

    def xlated_insns(self) -> bytes:
        """The program as the kernel keeps it after verification and rewriting (8 bytes a slot).

        Map references read back as map ids (``ld_imm64`` with ``src`` PSEUDO_MAP_FD).
        """
        with context(self._label), context("xlated_insns"):
            fd = self._fileno()
            size = _cmd.prog_info(fd).xlated_prog_len
            if size == 0:
                raise BPFError("the kernel does not show this program's instructions "
                               "(needs CAP_SYS_ADMIN, or kernel.kptr_restrict hides them)")
            buf = ctypes.create_string_buffer(size)
            raw = _cmd.obj_info(fd, ProgInfo(xlated_prog_len=size, xlated_prog_insns=ctypes.addressof(buf)))
            return buf.raw[: min(size, raw.xlated_prog_len)]

    def disassemble(self) -> str:
        """The translated program as text, one line per instruction."""
        from pybpf.asm import decode_all, disassemble

        return disassemble(decode_all(self.xlated_insns()))

    # -- running ------------------------------------------------------------------------

    def test_run(
        self,
        data: bytes | None = None,
        *,
        ctx: bytes | None = None,
        repeat: int = 1,
        data_size_out: int | None = None,
        flags: int = 0,
        cpu: int = 0,
    ) -> TestRunResult:
        """Run the program in the kernel on ``data`` (a packet) and/or ``ctx`` (BPF_PROG_TEST_RUN).

        ``repeat`` runs it that many times and reports the mean duration.
        Raw tracepoint and syscall programs take ``ctx`` only and run once; a
        syscall program's ``ctx_out`` is the context after the run.  Program
        types the kernel cannot run this way raise :class:`NotSupportedError`.
        """
        with context(self._label):
            if repeat < 0:
                raise BPFError(f"test_run: repeat must be >= 0, not {repeat}")
            if self.type in _CTX_ONLY_TYPES:
                return self._test_run_ctx_only(data, ctx, repeat, flags, cpu)
            return self._test_run(data, ctx, repeat, data_size_out, flags, cpu)

    def _test_run_ctx_only(self, data: bytes | None, ctx: bytes | None, repeat: int, flags: int, cpu: int) -> TestRunResult:
        kind = _type_name(self.type, ProgType)
        if data is not None:
            raise BPFError(f"test_run: {kind} programs take ctx only, not data")
        if repeat > 1:
            raise BPFError(f"test_run: {kind} programs run once per call, not repeat={repeat}: "
                           "call test_run in a loop")
        ctx_buf = ctypes.create_string_buffer(ctx, len(ctx)) if ctx else None
        attr = TestRunAttr(prog_fd=self._fileno(), ctx_in=address(ctx_buf), ctx_size_in=len(ctx) if ctx else 0,
                           flags=flags, cpu=cpu)
        self._run(attr)
        # A syscall program may write its context; the kernel copies it back into ctx_in.
        ctx_out = ctx_buf.raw[: len(ctx)] if ctx_buf is not None and self.type == ProgType.SYSCALL else None
        return TestRunResult(retval=attr.retval, data_out=None, ctx_out=ctx_out, duration_ns=attr.duration)

    def _test_run(self, data: bytes | None, ctx: bytes | None, repeat: int, data_size_out: int | None,
                  flags: int, cpu: int) -> TestRunResult:
        data_in = ctypes.create_string_buffer(data, len(data)) if data else None
        ctx_in = ctypes.create_string_buffer(ctx, len(ctx)) if ctx else None
        # XDP may grow the packet (bpf_xdp_adjust_head/tail), so leave room.
        out_size = (data_size_out if data_size_out is not None else max(len(data) + 256, 4096)) if data is not None else 0
        ctx_out_size = max(len(ctx), 512) if ctx else 0
        for _attempt in range(4):
            data_out = ctypes.create_string_buffer(out_size) if out_size else None
            ctx_out = ctypes.create_string_buffer(ctx_out_size) if ctx_out_size else None
            attr = TestRunAttr(
                prog_fd=self._fileno(), data_in=address(data_in), data_size_in=len(data) if data else 0,
                data_out=address(data_out), data_size_out=out_size,
                ctx_in=address(ctx_in), ctx_size_in=len(ctx) if ctx else 0,
                ctx_out=address(ctx_out), ctx_size_out=ctx_out_size,
                repeat=repeat, flags=flags, cpu=cpu,
            )
            try:
                self._run(attr)
            except SyscallError as exc:
                # ENOSPC: an output buffer was too small; the kernel wrote the sizes it needed.
                if exc.errno != _errno.ENOSPC or not (out_size or ctx_out_size):
                    raise
                grown = False
                if out_size and attr.data_size_out > out_size:
                    out_size, grown = attr.data_size_out, True
                if ctx_out_size and attr.ctx_size_out > ctx_out_size:
                    ctx_out_size, grown = attr.ctx_size_out, True
                if not grown:
                    out_size, ctx_out_size = out_size * 2, ctx_out_size * 2
                continue
            return TestRunResult(
                retval=attr.retval,
                data_out=data_out.raw[: attr.data_size_out] if data_out is not None else None,
                ctx_out=ctx_out.raw[: attr.ctx_size_out] if ctx_out is not None else None,
                duration_ns=attr.duration,
            )
        raise error(_errno.ENOSPC, "test_run", hint="the output kept outgrowing its buffer")

    def _run(self, attr: TestRunAttr) -> None:
        kind = _type_name(self.type, ProgType)
        try:
            bpf(Cmd.PROG_TEST_RUN, attr, op="test_run", hint_for=_test_run_hint)
        except SyscallError as exc:
            if exc.errno in (ENOTSUPP, _errno.EOPNOTSUPP):
                unsupported = NotSupportedError(f"test_run for {kind} programs")
                unsupported.errno = exc.errno
                raise unsupported.add_context("test_run") from None
            raise

    # Attach methods (attach_uprobe, attach_xdp, ...) are added by the hooks layer;
    # they import pybpf.links lazily so that loading programs does not need it.


def _test_run_hint(err: int) -> str | None:
    if err == _errno.EINVAL:
        return ("the kernel refused the input: check the data and ctx sizes (packets need at least "
                "an Ethernet header), repeat and flags for this program type")
    return None


def _fd_kind(fd: int) -> str | None:
    """``"bpf-prog"``, ``"bpf-map"``, ... for a BPF fd; another name otherwise; None if unknown."""
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
    return target[len("anon_inode:"):] if target.startswith("anon_inode:") else target


def _fdinfo_int(fd: int, key: str) -> int | None:
    try:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name == key:
                    return int(value.strip())
    except (OSError, ValueError):
        pass
    return None


@contextlib.contextmanager
def enable_stats(kind: StatsType = StatsType.RUN_TIME) -> Iterator[None]:
    """Turn on run time/count accounting (BPF_ENABLE_STATS, Linux 5.8) inside the block.

    >>> with enable_stats():            # doctest: +SKIP
    ...     prog.test_run(packet, repeat=100)
    ...     prog.info().run_count
    100
    """
    with context("enable_stats"):
        fd = _cmd.enable_stats(kind)
    try:
        yield
    finally:
        fd.close()
