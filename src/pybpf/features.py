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

    features.prog_type_supported(ProgType.XDP)
    features.map_type_supported(MapType.RINGBUF)
    features.helper_supported(ProgType.TRACEPOINT, HelperID.get_attach_cookie)
    features.btf_kind_supported("enum64")

The features and the first Linux release with each::

    bpf_syscall 3.18     jit 3.18            btf 4.18              vmlinux_btf 5.4
    global_data 5.2      mmapable_arrays 5.5 batch_ops 5.6         ringbuf 5.8
    user_ringbuf 6.1     bloom_filter 5.16   raw_tp 4.17           tp_btf 5.5
    fentry 5.5           kprobes 4.1         uprobes 4.17          bpf_cookie 5.15
    probe_read_kernel 5.5                    perf_link 5.15        link_update 5.7
    kprobe_multi_link 5.18                   uprobe_multi_link 6.6 tcx 6.6
    task_fd_query 4.17

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
import struct
import threading
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping, TypeVar

from pybpf._sys.attrs import (
    LinkCreateAttr, LinkUpdateAttr, MapBatchAttr, MapCreateAttr, PerfEventAttr, ProgLoadAttr,
    TaskFdQueryAttr,
)
from pybpf._sys.commands import btf_load, prog_info
from pybpf._sys.flags import MapFlag, ProgFlag
from pybpf._sys.syscall import FD, address, bpf, lockdown_mode
from pybpf._sys.uapi import AttachType, Cmd, HelperID, MapType, ProgType
from pybpf.errors import BPFError, NotSupportedError, SyscallError

__all__ = [
    "Feature", "FEATURES", "has", "require", "reason", "all_features", "override", "clear_cache",
    "prog_type_supported", "map_type_supported", "helper_supported", "btf_kind_supported",
    "BTF_KINDS",
]

ENOTSUPP = 524  # kernel-internal "not supported"; reaches user space from some bpf(2) paths

_T = TypeVar("_T")
_Result = tuple[bool, str | None]  # (supported, why not)

_lock = threading.RLock()


# ---------------------------------------------------------------- privileges

_CAP_SYS_ADMIN, _CAP_PERFMON, _CAP_BPF = 21, 38, 39


