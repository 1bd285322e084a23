"""Tests of pybpf.btf: reader, writer, sanitize, kernel cache, .BTF.ext.

Cross-checked against bpftool's raw dump (libbpf's parser) for vmlinux and
for objects compiled by clang, and against the kernel itself: re-encoded and
sanitized BTF is loaded with BPF_BTF_LOAD.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import re
import struct
import subprocess
import threading
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from hypothesis import HealthCheck, given, settings, strategies as st

from buildprogs import PROGS, build
from pybpf.errors import ObjectError
from pybpf.btf import kernel
from pybpf.btf.codec import codec_for
from pybpf.btf.reader import CoreRelocKind, ExtInfo, Spec
from pybpf.btf.types import (
    VOID, Array, BTFKind, Composite, Const, Datasec, DeclTag, Enum, Enum64, Float, Func, FuncLinkage, FuncProto,
    Fwd, Int, IntEncoding, Member, Pointer, Struct, Typedef, TypeTag, Union, Var, VarLinkage, VarSecinfo, Void,
)
from pybpf.btf.typeinfo import alignof, essential_name, resolve, shallow_key, sizeof, type_name
from pybpf.btf.writer import Builder, encode, encode_ext, sanitize

VMLINUX = Path("/sys/kernel/btf/vmlinux")


# ---------------------------------------------------------------------- helpers


def elf_sections(path: Path) -> dict[str, bytes]:
    with open(path, "rb") as f:
        elf = ELFFile(f)
        return {s.name: s.data() for s in elf.iter_sections() if s.header.sh_type != "SHT_NOBITS"}


def elf_info(path: Path) -> tuple[dict[str, int], dict[str, tuple[str, int]], list]:
    """Section sizes, {symbol: (section, value)} and the FUNC symbols."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        sizes = {s.name: s.header.sh_size for s in elf.iter_sections()}
        names = [s.name for s in elf.iter_sections()]
        syms, funcs = {}, []
        for sym in elf.get_section_by_name(".symtab").iter_symbols():
            ndx = sym["st_shndx"]
            if not isinstance(ndx, int) or sym["st_info"]["type"] == "STT_SECTION":
                continue
            syms[sym.name] = (names[ndx], sym["st_value"])
            if sym["st_info"]["type"] == "STT_FUNC":
                funcs.append((names[ndx], sym["st_value"], sym.name))
        return sizes, syms, funcs


def obj_btf(name: str) -> tuple[Path, bytes, bytes]:
    path = build(name)
    secs = elf_sections(path)
    return path, secs[".BTF"], secs[".BTF.ext"]


def fixup_datasecs(spec: Spec, path: Path) -> None:
    """What the loader does: DATASEC sizes and variable offsets from the ELF."""
    sizes, syms, _ = elf_info(path)
    for t in spec.types:
        if isinstance(t, Datasec):
            offsets = {vs.var.name: syms[vs.var.name][1] for vs in t.vars if vs.var.name in syms}
            t.fixup(sizes[t.name], offsets)


_LINKAGE = {0: "static", 1: "global", 2: "extern"}
_ENC = {0: "(none)", 1: "SIGNED", 2: "CHAR", 4: "BOOL"}


def bpftool_lines(spec: Spec, ids) -> list[str]:
    """Our rendering of types in the format of ``bpftool btf dump file X`` (raw)."""
    out = []
    for tid in ids:
        t = spec.type_by_id(tid)
        name = f"'{t.name or '(anon)'}'"
        head = f"[{tid}] {t.kind.name} {name}"
        if isinstance(t, Int):
            out.append(f"{head} size={t.size} bits_offset={t.offset} nr_bits={t.bits} "
                       f"encoding={_ENC[int(t.encoding)]}")
        elif isinstance(t, Array):
            out.append(f"{head} type_id={t.elem_id} index_type_id={t.index_type_id} nr_elems={t.nelems}")
        elif isinstance(t, Composite):
            out.append(f"{head} size={t.size} vlen={len(t.members)}")
            for m in t.members:
                bf = f" bitfield_size={m.bitfield_size}" if m.bitfield_size else ""
                out.append(f"\t'{m.name or '(anon)'}' type_id={m.type_id} bits_offset={m.bit_offset}{bf}")
        elif isinstance(t, Enum):
            sign = "SIGNED" if t.signed else "UNSIGNED"
            out.append(f"{head} encoding={sign} size={t.size} vlen={len(t.values)}")
            suffix = ("LL" if t.signed else "ULL") if isinstance(t, Enum64) else ""
            out.extend(f"\t'{n}' val={v}{suffix}" for n, v in t.values)
        elif isinstance(t, Fwd):
            out.append(f"{head} fwd_kind={'union' if t.is_union else 'struct'}")
        elif isinstance(t, Func):
            out.append(f"{head} type_id={t.proto_id} linkage={_LINKAGE[t.linkage]}")
        elif isinstance(t, FuncProto):
            out.append(f"{head} ret_type_id={t.ret_id} vlen={len(t.params)}")
            out.extend(f"\t'{p.name or '(anon)'}' type_id={p.type_id}" for p in t.params)
        elif isinstance(t, Var):
            out.append(f"{head} type_id={t.type_id}, linkage={_LINKAGE[t.linkage]}")
        elif isinstance(t, Datasec):
            out.append(f"{head} size={t.size} vlen={len(t.vars)}")
            out.extend(f"\ttype_id={vs.var_id} offset={vs.offset} size={vs.size} (VAR '{vs.var.name}')"
                       for vs in t.vars)
        elif isinstance(t, Float):
            out.append(f"{head} size={t.size}")
        elif isinstance(t, DeclTag):
            out.append(f"{head} type_id={t.type_id} component_idx={t.component_idx}")
        else:  # PTR, TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG
            out.append(f"{head} type_id={t.ref_ids()[0]}")
    return out


