"""ctypes layouts of the bpf(2) attribute structs and the info structs.

Each ``*Attr`` class is the anonymous struct of ``union bpf_attr`` that one
command reads, laid out as in Linux 6.18's UAPI (``include/uapi/linux/bpf.h``).
The kernel accepts a shorter struct from older user space and checks that
bytes past what it knows are zero, so one layout works on older kernels as
long as the fields they lack are left at zero.  tests/test_sys.py compares
every offset here with the running kernel's BTF.

Example::

    attr = MapCreateAttr(map_type=MapType.HASH, key_size=4, value_size=8, max_entries=16)
    fd = bpf(Cmd.MAP_CREATE, attr)
"""

from __future__ import annotations

import ctypes
import struct
from ctypes import c_char, c_int32, c_uint8, c_uint16, c_uint32, c_uint64

from pybpf.errors import ArgumentError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable, Sequence

OBJ_NAME_LEN = 16

_INT_TYPES = (ctypes.c_int8, ctypes.c_uint8, ctypes.c_int16, ctypes.c_uint16, ctypes.c_int32, ctypes.c_uint32,
              ctypes.c_int64, ctypes.c_uint64, ctypes.c_int, ctypes.c_uint, ctypes.c_long, ctypes.c_ulong)
_SIGNED = {ctypes.c_int8, ctypes.c_int16, ctypes.c_int32, ctypes.c_int64, ctypes.c_int, ctypes.c_long}


def int_range(bits: int, signed: bool) -> tuple[int, int]:
    """The values an integer field of ``bits`` bits holds.

    >>> int_range(32, False), int_range(32, True)
    ((0, 4294967295), (-2147483648, 2147483647))
    """
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def _out_of_range(name: str, value: Any, bits: int, signed: bool) -> ArgumentError:
    lo, hi = int_range(bits, signed)
    return ArgumentError(f"{name} {value} is out of range ({'s' if signed else 'u'}{bits}: {lo}..{hi}); "
                         f"the kernel's field would wrap it")


def check_int(name: str, value: int, bits: int = 64, signed: bool = False) -> int:
    """``value`` as an int if it fits a kernel integer of ``bits`` bits, else :class:`ArgumentError`.

    For integers that reach the kernel outside the attr structs (system call
    arguments, arrays); the structs below check their own fields.

    >>> check_int("pid", 2**32 + 5, 32, signed=True)
    Traceback (most recent call last):
    pybpf.errors.ArgumentError: pid 4294967301 is out of range (s32: -2147483648..2147483647); the kernel's field would wrap it
    """
    lo, hi = int_range(bits, signed)
    if not lo <= value <= hi:
        raise _out_of_range(name, value, bits, signed)
    return int(value)


def u64_array(name: str, values: Iterable[int]) -> Any:
    """A ctypes ``u64[]`` of ``values``, each checked (ctypes would keep only the low 64 bits)."""
    vals = [check_int(name, v) for v in values]
    return (c_uint64 * len(vals))(*vals)


_set_field = ctypes.Structure.__setattr__


class _Attr(ctypes.Structure):
    """Base of the attr structs: an integer that does not fit its field is an :class:`ArgumentError`.

    ctypes keeps the low bits of an integer silently (``max_entries=2**32 + 4``
    would create a map of 4 entries); every field assignment, keyword
    arguments included, is checked here instead, once for all callers.
    ``_labels_`` names a field the way the user called it where that differs.
    """

    _ranges_: dict[str, tuple[int, int, int, bool]] = {}
    _labels_: dict[str, str] = {}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        ranges = {}
        for name, ctype, *bits in cls.__dict__.get("_fields_", ()):
            if ctype in _INT_TYPES:
                width = bits[0] if bits else ctypes.sizeof(ctype) * 8
                signed = ctype in _SIGNED
                ranges[name] = (*int_range(width, signed), width, signed)
        cls._ranges_ = ranges

    def __setattr__(self, name: str, value: Any) -> None:
        r = self._ranges_.get(name)
        if r is not None and isinstance(value, int) and not r[0] <= value <= r[1]:
            label = self._labels_.get(name, name)
            raise _out_of_range(label, value, r[2], r[3])
        _set_field(self, name, value)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name, *_ in self._fields_)
        return f"{type(self).__name__}({fields})"


