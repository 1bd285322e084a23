"""pybpf.lang reads kernel structs by name with CO-RE relocations: task_struct from the current task."""

from __future__ import annotations

import os

import pytest

import pybpf
from pybpf.btf.reader import CoreRelocKind
from pybpf.lang import FakeCtx

from lang_support import module_from_source

SOURCE = '''
from pybpf.lang import *

TARGET_TGID = Const(u32, 0)
seen = HashMap(key=u32, value=u64, max_entries=8)


@tracepoint("syscalls/sys_enter_getppid")
def family(ctx) -> int:
    if tgid() != TARGET_TGID:
        return 0
    task = current_task()
    seen[0] = task.tgid
    seen[1] = task.real_parent.tgid
    parent = task.real_parent
    if parent:
        seen[2] = parent.real_parent.tgid
    return 0
'''


def _grandparent() -> int:
    with open(f"/proc/{os.getppid()}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


@pytest.mark.root
def test_core_read_of_task_struct():
    mod = module_from_source(SOURCE)
    spec = pybpf.compile(mod.family)
    relos = spec.programs["family"].core_relos
    assert relos and {r.kind for r in relos} == {CoreRelocKind.FIELD_BYTE_OFFSET}
    local = spec.btf.types[relos[0].type_id]
    assert local.name == "task_struct" and {m.name for m in local.members} == {"tgid", "real_parent"}
    spec.variables["TARGET_TGID"].value = os.getpid()
    with spec.load() as obj:
        with obj.programs["family"].attach():
            os.getppid()
        assert dict(obj.maps["seen"].items()) == {0: os.getpid(), 1: os.getppid(), 2: _grandparent()}


def test_core_program_runs_in_cpython():
    mod = module_from_source(SOURCE)
    mod.TARGET_TGID = mod.u32(os.getpid())
    mod.family(FakeCtx())
    assert dict(mod.seen.items()) == {0: os.getpid(), 1: os.getppid(), 2: _grandparent()}


def test_unknown_kernel_member_is_a_compile_error():
    mod = module_from_source('''
from pybpf.lang import *


@tracepoint("syscalls/sys_enter_getppid")
def bad(ctx) -> int:
    return current_task().no_such_member
''')
    try:
        pybpf.compile(mod.bad)
    except pybpf.CompileError as exc:
        assert "struct task_struct has no member 'no_such_member'" in str(exc)
    else:
        raise AssertionError("expected a CompileError")


ANON_SOURCE = '''
from pybpf.lang import *

TARGET_TGID = Const(u32, 0)
seen = HashMap(key=u32, value=u64, max_entries=8)


@tracepoint("syscalls/sys_enter_getppid")
def areas(ctx) -> int:
    if tgid() != TARGET_TGID:
        return 0
    mm = current_task().mm
    seen[0] = mm.arg_end - mm.arg_start
    seen[1] = mm.env_end - mm.env_start
    return 0
'''


@pytest.mark.root
def test_core_read_of_members_in_anonymous_structs():
    """mm_struct keeps arg_start & co. in an anonymous struct (Linux 6.x): they are read as C reads
    them, and 8-byte integers are read (not taken for arrays' addresses)."""
    mod = module_from_source(ANON_SOURCE)
    spec = pybpf.compile(mod.areas)
    local = next(t for t in spec.btf.types if getattr(t, "name", "") == "mm_struct")
    assert [m.name for m in local.members] == ["arg_start", "arg_end", "env_start", "env_end"]
    spec.variables["TARGET_TGID"].value = os.getpid()
    with spec.load() as obj:
        with obj.programs["areas"].attach():
            os.getppid()
        got = dict(obj.maps["seen"].items())
    with open("/proc/self/cmdline", "rb") as f:
        cmdline = f.read()
    with open("/proc/self/environ", "rb") as f:
        environ = f.read()
    assert got == {0: len(cmdline), 1: len(environ)}
