"""Tests of pybpf.btf.codec: values <-> bytes through BTF types.

Layouts come from clang (tests/progs/btf_types.bpf.c and the running
kernel's vmlinux BTF); bitfield packing is checked against a host program
compiled by clang with the same struct.
"""

from __future__ import annotations

import random
import subprocess

import pytest
from elftools.elf.elffile import ELFFile
from hypothesis import given, settings, strategies as st

from buildprogs import build, clang
from pybpf.errors import ObjectError
from pybpf.btf import kernel
from pybpf.btf.codec import Codec, Record, codec_for, decode, encode
from pybpf.btf.reader import Spec
from pybpf.btf.types import (
    VOID, Array, Datasec, Enum, Enum64, Float, FuncProto, Int, IntEncoding, Member, Pointer,
    Struct, Typedef, Union, Const,
)


@pytest.fixture(scope="module")
def obj():
    path = build("btf_types")
    with open(path, "rb") as f:
        elf = ELFFile(f)
        secs = {s.name: s for s in elf.iter_sections()}
        spec = Spec.parse(secs[".BTF"].data())
        data = {n: secs[n].data() for n in (".data", ".rodata", ".data.custom")}
        syms = {s.name: s["st_value"] for s in secs[".symtab"].iter_symbols()}
        sizes = {n: s.header.sh_size for n, s in secs.items()}
    for t in spec.types:                       # the loader's DATASEC fixup
        if isinstance(t, Datasec):
            t.fixup(sizes[t.name], {vs.var.name: syms[vs.var.name] for vs in t.vars})
    return spec, data


# ---------------------------------------------------------------------- scalars

INTS = [(size, signed) for size in (1, 2, 4, 8, 16) for signed in (False, True)]


@pytest.mark.parametrize("size, signed", INTS)
def test_int_roundtrip_and_range(size, signed):
    t = Int(f"i{size}", size, IntEncoding.SIGNED if signed else IntEncoding.NONE)
    c = codec_for(t)
    assert c.size == size and codec_for(t) is c
    lo, hi = (-(1 << (8 * size - 1)), (1 << (8 * size - 1)) - 1) if signed else (0, (1 << 8 * size) - 1)
    for v in (lo, hi, 0, 1, lo + 1, hi - 1):
        raw = c.encode(v)
        assert raw == v.to_bytes(size, "little", signed=signed) and c.decode(raw) == v
    for bad in (lo - 1, hi + 1):
        with pytest.raises(TypeError, match=f"{size} bytes"):
            c.encode(bad)
    with pytest.raises(TypeError):
        c.encode(1.5)
    with pytest.raises(TypeError):
        c.encode("1")
    with pytest.raises(ValueError, match=f"need {size} bytes"):
        c.decode(b"\0" * (size - 1))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(INTS), st.data())
def test_int_hypothesis(kind, data):
    size, signed = kind
    t = Int("x", size, IntEncoding.SIGNED if signed else IntEncoding.NONE)
    bits = 8 * size
    v = data.draw(st.integers(-(1 << bits - 1), (1 << bits - 1) - 1) if signed else st.integers(0, (1 << bits) - 1))
    assert decode(t, encode(t, v)) == v


def test_bool_char_pointer_float():
    b = codec_for(Int("_Bool", 1, IntEncoding.BOOL))
    assert b.encode(True) == b"\1" and b.decode(b"\1") is True and b.decode(b"\0") is False
    assert b.encode(0) == b"\0"
    with pytest.raises(TypeError, match="bool"):
        b.encode(2)
    ch = codec_for(Int("char", 1, IntEncoding.SIGNED))
    assert ch.decode(b"\xff") == -1 and ch.encode(ord("a")) == b"a"
    p = codec_for(Pointer(VOID))
    assert p.size == 8 and p.decode(p.encode(0xFFFF_8880_0000_1000)) == 0xFFFF_8880_0000_1000
    with pytest.raises(TypeError):
        p.encode(-1)
    f = codec_for(Float("double", 8))
    assert f.decode(f.encode(1.25)) == 1.25
    f4 = codec_for(Float("float", 4))
    assert f4.decode(f4.encode(0.5)) == 0.5
    with pytest.raises(TypeError, match="float"):
        f4.encode(1e300)
    ld = codec_for(Float("long double", 16))
    assert ld.decode(ld.encode(b"\1" * 16)) == b"\1" * 16