def packer(cls: type[_Attr], fields: Sequence[str] | None = None) -> Callable[[Sequence[Any]], Any]:
    """A maker of ``cls`` attrs from the values of its fields, in order: one ``pack_into``.

    For hot paths, where a keyword or attribute per field costs a checked
    ``__setattr__`` each.  ``fields`` names the fields the values fill, in
    the struct's order (default: all of them); the others stay zero.
    ``struct`` refuses an integer its field cannot hold, as the checked
    fields do; the fields are then assigned one by one, which raises the
    :class:`ArgumentError` that names the field.  Integer and ``char[]``
    fields only (padding and fields left out become ``x``).  The maker's
    ``layout`` is the :class:`struct.Struct` and ``fields`` the field names.

    >>> make = packer(MapCreateAttr)
    >>> make((2, 4, 8, 16, 0, 0, 0, b"counts", 0, 0, 0, 0, 0, 0, 0, 0)).max_entries
    16
    >>> packer(MapCreateAttr, ("map_type", "max_entries"))((2, 16)).max_entries
    16
    """
    codes = {ctypes.c_uint8: "B", ctypes.c_uint16: "H", ctypes.c_uint32: "I", ctypes.c_int32: "i",
             ctypes.c_uint64: "Q", ctypes.c_int64: "q"}
    wanted = None if fields is None else set(fields)
    fmt, names, at = "<", [], 0
    for name, ctype, *bits in cls._fields_:
        offset = getattr(cls, name).offset
        if wanted is not None and name not in wanted:
            continue   # left zero: covered by padding up to the next packed field
        if bits or offset < at:
            raise TypeError(f"{cls.__name__}.{name}: bit fields and unions are not packed")
        fmt += "x" * (offset - at)
        if issubclass(ctype, ctypes.Array) and ctype._type_ is ctypes.c_char:
            fmt += f"{ctype._length_}s"
        else:
            fmt += codes[ctype]
        names.append(name)
        at = offset + ctypes.sizeof(ctype)
    if fields is not None and tuple(fields) != tuple(names):
        raise TypeError(f"{cls.__name__}: fields {fields} are not fields of the struct in its order")
    fmt += "x" * (ctypes.sizeof(cls) - at)
    layout = struct.Struct(fmt)
    assert layout.size == ctypes.sizeof(cls), cls
    names_t = tuple(names)
    pack_into = layout.pack_into

    def make(values: Sequence[Any]) -> Any:
        attr = cls()
        try:
            pack_into(attr, 0, *values)
        except struct.error:
            for name, value in zip(names_t, values):
                setattr(attr, name, value)   # the checked fields say which value does not fit
        return attr

    make.layout, make.fields = layout, names_t  # type: ignore[attr-defined]
    return make


class MapCreateAttr(_Attr):
    _labels_ = {"map_flags": "flags", "map_extra": "map_extra"}
    _fields_ = [
        ("map_type", c_uint32), ("key_size", c_uint32), ("value_size", c_uint32),
        ("max_entries", c_uint32), ("map_flags", c_uint32), ("inner_map_fd", c_uint32),
        ("numa_node", c_uint32), ("map_name", c_char * OBJ_NAME_LEN), ("map_ifindex", c_uint32),
        ("btf_fd", c_uint32), ("btf_key_type_id", c_uint32), ("btf_value_type_id", c_uint32),
        ("btf_vmlinux_value_type_id", c_uint32), ("map_extra", c_uint64),
        ("value_type_btf_obj_fd", c_int32), ("map_token_fd", c_int32),
    ]


class MapElemAttr(_Attr):
    """BPF_MAP_LOOKUP_ELEM / UPDATE / DELETE / GET_NEXT_KEY / LOOKUP_AND_DELETE / FREEZE."""

    _fields_ = [("map_fd", c_uint32), ("key", c_uint64), ("value", c_uint64), ("flags", c_uint64)]


