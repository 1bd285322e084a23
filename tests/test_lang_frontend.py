"""pybpf.lang front end: CompileErrors with file:line:col and a hint, and the integer types in CPython.

No kernel involved: compile() builds an ObjectSpec without system calls.
"""

from __future__ import annotations

import re

import pytest

import pybpf
from pybpf.errors import CompileError
from pybpf.lang import HashMap, RingBuf, i8, i16, i32, i64, tracepoint, u8, u16, u32, u64, uprobe, xdp

m = HashMap(key=u32, value=u64, max_entries=8)
events = RingBuf(1 << 12)
PLAIN = 7


def _err(prog) -> str:
    with pytest.raises(CompileError) as exc:
        pybpf.compile(prog)
    return str(exc.value)


def _line_of(fn, text):
    import inspect

    lines, first = inspect.getsourcelines(fn)
    for i, line in enumerate(lines):
        if text in line:
            return first + i
    raise AssertionError(text)


def test_float_is_rejected_with_position():
    @xdp
    def p(ctx) -> int:
        x = 1.5
        return 2

    msg = _err(p)
    assert re.search(rf"test_lang_frontend.py:{_line_of(p.fn, 'x = 1.5')}:\d+: BPF has no floating point", msg)
    assert msg.startswith("program 'p': ")


@pytest.mark.root
@pytest.mark.parametrize("body, needle", [
    ("try:\n        pass\n    except Exception:\n        pass", "exceptions do not exist in BPF"),
    ("x = [1, 2]", "lists are heap objects"),
    ("x = {}", "dicts are heap objects: declare a HashMap"),
    ("x = undefined_name + 1", "unknown name 'undefined_name'"),
    ("x = 3 / 2", "use '//' (integer division)"),
    ("x = 2 ** 3", "'**' is not supported"),
    ("class C:\n        pass", "classes cannot be defined inside a BPF program"),
    ("while True:\n        pass", ""),
    ("for i in range(PLAIN_VAR):\n        pass", "unknown name"),
    ("x = f'{1}'", "f-strings"),
    ("x = None", "None is not a BPF value"),
    ("x = len(PLAIN)", "'len' cannot be called from a BPF program"),
])
def test_unsupported_python(body, needle):
    src = f"def p(ctx) -> int:\n    {body}\n    return 0\n"
    ns = {"PLAIN": PLAIN, "__name__": "x"}
    path = "/tmp/pybpf_lang_case.py"
    with open(path, "w") as f:
        f.write("from pybpf.lang import xdp\n@xdp\n" + src)
    code = compile(open(path).read(), path, "exec")
    import linecache

    linecache.checkcache(path)
    exec(code, ns)
    if not needle:
        pybpf.compile(ns["p"])    # while True with no exit still compiles: the verifier decides
        return
    msg = _err(ns["p"])
    assert needle in msg
    assert re.search(r"pybpf_lang_case.py:\d+:\d+: ", msg)


def test_mixed_fixed_types_need_a_conversion():
    @uprobe
    def p(ctx) -> int:
        x = u32(1)
        x = u64(2)
        return 0

    assert "holds both u32 and u64 values" in _err(p)


def test_const_is_read_only_in_bpf():
    import lang_progs

    @tracepoint("syscalls/sys_enter_getppid")
    def p(ctx) -> int:
        global LIMIT
        LIMIT = 3
        return 0

    p.fn.__globals__["LIMIT"] = lang_progs.LIMIT
    try:
        assert "is a Const: it is read-only" in _err(p)
    finally:
        del p.fn.__globals__["LIMIT"]


def test_plain_int_global_cannot_be_a_bpf_global():
    @uprobe
    def p(ctx) -> int:
        global PLAIN
        PLAIN += 1
        return 0

    assert "must hold a pybpf integer" in _err(p)


@pytest.mark.root
def test_unknown_tracepoint_field_lists_the_fields():
    @tracepoint("raw_syscalls/sys_enter")
    def p(ctx) -> int:
        return ctx.nosuch

    msg = _err(p)
    assert "has no field 'nosuch'" in msg and "id" in msg and "args" in msg


def test_not_decorated():
    def p(ctx) -> int:
        return 0

    with pytest.raises(CompileError, match="not a BPF program: decorate it"):
        pybpf.compile(p)


def test_sections_of_decorators():
    from pybpf.lang import raw_tracepoint, uretprobe

    @uprobe("libc.so.6:malloc")
    def a(ctx) -> int:
        return 0

    @tracepoint("syscalls/sys_enter_getppid")
    def b(ctx) -> int:
        return 0

    @uprobe
    def c(ctx) -> int:
        return 0

    @uretprobe
    def d(ctx) -> int:
        return ctx.ret

    @raw_tracepoint("sys_enter")
    def e(ctx) -> int:
        return ctx.arg(1)

    spec = pybpf.compile(a, b, c, d, e)
    assert {n: p.section for n, p in spec.programs.items()} == {
        "a": "uprobe/libc.so.6:malloc", "b": "tracepoint/syscalls/sys_enter_getppid", "c": "uprobe",
        "d": "uretprobe", "e": "raw_tracepoint/sys_enter"}
    assert spec.programs["b"].type.name == "TRACEPOINT"


# -- integer semantics in CPython ------------------------------------------------------------------

def test_wraparound_and_types():
    assert u8(200) + 100 == 44 and type(u8(200) + 100) is u8
    assert type(u8(1) + u32(1)) is u32
    assert type(i32(1) + u32(1)) is u32
    assert type(i64(1) + u32(1)) is i64
    assert u64(0) - 1 == 2**64 - 1
    assert i8(127) + 1 == -128
    assert i32(-7) // 2 == -3 and i32(-7) % 2 == -1
    assert u32(7) // 0 == 0 and u32(7) % 0 == 7
    assert u32(1) << 33 == 2 and u64(1) << 65 == 2
    assert i16(-16) >> 2 == -4
    assert (u64(1) > i64(-1)) == 0
    assert u16(0xFFFF) * u16(0xFFFF) == 1
    with pytest.raises(TypeError):
        u32(1) / 2
