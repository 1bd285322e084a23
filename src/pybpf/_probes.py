"""The probes behind :mod:`pybpf.features`: the smallest requests only a capable kernel accepts.

Each function here makes one request (a program load, a map creation, a BTF
load) and turns the kernel's answer into ``(supported, why not)``; it
closes whatever it opened.  Nothing is cached here: :mod:`pybpf.features`
caches, names and documents the features.

Privileges.  A probe that meets EPERM (or EACCES from perf_event_open)
while the caller lacks CAP_BPF/CAP_SYS_ADMIN raises :class:`SyscallError`
instead of answering "no" (:func:`check_privilege`); a privileged caller's
EPERM comes from the kernel itself (lockdown, an LSM) and is an answer
(:func:`refused` says so).

Example::

    from pybpf import _probes
    from pybpf._sys.uapi import ProgType

    _probes.probe_prog_type(ProgType.XDP)        # (True, None)
    _probes.probe_prog_type(999)                 # (False, 'the kernel rejects this program type (EINVAL)')
"""

from __future__ import annotations

import ctypes
import errno as _errno
import mmap
import os
from types import MappingProxyType

from pybpf._sys.attrs import LinkCreateAttr, MapCreateAttr, ProgLoadAttr
from pybpf._sys.commands import btf_load
from pybpf._sys.flags import MapFlag, ProgFlag
from pybpf._sys.kernel import kernel_version_code
from pybpf._sys.syscall import ENOTSUPP, FD, address, bpf, errno_name, lockdown_mode
from pybpf._sys.uapi import AttachType, Cmd, MapType, ProgType
from pybpf.asm.instruction import encode_all
from pybpf.asm.opcodes import Size
from pybpf.errors import BPFError, SyscallError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Mapping

    from pybpf.btf.types import BTFKind

Result = tuple[bool, "str | None"]  # (supported, why not)


# ---------------------------------------------------------------- privileges and errors

_CAP_SYS_ADMIN, _CAP_PERFMON, _CAP_BPF = 21, 38, 39


def _privileged() -> bool:
    """True when the effective capabilities allow BPF probing (CAP_SYS_ADMIN, or CAP_BPF+CAP_PERFMON)."""
    try:
        with open("/proc/self/status") as f:
            found = next((text for text in f if text.startswith("CapEff:")), None)
        caps = int(found.split()[1], 16) if found else None
    except (OSError, ValueError, IndexError):
        caps = None
    if caps is None:
        return os.geteuid() == 0
    return bool(caps >> _CAP_SYS_ADMIN & 1) or bool(caps >> _CAP_BPF & 1 and caps >> _CAP_PERFMON & 1)


def check_privilege(err: int, *, perf: bool = False) -> None:
    """Raise when ``err`` is a permission error caused by the caller, not the kernel.

    bpf(2) says EPERM; perf_event_open(2) may also say EACCES (perf_event_paranoid).
    """
    if (err == _errno.EPERM or (perf and err == _errno.EACCES)) and not _privileged():
        raise SyscallError(
            "operation not permitted: run as root or grant CAP_BPF and CAP_PERFMON "
            "(CAP_SYS_ADMIN before Linux 5.8); without them pybpf cannot tell what the kernel supports",
            errno=err,
        )


def refused(what: str) -> str:
    """Why a privileged caller meets EPERM: the kernel refuses (lockdown or an LSM)."""
    mode = lockdown_mode()
    why = f"kernel lockdown={mode}" if mode and mode != "none" else "kernel lockdown or an LSM"
    return f"{what} refused with EPERM although the caller is privileged ({why})"


def type_name(enum: type, value: int) -> str:
    """``enum(value).name``, or ``type N`` for a number the enum does not know."""
    try:
        return enum(value).name
    except ValueError:
        return f"type {value}"


# ---------------------------------------------------------------- raw requests

RETURN_0 = bytes.fromhex("b700000000000000" "9500000000000000")   # r0 = 0; exit
_LOG_SIZE = 16 * 1024


