"""What the running kernel can do: cached probes that ask the kernel.

A probe never guesses from the kernel version: it makes the smallest request
that only a kernel with the feature accepts (loads a two-instruction program,
creates a one-entry map, loads a three-type BTF blob, asks BPF_LINK_CREATE
for a link it cannot make and reads the errno) and closes everything it
opened.  Each answer is computed once, on first use, and cached for the life
of the process (:func:`clear_cache` forgets them).  The whole table takes a
few tens of milliseconds.

Named features (see :data:`FEATURES` for all of them, each with the Linux
version that introduced it and a one-line description)::

    from pybpf import features

    features.has("bpf_cookie")            # True on Linux >= 5.15
    features.require("uprobe_multi_link")  # raises NotSupportedError if missing:
    # "uprobe_multi_link is not supported by this kernel (needs Linux 6.6)"
    features.all_features()               # {"bpf_syscall": True, ...}
    features.reason("fentry")             # why a feature is missing, or None

Lower-level probes::

    features.prog_type_supported(ProgType.XDP)      # or by name: "xdp"
    features.map_type_supported(MapType.RINGBUF)
    features.helper_supported(ProgType.TRACEPOINT, HelperID.get_attach_cookie)
    features.btf_kind_supported("enum64")

The probes themselves (the programs, maps and BTF blobs they send) are in
:mod:`pybpf._probes`; this module names, caches and overrides their answers.

The features and the first Linux release with each::

    bpf_syscall 3.18     jit 3.18            btf 4.18              vmlinux_btf 5.4
    global_data 5.2      mmapable_arrays 5.5 batch_ops 5.6         ringbuf 5.8
    user_ringbuf 6.1     bloom_filter 5.16   raw_tp 4.17           tp_btf 5.5
    fentry 5.5           kprobes 4.1         uprobes 4.17          bpf_cookie 5.15
    probe_read_kernel 5.5                    perf_link 5.15        link_update 5.7
    kprobe_multi_link 5.18                   uprobe_multi_link 6.6 tcx 6.6
    kprobe_session 6.10                      uprobe_session 6.12
    raw_tp_cookie 6.10
    xdp_link 5.9         task_fd_query 4.17

Pretending to run on an older kernel (tests of fallback paths)::

    with features.override(bpf_cookie=False):
        assert not features.has("bpf_cookie")   # and require() raises

    @features.override(ringbuf=False)
    def test_perf_buffer_fallback(): ...

Overrides nest (the innermost wins), are restored on exit and are global
to the process (not per thread).  They change the named features only
(:func:`has`, :func:`require`, :func:`all_features`), not the lower-level
probes such as :func:`prog_type_supported`.

Privileges.  Probing needs the rights to use bpf(2): root, or CAP_BPF with
CAP_PERFMON (CAP_SYS_ADMIN before Linux 5.8).  When the caller lacks them
every probe would fail with EPERM and answer "no" for reasons that have
nothing to do with the kernel, so instead a probe that meets EPERM without
those capabilities raises :class:`pybpf.SyscallError`
("probing bpf_cookie: operation not permitted: run as root ...") and caches
nothing.  A privileged caller who meets EPERM is being refused by the kernel
itself (lockdown, an LSM): that answer is "not supported", and
:func:`reason` says why.  On the development machines fentry/fexit/LSM loads
are refused this way under lockdown=integrity.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import functools
import mmap
import os
from _thread import RLock, _local   # threading's own lock and thread-local, without importing threading
from enum import IntEnum
from types import MappingProxyType

from pybpf import _probes
from pybpf._record import FrozenRecord
from pybpf._probes import BTF_KINDS, Result as _Result, type_name as _type_name
from pybpf._sys.attrs import LinkCreateAttr, LinkUpdateAttr, MapBatchAttr, PerfEventAttr, TaskFdQueryAttr
from pybpf._sys.commands import prog_info
from pybpf._sys.flags import MapFlag, XdpFlag
from pybpf._sys.fs import tracefs_file
from pybpf._sys.kernel import kernel_version_code, pmu_type
from pybpf._sys.syscall import address, errno_name
from pybpf._sys import uapi   # uapi.HelperID: the helper enum is created when a helper is probed
from pybpf._sys.uapi import AttachType, Cmd, MapType, ProgType
from pybpf.btf.reader import BTF_MAGIC
from pybpf.btf.types import BTFKind
from pybpf.errors import BPFError, NotSupportedError, SyscallError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Mapping, TypeVar

    from pybpf._sys.uapi_helpers import HelperID

    _T = TypeVar("_T")

__all__ = [
    "Feature", "FEATURES", "has", "require", "reason", "all_features", "override", "clear_cache",
    "prog_type_supported", "map_type_supported", "helper_supported", "btf_kind_supported",
    "BTF_KINDS",
]

_lock = RLock()


# ---------------------------------------------------------------- caches

_prog_cache: dict[int, _Result] = {}
_map_cache: dict[int, _Result] = {}
_helper_cache: dict[tuple[int, int], _Result] = {}
_btf_cache: dict[str, _Result] = {}
_feature_cache: dict[str, _Result] = {}
_btf_kind_answers: dict[str, bool] = {}   # btf_kind_supported's answers by kind name, from _btf_cache
_depth = _local()


def _cached(cache: dict, key: object, probe: Callable[[], _Result], what: str) -> _Result:
    """The cached answer for ``key``, probing once; errors name the outermost question only."""
    with _lock:
        if key not in cache:
            depth = getattr(_depth, "n", 0)
            _depth.n = depth + 1
            try:
                cache[key] = probe()
            except BPFError as err:
                if depth == 0:
                    err.add_context(f"probing {what}")
                raise
            finally:
                _depth.n = depth
        return cache[key]


def _number(enum: type[IntEnum], value: object, what: str) -> int:
    """``value`` as a kernel constant: an enum member, an int, or a member name in any case ("xdp")."""
    if isinstance(value, str):
        for name, member in enum.__members__.items():
            if name.lower() == value.lower():
                return int(member)
        raise ValueError(f"unknown {what} {value!r}")
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    raise TypeError(f"{what} must be a {enum.__name__}, an int or a name, not {type(value).__name__}")


def _prog_result(prog_type: ProgType | int | str) -> _Result:
    pt = _number(ProgType, prog_type, "program type")
    return _cached(_prog_cache, pt, lambda: _probes.probe_prog_type(pt),
                   f"program type {_type_name(ProgType, pt)}")


def _map_result(map_type: MapType | int | str) -> _Result:
    mt = _number(MapType, map_type, "map type")
    return _cached(_map_cache, mt, lambda: _probes.probe_map_type(mt), f"map type {_type_name(MapType, mt)}")


def _helper_result(prog_type: ProgType | int | str, helper: HelperID | int | str) -> _Result:
    pt = _number(ProgType, prog_type, "program type")
    fn = _number(uapi.HelperID, helper, "helper")
    if pt in _probes.NO_HELPER_PROBE:
        raise ValueError(f"helper probes cannot be built for {_type_name(ProgType, pt)} programs: "
                         "they need a real attach target")

    def probe() -> _Result:
        if not _prog_result(pt)[0]:
            return False, f"{_type_name(ProgType, pt)} programs are not supported"
        return _probes.probe_helper(pt, fn)

    what = f"helper {_type_name(uapi.HelperID, fn)} for {_type_name(ProgType, pt)}"
    return _cached(_helper_cache, (pt, fn), probe, what)


# ---------------------------------------------------------------- lower-level probes

def prog_type_supported(prog_type: ProgType | int | str) -> bool:
    """True if the kernel loads programs of ``prog_type`` (an unknown number is simply False).

    ``prog_type`` is a :class:`ProgType`, its number or its name (``"xdp"``).

    >>> prog_type_supported(ProgType.XDP)
    True
    """
    return _prog_result(prog_type)[0]


def map_type_supported(map_type: MapType | int | str) -> bool:
    """True if the kernel creates maps of ``map_type`` (a :class:`MapType`, its number or its name).

    >>> map_type_supported(MapType.RINGBUF)      # Linux 5.8
    True
    """
    return _map_result(map_type)[0]


def helper_supported(prog_type: ProgType | int | str, helper: HelperID | int | str) -> bool:
    """True if programs of ``prog_type`` may call ``helper``.

    Asks the verifier with a program that calls the helper: "unknown func",
    "invalid func" or "program of this type cannot use helper" mean no; a
    complaint about the arguments means yes.  TRACING programs are probed as
    tp_btf programs.  EXT, LSM and STRUCT_OPS programs need a real target and
    raise ValueError.

    >>> helper_supported(ProgType.KPROBE, HelperID.get_attach_cookie)   # Linux 5.15
    True
    """
    return _helper_result(prog_type, helper)[0]


def btf_kind_supported(kind: str) -> bool:
    """True if the kernel accepts BTF of ``kind`` (a name of :data:`BTF_KINDS`, e.g. "enum64").

    "func_global" is a FUNC with global linkage; "var" and "datasec" arrived together.

    >>> btf_kind_supported("enum64")     # Linux 6.0
    True
    """
    known = _btf_kind_answers.get(kind)   # (a loader asks about five kinds per object)
    if known is not None:
        return known
    if kind not in BTF_KINDS:
        raise ValueError(f"unknown BTF kind {kind!r}; known: {', '.join(BTF_KINDS)}")
    blob = _probes.BTF_KIND_PROBE[kind]
    known = _btf_kind_answers[kind] = _cached(_btf_cache, blob, lambda: _probes.probe_btf(blob), f"BTF kind {kind}")[0]
    return known


# ---------------------------------------------------------------- named features

class Feature(FrozenRecord):
    """One named feature: its name, the first Linux release with it, and what it means.

    >>> FEATURES["bpf_cookie"].min_kernel
    '5.15'
    """

    __slots__ = ("name", "min_kernel", "description", "probe")

    def __init__(self, name: str, min_kernel: str, description: str, probe: Callable[[], _Result]) -> None:
        super().__init__(name=name, min_kernel=min_kernel, description=description, probe=probe)


_registry: dict[str, Feature] = {}
FEATURES: Mapping[str, Feature] = MappingProxyType(_registry)


def _feature(name: str, min_kernel: str, description: str) -> Callable[[Callable[[], _Result]], Callable[[], _Result]]:
    """Register ``probe`` as named feature ``name`` (a decorator, or called on a probe)."""
    def register(probe: Callable[[], _Result]) -> Callable[[], _Result]:
        _registry[name] = Feature(name, min_kernel, description, probe)
        return probe
    return register


def _yes_if(ok: bool, why_not: str) -> _Result:
    return (True, None) if ok else (False, why_not)


def _errno_is(expected: int, err: int, what: str) -> _Result:
    return _yes_if(err == expected, f"{what} fails with {errno_name(err)}")


@_feature("bpf_syscall", "3.18", "the bpf(2) system call works (an array map can be created)")
def _p_syscall() -> _Result:
    fd, err = _probes.create_map(MapType.ARRAY)
    if fd is None:
        return False, f"BPF_MAP_CREATE failed with {errno_name(err)}"
    fd.close()
    return True, None


@_feature("jit", "3.18", "programs are JIT-compiled to machine code")
def _p_jit() -> _Result:
    fd, err, _ = _probes.load(ProgType.SOCKET_FILTER)
    if fd is None:
        return False, f"cannot load a program ({errno_name(err)})"
    with fd:
        return _yes_if(prog_info(fd.fileno()).jited_prog_len > 0, "the JIT is off (net.core.bpf_jit_enable)")


_feature("btf", "4.18", "BPF_BTF_LOAD accepts type information")(lambda: _probes.probe_btf("base"))

_VMLINUX = "/sys/kernel/btf/vmlinux"


@_feature("vmlinux_btf", "5.4", "the kernel's own BTF is at /sys/kernel/btf/vmlinux (CO-RE, tp_btf, fentry)")
def _p_vmlinux_btf() -> _Result:
    try:
        with open(_VMLINUX, "rb") as f:
            head = f.read(2)
    except OSError as exc:
        return False, f"{_VMLINUX}: {exc.strerror}"
    return _yes_if(head == BTF_MAGIC.to_bytes(2, "little"), f"{_VMLINUX} is not BTF")


_feature("global_data", "5.2", "programs address map values directly (.data/.rodata/.bss globals)")(
    _probes.global_data)


@_feature("mmapable_arrays", "5.5", "array maps created with BPF_F_MMAPABLE can be mmap()ed")
def _p_mmapable() -> _Result:
    fd, err = _probes.create_map(MapType.ARRAY, value_size=8, map_flags=MapFlag.MMAPABLE)
    if fd is None:
        return False, f"BPF_F_MMAPABLE is rejected ({errno_name(err)})"
    with fd:
        try:
            mmap.mmap(fd.fileno(), mmap.PAGESIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE).close()
        except OSError as exc:
            return False, f"mmap of the map fails ({exc.strerror})"
    return True, None


@_feature("batch_ops", "5.6", "batched map operations (BPF_MAP_*_BATCH)")
def _p_batch() -> _Result:
    fd, err = _probes.create_map(MapType.HASH)
    if fd is None:
        return False, f"cannot create a hash map ({errno_name(err)})"
    keys, values = (ctypes.c_uint32 * 1)(1), (ctypes.c_uint32 * 1)(2)
    with fd:
        attr = MapBatchAttr(keys=address(keys), values=address(values), count=1, map_fd=fd.fileno())
        _, err = _probes.call(Cmd.MAP_UPDATE_BATCH, attr)
    return _errno_is(0, err, "BPF_MAP_UPDATE_BATCH")


_feature("ringbuf", "5.8", "BPF ring buffer maps (BPF_MAP_TYPE_RINGBUF)")(
    lambda: _map_result(MapType.RINGBUF))
_feature("user_ringbuf", "6.1", "user-space-to-kernel ring buffers (BPF_MAP_TYPE_USER_RINGBUF)")(
    lambda: _map_result(MapType.USER_RINGBUF))
_feature("bloom_filter", "5.16", "bloom filter maps (BPF_MAP_TYPE_BLOOM_FILTER)")(
    lambda: _map_result(MapType.BLOOM_FILTER))
_feature("raw_tp", "4.17", "raw tracepoint programs (BPF_PROG_TYPE_RAW_TRACEPOINT)")(
    lambda: _prog_result(ProgType.RAW_TRACEPOINT))


def _btf_target_load(program: str, names: tuple[str, ...], kind: BTFKind, attach_type: AttachType,
                     target: str) -> _Result:
    """Load a TRACING ``program`` (tp_btf, fentry) aimed at the first of ``names`` in the kernel's BTF."""
    tid = _probes.vmlinux_id(names, kind)
    if tid is None:
        return False, f"no kernel BTF with {target}"
    return _probes.loads(ProgType.TRACING, f"the {program} load", attach_type=attach_type, btf_id=tid)


