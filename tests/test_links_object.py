"""pybpf.links with programs from a C object (tests/progs/links_cookie.bpf.c) through the ELF loader:
auto-attach from section names, cookies, and libbpf's <bpf/usdt.bpf.h> reading USDT arguments
from the spec map pybpf fills."""

from __future__ import annotations

import os

import pytest

from pybpf import features
from pybpf.links import attach_all, attach_uprobe

from test_links_support import run_target, target

pytestmark = pytest.mark.root  # against the kernel: needs root

N, M = 3, 5


@pytest.fixture
def obj():
    from buildprogs import build
    from pybpf.object import ObjectSpec

    binary = target()
    path = build("links_cookie", extra_flags=(f'-DTARGET_PATH="{binary}"',))
    spec = ObjectSpec.from_file(path)
    spec.variables["target_tgid"].value = os.getpid()
    with spec.load() as loaded:
        yield loaded


def _sum_big(n: int) -> int:
    return sum(1000 + i for i in range(n))


def test_attach_all_from_section_names(obj):
    binary = target()
    links = obj.attach_all()
    try:
        assert set(links) == {"on_multi", "on_tick", "on_getpid"}  # "uprobe" alone names no target
        run_target(binary, N, M)
        for _ in range(7):
            os.getpid()
    finally:
        for link in links.values():
            link.close()
    counts = dict(obj.maps["counts"].items())
    assert counts == {10: N + M, 100: _sum_big(N) + _sum_big(M), 201: N, 202: M, 300: 7}


def test_object_programs_with_cookies(obj):
    binary = target()
    prog = obj.programs["on_func"]
    # The Program methods; the usdt program finds its spec map through prog.object.
    with prog.attach_uprobe(binary, "func_a", cookie=1), prog.attach_uprobe(binary, "func_b", cookie=2), \
            obj.programs["on_tick"].attach(cookie=5), \
            obj.programs["on_getpid"].attach(cookie=6):
        run_target(binary, N, M)
        for _ in range(4):
            os.getpid()
    counts = dict(obj.maps["counts"].items())
    assert counts == {1: N, 2: M, 105: _sum_big(N) + _sum_big(M), 201: N, 202: M, 306: 4}


def test_attach_all_function_matches_object_method(obj):
    links = attach_all(obj.programs, maps=obj.maps)
    try:
        assert set(links) == {"on_multi", "on_tick", "on_getpid"}
    finally:
        for link in links.values():
            link.close()


def test_object_programs_under_forced_fallback(obj):
    """Clones of loader-made programs (bytes, BTF func/line info) per cookie."""
    binary = target()
    prog = obj.programs["on_func"]
    with features.override(bpf_cookie=False, perf_link=False, uprobe_multi_link=False):
        with attach_uprobe(prog, binary, "func_a", cookie=(1 << 40) + 1), attach_uprobe(prog, binary, "func_b", cookie=2):
            run_target(binary, N, M)
    assert dict(obj.maps["counts"].items()) == {(1 << 40) + 1: N, 2: M}


def test_object_loads_and_counts_on_a_kernel_without_cookies():
    """As on Linux < 5.15: the helper call cannot be loaded, so the object's program is loaded
    with r0 = 0 in its place, and every attachment gets a clone with its own constant."""
    from buildprogs import build
    from pybpf.asm.cookie import calls_cookie_helper
    from pybpf.object import ObjectSpec

    binary = target()
    path = build("links_cookie", extra_flags=(f'-DTARGET_PATH="{binary}"',))
    spec = ObjectSpec.from_file(path)
    spec.variables["target_tgid"].value = os.getpid()
    with features.override(bpf_cookie=False, perf_link=False, uprobe_multi_link=False):
        with spec.load() as obj:
            prog = obj.programs["on_func"]
            assert calls_cookie_helper(prog.insns)  # kept for the clones
            with prog.attach_uprobe(binary, "func_a", cookie=7), prog.attach_uprobe(binary, "func_b", cookie=8):
                run_target(binary, N, M)
            assert dict(obj.maps["counts"].items()) == {7: N, 8: M}
