"""The kernel ABI layer against the running kernel: enums and struct layouts.

Layouts are compared with the kernel's own BTF as printed by bpftool (an
independent reader, so this also guards pybpf.btf).
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import subprocess
from functools import lru_cache

import pytest

from pybpf import ArgumentError, SyscallError
from pybpf._sys import (
    FD, Cmd, MapCreateAttr, MapType, bpf, object_name,
)
from pybpf._sys import attrs, commands, uapi
from pybpf._sys.syscall import error


@lru_cache(maxsize=1)
def kernel_types() -> dict[int, tuple[str, str, list[tuple[str, int, int]]]]:
    """id -> (kind, name, [(member name, type id, bit offset)]) from bpftool's raw dump."""
    out = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "raw"],
                         check=True, capture_output=True, text=True).stdout
    types: dict[int, tuple[str, str, list]] = {}
    current = None
    for line in out.splitlines():
        m = re.match(r"\[(\d+)\] (\w+) '([^']*)'(.*)", line)
        if m:
            current = []
            extra = m.group(4)
            tid = re.search(r"type_id=(\d+)", extra)
            types[int(m.group(1))] = (m.group(2), m.group(3), current, int(tid.group(1)) if tid else 0)
            continue
        mm = re.match(r"\s+'([^']*)' type_id=(\d+) bits_offset=(\d+)", line)
        if mm and current is not None:
            current.append((mm.group(1), int(mm.group(2)), int(mm.group(3))))
        mv = re.match(r"\s+'([^']*)' val=(-?\d+)", line)
        if mv and current is not None:
            current.append((mv.group(1), int(mv.group(2)), 0))
    return types


def kernel_layout(type_id: int, prefix: str = "", base: int = 0) -> dict[str, int]:
    """Flatten a struct/union into {dotted member name: byte offset}, anonymous levels merged."""
    types = kernel_types()
    kind, _, members, _ = types[type_id]
    out: dict[str, int] = {}
    for name, tid, bits in members:
        while types[tid][0] in ("TYPEDEF", "CONST", "VOLATILE"):
            tid = types[tid][3]
        offset = base + bits // 8
        if types[tid][0] in ("STRUCT", "UNION"):
            sub = prefix if name == "(anon)" else f"{prefix}{name}."
            out.update(kernel_layout(tid, sub, offset))
            if name != "(anon)":
                out[prefix + name] = offset
        else:
            out[prefix + name] = offset
    return out


def ours(cls, prefix: str = "", base: int = 0) -> dict[str, int]:
    out = {}
    for field in cls._fields_:
        name, ftype = field[0], field[1]
        offset = base + getattr(cls, name).offset
        if isinstance(ftype, type) and issubclass(ftype, (ctypes.Structure, ctypes.Union)):
            sub = prefix if name in ANONYMOUS else f"{prefix}{name}."
            out.update(ours(ftype, sub, offset))
            if name not in ANONYMOUS:
                out[prefix + name] = offset
        else:
            out[prefix + name] = offset
    return out


# Our names for what the kernel declares as anonymous structs/unions.
ANONYMOUS = {"u", "iter"}


def bpf_attr_member(index: int) -> int:
    types = kernel_types()
    (union_id,) = [i for i, t in types.items() if t[0] == "UNION" and t[1] == "bpf_attr"]
    return types[union_id][2][index][1]


def struct_id(name: str) -> int:
    (tid,) = [i for i, t in kernel_types().items() if t[0] == "STRUCT" and t[1] == name]
    return tid


# our class -> index of its member in union bpf_attr (or a struct name)
ATTRS = {
    attrs.MapCreateAttr: 0, attrs.MapElemAttr: 1, attrs.MapBatchAttr: 2, attrs.ProgLoadAttr: 3,
    attrs.ObjPinAttr: 4, attrs.ProgAttachAttr: 5, attrs.TestRunAttr: 6, attrs.GetIdAttr: 7,
    attrs.InfoAttr: 8, attrs.QueryAttr: 9, attrs.RawTracepointAttr: 10, attrs.BtfLoadAttr: 11,
    attrs.TaskFdQueryAttr: 12, attrs.LinkCreateAttr: 13, attrs.LinkUpdateAttr: 14,
    attrs.LinkDetachAttr: 15, attrs.EnableStatsAttr: 16, attrs.IterCreateAttr: 17,
    attrs.ProgBindMapAttr: 18,
    attrs.ProgInfo: "bpf_prog_info", attrs.MapInfo: "bpf_map_info", attrs.LinkInfo: "bpf_link_info",
    attrs.BtfInfo: "bpf_btf_info", attrs.PerfEventAttr: "perf_event_attr",
}
# Where we name a union alternative differently from the kernel's first member.
RENAMES = {"flags": "disabled", "_reserved_2": "__reserved_2"}