_feature("tp_btf", "5.5", "BTF-typed raw tracepoints (tp_btf: TRACING programs, BPF_TRACE_RAW_TP)")(
    lambda: _btf_target_load("tp_btf", _probes.TRACE_TYPEDEFS, BTFKind.TYPEDEF, AttachType.TRACE_RAW_TP,
                             "a btf_trace_* typedef"))
_feature("fentry", "5.5", "fentry/fexit programs on kernel functions (BPF trampolines)")(
    lambda: _btf_target_load("fentry", _probes.FENTRY_FUNCS, BTFKind.FUNC, AttachType.TRACE_FENTRY,
                             "a traceable function"))


@_feature("kprobes", "4.1", "kprobes on kernel functions (kprobe PMU or tracefs kprobe_events)")
def _p_kprobes() -> _Result:
    from pybpf._sys.perf import perf_event_open  # local: perf is only needed here

    pmu = pmu_type("kprobe")
    if pmu is not None:
        last = 0
        for symbol in ("vfs_read", "do_sys_open", "ksys_read"):
            name = ctypes.create_string_buffer(symbol.encode())
            try:
                perf_event_open(PerfEventAttr(type=pmu, config1=address(name)), pid=-1, cpu=0).close()
                return True, None
            except SyscallError as exc:
                _probes.check_privilege(exc.errno or 0, perf=True)
                last = exc.errno or 0
        if not tracefs_file("kprobe_events"):
            return False, f"the kprobe PMU exists but opening a kprobe fails ({errno_name(last)})"
    if tracefs_file("kprobe_events"):
        return True, None
    return False, "no kprobe PMU and no tracefs kprobe_events (CONFIG_KPROBES or CONFIG_KPROBE_EVENTS is off)"