def bpftool_dump(path: str, base: str | None = None) -> list[str]:
    args = ["-B", base] if base else []
    res = subprocess.run(["bpftool", *args, "btf", "dump", "file", path], check=True,
                         capture_output=True, text=True)
    return res.stdout.rstrip("\n").split("\n")


def keys(spec: Spec) -> list[tuple]:
    return [shallow_key(t) for t in spec.types]


class _BtfLoadAttr(ctypes.Structure):
    _fields_ = [("btf", ctypes.c_uint64), ("btf_log_buf", ctypes.c_uint64),
                ("btf_size", ctypes.c_uint32), ("btf_log_size", ctypes.c_uint32),
                ("btf_log_level", ctypes.c_uint32), ("_pad", ctypes.c_uint8 * 100)]


def kernel_load(blob: bytes) -> None:
    """BPF_BTF_LOAD ``blob``; fail the test with the verifier log if the kernel refuses it.

    (A private ctypes call: this package makes no syscalls, the loader layer does.)
    """
    nr = {"x86_64": 321, "aarch64": 280}.get(platform.machine())
    if nr is None:
        pytest.fail(f"no bpf(2) number for {platform.machine()}")
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(blob)
    log = ctypes.create_string_buffer(1 << 16)
    attr = _BtfLoadAttr(ctypes.addressof(buf), ctypes.addressof(log), len(blob), len(log), 1)
    fd = libc.syscall(nr, 18, ctypes.byref(attr), ctypes.sizeof(attr))  # BPF_BTF_LOAD
    if fd < 0:
        err = ctypes.get_errno()
        pytest.fail(f"BPF_BTF_LOAD: {errno.errorcode.get(err, err)}\n{log.value.decode(errors='replace')}")
    os.close(fd)


@pytest.fixture(scope="module")
def vmlinux_bytes() -> bytes:
    return VMLINUX.read_bytes()


@pytest.fixture(scope="module")
def vmlinux_full(vmlinux_bytes) -> Spec:
    return Spec.parse(vmlinux_bytes)          # eager: every type decoded and checked


# ---------------------------------------------------------------------- vmlinux


def test_kernel_spec_task_struct_pid():
    spec = kernel.kernel_spec()
    assert kernel.kernel_spec() is spec
    task = spec.find("task_struct", BTFKind.STRUCT)
    assert isinstance(task, Struct) and task.size > 1000
    pid = task.member("pid")
    pid_t = resolve(pid.type)
    assert isinstance(pid_t, Int) and pid_t.size == 4 and pid_t.signed
    assert type_name(pid.type) == "pid_t" and sizeof(pid.type) == 4

    # bpftool (libbpf) agrees on the ids and the offset
    lines = bpftool_dump(str(VMLINUX))
    start = lines.index(f"[{task.id}] STRUCT 'task_struct' size={task.size} vlen={len(task.members)}")
    member = next(l for l in lines[start + 1:] if l.startswith("\t'pid' "))
    assert int(re.search(r"bits_offset=(\d+)", member).group(1)) == pid.bit_offset
    assert int(re.search(r"type_id=(\d+)", member).group(1)) == pid.type_id
    assert pid.offset == pid.bit_offset // 8


def test_vmlinux_matches_bpftool(vmlinux_full):
    assert bpftool_lines(vmlinux_full, vmlinux_full.own_ids()) == bpftool_dump(str(VMLINUX))