def _privileged() -> bool:
    """True when the effective capabilities allow BPF probing (CAP_SYS_ADMIN, or CAP_BPF+CAP_PERFMON)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    caps = int(line.split()[1], 16)
                    break
            else:
                return os.geteuid() == 0
    except OSError:
        return os.geteuid() == 0
    return bool(caps >> _CAP_SYS_ADMIN & 1) or bool(caps >> _CAP_BPF & 1 and caps >> _CAP_PERFMON & 1)


def _check_privilege(err: int, *, perf: bool = False) -> None:
    """Raise when ``err`` is a permission error caused by the caller, not the kernel.

    bpf(2) says EPERM; perf_event_open(2) may also say EACCES (perf_event_paranoid).
    """
    if (err == _errno.EPERM or (perf and err == _errno.EACCES)) and not _privileged():
        raise SyscallError(
            "operation not permitted: run as root or grant CAP_BPF and CAP_PERFMON "
            "(CAP_SYS_ADMIN before Linux 5.8); without them pybpf cannot tell what the kernel supports",
            errno=err,
        )


def _refused(what: str) -> str:
    mode = lockdown_mode()
    why = f"kernel lockdown={mode}" if mode and mode != "none" else "kernel lockdown or an LSM"
    return f"{what} refused with EPERM although the caller is privileged ({why})"


# ---------------------------------------------------------------- raw material

def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


_MOV64_IMM, _EXIT, _CALL, _LD_IMM64, _ST_DW = 0xB7, 0x95, 0x85, 0x18, 0x7A
_PSEUDO_MAP_VALUE = 2
_RETURN_0 = _insn(_MOV64_IMM, 0, imm=0) + _insn(_EXIT)
_LOG_SIZE = 16 * 1024


def _kernel_version_code() -> int:
    """LINUX_VERSION_CODE of the running kernel (kprobe programs needed it before 5.0)."""
    parts = []
    for piece in os.uname().release.split("-")[0].split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits or 0))
    major, minor, patch = (parts + [0, 0, 0])[:3]
    return (major << 16) | (minor << 8) | min(patch, 255)


def _load(prog_type: int, insns: bytes = _RETURN_0, *, attach_type: int = 0, btf_id: int = 0,
          attach_prog_fd: int = 0, flags: int = 0, log: bool = False) -> tuple[FD | None, int, str]:
    """BPF_PROG_LOAD a probe program: (fd or None, errno, verifier log)."""
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(b"GPL")
    buf = ctypes.create_string_buffer(_LOG_SIZE) if log else None
    attr = ProgLoadAttr(
        prog_type=prog_type, insn_cnt=len(insns) // 8, insns=address(code), license=address(lic),
        log_level=1 if log else 0, log_size=_LOG_SIZE if log else 0, log_buf=address(buf),
        kern_version=_kernel_version_code() if prog_type == ProgType.KPROBE else 0,
        prog_flags=flags, expected_attach_type=attach_type, attach_btf_id=btf_id,
        attach_prog_fd=attach_prog_fd,
    )
    try:
        fd = bpf(Cmd.PROG_LOAD, attr, op="load probe program")
    except SyscallError as exc:
        _check_privilege(exc.errno or 0)
        return None, exc.errno or 0, buf.value.decode(errors="replace") if buf else ""
    return FD(fd, "probe program"), 0, buf.value.decode(errors="replace") if buf else ""


def _create_map(map_type: int, key_size: int = 4, value_size: int = 4, max_entries: int = 1,
                **extra: int) -> tuple[FD | None, int]:
    """BPF_MAP_CREATE a probe map: (fd or None, errno)."""
    attr = MapCreateAttr(map_type=map_type, key_size=key_size, value_size=value_size,
                         max_entries=max_entries, **extra)
    try:
        return FD(bpf(Cmd.MAP_CREATE, attr, op="create probe map"), "probe map"), 0
    except SyscallError as exc:
        _check_privilege(exc.errno or 0)
        return None, exc.errno or 0


def _call(cmd: Cmd, attr: ctypes.Structure) -> tuple[FD | None, int]:
    """Any other bpf(2) command: (fd of a success or None, errno)."""
    try:
        res = bpf(cmd, attr, op="probe")
    except SyscallError as exc:
        _check_privilege(exc.errno or 0)
        return None, exc.errno or 0
    return (FD(res, "probe result") if res > 0 else None), 0


def _errname(err: int) -> str:
    return "ENOTSUPP" if err == ENOTSUPP else _errno.errorcode.get(err, f"errno {err}")


# ---------------------------------------------------------------- BTF blobs

_BTF_MAGIC = 0xEB9F
_KIND = dict(int=1, ptr=2, array=3, struct=4, union=5, enum=6, fwd=7, typedef=8, volatile=9,
             const=10, restrict=11, func=12, func_proto=13, var=14, datasec=15, float=16,
             decl_tag=17, type_tag=18, enum64=19)


def _btf_blob(*types: tuple) -> bytes:
    """Assemble BTF from ``(struct format, *fields)`` records; a ``"@name"`` field becomes a string offset."""
    strings = bytearray(b"\0")
    offsets: dict[str, int] = {}

    def string(name: str) -> int:
        if name not in offsets:
            offsets[name] = len(strings)
            strings.extend(name.encode() + b"\0")
        return offsets[name]

    body = bytearray()
    for fmt, *values in types:
        body += struct.pack(fmt, *(string(v[1:]) if isinstance(v, str) else v for v in values))
    header = struct.pack("<HBBIIIII", _BTF_MAGIC, 1, 0, 24, 0, len(body), len(body), len(strings))
    return header + bytes(body) + bytes(strings)


def _info(kind: str, vlen: int = 0) -> int:
    return (_KIND[kind] << 24) | vlen


_INT = ("<IIII", "@int", _info("int"), 4, (1 << 24) | 32)  # [1] signed 32-bit int
_BTF_PROBES: dict[str, bytes] = {
    "base": _btf_blob(_INT),
    "func": _btf_blob(_INT, ("<IIIII", 0, _info("func_proto", 1), 1, "@a", 1),
                      ("<III", "@f", _info("func", 0), 2)),
    "func_global": _btf_blob(_INT, ("<IIIII", 0, _info("func_proto", 1), 1, "@a", 1),
                             ("<III", "@f", _info("func", 1), 2)),  # vlen = linkage (1: global)
    "datasec": _btf_blob(_INT, ("<IIII", "@a", _info("var"), 1, 1),
                         ("<IIIIII", "@.data", _info("datasec", 1), 4, 2, 0, 4)),
    "float": _btf_blob(("<III", "@float", _info("float"), 4)),
    "decl_tag": _btf_blob(_INT, ("<IIII", "@a", _info("var"), 1, 1),
                          ("<IIIi", "@tag", _info("decl_tag"), 2, -1)),
    "type_tag": _btf_blob(_INT, ("<III", "@tag", _info("type_tag"), 1), ("<III", 0, _info("ptr"), 2)),
    "enum64": _btf_blob(("<IIIIII", "@e", _info("enum64", 1), 8, "@v", 1, 1)),
}
_BASIC_KINDS = ("int", "ptr", "array", "struct", "union", "enum", "fwd", "typedef", "volatile", "const", "restrict")
# btf_kind_supported() name → the blob that proves it
_BTF_KIND_PROBE = {**{k: "base" for k in _BASIC_KINDS}, "func_proto": "func", "var": "datasec",
                   **{k: k for k in ("func", "func_global", "datasec", "float", "decl_tag", "type_tag", "enum64")}}
#: Every name :func:`btf_kind_supported` takes, with the first Linux release that accepts it.
BTF_KINDS: Mapping[str, str] = MappingProxyType({
    **{k: "4.18" for k in _BASIC_KINDS}, "func": "5.0", "func_proto": "5.0", "func_global": "5.6",
    "var": "5.2", "datasec": "5.2", "float": "5.13", "decl_tag": "5.16", "type_tag": "5.17", "enum64": "6.0",
})


def _probe_btf(which: str) -> _Result:
    fd, log, err = btf_load(_BTF_PROBES[which])
    if fd is not None:
        fd.close()
        return True, None
    _check_privilege(err)
    if err == _errno.EPERM:
        return False, _refused("BPF_BTF_LOAD")
    return False, f"BPF_BTF_LOAD failed with {_errname(err)}"


# ---------------------------------------------------------------- kernel BTF

_VMLINUX = "/sys/kernel/btf/vmlinux"
_TRACE_TYPEDEFS = ("btf_trace_sys_enter", "btf_trace_sched_switch", "btf_trace_task_newtask")
_FENTRY_FUNCS = ("bpf_fentry_test1", "vfs_read", "schedule")
_vmlinux_ids: dict[tuple[str, int], int] | None = None

# extra 32-bit words after the 12-byte common header: fixed per kind, or per vlen entry
_BTF_FIXED = {1: 1, 2: 0, 3: 3, 7: 0, 8: 0, 9: 0, 10: 0, 11: 0, 12: 0, 14: 1, 16: 0, 17: 1, 18: 0}
_BTF_PER_VLEN = {4: 3, 5: 3, 6: 2, 13: 2, 15: 3, 19: 3}


def _scan_vmlinux(wanted: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """Type ids of ``(name, kind)`` pairs in vmlinux BTF: one pass over the raw type section."""
    with open(_VMLINUX, "rb") as f:
        data = f.read()
    magic, _ver, _flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<HBBIIIII", data)
    if magic != _BTF_MAGIC:
        raise ValueError("not BTF")
    strs = data[hdr_len + str_off:hdr_len + str_off + str_len]
    by_off: dict[int, list[tuple[str, int]]] = {}
    for name, kind in wanted:
        pos = strs.find(b"\0" + name.encode() + b"\0")  # BTF strings are deduplicated
        if pos >= 0:
            by_off.setdefault(pos + 1, []).append((name, kind))
    words = memoryview(data)[hdr_len + type_off:hdr_len + type_off + type_len].cast("I")
    found: dict[tuple[str, int], int] = {}
    i, tid, n = 0, 1, len(words)
    while i < n and len(found) < len(wanted):
        info = words[i + 1]
        kind = (info >> 24) & 0x1F
        hits = by_off.get(words[i])
        if hits:
            for key in hits:
                if key[1] == kind:
                    found.setdefault(key, tid)
        fixed = _BTF_FIXED.get(kind)
        i += 3 + (fixed if fixed is not None else _BTF_PER_VLEN[kind] * (info & 0xFFFF))
        tid += 1
    return found


def _vmlinux_id(names: tuple[str, ...], kind: str) -> int | None:
    """The BTF id of the first of ``names`` found in vmlinux with ``kind`` (None without kernel BTF).

    Uses pybpf.btf's cached kernel BTF when it is usable (the parse is then shared with
    the loader); otherwise one pass of :func:`_scan_vmlinux` over the raw blob.
    """
    tid = _vmlinux_id_from_spec(names, kind)
    if tid is not None:
        return tid
    global _vmlinux_ids
    with _lock:
        if _vmlinux_ids is None:
            wanted = {(n, _KIND["typedef"]) for n in _TRACE_TYPEDEFS} | {(n, _KIND["func"]) for n in _FENTRY_FUNCS}
            try:
                _vmlinux_ids = _scan_vmlinux(wanted)
            except (OSError, ValueError, struct.error, KeyError, IndexError):
                _vmlinux_ids = {}
        for name in names:
            tid = _vmlinux_ids.get((name, _KIND[kind]))
            if tid is not None:
                return tid
    return None


def _vmlinux_id_from_spec(names: tuple[str, ...], kind: str) -> int | None:
    try:
        from pybpf.btf.kernel import kernel_spec  # imported late: pybpf.btf is a layer above _sys only
        spec = kernel_spec()
        for name in names:
            t = spec.find(name, _KIND[kind])
            if t is not None and t.id:
                return int(t.id)
    except (ImportError, AttributeError, TypeError, LookupError, ValueError, OSError, BPFError):
        pass  # no usable kernel_spec(): the scanner answers
    return None


# ---------------------------------------------------------------- program / map / helper probes

def _prog_settings(pt: int, *, real_target: bool = False) -> dict[str, int] | None:
    """Load attributes a trivial program of type ``pt`` needs; None if it cannot be built.

    These types refuse a program without an expected attach type from the release that added
    them (cgroup sock_addr 4.17, sockopt 5.3, sk_lookup 5.9, netfilter 6.4); syscall programs
    are probed sleepable, as they are used.
    """
    if pt == ProgType.CGROUP_SOCK_ADDR:
        return dict(attach_type=AttachType.CGROUP_INET4_CONNECT)
    if pt == ProgType.CGROUP_SOCKOPT:
        return dict(attach_type=AttachType.CGROUP_GETSOCKOPT)
    if pt == ProgType.SK_LOOKUP:
        return dict(attach_type=AttachType.SK_LOOKUP)
    if pt == ProgType.LIRC_MODE2:
        return dict(attach_type=AttachType.LIRC_MODE2)
    if pt == ProgType.NETFILTER:
        return dict(attach_type=AttachType.NETFILTER)
    if pt == ProgType.SYSCALL:
        return dict(flags=ProgFlag.SLEEPABLE)
    if pt == ProgType.TRACING:
        # A tp_btf program: unlike fentry it needs no trampoline, so lockdown leaves it alone.
        # Without a real target, id 1 makes a kernel that knows the type say "not a typedef".
        tid = _vmlinux_id(_TRACE_TYPEDEFS, "typedef") if real_target else 1
        return None if tid is None else dict(attach_type=AttachType.TRACE_RAW_TP, btf_id=tid)
    return {}


def _probe_prog_type(pt: int) -> _Result:
    """Load ``r0 = 0; exit``; a kernel without the type says EINVAL before verifying anything.

    TRACING, LSM and EXT programs need a BTF attach target and STRUCT_OPS a struct_ops type:
    they are given a target that cannot work, and a kernel that knows the type answers with
    a specific verifier message (or ENOTSUPP) instead of a bare EINVAL.  For EXT aimed at a
    program without BTF, older kernels say "Cannot replace kernel functions", newer ones
    "... can only be attached to another program annotated with BTF"; both count.
    """
    if pt == ProgType.EXT:
        target, err, _ = _load(ProgType.SOCKET_FILTER)
        if target is None:
            return False, f"cannot load the target program ({_errname(err)})"
        with target:
            fd, err, log = _load(pt, btf_id=1, attach_prog_fd=target.fileno(), log=True)
        expect = (_errno.EINVAL, ("annotated with BTF", "Cannot replace kernel functions"))
    elif pt == ProgType.LSM:
        fd, err, log = _load(pt, attach_type=AttachType.LSM_MAC, btf_id=1, log=True)
        expect = (_errno.EINVAL, ("is not a function",))
    elif pt == ProgType.TRACING:
        fd, err, log = _load(pt, log=True, **(_prog_settings(pt) or {}))
        expect = (_errno.EINVAL, ("is not a typedef",))
    elif pt == ProgType.STRUCT_OPS:
        fd, err, log = _load(pt)
        expect = (ENOTSUPP, ("",))  # a known type without a struct_ops target
    else:
        fd, err, log = _load(pt, **(_prog_settings(pt) or {}))
        expect = None
    if fd is not None:
        fd.close()
        return True, None
    if expect and err == expect[0] and any(m in log for m in expect[1]):
        return True, None
    if err == _errno.EPERM:
        return False, _refused("the program load")
    return False, f"the kernel rejects this program type ({_errname(err)})"


def _probe_map_type(mt: int) -> _Result:
    """Create a one-entry map with the sizes and flags ``mt`` insists on; unknown types say EINVAL."""
    kw: dict[str, int] = {}
    btf = inner = None
    if mt == MapType.STACK_TRACE:
        kw = dict(value_size=8)
    elif mt == MapType.LPM_TRIE:
        kw = dict(key_size=8, value_size=8, map_flags=MapFlag.NO_PREALLOC)
    elif mt in (MapType.CGROUP_STORAGE, MapType.PERCPU_CGROUP_STORAGE):
        # key: struct bpf_cgroup_storage_key (16 bytes); a bare u64 key is only accepted since 5.9
        kw = dict(key_size=16, value_size=8, max_entries=0)
    elif mt in (MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER):
        kw = dict(key_size=0)
    elif mt in (MapType.RINGBUF, MapType.USER_RINGBUF):
        kw = dict(key_size=0, value_size=0, max_entries=mmap.PAGESIZE)
    elif mt == MapType.ARENA:
        kw = dict(key_size=0, value_size=0, max_entries=1, map_flags=MapFlag.MMAPABLE)
    elif mt == MapType.STRUCT_OPS:
        kw = dict(btf_vmlinux_value_type_id=1)  # no such struct_ops type: ENOTSUPP if the map type is known
    elif mt in (MapType.SK_STORAGE, MapType.INODE_STORAGE, MapType.TASK_STORAGE, MapType.CGRP_STORAGE):
        btf, _, err = btf_load(_BTF_PROBES["base"])
        if btf is None:
            _check_privilege(err)
            return False, f"local storage maps need BTF, which failed to load ({_errname(err)})"
        kw = dict(max_entries=0, map_flags=MapFlag.NO_PREALLOC, btf_fd=btf.fileno(),
                  btf_key_type_id=1, btf_value_type_id=1)
    elif mt in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS):
        inner, err = _create_map(MapType.ARRAY)
        if inner is None:
            return False, f"cannot create the inner map ({_errname(err)})"
        kw = dict(inner_map_fd=inner.fileno())
    try:
        fd, err = _create_map(mt, **kw)
    finally:
        for extra in (btf, inner):
            if extra is not None:
                extra.close()
    if fd is not None:
        fd.close()
        return True, None
    if mt == MapType.STRUCT_OPS and err == ENOTSUPP:
        return True, None
    if err == _errno.EPERM:
        return False, _refused("the map creation")
    return False, f"the kernel rejects this map type ({_errname(err)})"


_HELPER_REFUSALS = ("invalid func ", "unknown func ", "program of this type cannot use helper ")


def _probe_helper(pt: int, helper: int) -> _Result:
    """Load ``call helper; exit`` and read the verifier's verdict on the call (see helper_supported)."""
    if pt in (ProgType.EXT, ProgType.LSM, ProgType.STRUCT_OPS):
        raise ValueError(f"helper probes cannot be built for {_type_name(ProgType, pt)} programs: "
                         "they need a real attach target")
    if not prog_type_supported(pt):
        return False, f"{_type_name(ProgType, pt)} programs are not supported"
    settings = _prog_settings(pt, real_target=True)
    if settings is None:
        return False, "no kernel BTF to build a tp_btf probe program"
    fd, err, log = _load(pt, _insn(_CALL, imm=helper) + _insn(_EXIT), log=True, **settings)
    if fd is not None:
        fd.close()
        return True, None
    for line in log.splitlines():
        if any(refusal in line for refusal in _HELPER_REFUSALS):
            return False, f"the verifier says: {line.strip()}"
    if err == _errno.EPERM:
        return False, _refused("the program load")
    if not log:
        return False, f"the load failed with {_errname(err)} and no verifier log"
    return True, None  # the verifier knows the helper and only disliked its arguments