class MapBatchAttr(_Attr):
    _fields_ = [
        ("in_batch", c_uint64), ("out_batch", c_uint64), ("keys", c_uint64), ("values", c_uint64),
        ("count", c_uint32), ("map_fd", c_uint32), ("elem_flags", c_uint64), ("flags", c_uint64),
    ]


class ProgLoadAttr(_Attr):
    _fields_ = [
        ("prog_type", c_uint32), ("insn_cnt", c_uint32), ("insns", c_uint64), ("license", c_uint64),
        ("log_level", c_uint32), ("log_size", c_uint32), ("log_buf", c_uint64),
        ("kern_version", c_uint32), ("prog_flags", c_uint32), ("prog_name", c_char * OBJ_NAME_LEN),
        ("prog_ifindex", c_uint32), ("expected_attach_type", c_uint32), ("prog_btf_fd", c_uint32),
        ("func_info_rec_size", c_uint32), ("func_info", c_uint64), ("func_info_cnt", c_uint32),
        ("line_info_rec_size", c_uint32), ("line_info", c_uint64), ("line_info_cnt", c_uint32),
        ("attach_btf_id", c_uint32),
        ("attach_prog_fd", c_uint32),  # union with attach_btf_obj_fd
        ("core_relo_cnt", c_uint32), ("fd_array", c_uint64), ("core_relos", c_uint64),
        ("core_relo_rec_size", c_uint32), ("log_true_size", c_uint32), ("prog_token_fd", c_int32),
        ("fd_array_cnt", c_uint32),
    ]


class ObjPinAttr(_Attr):
    """BPF_OBJ_PIN / BPF_OBJ_GET."""

    _fields_ = [("pathname", c_uint64), ("bpf_fd", c_uint32), ("file_flags", c_uint32), ("path_fd", c_int32)]


class ProgAttachAttr(_Attr):
    """BPF_PROG_ATTACH / BPF_PROG_DETACH."""

    _fields_ = [
        ("target_fd", c_uint32), ("attach_bpf_fd", c_uint32), ("attach_type", c_uint32),
        ("attach_flags", c_uint32), ("replace_bpf_fd", c_uint32), ("relative_fd", c_uint32),
        ("expected_revision", c_uint64),
    ]


class TestRunAttr(_Attr):
    __test__ = False  # not a pytest test class
    _fields_ = [
        ("prog_fd", c_uint32), ("retval", c_uint32), ("data_size_in", c_uint32),
        ("data_size_out", c_uint32), ("data_in", c_uint64), ("data_out", c_uint64),
        ("repeat", c_uint32), ("duration", c_uint32), ("ctx_size_in", c_uint32),
        ("ctx_size_out", c_uint32), ("ctx_in", c_uint64), ("ctx_out", c_uint64),
        ("flags", c_uint32), ("cpu", c_uint32), ("batch_size", c_uint32),
    ]


class GetIdAttr(_Attr):
    """BPF_*_GET_NEXT_ID and BPF_*_GET_FD_BY_ID (start_id doubles as prog/map/btf/link id)."""

    _fields_ = [("start_id", c_uint32), ("next_id", c_uint32), ("open_flags", c_uint32), ("fd_by_id_token_fd", c_int32)]


class InfoAttr(_Attr):
    _fields_ = [("bpf_fd", c_uint32), ("info_len", c_uint32), ("info", c_uint64)]


class QueryAttr(_Attr):
    _fields_ = [
        ("target_fd", c_uint32), ("attach_type", c_uint32), ("query_flags", c_uint32),
        ("attach_flags", c_uint32), ("prog_ids", c_uint64), ("prog_cnt", c_uint32),
        ("prog_attach_flags", c_uint64), ("link_ids", c_uint64), ("link_attach_flags", c_uint64),
        ("revision", c_uint64),
    ]