@_feature("uprobes", "4.17", "uprobes on user-space functions (uprobe perf PMU)")
def _p_uprobes() -> _Result:
    return _yes_if(pmu_type("uprobe") is not None,
                   "no uprobe PMU in /sys/bus/event_source/devices (CONFIG_UPROBE_EVENTS is off)")


@_feature("bpf_cookie", "5.15", "bpf_get_attach_cookie() for kprobe/uprobe and tracepoint programs")
def _p_cookie() -> _Result:
    for pt in (ProgType.KPROBE, ProgType.TRACEPOINT):
        result = _helper_result(pt, uapi.HelperID.get_attach_cookie)
        if not result[0]:
            return result
    return True, None


# The raw_tp cookie (attr.raw_tracepoint.cookie) and the helper for raw tracepoint programs came in
# one change (Linux 6.10, "bpf: support BPF cookie in raw tracepoint (raw_tp, tp_btf) programs"):
# the helper says both.
_feature("raw_tp_cookie", "6.10", "BPF cookies on raw tracepoint and tp_btf links")(
    lambda: _helper_result(ProgType.RAW_TRACEPOINT, uapi.HelperID.get_attach_cookie))


_feature("probe_read_kernel", "5.5", "bpf_probe_read_kernel()/_user() instead of bpf_probe_read()")(
    lambda: _helper_result(ProgType.KPROBE, uapi.HelperID.probe_read_kernel))