def _errno_of(exc: SyscallError) -> int:
    err = exc.errno or 0
    check_privilege(err)
    return err


def load(prog_type: int, insns: bytes = RETURN_0, *, attach_type: int = 0, btf_id: int = 0,
         attach_prog_fd: int = 0, flags: int = 0, log: bool = False) -> tuple[FD | None, int, str]:
    """BPF_PROG_LOAD a probe program: (fd or None, errno, verifier log)."""
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(b"GPL")
    buf = ctypes.create_string_buffer(_LOG_SIZE) if log else None
    kern_version = 0
    if prog_type == ProgType.KPROBE:  # kprobe programs had to name the kernel version before 5.0
        kern_version = kernel_version_code()
    attr = ProgLoadAttr(
        prog_type=prog_type, insn_cnt=len(insns) // 8, insns=address(code), license=address(lic),
        log_level=1 if log else 0, log_size=_LOG_SIZE if log else 0, log_buf=address(buf),
        kern_version=kern_version, prog_flags=flags, expected_attach_type=attach_type,
        attach_btf_id=btf_id, attach_prog_fd=attach_prog_fd,
    )
    try:
        fd: FD | None = FD(bpf(Cmd.PROG_LOAD, attr, op="load probe program"), "probe program")
        err = 0
    except SyscallError as exc:
        fd, err = None, _errno_of(exc)
    return fd, err, buf.value.decode(errors="replace") if buf else ""


def create_map(map_type: int, key_size: int = 4, value_size: int = 4, max_entries: int = 1,
               **extra: int) -> tuple[FD | None, int]:
    """BPF_MAP_CREATE a probe map: (fd or None, errno)."""
    attr = MapCreateAttr(map_type=map_type, key_size=key_size, value_size=value_size,
                         max_entries=max_entries, **extra)
    return call(Cmd.MAP_CREATE, attr)


def call(cmd: Cmd, attr: ctypes.Structure) -> tuple[FD | None, int]:
    """Any bpf(2) command: (fd of a success or None, errno)."""
    try:
        res = bpf(cmd, attr, op="probe")
    except SyscallError as exc:
        return None, _errno_of(exc)
    return (FD(res, "probe result") if res > 0 else None), 0


def loads(prog_type: int, what: str, **options: int) -> Result:
    """Whether a probe program of ``prog_type`` with ``options`` loads (EPERM: refused)."""
    fd, err, _ = load(prog_type, **options)
    if fd is not None:
        fd.close()
        return True, None
    return False, refused(what) if err == _errno.EPERM else f"{what} fails ({errno_name(err)})"


# ---------------------------------------------------------------- BTF

_btf_blobs: dict[str, bytes] = {}


def btf_probe_blob(which: str) -> bytes:
    """The minimal BTF blob of probe ``which`` (a value of :data:`BTF_KIND_PROBE`), built on first use."""
    if not _btf_blobs:
        _btf_blobs.update(_btf_probes())
    return _btf_blobs[which]


def _btf_probes() -> dict[str, bytes]:
    """One minimal BTF blob per probe; type [1] of "base" is a signed int."""
    from pybpf.btf import types as bt
    from pybpf.btf.writer import encode as encode_btf

    i32 = bt.Int("int", 4, bt.IntEncoding.SIGNED)
    proto = bt.FuncProto(i32, [("a", i32)])
    var = bt.Var("a", i32, bt.VarLinkage.GLOBAL)
    tag = bt.TypeTag(i32, "tag")
    return {
        "base": encode_btf([i32]),
        "func": encode_btf([i32, proto, bt.Func("f", proto, bt.FuncLinkage.STATIC)]),
        "func_global": encode_btf([i32, proto, bt.Func("f", proto, bt.FuncLinkage.GLOBAL)]),
        "datasec": encode_btf([i32, var, bt.Datasec(".data", 4, [bt.VarSecinfo(var, 0, 4)])]),
        "float": encode_btf([bt.Float("float", 4)]),
        "decl_tag": encode_btf([i32, var, bt.DeclTag("tag", var, -1)]),
        "type_tag": encode_btf([i32, tag, bt.Pointer(tag)]),
        "enum64": encode_btf([bt.Enum64("e", 8, [("v", 1)])]),
    }