def test_vmlinux_lazy_equals_eager(vmlinux_bytes, vmlinux_full):
    lazy = Spec.parse(vmlinux_bytes, lazy=True)
    assert len(lazy) == len(vmlinux_full)
    for name in ("task_struct", "sk_buff", "pt_regs", "bpf_map", "file", "list_head"):
        a, b = lazy.types_by_name(name), vmlinux_full.types_by_name(name)
        assert [t.id for t in a] == [t.id for t in b] and a
        assert [shallow_key(t) for t in a] == [shallow_key(t) for t in b]
    assert [t.id for t in lazy.types_by_name("int")] == [t.id for t in vmlinux_full.types
                                                         if t.name == "int"]
    assert lazy.find("no_such_type_anywhere") is None
    assert lazy.types_by_name("") == []


def test_vmlinux_roundtrip(vmlinux_bytes, vmlinux_full):
    # same string table: byte for byte what the kernel gave us
    assert encode(vmlinux_full.types, strings=vmlinux_full.strings.copy()) == vmlinux_bytes
    # fresh string table: same types
    again = Spec.parse(encode(vmlinux_full.types))
    assert keys(again) == keys(vmlinux_full)


def test_kernel_spec_thread_safe():
    kernel.clear_cache()
    results, errors = [], []

    def worker():
        try:
            spec = kernel.kernel_spec()
            results.append((spec, spec.find("task_struct", BTFKind.STRUCT)))
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({id(s) for s, _ in results}) == 1 and len({id(t) for _, t in results}) == 1


def test_essential_name_lookup():
    assert essential_name("task_struct___old") == "task_struct"
    assert essential_name("task_struct") == "task_struct"
    assert essential_name("a____b") == "a____b"          # no flavor: 4 underscores
    assert essential_name("___x") == "___x"
    spec = kernel.kernel_spec()
    assert [t.id for t in spec.types_by_essential_name("task_struct")] == \
        [t.id for t in spec.types_by_name("task_struct")]


def test_type_helpers_vmlinux():
    spec = kernel.kernel_spec()
    task = spec.find("task_struct", Struct)
    assert alignof(task) == 64 or alignof(task) % 8 == 0
    comm = task.member("comm")
    assert type_name(comm.type) == "char[16]" and sizeof(comm.type) == 16
    parent = task.member("real_parent")
    assert type_name(parent.type) == "struct task_struct *"
    assert type_name(parent.type, "p") == "struct task_struct *p"
    lh = spec.find("list_head", Struct)
    assert sizeof(lh) == 16 and alignof(lh) == 8
    fn = spec.find("bpf_get_current_pid_tgid", Func) or spec.find("do_sys_open", Func)
    assert fn is not None and "(" in type_name(fn)


def test_find_in_kernel():
    hits = kernel.find_in_kernel("task_struct", BTFKind.STRUCT)
    assert hits and hits[0][0] is kernel.kernel_spec() and hits[0][1].name == "task_struct"
    assert kernel.find_in_kernel("task_struct", Union) == []


# ---------------------------------------------------------------------- module BTF


def _fake_module_blob(base: Spec) -> tuple[bytes, dict]:
    task = base.find("task_struct", Struct)
    u32 = base.find("u32", Typedef)
    s = Struct("pybpf_fake_mod_state", 16, [Member("owner", Pointer(task), 0),
                                            Member("count", u32, 64), Member("flags", u32, 96)])
    b = Builder(base=base)
    sid = b.add(s)
    fid = b.add(Func("pybpf_fake_mod_fn", FuncProto(base.find("int", Int), [("st", Pointer(s))]),
                     FuncLinkage.GLOBAL))
    return b.encode(), {"struct": sid, "func": fid, "task": task.id, "u32": u32.id}


def test_module_spec_split(tmp_path, monkeypatch):
    base = kernel.kernel_spec()
    blob, ids = _fake_module_blob(base)
    (tmp_path / "pybpf_fake").write_bytes(blob)
    os.symlink(VMLINUX, tmp_path / "vmlinux")
    monkeypatch.setattr(kernel, "BTF_DIR", tmp_path)
    kernel.clear_cache()
    try:
        mod = kernel.module_spec("pybpf_fake")
        assert kernel.module_spec("pybpf_fake") is mod and mod.base is kernel.kernel_spec()
        assert ids["struct"] == len(mod.base) == mod.first_id
        st = mod.type_by_id(ids["struct"])
        assert st.name == "pybpf_fake_mod_state"
        assert st.member("owner").type.target.id == ids["task"]
        assert st.member("count").type_id == ids["u32"] and st.member("count").type.name == "u32"
        assert mod.find("task_struct", Struct).id == ids["task"]          # base types visible
        assert mod.types_by_name("task_struct", include_base=False) == []
        assert kernel.module_names() == ["pybpf_fake"]
        hits = kernel.find_in_kernel("pybpf_fake_mod_fn", Func)
        assert [(s, t.id) for s, t in hits] == [(mod, ids["func"])]
        with pytest.raises(ObjectError, match="no BTF"):
            kernel.module_spec("pybpf_absent")
        # libbpf reads our split BTF the same way
        assert bpftool_lines(mod, mod.own_ids()) == bpftool_dump(str(tmp_path / "pybpf_fake"),
                                                                 str(VMLINUX))
    finally:
        kernel.clear_cache()


