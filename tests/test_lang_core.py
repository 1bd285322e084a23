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


BITFIELD_SOURCE = '''
from pybpf.lang import *

seen = HashMap(key=u32, value=u64, max_entries=64)


@tracepoint("syscalls/sys_enter_getppid")
def flags(ctx) -> int:
    task = current_task()
    seen[tgid()] = task.sched_reset_on_fork + 2 * task.in_execve
    return 0
'''


def test_bitfield_reads_compile_to_the_core_relocations_of_bpf_core_read_bitfield():
    from pybpf.btf.core import apply_relocations

    mod = module_from_source(BITFIELD_SOURCE)
    spec = pybpf.compile(mod.flags)
    relos = spec.programs["flags"].core_relos
    assert sorted(r.kind.name for r in relos) == sorted(
        ["FIELD_BYTE_OFFSET", "FIELD_BYTE_SIZE", "FIELD_LSHIFT_U64", "FIELD_RSHIFT_U64"] * 2)
    local = spec.btf.types[relos[0].type_id]
    assert {m.name: m.bitfield_size for m in local.members} == {"sched_reset_on_fork": 1, "in_execve": 1}
    # The immediates the compiler wrote are what the CO-RE engine computes from the same layout.
    ps = spec.programs["flags"]
    results = apply_relocations(list(ps.instructions), list(relos), spec.btf, section=ps.section)
    assert all(r.value == r.local_value for r in results), [str(r) for r in results]


@pytest.mark.root
def test_core_read_of_a_bitfield():
    """task_struct.sched_reset_on_fork is a 1-bit field: set by sched_setscheduler(SCHED_RESET_ON_FORK)."""
    import subprocess
    import sys

    mod = module_from_source(BITFIELD_SOURCE)
    child = ("import os, sys\n"
             "if sys.argv[1] == '1':\n"
             "    os.sched_setscheduler(0, os.SCHED_OTHER | os.SCHED_RESET_ON_FORK, os.sched_param(0))\n"
             "os.getppid()\n"
             "print(os.getpid())\n")
    with pybpf.compile(mod.flags).load() as obj:
        with obj.programs["flags"].attach():
            pids = {flag: int(subprocess.run([sys.executable, "-c", child, str(flag)], check=True,
                                             capture_output=True, text=True).stdout) for flag in (0, 1)}
        seen = dict(obj.maps["seen"].items())
    assert seen[pids[1]] == 1 and seen[pids[0]] == 0