_BASIC_KINDS = ("int", "ptr", "array", "struct", "union", "enum", "fwd", "typedef", "volatile", "const", "restrict")
#: the blob that proves each name of BTF_KINDS
BTF_KIND_PROBE: Mapping[str, str] = MappingProxyType({
    **{k: "base" for k in _BASIC_KINDS}, "func_proto": "func", "var": "datasec",
    **{k: k for k in ("func", "func_global", "datasec", "float", "decl_tag", "type_tag", "enum64")},
})
#: Every name :func:`pybpf.features.btf_kind_supported` takes, with the first Linux release that accepts it.
BTF_KINDS: Mapping[str, str] = MappingProxyType({
    **{k: "4.18" for k in _BASIC_KINDS}, "func": "5.0", "func_proto": "5.0", "func_global": "5.6",
    "var": "5.2", "datasec": "5.2", "float": "5.13", "decl_tag": "5.16", "type_tag": "5.17", "enum64": "6.0",
})


def probe_btf(which: str) -> Result:
    """Whether BPF_BTF_LOAD accepts the blob of probe ``which``."""
    fd, _log, err = btf_load(btf_probe_blob(which))
    if fd is not None:
        fd.close()
        return True, None
    check_privilege(err)
    if err == _errno.EPERM:
        return False, refused("BPF_BTF_LOAD")
    return False, f"BPF_BTF_LOAD failed with {errno_name(err)}"


TRACE_TYPEDEFS = ("btf_trace_sys_enter", "btf_trace_sched_switch", "btf_trace_task_newtask")
FENTRY_FUNCS = ("bpf_fentry_test1", "vfs_read", "schedule")


def vmlinux_id(names: tuple[str, ...], kind: BTFKind) -> int | None:
    """The BTF id of the first of ``names`` found in vmlinux with ``kind`` (None without kernel BTF)."""
    from pybpf.btf.kernel import kernel_spec   # the kernel BTF only for the probes that need it

    try:
        spec = kernel_spec()
        for name in names:
            t = spec.find(name, kind)
            if t is not None and t.id:
                return int(t.id)
    except BPFError:
        pass  # no kernel BTF, or BTF this reader cannot parse: no target
    return None


# ---------------------------------------------------------------- program / map / helper probes

# Program types refused without an expected attach type from the release that added them
# (cgroup sock_addr 4.17, sockopt 5.3, sk_lookup 5.9, netfilter 6.4).
_ATTACH_TYPE_NEEDED = {
    ProgType.CGROUP_SOCK_ADDR: AttachType.CGROUP_INET4_CONNECT,
    ProgType.CGROUP_SOCKOPT: AttachType.CGROUP_GETSOCKOPT,
    ProgType.SK_LOOKUP: AttachType.SK_LOOKUP,
    ProgType.LIRC_MODE2: AttachType.LIRC_MODE2,
    ProgType.NETFILTER: AttachType.NETFILTER,
}


def prog_settings(pt: int, *, real_target: bool = False) -> dict[str, int] | None:
    """Load attributes a trivial program of type ``pt`` needs; None if it cannot be built.

    Syscall programs are probed sleepable, as they are used; TRACING programs as tp_btf.
    """
    if pt in _ATTACH_TYPE_NEEDED:
        return dict(attach_type=_ATTACH_TYPE_NEEDED[pt])
    if pt == ProgType.SYSCALL:
        return dict(flags=ProgFlag.SLEEPABLE)
    if pt == ProgType.TRACING:
        # A tp_btf program: unlike fentry it needs no trampoline, so lockdown leaves it alone.
        # Without a real target, id 1 makes a kernel that knows the type say "not a typedef".
        from pybpf.btf.types import BTFKind

        tid = vmlinux_id(TRACE_TYPEDEFS, BTFKind.TYPEDEF) if real_target else 1
        return None if tid is None else dict(attach_type=AttachType.TRACE_RAW_TP, btf_id=tid)
    return {}