def _type_name(enum: type, value: int) -> str:
    try:
        return enum(value).name
    except ValueError:
        return f"type {value}"


# ---------------------------------------------------------------- caches

_prog_cache: dict[int, _Result] = {}
_map_cache: dict[int, _Result] = {}
_helper_cache: dict[tuple[int, int], _Result] = {}
_btf_cache: dict[str, _Result] = {}
_feature_cache: dict[str, _Result] = {}


_depth = threading.local()


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


def prog_type_supported(prog_type: ProgType | int) -> bool:
    """True if the kernel loads programs of ``prog_type`` (an unknown number is simply False)."""
    pt = int(prog_type)
    return _cached(_prog_cache, pt, lambda: _probe_prog_type(pt), f"program type {_type_name(ProgType, pt)}")[0]


def map_type_supported(map_type: MapType | int) -> bool:
    """True if the kernel creates maps of ``map_type``."""
    mt = int(map_type)
    return _cached(_map_cache, mt, lambda: _probe_map_type(mt), f"map type {_type_name(MapType, mt)}")[0]


def helper_supported(prog_type: ProgType | int, helper: HelperID | int) -> bool:
    """True if programs of ``prog_type`` may call ``helper``.

    Asks the verifier with a program that calls the helper: "unknown func",
    "invalid func" or "program of this type cannot use helper" mean no; a
    complaint about the arguments means yes.  TRACING programs are probed as
    tp_btf programs.  EXT, LSM and STRUCT_OPS programs need a real target and
    raise ValueError.
    """
    key = (int(prog_type), int(helper))
    what = f"helper {_type_name(HelperID, key[1])} for {_type_name(ProgType, key[0])}"
    return _cached(_helper_cache, key, lambda: _probe_helper(*key), what)[0]