def test_real_module_btf():
    # Modules loaded on this machine (none on the reference VM: everything is built in).
    for name in kernel.module_names():
        mod = kernel.module_spec(name)
        assert mod.first_id == len(kernel.kernel_spec())
        mod.validate()
        assert bpftool_lines(mod, mod.own_ids()) == bpftool_dump(str(kernel.BTF_DIR / name),
                                                                 str(VMLINUX))


def test_kernel_btf_missing(tmp_path, monkeypatch):
    from pybpf.errors import NotSupportedError
    monkeypatch.setattr(kernel, "BTF_DIR", tmp_path)
    kernel.clear_cache()
    try:
        with pytest.raises(NotSupportedError, match="needs Linux 5.4"):
            kernel.kernel_spec()
    finally:
        kernel.clear_cache()


# ---------------------------------------------------------------------- objects


@pytest.mark.parametrize("name", ["btf_types", "btf_core", "minimal"])
def test_object_matches_bpftool_and_roundtrips(name):
    path, btf, ext_data = obj_btf(name)
    spec = Spec.parse(btf)
    assert bpftool_lines(spec, spec.own_ids()) == bpftool_dump(str(path))
    assert encode(spec.types, strings=spec.strings.copy()) == btf
    assert keys(Spec.parse(encode(spec.types))) == keys(spec)
    ext = ExtInfo.parse(ext_data, spec)
    strings = spec.strings.copy()
    assert encode_ext(ext, strings) == ext_data and strings.data == spec.strings.data
    fresh = Spec.parse(encode(spec.types))
    ext2 = ExtInfo.parse(encode_ext(ext, fresh.strings), Spec.parse(encode(fresh.types, strings=fresh.strings)))
    assert (ext2.func_info, ext2.line_info, ext2.core_relos) == (ext.func_info, ext.line_info, ext.core_relos)


def test_object_types():
    _, btf, _ = obj_btf("btf_types")
    spec = Spec.parse(btf)
    ev = spec.find("btf_event", Struct)
    assert ev.size == 176
    assert [m.name for m in ev.members][:5] == ["pid", "ts", "comm", "pts", "fl"]
    assert type_name(ev.member("comm").type) == "char[16]"
    assert type_name(ev.member("pts").type) == "struct btf_point[2]"
    assert type_name(ev.member("ptr").type) == "const volatile int *"
    assert type_name(ev.member("cb").type) == "btf_callback_t"
    assert type_name(resolve(ev.member("cb").type)) == "int (*)(int, void *)"
    assert type_name(ev.member("user_ptr").type) == 'int __attribute__((btf_type_tag("user"))) *'
    anon = [m for m in ev.members if not m.name]
    assert [type(resolve(m.type)) for m in anon] == [Union, Struct]

    flags = spec.find("btf_flags", Struct)
    assert [(m.name, m.bit_offset, m.bitfield_size) for m in flags.members] == \
        [("a", 0, 3), ("b", 3, 5), ("c", 8, 7), ("d", 15, 33), ("e", 48, 1)]
    assert resolve(flags.member("c").type).signed

    color = spec.find("btf_color")
    assert isinstance(color, Enum) and not isinstance(color, Enum64) and color.signed
    assert color.values == [("BTF_RED", 0), ("BTF_GREEN", 5), ("BTF_BLUE", -1)]
    big = spec.find("btf_big", Enum64)
    assert big.values[1] == ("BTF_BIG_B", 0x123456789) and not big.signed
    sbig = spec.find("btf_sbig", Enum)
    assert isinstance(sbig, Enum64) and sbig.signed and sbig.value("BTF_SBIG_NEG") == -2

    huge = resolve(ev.member("huge").type)
    assert isinstance(huge, Int) and huge.size == 16 and alignof(huge) == 8
    assert isinstance(resolve(ev.member("dbl").type), Float)
    assert isinstance(resolve(ev.member("flag").type), Int) and resolve(ev.member("flag").type).is_bool

    node = spec.find("btf_node", Struct)
    assert node.member("next").type.target is node
    assert isinstance(node.member("opaque").type.target, Fwd)

    tags = [t for t in spec.types if isinstance(t, DeclTag)]
    assert {(t.name, t.type.name, t.component_idx) for t in tags} == \
        {("btf_tag_member", "btf_event", 13), ("btf_tag_func", "btf_tagged_func", -1)}
    assert any(isinstance(t, TypeTag) and t.name == "user" for t in spec.types)

    funcs = {t.name: t for t in spec.types if isinstance(t, Func)}
    assert funcs["btf_static_helper"].linkage == FuncLinkage.STATIC
    assert funcs["btf_global_helper"].linkage == FuncLinkage.GLOBAL
    assert [(p.name, type_name(p.type)) for p in funcs["btf_tagged_func"].proto.params] == \
        [("n", "struct btf_node *"), ("num", "union btf_num *")]
    assert type_name(funcs["btf_static_helper"]) == "int btf_static_helper(int x)"

    secs = {t.name: t for t in spec.types if isinstance(t, Datasec)}
    assert set(secs) == {".bss", ".data", ".data.custom", ".maps", ".rodata", "license"}
    assert [vs.var.name for vs in secs[".rodata"].vars] == ["btf_target_pid", "btf_greeting"]
    assert all(v.var.linkage == VarLinkage.GLOBAL for v in secs[".data"].vars)
    assert type_name(secs[".rodata"].vars[0].var.type) == "const volatile __u32"