@pytest.mark.parametrize("cls", list(ATTRS), ids=lambda c: c.__name__)
def test_attr_layout_matches_kernel(cls):
    where = ATTRS[cls]
    tid = bpf_attr_member(where) if isinstance(where, int) else struct_id(where)
    theirs = kernel_layout(tid)
    mine = ours(cls)
    checked = 0
    for name, offset in mine.items():
        kname = RENAMES.get(name, name) if cls is attrs.PerfEventAttr else name
        if kname is None or name.endswith("_pad"):
            continue
        assert kname in theirs, f"{cls.__name__}.{name} is not a field of the kernel's struct"
        assert theirs[kname] == offset, f"{cls.__name__}.{name}: offset {offset}, kernel says {theirs[kname]}"
        checked += 1
    assert checked >= len(cls._fields_) - 1


@pytest.mark.parametrize("cls", [attrs.ProgLoadAttr, attrs.MapCreateAttr], ids=lambda c: c.__name__)
def test_packed_layout_is_the_ctypes_layout(cls):
    """attrs.packer(): one pack_into fills every field where the ctypes field is."""
    make = attrs.packer(cls)
    names = make.fields
    assert names == tuple(f[0] for f in cls._fields_)
    values = [f"n{i}".encode() if issubclass(cls._fields_[i][1], ctypes.Array) else i + 1
              for i in range(len(names))]
    assert [getattr(make(values), n) for n in names] == values
    too_big = list(values)
    too_big[names.index("max_entries" if "max_entries" in names else "insn_cnt")] = 2**32
    with pytest.raises(ArgumentError, match="max_entries|insn_cnt"):
        make(too_big)   # the field-by-field retry names the field


@pytest.mark.parametrize("enum", [uapi.Cmd, uapi.MapType, uapi.ProgType, uapi.AttachType, uapi.LinkType, uapi.HelperID])
def test_enums_match_kernel(enum):
    values = {}
    for kind, name, members, _ in kernel_types().values():
        if kind in ("ENUM", "ENUM64"):
            for mname, val, _ in members:
                values[mname] = val
    prefix = {"Cmd": "BPF_", "MapType": "BPF_MAP_TYPE_", "ProgType": "BPF_PROG_TYPE_", "AttachType": "BPF_",
              "LinkType": "BPF_LINK_TYPE_", "HelperID": "BPF_FUNC_"}[enum.__name__]
    for member in enum:
        assert values[prefix + member.name] == member.value


@pytest.mark.root
def test_map_create_and_error_context():
    attr = MapCreateAttr(map_type=MapType.HASH, key_size=4, value_size=8, max_entries=2, map_name=object_name("sys_test"))
    with FD(bpf(Cmd.MAP_CREATE, attr), "map") as fd:
        info = commands.map_info(fd.fileno())
        assert (info.type, info.key_size, info.value_size, info.max_entries) == (MapType.HASH, 4, 8, 2)
        assert info.name == b"sys_test"
        assert info.id in set(commands.map_ids())
    with pytest.raises(SyscallError) as exc:
        bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.HASH, key_size=0, value_size=8, max_entries=1))
    assert exc.value.errno == errno.EINVAL
    assert str(exc.value).startswith("map_create: EINVAL")


def test_eperm_hint_names_lockdown_or_capabilities():
    err = error(errno.EPERM, "load")
    assert err.errno == errno.EPERM and isinstance(err, PermissionError.__mro__[1])  # an OSError
    text = str(err)
    assert "load: EPERM" in text
    assert "lockdown" in text or "CAP_BPF" in text


def test_object_name_is_sanitized():
    assert object_name("a-very-long/name.with.dots") == b"a_very_long_nam"


def test_fd_closes_on_gc():
    fd = FD(os.open("/dev/null", os.O_RDONLY), "null")
    raw = fd.fileno()
    del fd
    import gc
    gc.collect()
    with pytest.raises(OSError):
        os.fstat(raw)