@_feature("perf_link", "5.15", "BPF links over perf events (BPF_LINK_CREATE with BPF_PERF_EVENT)")
def _p_perf_link() -> _Result:
    def fill(attr: LinkCreateAttr, prog_fd: int) -> None:
        attr.target_fd = prog_fd  # not a perf event: a kernel with perf links answers EBADF
    return _probes.link_create_refused(ProgType.TRACEPOINT, AttachType.PERF_EVENT, fill, (_errno.EBADF,))


@_feature("link_update", "5.7", "BPF_LINK_UPDATE swaps the program of a link")
def _p_link_update() -> _Result:
    attr = LinkUpdateAttr(link_fd=0x7FFFFFFF)  # no such fd: EBADF from a kernel that knows the command
    return _errno_is(_errno.EBADF, _probes.call(Cmd.LINK_UPDATE, attr)[1], "BPF_LINK_UPDATE")


@_feature("kprobe_multi_link", "5.18", "one link attaching a program to many kprobes (fprobe)")
def _p_kprobe_multi() -> _Result:
    name = ctypes.create_string_buffer(b"pybpf_feature_probe_no_such_symbol")
    syms = (ctypes.c_uint64 * 1)(address(name))

    def fill(attr: LinkCreateAttr, _prog_fd: int) -> None:
        attr.u.kprobe_multi.syms, attr.u.kprobe_multi.cnt = address(syms), 1
    # A kernel that can do it fails to find the symbol (ESRCH since 6.0, ENOENT before).
    ok, why = _probes.link_create_refused(ProgType.KPROBE, AttachType.TRACE_KPROBE_MULTI, fill,
                                          (_errno.ESRCH, _errno.ENOENT))
    if why and why.endswith(errno_name(_errno.EOPNOTSUPP)):
        why += " (CONFIG_FPROBE is off: kprobe_multi links are built on fprobe)"
    return ok, why