def btf_kind_supported(kind: str) -> bool:
    """True if the kernel accepts BTF of ``kind`` (a name of :data:`BTF_KINDS`, e.g. "enum64").

    "func_global" is a FUNC with global linkage; "var" and "datasec" arrived together.
    """
    if kind not in BTF_KINDS:
        raise ValueError(f"unknown BTF kind {kind!r}; known: {', '.join(BTF_KINDS)}")
    blob = _BTF_KIND_PROBE[kind]
    return _cached(_btf_cache, blob, lambda: _probe_btf(blob), f"BTF kind {kind}")[0]


# ---------------------------------------------------------------- named features

@dataclass(frozen=True)
class Feature:
    """One named feature: its name, the first Linux release with it, and what it means."""

    name: str
    min_kernel: str
    description: str
    probe: Callable[[], _Result]


_registry: dict[str, Feature] = {}
FEATURES: Mapping[str, Feature] = MappingProxyType(_registry)


def _feature(name: str, min_kernel: str, description: str) -> Callable[[Callable[[], _Result]], Callable[[], _Result]]:
    def register(probe: Callable[[], _Result]) -> Callable[[], _Result]:
        _registry[name] = Feature(name, min_kernel, description, probe)
        return probe
    return register


def _yes_if(ok: bool, why_not: str) -> _Result:
    return (True, None) if ok else (False, why_not)