def test_ext_info_against_elf():
    path, btf, ext_data = obj_btf("btf_types")
    spec = Spec.parse(btf)
    ext = ExtInfo.parse(ext_data, spec)
    _, _, funcs = elf_info(path)
    # func_info: one record per function, at the function's byte offset in its section
    got = sorted((sec, fi.insn_off, spec.type_by_id(fi.type_id).name)
                 for sec, recs in ext.func_info.items() for fi in recs)
    assert got == sorted(funcs)
    assert all(isinstance(spec.type_by_id(fi.type_id), Func) for r in ext.func_info.values() for fi in r)
    # line_info: the text is the source line at line_num
    source = (PROGS / "btf_types.bpf.c").read_text().split("\n")
    assert set(ext.line_info) == set(ext.func_info)
    for sec, recs in ext.line_info.items():
        assert [r.insn_off for r in recs] == sorted(r.insn_off for r in recs)
        for r in recs:
            assert r.file_name.endswith("btf_types.bpf.c")
            assert r.line_text == source[r.line_num - 1] and r.insn_off % 8 == 0 and r.col >= 0
        assert any(r.col > 0 for r in recs)
    assert ext.core_relos == {}


def test_core_relocations():
    _, btf, ext_data = obj_btf("btf_core")
    spec = Spec.parse(btf)
    ext = ExtInfo.parse(ext_data, spec)
    relos = ext.core_relos["raw_tp/sys_enter"]
    assert {r.kind for r in relos} == set(CoreRelocKind)
    for r in relos:
        t = spec.type_by_id(r.type_id)
        assert r.insn_off % 8 == 0
        if r.kind <= CoreRelocKind.FIELD_RSHIFT_U64:
            # walk the access string: first index is an array index, then member indexes
            idx = [int(x) for x in r.access_str.split(":")]
            cur = resolve(t)
            for i in idx[1:]:
                cur = resolve(cur.members[i].type) if isinstance(cur, Composite) else resolve(cur.elem)
        elif r.kind in (CoreRelocKind.ENUMVAL_EXISTS, CoreRelocKind.ENUMVAL_VALUE):
            assert isinstance(t, Enum) and int(r.access_str) < len(t.values)
        else:
            assert r.access_str == "0"
    names = {(r.kind, spec.type_by_id(r.type_id).name, r.access_str) for r in relos}
    task = spec.find("task_struct", Struct)
    real_parent = [i for i, m in enumerate(task.members) if m.name == "real_parent"][0]
    assert (CoreRelocKind.FIELD_BYTE_OFFSET, "task_struct", f"0:{real_parent}") in names
    pid = [i for i, m in enumerate(spec.find("task_struct___old").members) if m.name == "pid"][0]
    assert (CoreRelocKind.FIELD_BYTE_OFFSET, "task_struct___old", f"0:{pid}") in names
    assert (CoreRelocKind.FIELD_EXISTS, "task_struct___old", "0:2") in names
    assert (CoreRelocKind.ENUMVAL_VALUE, "pid_type", "1") in names        # PIDTYPE_TGID
    assert (CoreRelocKind.ENUMVAL_EXISTS, "btf_core_local_enum", "1") in names


# ---------------------------------------------------------------------- writer