@_feature("uprobe_multi_link", "6.6", "one link attaching a program to many uprobes")
def _p_uprobe_multi() -> _Result:
    path = ctypes.create_string_buffer(b"/")
    offsets = (ctypes.c_uint64 * 1)(0)

    def fill(attr: LinkCreateAttr, _prog_fd: int) -> None:
        um = attr.u.uprobe_multi
        um.path, um.offsets, um.cnt = address(path), address(offsets), 1
    # "/" is not a regular file: EBADF from a kernel that knows uprobe_multi links.
    return _probes.link_create_refused(ProgType.KPROBE, AttachType.TRACE_UPROBE_MULTI, fill, (_errno.EBADF,))


@_feature("kprobe_session", "6.10", "kprobe.session programs: one kprobe_multi link runs them at entry and return")
def _p_kprobe_session() -> _Result:
    name = ctypes.create_string_buffer(b"pybpf_feature_probe_no_such_symbol")
    syms = (ctypes.c_uint64 * 1)(address(name))

    def fill(attr: LinkCreateAttr, _prog_fd: int) -> None:
        attr.u.kprobe_multi.syms, attr.u.kprobe_multi.cnt = address(syms), 1
    # As for kprobe_multi_link: a kernel with sessions fails to find the symbol.
    return _probes.link_create_refused(ProgType.KPROBE, AttachType.TRACE_KPROBE_SESSION, fill,
                                       (_errno.ESRCH, _errno.ENOENT))