@_feature("bpf_syscall", "3.18", "the bpf(2) system call works (an array map can be created)")
def _p_syscall() -> _Result:
    fd, err = _create_map(MapType.ARRAY)
    if fd is None:
        return False, f"BPF_MAP_CREATE failed with {_errname(err)}"
    fd.close()
    return True, None


@_feature("jit", "3.18", "programs are JIT-compiled to machine code")
def _p_jit() -> _Result:
    fd, err, _ = _load(ProgType.SOCKET_FILTER)
    if fd is None:
        return False, f"cannot load a program ({_errname(err)})"
    with fd:
        return _yes_if(prog_info(fd.fileno()).jited_prog_len > 0, "the JIT is off (net.core.bpf_jit_enable)")


@_feature("btf", "4.18", "BPF_BTF_LOAD accepts type information")
def _p_btf() -> _Result:
    return _probe_btf("base")


@_feature("vmlinux_btf", "5.4", "the kernel's own BTF is at /sys/kernel/btf/vmlinux (CO-RE, tp_btf, fentry)")
def _p_vmlinux_btf() -> _Result:
    try:
        with open(_VMLINUX, "rb") as f:
            head = f.read(2)
    except OSError as exc:
        return False, f"{_VMLINUX}: {exc.strerror}"
    return _yes_if(head == struct.pack("<H", _BTF_MAGIC), f"{_VMLINUX} is not BTF")