@pytest.mark.root
def test_builder_hand_made_types():
    i32 = Int("int", 4, IntEncoding.SIGNED)
    u8 = Int("unsigned char", 1)
    point = Struct("point", 8, [Member("x", i32, 0), Member("y", i32, 32)])
    bits = Struct("bits", 4, [Member("lo", i32, 0, 4), Member("hi", i32, 4, 28)])
    arr = Array(u8, None, 16)                       # the writer adds an index type
    proto = FuncProto(i32, [("ctx", Pointer(VOID)), ("", VOID)])
    fn = Func("prog", proto, FuncLinkage.GLOBAL)
    var = Var("counter", i32, VarLinkage.GLOBAL)
    sec = Datasec(".data", 4, [VarSecinfo(var, 0, 4)])
    e64 = Enum64("big", 8, [("A", -1), ("B", 1 << 40)], signed=True)
    tag = DeclTag("kfunc", fn)

    b = Builder()
    assert b.add(fn) == 1 and b.add(point) == 2 and b.add(fn) == 1
    for t in (bits, arr, sec, e64, tag, Float("double", 8), Typedef("buf_t", arr), Const(point),
              TypeTag(Pointer(i32), "user"), Fwd("opaque", True)):
        b.add(t)
    blob = b.encode()
    spec = Spec.parse(blob)
    assert b.id_of(proto) == len(spec) - 5 or b.id_of(proto) > b.id_of(fn)
    got = spec.type_by_id(b.id_of(fn))
    assert isinstance(got, Func) and got.linkage == FuncLinkage.GLOBAL
    assert type_name(got) == "int prog(void *ctx, ...)"
    assert [(m.name, m.bit_offset, m.bitfield_size) for m in spec.find("bits").members] == \
        [("lo", 0, 4), ("hi", 4, 28)]
    index = spec.type_by_id(b.id_of(arr)).index_type
    assert index.name == "__ARRAY_SIZE_TYPE__" and index.size == 4
    assert spec.find("big").values == [("A", -1), ("B", 1 << 40)]
    assert spec.find("opaque").is_union
    assert spec.find("kfunc").type.name == "prog"
    # libbpf parses it the same way
    with_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"pybpf_btf_{os.getpid()}.bin"
    with_path.write_bytes(blob)
    try:
        assert bpftool_lines(spec, spec.own_ids()) == bpftool_dump(str(with_path))
    finally:
        with_path.unlink()
    kernel_load(blob)
    with pytest.raises(KeyError):
        b.id_of(Int("unused", 4))


def test_writer_rejects_unencodable():
    with pytest.raises(ObjectError, match="32 bits"):
        encode([Enum("e", 4, [("X", 1 << 32)])])
    with pytest.raises(ObjectError, match="65535"):
        encode([Struct("s", 4, [Member(f"m{i}", Int("int", 4), 0) for i in range(70000)])])


@pytest.mark.root
@pytest.mark.parametrize("name", ["btf_types", "btf_core", "minimal"])
def test_kernel_accepts_reencoded_object_btf(name):
    path, btf, _ = obj_btf(name)
    spec = Spec.parse(btf)
    fixup_datasecs(spec, path)
    secs = [t for t in spec.types if isinstance(t, Datasec)]
    assert all(t.size for t in secs)
    kernel_load(encode(spec.types))


_ALL = set(BTFKind) - {BTFKind.UNKNOWN}


@pytest.mark.parametrize("missing", [
    {BTFKind.ENUM64}, {BTFKind.TYPE_TAG}, {BTFKind.DECL_TAG}, {BTFKind.FLOAT},
    {BTFKind.DATASEC, BTFKind.VAR},
    {BTFKind.ENUM64, BTFKind.TYPE_TAG, BTFKind.DECL_TAG, BTFKind.FLOAT, BTFKind.DATASEC, BTFKind.VAR},
], ids=lambda s: "-".join(sorted(k.name for k in s)))
@pytest.mark.root
def test_sanitize(missing):
    path, btf, _ = obj_btf("btf_types")
    spec = Spec.parse(btf)
    fixup_datasecs(spec, path)
    before = keys(spec)
    types = sanitize(spec, _ALL - missing)
    assert keys(spec) == before                              # the spec is untouched
    out = Spec.parse(encode(types))
    kinds = {t.kind for t in out.types}
    assert not kinds & missing
    assert len(out) == len(spec) + (BTFKind.ENUM64 in missing)      # ids kept (+ placeholder)
    for old, new in zip(spec.types, out.types):
        if old.kind not in missing and not (BTFKind.ENUM64 in missing and isinstance(old, Enum)):
            assert shallow_key(old) == shallow_key(new)
    if BTFKind.ENUM64 in missing:
        big = out.type_by_id(spec.find("btf_big").id)
        assert isinstance(big, Union) and big.size == 8 and [m.name for m in big.members] == \
            ["BTF_BIG_A", "BTF_BIG_B"]
        assert out.type_by_id(len(out) - 1).name == "enum64_placeholder"
        assert not out.find("btf_color").signed
    if BTFKind.DATASEC in missing:
        data = out.type_by_id(spec.find(".data").id)
        assert isinstance(data, Struct) and data.name == "_data"
        assert [(m.name, m.offset) for m in data.members] == \
            [(vs.var.name, vs.offset) for vs in spec.find(".data").vars]
        assert isinstance(out.find("btf_counter"), Int)
    if BTFKind.FLOAT in missing:
        dbl = out.type_by_id(spec.find("double").id)
        assert isinstance(dbl, Struct) and dbl.size == 8 and not dbl.name
    if BTFKind.TYPE_TAG in missing:
        assert isinstance(out.type_by_id(spec.find("user").id), Const)
    kernel_load(encode(types))