def probe_prog_type(pt: int) -> Result:
    """Load ``r0 = 0; exit``; a kernel without the type says EINVAL before verifying anything.

    TRACING, LSM and EXT programs need a BTF attach target and STRUCT_OPS a struct_ops type:
    they are given a target that cannot work, and a kernel that knows the type answers with
    a specific verifier message (or ENOTSUPP) instead of a bare EINVAL.  For EXT aimed at a
    program without BTF, older kernels say "Cannot replace kernel functions", newer ones
    "... can only be attached to another program annotated with BTF"; both count.
    """
    if pt == ProgType.EXT:
        target, err, _ = load(ProgType.SOCKET_FILTER)
        if target is None:
            return False, f"cannot load the target program ({errno_name(err)})"
        with target:
            fd, err, log = load(pt, btf_id=1, attach_prog_fd=target.fileno(), log=True)
        expect = (_errno.EINVAL, ("annotated with BTF", "Cannot replace kernel functions"))
    elif pt == ProgType.LSM:
        fd, err, log = load(pt, attach_type=AttachType.LSM_MAC, btf_id=1, log=True)
        expect = (_errno.EINVAL, ("is not a function",))
    elif pt == ProgType.TRACING:
        fd, err, log = load(pt, log=True, **(prog_settings(pt) or {}))
        expect = (_errno.EINVAL, ("is not a typedef",))
    elif pt == ProgType.STRUCT_OPS:
        fd, err, log = load(pt)
        expect = (ENOTSUPP, ("",))  # a known type without a struct_ops target
    else:
        fd, err, log = load(pt, **(prog_settings(pt) or {}))
        expect = None
    if fd is not None:
        fd.close()
        return True, None
    if expect and err == expect[0] and any(m in log for m in expect[1]):
        return True, None
    if err == _errno.EPERM:
        return False, refused("the program load")
    return False, f"the kernel rejects this program type ({errno_name(err)})"


_LOCAL_STORAGE = (MapType.SK_STORAGE, MapType.INODE_STORAGE, MapType.TASK_STORAGE, MapType.CGRP_STORAGE)
_MAP_SETTINGS: dict[int, dict[str, int]] = {
    MapType.STACK_TRACE: dict(value_size=8),
    MapType.LPM_TRIE: dict(key_size=8, value_size=8, map_flags=MapFlag.NO_PREALLOC),
    # key: struct bpf_cgroup_storage_key (16 bytes); a bare u64 key is only accepted since 5.9
    MapType.CGROUP_STORAGE: dict(key_size=16, value_size=8, max_entries=0),
    MapType.PERCPU_CGROUP_STORAGE: dict(key_size=16, value_size=8, max_entries=0),
    MapType.QUEUE: dict(key_size=0),
    MapType.STACK: dict(key_size=0),
    MapType.BLOOM_FILTER: dict(key_size=0),
    MapType.RINGBUF: dict(key_size=0, value_size=0, max_entries=mmap.PAGESIZE),
    MapType.USER_RINGBUF: dict(key_size=0, value_size=0, max_entries=mmap.PAGESIZE),
    MapType.ARENA: dict(key_size=0, value_size=0, max_entries=1, map_flags=MapFlag.MMAPABLE),
    MapType.STRUCT_OPS: dict(btf_vmlinux_value_type_id=1),  # no such struct_ops type: ENOTSUPP if known
}