@_feature("global_data", "5.2", "programs address map values directly (.data/.rodata/.bss globals)")
def _p_global_data() -> _Result:
    array, err = _create_map(MapType.ARRAY, value_size=8)
    if array is None:
        return False, f"cannot create an array map ({_errname(err)})"
    with array:
        insns = (_insn(_LD_IMM64, 1, _PSEUDO_MAP_VALUE, imm=array.fileno()) + _insn(0, imm=0)
                 + _insn(_ST_DW, 1, off=0, imm=42) + _RETURN_0)
        fd, err, _ = _load(ProgType.SOCKET_FILTER, insns)
    if fd is None:
        return False, f"a BPF_PSEUDO_MAP_VALUE load is rejected ({_errname(err)})"
    fd.close()
    return True, None


@_feature("mmapable_arrays", "5.5", "array maps created with BPF_F_MMAPABLE can be mmap()ed")
def _p_mmapable() -> _Result:
    fd, err = _create_map(MapType.ARRAY, value_size=8, map_flags=MapFlag.MMAPABLE)
    if fd is None:
        return False, f"BPF_F_MMAPABLE is rejected ({_errname(err)})"
    with fd:
        try:
            mmap.mmap(fd.fileno(), mmap.PAGESIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE).close()
        except OSError as exc:
            return False, f"mmap of the map fails ({exc.strerror})"
    return True, None


@_feature("batch_ops", "5.6", "batched map operations (BPF_MAP_*_BATCH)")
def _p_batch() -> _Result:
    fd, err = _create_map(MapType.HASH)
    if fd is None:
        return False, f"cannot create a hash map ({_errname(err)})"
    keys, values = (ctypes.c_uint32 * 1)(1), (ctypes.c_uint32 * 1)(2)
    with fd:
        attr = MapBatchAttr(keys=address(keys), values=address(values), count=1, map_fd=fd.fileno())
        _, err = _call(Cmd.MAP_UPDATE_BATCH, attr)
    return _yes_if(err == 0, f"BPF_MAP_UPDATE_BATCH failed with {_errname(err)}")


def _map_feature(mt: MapType) -> _Result:
    _cached(_map_cache, int(mt), lambda: _probe_map_type(int(mt)), f"map type {mt.name}")
    return _map_cache[int(mt)]


@_feature("ringbuf", "5.8", "BPF ring buffer maps (BPF_MAP_TYPE_RINGBUF)")
def _p_ringbuf() -> _Result:
    return _map_feature(MapType.RINGBUF)