class RawTracepointAttr(_Attr):
    _fields_ = [("name", c_uint64), ("prog_fd", c_uint32), ("cookie", c_uint64)]


class BtfLoadAttr(_Attr):
    _fields_ = [
        ("btf", c_uint64), ("btf_log_buf", c_uint64), ("btf_size", c_uint32),
        ("btf_log_size", c_uint32), ("btf_log_level", c_uint32), ("btf_log_true_size", c_uint32),
        ("btf_flags", c_uint32), ("btf_token_fd", c_int32),
    ]


class TaskFdQueryAttr(_Attr):
    _fields_ = [
        ("pid", c_uint32), ("fd", c_uint32), ("flags", c_uint32), ("buf_len", c_uint32),
        ("buf", c_uint64), ("prog_id", c_uint32), ("fd_type", c_uint32),
        ("probe_offset", c_uint64), ("probe_addr", c_uint64),
    ]


# --- BPF_LINK_CREATE: a common head followed by a union chosen by attach type.

class _LinkPerfEvent(_Attr):
    _fields_ = [("bpf_cookie", c_uint64)]


class _LinkIter(_Attr):
    _fields_ = [("iter_info", c_uint64), ("iter_info_len", c_uint32)]


class _LinkKprobeMulti(_Attr):
    _fields_ = [("flags", c_uint32), ("cnt", c_uint32), ("syms", c_uint64), ("addrs", c_uint64), ("cookies", c_uint64)]


class _LinkTracing(_Attr):
    _fields_ = [("target_btf_id", c_uint32), ("cookie", c_uint64)]


class _LinkNetfilter(_Attr):
    _fields_ = [("pf", c_uint32), ("hooknum", c_uint32), ("priority", c_int32), ("flags", c_uint32)]


class _LinkRelative(_Attr):
    """tcx, netkit and cgroup links: position relative to another program or link."""

    _fields_ = [("relative_fd", c_uint32), ("expected_revision", c_uint64)]


class _LinkUprobeMulti(_Attr):
    _labels_ = {"cnt": "number of offsets"}
    _fields_ = [
        ("path", c_uint64), ("offsets", c_uint64), ("ref_ctr_offsets", c_uint64),
        ("cookies", c_uint64), ("cnt", c_uint32), ("flags", c_uint32), ("pid", c_uint32),
    ]


class _LinkTarget(ctypes.Union):
    _fields_ = [
        ("target_btf_id", c_uint32), ("iter", _LinkIter), ("perf_event", _LinkPerfEvent),
        ("kprobe_multi", _LinkKprobeMulti), ("tracing", _LinkTracing), ("netfilter", _LinkNetfilter),
        ("tcx", _LinkRelative), ("uprobe_multi", _LinkUprobeMulti), ("netkit", _LinkRelative),
        ("cgroup", _LinkRelative),
    ]


class LinkCreateAttr(_Attr):
    _fields_ = [
        ("prog_fd", c_uint32),  # union with map_fd (struct_ops)
        ("target_fd", c_uint32),  # union with target_ifindex
        ("attach_type", c_uint32), ("flags", c_uint32), ("u", _LinkTarget),
    ]


class LinkUpdateAttr(_Attr):
    _fields_ = [("link_fd", c_uint32), ("new_prog_fd", c_uint32), ("flags", c_uint32), ("old_prog_fd", c_uint32)]


class LinkDetachAttr(_Attr):
    _fields_ = [("link_fd", c_uint32)]


class EnableStatsAttr(_Attr):
    _fields_ = [("type", c_uint32)]


class IterCreateAttr(_Attr):
    _fields_ = [("link_fd", c_uint32), ("flags", c_uint32)]


class ProgBindMapAttr(_Attr):
    _fields_ = [("prog_fd", c_uint32), ("map_fd", c_uint32), ("flags", c_uint32)]


# --- BPF_OBJ_GET_INFO_BY_FD results.

