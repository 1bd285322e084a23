"""pybpf.lang reads USDT arguments: ctx.arg(n) through libbpf's spec map, ctx.cookie from the spec."""

from __future__ import annotations

import pytest

import pybpf
from pybpf import features
from pybpf.lang import FakeCtx

from lang_support import module_from_source
from test_links_support import run_target, target

SOURCE = '''
from pybpf.lang import *

sums = HashMap(key=u64, value=u64, max_entries=16)


@usdt
def tick(ctx) -> int:
    c = ctx.cookie
    sums[c * 10] += ctx.arg(0)
    sums[c * 10 + 1] += ctx.arg(1)
    sums[c * 10 + 2] += ctx.arg(2)
    return 0
'''
N, M = 5, 7   # the target's tick probe fires N times with (1, i, 1000 + i), then M times with (2, i, 1000 + i)


def _expected(cookie: int) -> dict[int, int]:
    return {10 * cookie: N * 1 + M * 2, 10 * cookie + 1: sum(range(N)) + sum(range(M)),
            10 * cookie + 2: sum(1000 + i for i in range(N)) + sum(1000 + i for i in range(M))}


def test_usdt_program_declares_libbpf_spec_map():
    spec = pybpf.compile(module_from_source(SOURCE).tick)
    specs = spec.maps["__bpf_usdt_specs"]
    assert (specs.key_size, specs.value_size, specs.max_entries) == (4, 208, 256)


def test_usdt_arguments_in_cpython():
    mod = module_from_source(SOURCE)
    mod.tick(FakeCtx(cookie=1, args=[2, 3, 1004]))
    assert dict(mod.sums.items()) == {10: 2, 11: 3, 12: 1004}


def test_usdt_arg_index_is_checked():
    mod = module_from_source(SOURCE.replace("ctx.arg(2)", "ctx.arg(12)"))
    with pytest.raises(pybpf.CompileError, match="at most 12 arguments"):
        pybpf.compile(mod.tick)


@pytest.mark.root
@pytest.mark.parametrize("cookies", [True, False], ids=["cookies", "forced-fallback"])
def test_usdt_arguments_in_the_kernel(cookies):
    binary = target()
    with features.override(**({} if cookies else {"bpf_cookie": False})):
        spec = pybpf.compile(module_from_source(SOURCE).tick)
        with spec.load() as obj:
            with obj.programs["tick"].attach_usdt(binary, "pybpf_test", "tick", cookie=3):
                run_target(binary, N, M)
            assert dict(obj.maps["sums"].items()) == _expected(3)