@_feature("user_ringbuf", "6.1", "user-space-to-kernel ring buffers (BPF_MAP_TYPE_USER_RINGBUF)")
def _p_user_ringbuf() -> _Result:
    return _map_feature(MapType.USER_RINGBUF)


@_feature("bloom_filter", "5.16", "bloom filter maps (BPF_MAP_TYPE_BLOOM_FILTER)")
def _p_bloom() -> _Result:
    return _map_feature(MapType.BLOOM_FILTER)


@_feature("raw_tp", "4.17", "raw tracepoint programs (BPF_PROG_TYPE_RAW_TRACEPOINT)")
def _p_raw_tp() -> _Result:
    prog_type_supported(ProgType.RAW_TRACEPOINT)
    return _prog_cache[ProgType.RAW_TRACEPOINT]


@_feature("tp_btf", "5.5", "BTF-typed raw tracepoints (tp_btf: TRACING programs, BPF_TRACE_RAW_TP)")
def _p_tp_btf() -> _Result:
    tid = _vmlinux_id(_TRACE_TYPEDEFS, "typedef")
    if tid is None:
        return False, "no kernel BTF with a btf_trace_* typedef"
    fd, err, _ = _load(ProgType.TRACING, attach_type=AttachType.TRACE_RAW_TP, btf_id=tid)
    if fd is not None:
        fd.close()
        return True, None
    return False, _refused("the tp_btf load") if err == _errno.EPERM else f"the tp_btf load fails ({_errname(err)})"


@_feature("fentry", "5.5", "fentry/fexit programs on kernel functions (BPF trampolines)")
def _p_fentry() -> _Result:
    tid = _vmlinux_id(_FENTRY_FUNCS, "func")
    if tid is None:
        return False, "no kernel BTF with a traceable function"
    fd, err, _ = _load(ProgType.TRACING, attach_type=AttachType.TRACE_FENTRY, btf_id=tid)
    if fd is not None:
        fd.close()
        return True, None
    return False, _refused("the fentry load") if err == _errno.EPERM else f"the fentry load fails ({_errname(err)})"