@pytest.mark.root
def test_sanitize_funcs():
    path, btf, _ = obj_btf("btf_types")
    spec = Spec.parse(btf)
    fixup_datasecs(spec, path)
    out = Spec.parse(encode(sanitize(spec, _ALL, func_global=False)))
    assert all(t.linkage == FuncLinkage.STATIC for t in out.types if isinstance(t, Func))
    kernel_load(encode(sanitize(spec, _ALL, func_global=False)))
    out = Spec.parse(encode(sanitize(spec, _ALL - {BTFKind.FUNC, BTFKind.FUNC_PROTO})))
    assert not any(isinstance(t, (Func, FuncProto)) for t in out.types)
    helper = out.type_by_id(spec.find("btf_static_helper").id)
    assert isinstance(helper, Typedef)
    assert isinstance(helper.type, Enum) and helper.type.values == [("x", spec.find("int").id)]
    qmark = Datasec("?.data.opt", 4, [])
    assert sanitize([VOID, qmark], _ALL, qmark_datasec=False)[1].name == "_.data.opt"


# ---------------------------------------------------------------------- malformed input


def _small_blob() -> bytes:
    _, btf, _ = obj_btf("minimal")
    return btf


def _exercise(data: bytes) -> None:
    """Parse and use ``data``; only ObjectError may escape."""
    try:
        spec = Spec.parse(data)
    except ObjectError:
        return
    for t in spec.types:
        shallow_key(t)
        type_name(t)
        for fn in (sizeof, alignof):
            try:
                fn(t)
            except ObjectError:
                pass
        try:
            c = codec_for(t)
        except ObjectError:
            continue
        if c.size > 1 << 16:
            continue
        value = c.decode(bytes(range(256)) * (c.size // 256 + 1))
        assert c.decode(c.encode(value)) == value or value != value or "nan" in repr(value)
    try:
        Spec.parse(encode(spec.types))
    except ObjectError:
        pass


def test_truncation_at_every_offset():
    blob = _small_blob()
    for n in range(len(blob)):
        with pytest.raises(ObjectError, match="at byte"):
            Spec.parse(blob[:n])


def test_truncated_type_section_consistent_header():
    blob = _small_blob()
    hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<IIIII", blob, 4)
    strs = blob[hdr_len + str_off:hdr_len + str_off + str_len]
    types = blob[hdr_len + type_off:hdr_len + type_off + type_len]
    for cut in range(0, type_len, 4):
        body = types[:cut] + strs
        data = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, cut, cut, len(strs)) + body
        try:
            spec = Spec.parse(data)
        except ObjectError as err:
            assert "at byte" in str(err)
        else:
            assert len(spec) <= 23


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b"\x00\x00" + b[2:], "bad magic"),
    (lambda b: b[:2] + b"\x02" + b[3:], "version"),
    (lambda b: b[:4] + struct.pack("<I", 8) + b[8:], "truncated header"),
    (lambda b: b[:4] + struct.pack("<I", 1 << 30) + b[8:], "header length"),
    (lambda b: b[:12] + struct.pack("<I", 1 << 20) + b[16:], "runs past the end"),
    (lambda b: b[:24] + b"\xff\xff\xff\x00" + b[28:], "name offset|string offset"),
    (lambda b: b[:28] + struct.pack("<I", 0x1F << 24) + b[32:], "unknown kind"),
    (lambda b: b[:32] + struct.pack("<I", 99999) + b[36:], "out of range"),
], ids=["magic", "version", "hdr_len", "hdr_len_big", "type_len", "name_off", "kind", "ref"])
def test_malformed_header_and_types(mutate, message):
    blob = _small_blob()
    # type [1] of minimal.bpf.o is a PTR: name_off at 24, info at 28, type at 32
    assert Spec.parse(blob).type_by_id(1).kind == BTFKind.PTR
    with pytest.raises(ObjectError, match=message) as exc:
        Spec.parse(mutate(blob))
    assert "byte" in str(exc.value)