def test_enums():
    e = Enum("color", 4, [("RED", 0), ("BLUE", -1)], signed=True)
    c = codec_for(e)
    assert c.decode(c.encode("BLUE")) == -1 and c.encode(-1) == b"\xff" * 4
    with pytest.raises(TypeError, match="no enumerator 'GREEN'"):
        c.encode("GREEN")
    u = codec_for(Enum("flags", 4, [("HIGH", 0x80000000)]))
    assert u.decode(u.encode("HIGH")) == 0x80000000
    with pytest.raises(TypeError):
        u.encode(-1)
    e64 = codec_for(Enum64("big", 8, [("B", 1 << 40)]))
    assert e64.decode(e64.encode("B")) == 1 << 40
    small = codec_for(Enum("tiny", 1, [("A", 200)]))
    assert small.encode("A") == b"\xc8"


# ---------------------------------------------------------------------- arrays


def test_arrays():
    char = Int("char", 1, IntEncoding.SIGNED)
    u8 = Int("unsigned char", 1)
    i32 = Int("int", 4, IntEncoding.SIGNED)
    comm = codec_for(Array(char, i32, 8))
    assert comm.decode(b"bash\0xyz") == b"bash"
    assert comm.encode("bash") == b"bash\0\0\0\0" and comm.encode(b"12345678") == b"12345678"
    with pytest.raises(TypeError, match="9 bytes do not fit in 8"):
        comm.encode(b"123456789")
    raw = codec_for(Array(Typedef("__u8", u8), i32, 4))
    assert raw.decode(b"\0\1\0\2") == b"\0\1\0\2"                  # not a C string
    assert raw.encode([1, 2]) == b"\1\2\0\0"
    ints = codec_for(Array(i32, i32, 3))
    assert ints.decode(ints.encode([1, -2, 3])) == [1, -2, 3]
    assert ints.encode([7]) == (7).to_bytes(4, "little") + bytes(8)  # shorter: zero-filled
    with pytest.raises(TypeError, match="at most 3"):
        ints.encode([1, 2, 3, 4])
    with pytest.raises(TypeError, match=r"\[1\]"):
        ints.encode([1, 1 << 40])
    grid = codec_for(Array(Array(i32, i32, 2), i32, 2))
    assert grid.decode(grid.encode([[1, 2], [3, 4]])) == [[1, 2], [3, 4]]
    bools = codec_for(Array(Int("_Bool", 1, IntEncoding.BOOL), i32, 2))
    assert bools.decode(b"\1\0") == [True, False]
    assert codec_for(Array(i32, i32, 0)).decode(b"") == []


# ---------------------------------------------------------------------- structs


def test_struct_from_clang(obj):
    spec, _ = obj
    c = codec_for(spec.find("btf_event", Struct))
    assert isinstance(c, Codec) and c.size == 176 and issubclass(c.record, Record)
    ev = c.decode(bytes(176))
    # anonymous union/struct members are flattened into the record
    assert c.record._fields == ("pid", "ts", "comm", "pts", "fl", "n", "port", "sport", "proto", "pad",
                                "col", "big", "ptr", "dbl", "cb", "tagged", "user_ptr", "small",
                                "medium", "large", "huge", "flag", "raw")
    assert repr(ev).startswith("btf_event(pid=0, ts=0, comm=b'', pts=[btf_point(x=0, y=0), ")
    ev.pid, ev.comm, ev.port, ev.col, ev.big = 42, b"bash", 8080, "BTF_BLUE", 0x123456789
    ev.pts[1].y = -5
    ev.fl.d = (1 << 33) - 1
    ev.n.i = -1
    ev.huge = (1 << 128) - 1
    ev.small, ev.medium, ev.large = -128, -32768, -(1 << 63)
    out = c.decode(c.encode(ev))
    assert (out.pid, out.comm, out.port, out.big, out.pts[1].y, out.fl.d) == \
        (42, b"bash", 8080, 0x123456789, -5, (1 << 33) - 1)
    assert (out.huge, out.small, out.medium, out.large) == ((1 << 128) - 1, -128, -32768, -(1 << 63))
    assert out.sport == 8080 and out.col == -1 and out.n.u == 0xFFFFFFFF      # the other members
    assert c.decode(c.encode(out)) == out
    assert out._asdict()["pts"] == [{"x": 0, "y": 0}, {"x": 0, "y": -5}]
    raw = c.encode({"pid": 7, "comm": "init", "pts": [(1, 2)], "fl": {"c": -1, "e": True}})
    got = c.decode(raw)
    assert (got.pid, got.comm, got.pts[0].x, got.pts[0].y, got.fl.c, got.fl.e) == (7, b"init", 1, 2, -1, True)
    # errors name the field and the type
    with pytest.raises(TypeError, match=r"btf_event\.pid.*4 bytes"):
        c.encode({"pid": 1 << 32})
    with pytest.raises(TypeError, match=r"btf_flags\.a.*3 bits"):
        c.encode({"fl": {"a": 8}})
    with pytest.raises(TypeError, match="has no field 'nope'"):
        c.encode({"nope": 1})
    with pytest.raises(TypeError, match="expected a record"):
        c.encode(5)
    assert c.encode(raw) == raw                                 # already-encoded bytes
    assert c.encode({"pts": [b"\1\0\0\0\2\0\0\0"]}) == c.encode({"pts": [(1, 2)]})
    with pytest.raises(TypeError, match="expected 176 bytes, got 3"):
        c.encode(b"abc")
    with pytest.raises(TypeError, match=r"btf_event\.small"):
        c.encode({"small": 128})


