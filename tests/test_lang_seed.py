"""pybpf.lang, run for real: the seed's two scenarios (cookies on uprobes, `static mut` counters).

The uprobe target (tests/bin/cookie_target.c) calls func_a N times and
func_b M times; one compiled program attached twice with cookies 1 and 2
must count exactly {1: N, 2: 10 * M}, through perf-link uprobes,
uprobe_multi and the forced no-cookie fallback.
"""

from __future__ import annotations

import os

import pytest

import pybpf
from pybpf import features

import lang_progs
from conftest import require_feature
from test_links_support import run_target, target

pytestmark = pytest.mark.root  # against the kernel: needs root

N, M = 3, 5
FORCED = dict(bpf_cookie=False, perf_link=False, uprobe_multi_link=False)


@pytest.fixture
def seed_obj():
    lang_progs.counts.clear()
    with pybpf.compile(lang_progs.generic_probe).load() as obj:
        yield obj


def test_seed_uprobes_with_cookies(seed_obj):
    binary = target()
    prog = seed_obj.programs["generic_probe"]
    with prog.attach_uprobe(binary, "func_a", cookie=1), prog.attach_uprobe(binary, "func_b", cookie=2):
        run_target(binary, N, M)
    assert dict(seed_obj.maps["counts"].items()) == {1: N, 2: 10 * M}


def test_seed_uprobe_multi(seed_obj):
    require_feature("uprobe_multi_link")
    binary = target()
    prog = seed_obj.programs["generic_probe"]
    with prog.attach_uprobe_multi(binary, ["func_a", "func_b"], cookies=[1, 2]):
        run_target(binary, N, M)
    assert dict(seed_obj.maps["counts"].items()) == {1: N, 2: 10 * M}


@pytest.mark.parametrize("multi", [False, True], ids=["uprobe", "uprobe_multi"])
def test_seed_forced_fallback(seed_obj, multi):
    binary = target()
    prog = seed_obj.programs["generic_probe"]
    with features.override(**FORCED):
        if multi:
            with prog.attach_uprobe_multi(binary, ["func_a", "func_b"], cookies=[1, 2]):
                run_target(binary, N, M)
        else:
            with prog.attach_uprobe(binary, "func_a", cookie=1), prog.attach_uprobe(binary, "func_b", cookie=2):
                run_target(binary, N, M)
    assert dict(seed_obj.maps["counts"].items()) == {1: N, 2: 10 * M}


def test_seed_logic_in_cpython():
    from pybpf.lang import FakeCtx

    lang_progs.counts.clear()
    for _ in range(N):
        lang_progs.generic_probe(FakeCtx(cookie=1))
    for _ in range(M):
        lang_progs.generic_probe(FakeCtx(cookie=2))
    assert dict(lang_progs.counts.items()) == {1: N, 2: 10 * M}


def test_static_counters_are_exact():
    spec = pybpf.compile(lang_progs.myapp)
    assert spec.variables["MASK"].section == ".data"
    assert spec.variables["MASK2"].section == ".bss"
    assert spec.variables["TARGET_TGID"].section == ".rodata"
    assert "LIMIT" not in spec.variables, "only the globals a program uses are compiled in"
    spec.variables["TARGET_TGID"].value = os.getpid()
    with spec.load() as obj:
        with obj.programs["myapp"].attach():
            for _ in range(7):
                os.getppid()
        assert obj.variables["MASK"].value == 1 + 7
        assert obj.variables["MASK2"].value == 7


def test_const_is_settable_before_load():
    spec = pybpf.compile(lang_progs.myapp, lang_progs.limited)
    spec.variables["TARGET_TGID"].value = os.getpid()
    spec.variables["LIMIT"].value = 3
    with spec.load() as obj:
        with obj.programs["myapp"].attach(), obj.programs["limited"].attach():
            for _ in range(7):
                os.getppid()
        # MASK2 counts 1..7 as myapp runs; limited may run before or after myapp on each call
        hits = dict(obj.maps["over_limit"].items())
        nr = 110 if os.uname().machine == "x86_64" else 173   # getppid
        assert list(hits) == [nr]
        assert 4 <= hits[nr] <= 5
        assert obj.variables["LIMIT"].value == 3


def test_sections_with_targets_attach_all():
    """@uprobe("path:func") gives libbpf's section name, so obj.attach_all() attaches compiled programs."""
    from lang_support import module_from_source

    binary = target()
    mod = module_from_source(f'''
from pybpf.lang import *

hits = HashMap(key=u64, value=u64, max_entries=8)


@uprobe("{binary}:func_a")
def on_a(ctx) -> int:
    hits[1] += 1
    return 0


@uretprobe("{binary}:func_b")
def on_b_return(ctx) -> int:
    hits[2] += 1
    return 0
''')
    spec = pybpf.compile(mod)
    assert spec.programs["on_a"].section == f"uprobe/{binary}:func_a"
    with spec.load() as obj:
        links = obj.attach_all()
        assert len(links) == 2
        run_target(binary, N, M)
        assert dict(obj.maps["hits"].items()) == {1: N, 2: M}