def test_illegal_cycles():
    i32 = Int("int", 4, IntEncoding.SIGNED)
    a = Typedef("a", i32)
    b = Typedef("b", a)
    a.type = b                                          # a -> b -> a
    blob = encode([i32, a, b])
    with pytest.raises(ObjectError, match="cycle"):
        Spec.parse(blob)
    lazy = Spec.parse(blob, lazy=True)                  # lazily: helpers refuse to loop
    with pytest.raises(ObjectError, match="cyclic"):
        resolve(lazy.find("a"))
    with pytest.raises(ObjectError):
        sizeof(lazy.find("a"))
    with pytest.raises(ObjectError):
        codec_for(lazy.find("a"))

    s = Struct("s", 8, [])
    s.members.append(Member("inner", Array(s, i32, 1), 0))    # contains itself by value
    with pytest.raises(ObjectError, match="cycle"):
        Spec.parse(encode([i32, s]))
    with pytest.raises(ObjectError, match="itself"):
        codec_for(Spec.parse(encode([i32, s]), lazy=True).find("s"))

    node = Struct("node", 8, [])
    node.members.append(Member("next", Pointer(node), 0))      # through a pointer: fine
    assert Spec.parse(encode([node])).find("node").member("next").type.target.name == "node"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8))
def test_random_byte_flips(flips):
    blob = bytearray(_small_blob())
    for pos, val in flips:
        blob[pos % len(blob)] = val
    _exercise(bytes(blob))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 100_000), st.integers(0, 255)), min_size=1, max_size=8))
def test_random_byte_flips_ext(flips):
    _, btf, ext_data = obj_btf("btf_core")
    spec = Spec.parse(btf)
    data = bytearray(ext_data)
    for pos, val in flips:
        data[pos % len(data)] = val
    try:
        ExtInfo.parse(bytes(data), spec)
    except ObjectError as err:
        assert "at byte" in str(err)


def test_ext_truncation_at_every_offset():
    _, btf, ext_data = obj_btf("btf_types")
    spec = Spec.parse(btf)
    for n in range(len(ext_data)):
        with pytest.raises(ObjectError, match="at byte"):
            ExtInfo.parse(ext_data[:n], spec)


def test_big_endian_blob():
    _, btf, _ = obj_btf("btf_types")
    spec = Spec.parse(btf)
    be = encode(spec.types, strings=spec.strings.copy(), byteorder="big")
    assert be[:2] == b"\xeb\x9f"
    spec_be = Spec.parse(be)
    assert spec_be.byteorder == "big" and keys(spec_be) == keys(spec)


def test_void_and_lookup_errors():
    spec = Spec.parse(_small_blob())
    assert spec.type_by_id(0) is VOID and isinstance(spec.types[0], Void)
    with pytest.raises(ObjectError, match="out of range"):
        spec.type_by_id(len(spec))
    with pytest.raises(IndexError):
        spec.types[len(spec)]
    assert spec.types[-1] is spec.type_by_id(len(spec) - 1)
    with pytest.raises(ObjectError, match="no size"):
        sizeof(VOID)


def test_string_table_reads_like_a_section():
    """A small table is decoded whole; mid-string offsets, errors and identity are as for any table."""
    from pybpf.btf.reader import StringTable

    table = StringTable(b"\0int\0long\0")
    assert (table[0], table[1], table[2], table[5]) == ("", "int", "nt", "long")
    with pytest.raises(ObjectError, match="string offset 10 out of range"):
        table[10]
    with pytest.raises(ObjectError, match="string offset -1 out of range"):
        table[-1]
    assert len(table) == 10 and table != StringTable(b"\0int\0long\0") and hash(table) == hash(table)
    split = StringTable(b"x\0", table)
    assert (split[10], split[1], split.add("long"), split.add("new")) == ("x", "int", 5, 12)


def test_name_index_with_repeated_names():
    """The name index is read on the first lookup; repeated names give every id, in id order."""
    int_t = Int("int", 4, IntEncoding.SIGNED)
    spec = Spec.parse(encode([int_t, Typedef("t", int_t), Struct("t", 0), Typedef("u", int_t), Struct("t", 0)]))
    assert spec._names._first is None
    assert [type(t).__name__ for t in spec.types_by_name("t")] == ["Typedef", "Struct", "Struct"]
    assert [t.id for t in spec.types_by_name("t")] == [2, 3, 5]
    assert spec.types_by_name("int")[0].size == 4 and spec.types_by_name("nope") == []
    assert sorted(spec._names.named_ids()) == [1, 2, 3, 4, 5]
