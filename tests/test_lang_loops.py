"""bpf_loop(n, fn) in pybpf.lang: the kernel runs the loop and the verifier checks fn once (Linux 5.17)."""

from __future__ import annotations

import pytest

import pybpf
from pybpf.lang import FakeCtx

from lang_support import module_from_source

SOURCE = '''
from pybpf.lang import *

TOTAL = u64(0)
out = Array(value=i64, max_entries=4)


def add(i: u64) -> int:
    global TOTAL
    TOTAL += i
    if i == 99999:
        return 1             # stop
    return 0


@syscall
def sum_up(ctx) -> int:
    out[0] = bpf_loop(1000, add)        # 1000 calls: more than a verified loop could walk cheaply
    out[1] = bpf_loop(200000, add)      # stops after i == 99999
    out[2] = bpf_loop(10000000, add)    # over 2**23 loops: -E2BIG, fn never called
    return 0
'''
WANT_TOTAL = sum(range(1000)) + sum(range(100000))
WANT_OUT = {0: 1000, 1: 100000, 2: -7}


def test_bpf_loop_in_cpython():
    mod = module_from_source(SOURCE)
    mod.sum_up(FakeCtx())
    assert int(mod.TOTAL) == WANT_TOTAL
    assert {int(k): int(v) for k, v in mod.out.items()} == WANT_OUT


def test_bpf_loop_needs_a_function_of_one_argument():
    mod = module_from_source(SOURCE.replace("def add(i: u64)", "def add(i: u64, j: u64)"))
    with pytest.raises(pybpf.CompileError, match="must take one argument"):
        pybpf.compile(mod.sum_up)


@pytest.mark.root
def test_bpf_loop_in_the_kernel():
    if not (pybpf.features.prog_type_supported("syscall") and pybpf.features.helper_supported("syscall", "loop")):
        pytest.skip("NotSupportedError: bpf_loop (Linux 5.17) in syscall programs is not supported by this kernel")
    spec = pybpf.compile(module_from_source(SOURCE).sum_up)
    with spec.load() as obj:
        assert obj.programs["sum_up"].test_run(ctx=bytes(8)).retval == 0
        assert obj.variables["TOTAL"].value == WANT_TOTAL
        assert {k: v for k, v in obj.maps["out"].items() if k in WANT_OUT} == WANT_OUT


ARRAYS = '''
from pybpf.lang import *

out = Array(value=u64, max_entries=4)


@syscall
def arrays(ctx) -> int:
    buf = u8[16]()
    for i in range(16):
        buf[i] = i * 3
    total = u64(0)
    for i in range(16):
        total += buf[i]
    words = u32[8]()
    for j in range(1, 8, 2):
        words[j] = j * 1000
    vals = i16[4]()
    for k in range(4):
        vals[k] = k - 2
        vals[k] += 1
    s2 = i64(0)
    for k in range(3, -1, -1):
        s2 += vals[k] * 10
    out[0] = total
    out[1] = words[1] + words[3] + words[5] + words[7]
    out[2] = s2
    return 0
'''
WANT_ARRAYS = {0: sum(3 * i for i in range(16)), 1: 16000, 2: 20}


def test_loop_variables_index_stack_arrays_in_cpython():
    mod = module_from_source(ARRAYS)
    mod.arrays(FakeCtx())
    assert {int(k): int(v) for k, v in mod.out.items()} == WANT_ARRAYS


@pytest.mark.root
def test_loop_variables_index_stack_arrays_in_the_kernel():
    with pybpf.compile(module_from_source(ARRAYS).arrays).load() as obj:
        assert obj.programs["arrays"].test_run(ctx=bytes(8)).retval == 0
        assert {k: v for k, v in obj.maps["out"].items() if k in WANT_ARRAYS} == WANT_ARRAYS


def test_an_index_the_compiler_cannot_bound_is_a_compile_error():
    for body in ("for i in range(17):\n        buf[i] = 1",              # one past the end
                 "for i in range(16):\n        i = 20\n        buf[i] = 1",  # the loop changes i
                 "n = ktime_get_ns() % 16\n    buf[n] = 1"):                # not a loop variable
        mod = module_from_source(f'''
from pybpf.lang import *


@syscall
def bad(ctx) -> int:
    buf = u8[16]()
    {body}
    return 0
''')
        with pytest.raises(pybpf.CompileError, match="an array index must be a constant"):
            pybpf.compile(mod.bad)