def probe_map_type(mt: int) -> Result:
    """Create a one-entry map with the sizes and flags ``mt`` insists on; unknown types say EINVAL."""
    kw = dict(_MAP_SETTINGS.get(mt, {}))
    extra: FD | None = None  # the BTF or inner map the probe map needs
    if mt in _LOCAL_STORAGE:
        extra, _, err = btf_load(btf_probe_blob("base"))
        if extra is None:
            check_privilege(err)
            return False, f"local storage maps need BTF, which failed to load ({errno_name(err)})"
        kw = dict(max_entries=0, map_flags=MapFlag.NO_PREALLOC, btf_fd=extra.fileno(),
                  btf_key_type_id=1, btf_value_type_id=1)
    elif mt in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS):
        extra, err = create_map(MapType.ARRAY)
        if extra is None:
            return False, f"cannot create the inner map ({errno_name(err)})"
        kw = dict(inner_map_fd=extra.fileno())
    try:
        fd, err = create_map(mt, **kw)
    finally:
        if extra is not None:
            extra.close()
    if fd is not None:
        fd.close()
        return True, None
    if mt == MapType.STRUCT_OPS and err == ENOTSUPP:
        return True, None
    if err == _errno.EPERM:
        return False, refused("the map creation")
    return False, f"the kernel rejects this map type ({errno_name(err)})"


_HELPER_REFUSALS = ("invalid func ", "unknown func ", "program of this type cannot use helper ")
#: program types whose helper probes would need a real attach target
NO_HELPER_PROBE = (ProgType.EXT, ProgType.LSM, ProgType.STRUCT_OPS)


def probe_helper(pt: int, helper: int) -> Result:
    """Load ``call helper; exit`` as a ``pt`` program (a type the kernel has) and read the verdict.

    "unknown func", "invalid func" or "program of this type cannot use helper"
    mean no; a complaint about the arguments means yes.
    """
    settings = prog_settings(pt, real_target=True)
    if settings is None:
        return False, "no kernel BTF to build a tp_btf probe program"
    from pybpf.asm import builder as b

    fd, err, log = load(pt, encode_all([b.call_helper(helper), b.exit_()]), log=True, **settings)
    if fd is not None:
        fd.close()
        return True, None
    for line in log.splitlines():
        if any(refusal in line for refusal in _HELPER_REFUSALS):
            return False, f"the verifier says: {line.strip()}"
    if err == _errno.EPERM:
        return False, refused("the program load")
    if not log:
        return False, f"the load failed with {errno_name(err)} and no verifier log"
    return True, None  # the verifier knows the helper and only disliked its arguments


# ---------------------------------------------------------------- probes of single features

def global_data() -> Result:
    """Whether a program may address a map value directly (BPF_PSEUDO_MAP_VALUE, Linux 5.2)."""
    from pybpf.asm import builder as b

    array, err = create_map(MapType.ARRAY, value_size=8)
    if array is None:
        return False, f"cannot create an array map ({errno_name(err)})"
    with array:
        insns = encode_all(b.assemble([b.ld_map_value(1, array.fileno()), b.st_mem(Size.DW, 1, 0, 42),
                                       b.mov64_imm(0, 0), b.exit_()]))
        fd, err, _ = load(ProgType.SOCKET_FILTER, insns)
    if fd is None:
        return False, f"a BPF_PSEUDO_MAP_VALUE load is rejected ({errno_name(err)})"
    fd.close()
    return True, None


def link_create_refused(prog_type: ProgType, attach_type: AttachType,
                        fill: Callable[[LinkCreateAttr, int], None], understood: tuple[int, ...]) -> Result:
    """Load a program and ask BPF_LINK_CREATE for a link it must refuse.

    ``understood`` are the errnos of a kernel that knows the link type (older
    kernels say EINVAL).  ``fill(attr, prog_fd)`` sets the attach-type specific
    fields; the buffers they point into belong to the caller's frame.
    """
    prog, err, _ = load(prog_type, attach_type=attach_type)
    if prog is None:
        return False, f"a {prog_type.name} program with attach type {attach_type.name} is rejected ({errno_name(err)})"
    with prog:
        attr = LinkCreateAttr(prog_fd=prog.fileno(), attach_type=attach_type)
        fill(attr, prog.fileno())
        link, err = call(Cmd.LINK_CREATE, attr)
    if link is not None:  # should not happen; it would still mean yes
        link.close()
        return True, None
    return (True, None) if err in understood else (False, f"BPF_LINK_CREATE fails with {errno_name(err)}")