def test_record_class_behaviour(obj):
    spec, _ = obj
    point = codec_for(spec.find("btf_point"))
    P = point.record
    p = P(1, y=2)
    assert (p.x, p.y) == (1, 2) and repr(p) == "btf_point(x=1, y=2)" and p._asdict() == {"x": 1, "y": 2}
    assert point.decode(point.encode(p)) == p and point.encode((3, 4)) == point.encode(P(3, 4))
    assert point.encode(P(x=5)) == point.encode({"x": 5, "y": 0})
    with pytest.raises(AttributeError):
        p.z = 1                                                 # __slots__
    with pytest.raises(TypeError):
        P(1, 2, 3)
    with pytest.raises(TypeError, match="no field"):
        P(w=1)
    assert P.__slots__ == ("x", "y")
    buf = bytearray(16)
    point.encode_into(buf, 8, (7, 8))
    assert point.decode_from(buf, 8) == P(7, 8) and point.decode(memoryview(buf)[8:]) == P(7, 8)
    with pytest.raises(ValueError):
        point.decode_from(buf, 12)


def test_union_semantics(obj):
    spec, _ = obj
    num = codec_for(spec.find("btf_num", Union))
    assert num.size == 4
    v = num.decode(num.encode({"i": -1}))
    assert (v.u, v.i) == (0xFFFFFFFF, -1)
    v.u = 1                             # change one member of a decoded union: that one is written
    assert num.decode(num.encode(v)).i == 1
    v = num.decode(num.encode({"f": 1.0}))
    assert v.u == 0x3F800000
    assert num.encode(num.record(i=2)) == (2).to_bytes(4, "little")     # fresh record: set fields


def test_bitfields_match_clang(tmp_path, obj):
    spec, _ = obj
    c = codec_for(spec.find("btf_flags", Struct))
    rnd = random.Random(1234)
    cases = [(5, 17, -3, (1 << 33) - 1, 1), (0, 0, 0, 0, 0), (7, 31, -64, 0, 1), (1, 1, 63, 1 << 32, 0)]
    cases += [(rnd.randrange(8), rnd.randrange(32), rnd.randrange(-64, 64), rnd.randrange(1 << 33),
               rnd.randrange(2)) for _ in range(200)]
    src = tmp_path / "flags.c"
    src.write_text("""
#include <stdio.h>
#include <stdbool.h>
struct btf_flags { unsigned int a : 3; unsigned int b : 5; int c : 7; unsigned long long d : 33; bool e : 1; };
int main(void) {
    unsigned a, b, e; int c; unsigned long long d;
    while (scanf("%u %u %d %llu %u", &a, &b, &c, &d, &e) == 5) {
        struct btf_flags f = {0};
        f.a = a; f.b = b; f.c = c; f.d = d; f.e = e;
        unsigned char *p = (unsigned char *)&f;
        for (unsigned i = 0; i < sizeof(f); i++) printf("%02x", p[i]);
        printf("\\n");
    }
    return 0;
}
""")
    exe = tmp_path / "flags"
    subprocess.run([clang(), "-O1", str(src), "-o", str(exe)], check=True)
    stdin = "".join(" ".join(map(str, case)) + "\n" for case in cases)
    want = subprocess.run([str(exe)], input=stdin, capture_output=True, text=True, check=True).stdout.split()
    for case, hexbytes in zip(cases, want, strict=True):
        a, b, cc, d, e = case
        raw = c.encode({"a": a, "b": b, "c": cc, "d": d, "e": bool(e)})
        assert raw.hex() == hexbytes, case
        got = c.decode(bytes.fromhex(hexbytes))
        assert (got.a, got.b, got.c, got.d, got.e) == (a, b, cc, d, bool(e))