@_feature("uprobe_session", "6.12", "uprobe.session programs: one uprobe_multi link runs them at entry and return")
def _p_uprobe_session() -> _Result:
    path = ctypes.create_string_buffer(b"/")
    offsets = (ctypes.c_uint64 * 1)(0)

    def fill(attr: LinkCreateAttr, _prog_fd: int) -> None:
        um = attr.u.uprobe_multi
        um.path, um.offsets, um.cnt = address(path), address(offsets), 1
    # As for uprobe_multi_link: "/" is not a regular file (EBADF) for a kernel with sessions.
    return _probes.link_create_refused(ProgType.KPROBE, AttachType.TRACE_UPROBE_SESSION, fill, (_errno.EBADF,))


@_feature("tcx", "6.6", "tcx links: tc programs attached through BPF links")
def _p_tcx() -> _Result:
    def fill(attr: LinkCreateAttr, _prog_fd: int) -> None:
        attr.target_fd = 0  # ifindex 0 does not exist: ENODEV from a kernel with tcx
    return _probes.link_create_refused(ProgType.SCHED_CLS, AttachType.TCX_INGRESS, fill, (_errno.ENODEV,))


@_feature("xdp_link", "5.9", "XDP links: XDP programs attached through BPF links (BPF_LINK_CREATE with BPF_XDP)")
def _p_xdp_link() -> _Result:
    try:
        import socket   # here, not at the top: only this probe needs it

        lo = socket.if_nametoindex("lo")
    except OSError:
        lo = 1  # LOOPBACK_IFINDEX: the loopback device is ifindex 1 in every network namespace

    def fill(attr: LinkCreateAttr, _prog_fd: int) -> None:
        # Offload to the loopback device, which has no ndo_bpf: a kernel with XDP links finds
        # the device and answers EOPNOTSUPP; before 5.9 BPF_XDP is not a link type (EINVAL).
        attr.target_fd, attr.flags = lo, XdpFlag.HW_MODE
    return _probes.link_create_refused(ProgType.XDP, AttachType.XDP, fill, (_errno.EOPNOTSUPP,))


@_feature("task_fd_query", "4.17", "BPF_TASK_FD_QUERY: what a perf event fd of a task is attached to")
def _p_task_fd_query() -> _Result:
    attr = TaskFdQueryAttr(pid=os.getpid(), fd=0x7FFFFFFF)  # no such fd: EBADF if the command is known
    return _errno_is(_errno.EBADF, _probes.call(Cmd.TASK_FD_QUERY, attr)[1], "BPF_TASK_FD_QUERY")