def _pmu_type(name: str) -> int | None:
    try:
        with open(f"/sys/bus/event_source/devices/{name}/type") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def _tracefs_file(name: str) -> bool:
    return any(os.path.exists(f"{root}/{name}") for root in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"))


@_feature("kprobes", "4.1", "kprobes on kernel functions (kprobe PMU or tracefs kprobe_events)")
def _p_kprobes() -> _Result:
    from pybpf._sys.perf import perf_event_open  # local: perf is only needed here

    pmu = _pmu_type("kprobe")
    if pmu is not None:
        last = 0
        for symbol in ("vfs_read", "do_sys_open", "ksys_read"):
            name = ctypes.create_string_buffer(symbol.encode())
            try:
                perf_event_open(PerfEventAttr(type=pmu, config1=address(name)), pid=-1, cpu=0).close()
                return True, None
            except SyscallError as exc:
                _check_privilege(exc.errno or 0, perf=True)
                last = exc.errno or 0
        if not _tracefs_file("kprobe_events"):
            return False, f"the kprobe PMU exists but opening a kprobe fails ({_errname(last)})"
    if _tracefs_file("kprobe_events"):
        return True, None
    return False, "no kprobe PMU and no tracefs kprobe_events (CONFIG_KPROBES or CONFIG_KPROBE_EVENTS is off)"


@_feature("uprobes", "4.17", "uprobes on user-space functions (uprobe perf PMU)")
def _p_uprobes() -> _Result:
    return _yes_if(_pmu_type("uprobe") is not None,
                   "no uprobe PMU in /sys/bus/event_source/devices (CONFIG_UPROBE_EVENTS is off)")


@_feature("bpf_cookie", "5.15", "bpf_get_attach_cookie() for kprobe/uprobe and tracepoint programs")
def _p_cookie() -> _Result:
    for pt in (ProgType.KPROBE, ProgType.TRACEPOINT):
        if not helper_supported(pt, HelperID.get_attach_cookie):
            return False, _helper_cache[(int(pt), int(HelperID.get_attach_cookie))][1]
    return True, None


@_feature("probe_read_kernel", "5.5", "bpf_probe_read_kernel()/_user() instead of bpf_probe_read()")
def _p_probe_read_kernel() -> _Result:
    helper_supported(ProgType.KPROBE, HelperID.probe_read_kernel)
    return _helper_cache[(int(ProgType.KPROBE), int(HelperID.probe_read_kernel))]


def _link_probe(prog_type: ProgType, attach_type: AttachType, fill: Callable[[LinkCreateAttr, int], None],
                understood: tuple[int, ...]) -> _Result:
    """Load a program and ask BPF_LINK_CREATE for a link it must refuse; ``understood`` are the
    errnos of a kernel that knows the link type (older kernels say EINVAL).  ``fill`` sets the
    attach-type specific fields; the buffers they point into belong to the caller's frame."""
    prog, err, _ = _load(prog_type, attach_type=attach_type)
    if prog is None:
        return False, f"a {prog_type.name} program with attach type {attach_type.name} is rejected ({_errname(err)})"
    with prog:
        attr = LinkCreateAttr(prog_fd=prog.fileno(), attach_type=attach_type)
        fill(attr, prog.fileno())
        link, err = _call(Cmd.LINK_CREATE, attr)
    if link is not None:  # should not happen; it would still mean yes
        link.close()
        return True, None
    return _yes_if(err in understood, f"BPF_LINK_CREATE fails with {_errname(err)}")


@_feature("perf_link", "5.15", "BPF links over perf events (BPF_LINK_CREATE with BPF_PERF_EVENT)")
def _p_perf_link() -> _Result:
    def fill(attr: LinkCreateAttr, prog_fd: int) -> None:
        attr.target_fd = prog_fd  # not a perf event: a kernel with perf links answers EBADF
    return _link_probe(ProgType.TRACEPOINT, AttachType.PERF_EVENT, fill, (_errno.EBADF,))


@_feature("link_update", "5.7", "BPF_LINK_UPDATE swaps the program of a link")
def _p_link_update() -> _Result:
    attr = LinkUpdateAttr(link_fd=0x7FFFFFFF)  # no such fd: EBADF from a kernel that knows the command
    _, err = _call(Cmd.LINK_UPDATE, attr)
    return _yes_if(err == _errno.EBADF, f"BPF_LINK_UPDATE fails with {_errname(err)}")


@_feature("kprobe_multi_link", "5.18", "one link attaching a program to many kprobes (fprobe)")
def _p_kprobe_multi() -> _Result:
    name = ctypes.create_string_buffer(b"pybpf_feature_probe_no_such_symbol")
    syms = (ctypes.c_uint64 * 1)(address(name))

    def fill(attr: LinkCreateAttr, _prog_fd: int) -> None:
        attr.u.kprobe_multi.syms, attr.u.kprobe_multi.cnt = address(syms), 1
    # A kernel that can do it fails to find the symbol (ESRCH since 6.0, ENOENT before).
    return _link_probe(ProgType.KPROBE, AttachType.TRACE_KPROBE_MULTI, fill, (_errno.ESRCH, _errno.ENOENT))


@_feature("uprobe_multi_link", "6.6", "one link attaching a program to many uprobes")
def _p_uprobe_multi() -> _Result:
    path = ctypes.create_string_buffer(b"/")
    offsets = (ctypes.c_uint64 * 1)(0)

    def fill(attr: LinkCreateAttr, _prog_fd: int) -> None:
        um = attr.u.uprobe_multi
        um.path, um.offsets, um.cnt = address(path), address(offsets), 1
    # "/" is not a regular file: EBADF from a kernel that knows uprobe_multi links.
    return _link_probe(ProgType.KPROBE, AttachType.TRACE_UPROBE_MULTI, fill, (_errno.EBADF,))


@_feature("tcx", "6.6", "tcx links: tc programs attached through BPF links")
def _p_tcx() -> _Result:
    def fill(attr: LinkCreateAttr, _prog_fd: int) -> None:
        attr.target_fd = 0  # ifindex 0 does not exist: ENODEV from a kernel with tcx
    return _link_probe(ProgType.SCHED_CLS, AttachType.TCX_INGRESS, fill, (_errno.ENODEV,))


@_feature("task_fd_query", "4.17", "BPF_TASK_FD_QUERY: what a perf event fd of a task is attached to")
def _p_task_fd_query() -> _Result:
    attr = TaskFdQueryAttr(pid=os.getpid(), fd=0x7FFFFFFF)  # no such fd: EBADF if the command is known
    _, err = _call(Cmd.TASK_FD_QUERY, attr)
    return _yes_if(err == _errno.EBADF, f"BPF_TASK_FD_QUERY fails with {_errname(err)}")


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
    """
    return _result(name)[0]


def require(name: str) -> None:
    """Raise :class:`pybpf.NotSupportedError` naming the feature and its minimum Linux if it is missing."""
    ok, why = _result(name)
    if not ok:
        raise NotSupportedError(name, _registry[name].min_kernel, why)


def reason(name: str) -> str | None:
    """Why feature ``name`` is missing (the probe's own words), or None when it is present."""
    return _result(name)[1]


def all_features() -> dict[str, bool]:
    """Every named feature and whether the kernel has it (overrides applied), in registry order."""
    return {name: has(name) for name in _registry}


def clear_cache() -> None:
    """Forget every probe result so the next question asks the kernel again."""
    global _vmlinux_ids
    with _lock:
        for cache in (_prog_cache, _map_cache, _helper_cache, _btf_cache, _feature_cache):
            cache.clear()
        _vmlinux_ids = None