class ProgInfo(_Attr):
    _fields_ = [
        ("type", c_uint32), ("id", c_uint32), ("tag", c_uint8 * 8), ("jited_prog_len", c_uint32),
        ("xlated_prog_len", c_uint32), ("jited_prog_insns", c_uint64), ("xlated_prog_insns", c_uint64),
        ("load_time", c_uint64), ("created_by_uid", c_uint32), ("nr_map_ids", c_uint32),
        ("map_ids", c_uint64), ("name", c_char * OBJ_NAME_LEN), ("ifindex", c_uint32),
        ("gpl_compatible", c_uint32, 1), ("netns_dev", c_uint64), ("netns_ino", c_uint64),
        ("nr_jited_ksyms", c_uint32), ("nr_jited_func_lens", c_uint32), ("jited_ksyms", c_uint64),
        ("jited_func_lens", c_uint64), ("btf_id", c_uint32), ("func_info_rec_size", c_uint32),
        ("func_info", c_uint64), ("nr_func_info", c_uint32), ("nr_line_info", c_uint32),
        ("line_info", c_uint64), ("jited_line_info", c_uint64), ("nr_jited_line_info", c_uint32),
        ("line_info_rec_size", c_uint32), ("jited_line_info_rec_size", c_uint32),
        ("nr_prog_tags", c_uint32), ("prog_tags", c_uint64), ("run_time_ns", c_uint64),
        ("run_cnt", c_uint64), ("recursion_misses", c_uint64), ("verified_insns", c_uint32),
        ("attach_btf_obj_id", c_uint32), ("attach_btf_id", c_uint32),
    ]


class MapInfo(_Attr):
    _fields_ = [
        ("type", c_uint32), ("id", c_uint32), ("key_size", c_uint32), ("value_size", c_uint32),
        ("max_entries", c_uint32), ("map_flags", c_uint32), ("name", c_char * OBJ_NAME_LEN),
        ("ifindex", c_uint32), ("btf_vmlinux_value_type_id", c_uint32), ("netns_dev", c_uint64),
        ("netns_ino", c_uint64), ("btf_id", c_uint32), ("btf_key_type_id", c_uint32),
        ("btf_value_type_id", c_uint32), ("btf_vmlinux_id", c_uint32), ("map_extra", c_uint64),
    ]


class BtfInfo(_Attr):
    _fields_ = [
        ("btf", c_uint64), ("btf_size", c_uint32), ("id", c_uint32), ("name", c_uint64),
        ("name_len", c_uint32), ("kernel_btf", c_uint32),
    ]


class _LinkInfoRawTp(_Attr):
    _fields_ = [("tp_name", c_uint64), ("tp_name_len", c_uint32), ("cookie", c_uint64)]


class _LinkInfoTracing(_Attr):
    _fields_ = [("attach_type", c_uint32), ("target_obj_id", c_uint32), ("target_btf_id", c_uint32), ("cookie", c_uint64)]


class _LinkInfoCgroup(_Attr):
    _fields_ = [("cgroup_id", c_uint64), ("attach_type", c_uint32)]


class _LinkInfoXdp(_Attr):
    _fields_ = [("ifindex", c_uint32)]


class _LinkInfoIfindex(_Attr):
    """tcx and netkit links: interface and direction."""

    _fields_ = [("ifindex", c_uint32), ("attach_type", c_uint32)]


class _LinkInfoKprobeMulti(_Attr):
    _fields_ = [("addrs", c_uint64), ("count", c_uint32), ("flags", c_uint32), ("missed", c_uint64), ("cookies", c_uint64)]


class _LinkInfoUprobeMulti(_Attr):
    _fields_ = [
        ("path", c_uint64), ("offsets", c_uint64), ("ref_ctr_offsets", c_uint64), ("cookies", c_uint64),
        ("path_size", c_uint32), ("count", c_uint32), ("flags", c_uint32), ("pid", c_uint32),
    ]


class _LinkInfoPerfUprobe(_Attr):
    _fields_ = [("file_name", c_uint64), ("name_len", c_uint32), ("offset", c_uint32), ("cookie", c_uint64), ("ref_ctr_offset", c_uint64)]