@settings(max_examples=150, deadline=None)
@given(a=st.integers(0, 7), b=st.integers(0, 31), c=st.integers(-64, 63), d=st.integers(0, (1 << 33) - 1),
       e=st.booleans(), pid=st.integers(0, (1 << 32) - 1), comm=st.binary(max_size=16).map(lambda b: b.split(b"\0")[0]),
       xs=st.lists(st.tuples(st.integers(-(1 << 31), (1 << 31) - 1), st.integers(-(1 << 31), (1 << 31) - 1)),
                   max_size=2),
       col=st.sampled_from([0, 5, -1, "BTF_GREEN"]), raw=st.binary(min_size=5, max_size=5))
def test_struct_roundtrip_hypothesis(obj, a, b, c, d, e, pid, comm, xs, col, raw):
    spec, _ = obj
    codec = codec_for(spec.find("btf_event", Struct))
    value = {"pid": pid, "comm": comm, "pts": xs, "fl": {"a": a, "b": b, "c": c, "d": d, "e": e},
             "col": col, "raw": raw}
    got = codec.decode(codec.encode(value))
    assert (got.pid, got.comm, got.raw) == (pid, comm, raw)
    assert [(p.x, p.y) for p in got.pts] == xs + [(0, 0)] * (2 - len(xs))
    assert (got.fl.a, got.fl.b, got.fl.c, got.fl.d, got.fl.e) == (a, b, c, d, e)
    assert got.col == (5 if col == "BTF_GREEN" else col)
    assert codec.encode(got) == codec.encode(value)


def test_datasecs_hold_the_elf_values(obj):
    spec, data = obj
    d = codec_for(spec.find(".data", Datasec)).decode(data[".data"])
    assert (d.btf_counter, d.btf_fav_color, d.btf_big_value, d.btf_sbig_value) == (1, 5, 0x123456789, -2)
    assert repr(d).startswith(".data(btf_counter=1, ")
    ro = codec_for(spec.find(".rodata", Datasec)).decode(data[".rodata"])
    assert (ro.btf_target_pid, ro.btf_greeting) == (42, b"hello")
    custom = codec_for(spec.find(".data.custom", Datasec)).decode(data[".data.custom"])
    assert custom.btf_head._asdict() == {"next": 0, "opaque": 0, "value": 7}
    c = codec_for(spec.find(".rodata", Datasec))
    assert c.encode({"btf_target_pid": 42, "btf_greeting": "hello"}) == data[".rodata"]


def test_hand_built_struct_with_mangled_names_and_packing():
    u16 = Int("unsigned short", 2)
    u32 = Int("unsigned int", 4)
    s = Struct("hdr", 8, [Member("__pad", u16, 0), Member("len", u32, 16), Member("__flags", u16, 48)])
    c = codec_for(s)
    v = c.decode(c.encode({"__pad": 1, "len": 0x01020304, "__flags": 2}))
    assert getattr(v, "__pad") == 1 and v.len == 0x01020304 and getattr(v, "__flags") == 2
    assert c.encode(v) == bytes([1, 0, 4, 3, 2, 1, 2, 0])
    assert "__pad=1" in repr(v)
    # a typedef shares its target's codec; qualifiers too
    assert codec_for(Typedef("hdr_t", s)) is c and codec_for(Const(s)) is c


def test_not_values():
    with pytest.raises(ObjectError, match="no value representation"):
        codec_for(FuncProto(VOID, []))
    with pytest.raises(ObjectError):
        codec_for(VOID)
    bad = Struct("bad", 2, [Member("x", Int("int", 4), 0)])
    with pytest.raises(ObjectError, match="exceeds"):
        codec_for(bad)


def test_vmlinux_structs_roundtrip():
    """Every struct and union of the running kernel compiles; decode/encode is stable."""
    spec = kernel.kernel_spec()
    rnd = random.Random(7)
    names = ["task_struct", "sk_buff", "pt_regs", "bpf_attr", "perf_event_attr", "xdp_md",
             "__sk_buff", "bpf_sock_ops", "inode", "trace_entry", "ethhdr", "iphdr", "tcphdr"]
    types = [spec.find(n) for n in names]
    types += [t for t in spec.types[1:20000] if isinstance(t, (Struct, Union)) and t.size <= 4096]
    for t in types:
        assert t is not None
        c = codec_for(t)
        raw = rnd.randbytes(c.size)
        v = c.decode(raw)
        again = c.encode(v)
        assert c.decode(again) == v, t
        assert c.encode(c.decode(again)) == again, t
    task = codec_for(spec.find("task_struct", Struct)).decode(bytes(spec.find("task_struct").size))
    assert task.pid == 0 and task.comm == b""