# ---------------------------------------------------------------- overrides

_overrides: list[tuple[object, dict[str, bool]]] = []  # innermost last


def _check_name(name: str) -> Feature:
    try:
        return _registry[name]
    except KeyError:
        raise ValueError(f"unknown feature {name!r}; known features: {', '.join(_registry)}") from None


class override:
    """Make :func:`has`/:func:`require` answer as if the kernel had (True) or lacked (False) features.

    A context manager and a decorator; nestable, the innermost wins; the
    previous answers return on exit.  Overrides are process-wide.

    >>> with override(bpf_cookie=False):
    ...     has("bpf_cookie")
    False
    """

    def __init__(self, **features: bool) -> None:
        for name, value in features.items():
            _check_name(name)
            if not isinstance(value, bool):
                raise TypeError(f"override({name}=...) takes True or False, not {value!r}")
        self._features = dict(features)
        self._tokens: list[object] = []

    def __enter__(self) -> "override":
        token = object()
        with _lock:
            _overrides.append((token, self._features))
        self._tokens.append(token)
        return self

    def __exit__(self, *exc: object) -> None:
        token = self._tokens.pop()
        with _lock:
            for i in range(len(_overrides) - 1, -1, -1):
                if _overrides[i][0] is token:
                    del _overrides[i]
                    break

    def __call__(self, func: Callable[..., _T]) -> Callable[..., _T]:
        features = self._features

        @functools.wraps(func)
        def wrapper(*args: object, **kwargs: object) -> _T:
            with override(**features):
                return func(*args, **kwargs)
        return wrapper


def _overridden(name: str) -> bool | None:
    with _lock:
        for _, values in reversed(_overrides):
            if name in values:
                return values[name]
    return None


# ---------------------------------------------------------------- public API

def _result(name: str) -> _Result:
    feature = _check_name(name)
    forced = _overridden(name)
    if forced is not None:
        return forced, None if forced else "disabled by pybpf.features.override()"
    return _cached(_feature_cache, name, feature.probe, name)


def has(name: str) -> bool:
    """True if the running kernel has feature ``name`` (see :data:`FEATURES`).

    Raises ValueError for an unknown name and SyscallError when the caller
    lacks the privileges to probe.

    >>> has("bpf_cookie")        # Linux 5.15
    True
    """
    return _result(name)[0]


def require(name: str) -> None:
    """Raise :class:`pybpf.NotSupportedError` naming the feature and its minimum Linux if it is missing.

    >>> require("kprobes")
    Traceback (most recent call last):
    pybpf.errors.NotSupportedError: kprobes is not supported by this kernel (needs Linux 4.1): ...
    """
    ok, why = _result(name)
    if not ok:
        raise NotSupportedError(name, _registry[name].min_kernel, why, new_enough=_new_enough(name))


def _new_enough(name: str) -> bool:
    """True when the running kernel's version has feature ``name``: something else is missing."""
    if _overridden(name) is not None:
        return False  # an override plays an older kernel
    major, minor = (int(part) for part in _registry[name].min_kernel.split("."))
    return kernel_version_code() >= (major << 16) + (minor << 8)


def reason(name: str) -> str | None:
    """Why feature ``name`` is missing (the probe's own words), or None when it is present.

    >>> reason("fentry")
    'the fentry load refused with EPERM although the caller is privileged (kernel lockdown=integrity)'
    """
    return _result(name)[1]


def all_features() -> dict[str, bool]:
    """Every named feature and whether the kernel has it (overrides applied), in registry order.

    >>> all_features()
    {'bpf_syscall': True, 'jit': True, ...}
    """
    return {name: has(name) for name in _registry}


def clear_cache() -> None:
    """Forget every probe result so the next question asks the kernel again.

    >>> clear_cache(); has("ringbuf")     # probes again
    True
    """
    with _lock:
        for cache in (_prog_cache, _map_cache, _helper_cache, _btf_cache, _feature_cache, _btf_kind_answers):
            cache.clear()