class _LinkInfoPerfKprobe(_Attr):
    _fields_ = [("func_name", c_uint64), ("name_len", c_uint32), ("offset", c_uint32), ("addr", c_uint64), ("missed", c_uint64), ("cookie", c_uint64)]


class _LinkInfoPerfTracepoint(_Attr):
    _fields_ = [("tp_name", c_uint64), ("name_len", c_uint32), ("cookie", c_uint64)]


class _LinkInfoPerfEvent(_Attr):
    _fields_ = [("config", c_uint64), ("type", c_uint32), ("cookie", c_uint64)]


class _LinkInfoPerfUnion(ctypes.Union):
    _fields_ = [
        ("uprobe", _LinkInfoPerfUprobe), ("kprobe", _LinkInfoPerfKprobe),
        ("tracepoint", _LinkInfoPerfTracepoint), ("event", _LinkInfoPerfEvent),
    ]


class _LinkInfoPerf(_Attr):
    _fields_ = [("type", c_uint32), ("u", _LinkInfoPerfUnion)]


class _LinkInfoUnion(ctypes.Union):
    _fields_ = [
        ("raw_tracepoint", _LinkInfoRawTp), ("tracing", _LinkInfoTracing), ("cgroup", _LinkInfoCgroup),
        ("xdp", _LinkInfoXdp), ("tcx", _LinkInfoIfindex), ("netkit", _LinkInfoIfindex),
        ("kprobe_multi", _LinkInfoKprobeMulti), ("uprobe_multi", _LinkInfoUprobeMulti),
        ("perf_event", _LinkInfoPerf), ("_pad", c_uint64 * 8),
    ]


class LinkInfo(_Attr):
    _fields_ = [("type", c_uint32), ("id", c_uint32), ("prog_id", c_uint32), ("u", _LinkInfoUnion)]


# --- perf_event_open(2)

class PerfEventAttr(_Attr):
    """``struct perf_event_attr`` (PERF_ATTR_SIZE_VER8, 136 bytes).

    The flag bits (disabled, inherit, ..., sigtrap) live in ``flags``; use the
    ``PERF_ATTR_FLAG_*`` constants of :mod:`pybpf._sys.flags`.
    """

    _labels_ = {"config1": "config1 (probe path or function)", "config2": "config2 (probe offset or address)"}

    _fields_ = [
        ("type", c_uint32), ("size", c_uint32), ("config", c_uint64),
        ("sample_period", c_uint64),  # union with sample_freq
        ("sample_type", c_uint64), ("read_format", c_uint64), ("flags", c_uint64),
        ("wakeup_events", c_uint32),  # union with wakeup_watermark
        ("bp_type", c_uint32),
        ("config1", c_uint64),  # bp_addr / kprobe_func / uprobe_path
        ("config2", c_uint64),  # bp_len / kprobe_addr / probe_offset
        ("branch_sample_type", c_uint64), ("sample_regs_user", c_uint64),
        ("sample_stack_user", c_uint32), ("clockid", c_int32), ("sample_regs_intr", c_uint64),
        ("aux_watermark", c_uint32), ("sample_max_stack", c_uint16), ("_reserved_2", c_uint16),
        ("aux_sample_size", c_uint32), ("aux_action", c_uint32), ("sig_data", c_uint64),
        ("config3", c_uint64),
    ]


class PerfEventMmapPage(_Attr):
    """The head of ``struct perf_event_mmap_page``: only what a ring reader needs.

    data_head sits at byte 1024 and data_tail right after it; data_offset
    and data_size follow (Linux 4.1+).
    """

    _fields_ = [
        ("version", c_uint32), ("compat_version", c_uint32), ("_pad", c_uint8 * 1016),
        ("data_head", c_uint64), ("data_tail", c_uint64), ("data_offset", c_uint64),
        ("data_size", c_uint64), ("aux_head", c_uint64), ("aux_tail", c_uint64),
        ("aux_offset", c_uint64), ("aux_size", c_uint64),
    ]
