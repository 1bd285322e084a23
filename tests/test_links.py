"""Acceptance tests of pybpf.links for uprobes: one program, many attach points, a cookie on each.

The target (tests/bin/cookie_target.c, built with gcc) calls func_a N times
and func_b M times; the program counts hits per cookie in a hash map, so
each attach path must produce exactly {1: N, 2: M}.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from pybpf import features
from pybpf._sys import AttachType, LinkType, ProgType
from pybpf.errors import NotSupportedError
from pybpf.links import (
    Link, LinkGroup, attach_uprobe, attach_uprobe_multi, attach_uretprobe, attach_usdt, fallback,
)
from pybpf.links.symbols import ElfFile, SymbolNotFoundError

from conftest import require_feature
from test_links_support import cookie_counter, counts_map, run_target, snapshot, target

pytestmark = pytest.mark.root  # against the kernel: needs root

N, M = 3, 5


@pytest.fixture
def counts():
    with counts_map() as m:
        yield m


@pytest.fixture
def prog(counts):
    with cookie_counter(counts) as p:
        yield p


@pytest.fixture
def multi_prog(counts):
    with cookie_counter(counts, expected_attach_type=AttachType.TRACE_UPROBE_MULTI, name="count_multi") as p:
        yield p


@pytest.fixture(params=[True, False], ids=["pie", "nopie"])
def binary(request):
    return target(pie=request.param)


def _offset(path, name):
    return ElfFile.open(str(path)).resolve(name).offset


# ------------------------------------------------------------------------ single uprobes

@pytest.mark.parametrize("retprobe", [False, True], ids=["uprobe", "uretprobe"])
def test_uprobe_cookies_count_each_function(prog, counts, binary, retprobe):
    with attach_uprobe(prog, binary, "func_a", cookie=1, retprobe=retprobe) as la, \
            attach_uprobe(prog, binary, "func_b", cookie=2, retprobe=retprobe) as lb:
        run_target(binary, N, M)
        assert snapshot(counts) == {1: N, 2: M}
        info = la.info()
        assert info.type == LinkType.PERF_EVENT
        assert info.prog_id == prog.id
        assert info.cookie == 1 and lb.info().cookie == 2
        assert info.perf_type == ("uretprobe" if retprobe else "uprobe")
        assert info.file_name == str(binary)
        assert info.offset == _offset(binary, "func_a")
    run_target(binary, N, M)
    assert snapshot(counts) == {1: N, 2: M}, "closed links must not count"


def test_uretprobe_alias(prog, counts):
    binary = target()
    with attach_uretprobe(prog, binary, "func_b", cookie=9) as link:
        run_target(binary, N, M)
        assert link.info().perf_type == "uretprobe"
    assert snapshot(counts) == {9: M}


def test_uprobe_absolute_offset_and_relative_offset(prog, counts):
    binary = target()
    off = _offset(binary, "func_a")
    with attach_uprobe(prog, binary, None, offset=off, cookie=5):
        run_target(binary, N, M)
    assert snapshot(counts) == {5: N}
    # offset relative to a symbol: func_a + 0 is the same point
    with attach_uprobe(prog, binary, "func_b", offset=0, cookie=6) as link:
        run_target(binary, N, M)
        assert link.info().offset == _offset(binary, "func_b")
    assert snapshot(counts) == {5: N, 6: M}


def test_uprobe_big_and_negative_cookies(prog, counts):
    binary = target()
    big = (1 << 40) + 7
    with attach_uprobe(prog, binary, "func_a", cookie=big), attach_uprobe(prog, binary, "func_b", cookie=-2):
        run_target(binary, N, M)
    assert snapshot(counts) == {big: N, (1 << 64) - 2: M}


def test_uprobe_library_by_name(counts):
    # getpid in libc, filtered to this process: at least our calls are counted.
    with cookie_counter(counts) as prog, attach_uprobe(prog, "c", "getpid", cookie=7, pid=os.getpid()) as link:
        for _ in range(20):
            os.getpid()
        assert "libc.so" in link.info().file_name
    got = snapshot(counts)
    assert set(got) == {7} and 20 <= got[7] < 1000


def test_uprobe_versioned_symbol(counts):
    with cookie_counter(counts) as prog, attach_uprobe(prog, "libc.so.6", "getpid@@GLIBC_2.2.5", cookie=3,
                                                       pid=os.getpid()):
        for _ in range(5):
            os.getpid()
    assert snapshot(counts).get(3, 0) >= 5


# ------------------------------------------------------------------------ uprobe_multi

@pytest.mark.parametrize("retprobe", [False, True], ids=["uprobe_multi", "uretprobe_multi"])
def test_uprobe_multi_cookies(multi_prog, counts, binary, retprobe):
    require_feature("uprobe_multi_link")
    with attach_uprobe_multi(multi_prog, binary, ["func_a", "func_b"], cookies=[1, 2], retprobe=retprobe) as link:
        run_target(binary, N, M)
        assert snapshot(counts) == {1: N, 2: M}
        info = link.info()
        assert info.type == LinkType.UPROBE_MULTI
        assert info.prog_id == multi_prog.id
        assert info.cookies == [1, 2]
        assert info.offsets == [_offset(binary, "func_a"), _offset(binary, "func_b")]
        assert info.retprobe is retprobe
        assert info.path == str(binary)


def test_uprobe_multi_glob_sorted_by_name(multi_prog, counts):
    binary = target()
    with attach_uprobe_multi(multi_prog, binary, "func_[ab]", cookies=[10, 20]) as link:
        run_target(binary, N, M)
        assert link.info().cookies == [10, 20]
    assert snapshot(counts) == {10: N, 20: M}


def test_uprobe_multi_cookie_mapping_and_offsets(multi_prog, counts):
    binary = target()
    with attach_uprobe_multi(multi_prog, binary, ["func_b", "func_a"], cookies={"func_a": 1, "func_b": 2},
                             offsets=[0, 0]):
        run_target(binary, N, M)
    assert snapshot(counts) == {1: N, 2: M}


def test_uprobe_multi_retypes_a_plain_uprobe_program(prog, counts):
    """A program loaded as a plain uprobe is cloned for the uprobe_multi link (and released after)."""
    binary = target()
    with attach_uprobe_multi(prog, binary, ["func_a", "func_b"], cookies=[1, 2]) as link:
        assert link.attached_program is not prog
        assert link.attached_program.expected_attach_type == AttachType.TRACE_UPROBE_MULTI
        run_target(binary, N, M)
    assert snapshot(counts) == {1: N, 2: M}
    assert fallback.live_clones(prog) == {}


def test_uprobe_on_multi_program_uses_retyped_clone(multi_prog, counts):
    binary = target()
    with attach_uprobe(multi_prog, binary, "func_a", cookie=4) as link:
        assert link.attached_program.expected_attach_type in (None, 0)
        run_target(binary, N, M)
    assert snapshot(counts) == {4: N}


# ------------------------------------------------------------------------ the cookie fallback

FORCED = dict(bpf_cookie=False, perf_link=False, uprobe_multi_link=False)


def test_forced_fallback_single_uprobes(prog, counts, binary):
    made = fallback.clone_count()
    with features.override(**FORCED):
        with attach_uprobe(prog, binary, "func_a", cookie=1) as la, attach_uprobe(prog, binary, "func_b", cookie=2):
            assert not la.is_bpf_link  # PERF_EVENT_IOC_SET_BPF: the event is the attachment
            assert la.attached_program is not prog
            assert la.info().cookie == 1 and la.info().id == 0
            run_target(binary, N, M)
            assert fallback.clone_count() == made + 2
            assert len(fallback.live_clones(prog)) == 2
    assert snapshot(counts) == {1: N, 2: M}
    assert fallback.live_clones(prog) == {}, "clones are closed with their last link"


def test_forced_fallback_uprobe_multi(multi_prog, counts, binary):
    with features.override(**FORCED):
        with attach_uprobe_multi(multi_prog, binary, ["func_a", "func_b"], cookies=[1, 2]) as link:
            assert isinstance(link, LinkGroup) and len(link) == 2
            run_target(binary, N, M)
            infos = link.info()
            assert [i.cookie for i in infos] == [1, 2]
    assert snapshot(counts) == {1: N, 2: M}


def test_forced_fallback_uretprobe_and_big_cookie(prog, counts):
    binary = target()
    big = (7 << 36) | 3
    with features.override(**FORCED):
        with attach_uprobe(prog, binary, "func_a", cookie=big, retprobe=True), \
                attach_uprobe(prog, binary, "func_b", cookie=2, retprobe=True):
            run_target(binary, N, M)
    assert snapshot(counts) == {big: N, 2: M}


def test_fallback_clone_is_shared_per_cookie(prog, counts):
    binary = target()
    made = fallback.clone_count()
    with features.override(bpf_cookie=False):  # perf links, but no cookies
        with attach_uprobe(prog, binary, "func_a", cookie=1) as a, attach_uprobe(prog, binary, "func_b", cookie=1) as b:
            assert a.is_bpf_link and a.attached_program is b.attached_program
            assert a.info().cookie == 0  # the kernel carries none: it is compiled in
            run_target(binary, N, M)
    assert fallback.clone_count() == made + 1
    assert snapshot(counts) == {1: N + M}


def test_fallback_disabled_raises(prog, multi_prog):
    binary = target()
    with features.override(**FORCED):
        with pytest.raises(NotSupportedError, match=r"bpf_cookie is not supported by this kernel \(needs Linux 5.15\)"):
            attach_uprobe(prog, binary, "func_a", cookie=1, fallback=False)
        with pytest.raises(NotSupportedError, match=r"uprobe_multi_link .*needs Linux 6.6"):
            attach_uprobe_multi(multi_prog, binary, ["func_a"], cookies=[1], fallback=False)
        # cookie 0 needs no cookie support
        attach_uprobe(prog, binary, "func_a", fallback=False).close()


# ------------------------------------------------------------------------ pid filter

def _start_waiting(binary, n, m):
    return subprocess.Popen([str(binary), str(n), str(m), "wait"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


@pytest.mark.parametrize("how", ["uprobe", "uprobe_multi", "fallback"])
def test_pid_filter_excludes_other_process(counts, how):
    binary = target()
    eat = AttachType.TRACE_UPROBE_MULTI if how == "uprobe_multi" else None
    with cookie_counter(counts, expected_attach_type=eat) as prog:
        traced = _start_waiting(binary, N, M)
        try:
            with features.override(**(FORCED if how == "fallback" else {})):
                if how == "uprobe_multi":
                    link = attach_uprobe_multi(prog, binary, ["func_a", "func_b"], cookies=[1, 2], pid=traced.pid)
                else:
                    link = LinkGroup([attach_uprobe(prog, binary, "func_a", cookie=1, pid=traced.pid),
                                      attach_uprobe(prog, binary, "func_b", cookie=2, pid=traced.pid)])
            with link:
                if how == "uprobe_multi":
                    assert link.info().pid == traced.pid  # reported while the process lives
                run_target(binary, 7, 11)  # another process: not counted
                traced.communicate("go\n", timeout=30)
        finally:
            if traced.poll() is None:
                traced.kill()
                traced.wait()
    assert snapshot(counts) == {1: N, 2: M}


# ------------------------------------------------------------------------ USDT

def test_usdt_cookie_and_semaphore(counts, prog):
    binary = target()
    assert run_target(binary, N, M).strip() == "0"  # semaphore off: the guarded probe is skipped
    with attach_usdt(prog, binary, "pybpf_test", "tick", cookie=3) as tick, \
            attach_usdt(prog, binary, "pybpf_test", "guarded", cookie=4) as guarded:
        assert len(tick.probes) == 2 and len(guarded.probes) == 1
        assert guarded.probes[0].semaphore != 0
        out = run_target(binary, N, M)
        assert [i.cookie for i in tick.info()] == [3, 3]
        assert guarded.info()[0].ref_ctr_offset == guarded.probes[0].semaphore_offset
    assert out.strip() == str(N + M), "the kernel raised the semaphore while attached"
    assert snapshot(counts) == {3: N + M, 4: N + M}


def test_usdt_args_are_parsed():
    binary = target()
    link_probes = __import__("pybpf.links.usdt", fromlist=["find_probes"]).find_probes(str(binary), "pybpf_test", "tick")
    assert len(link_probes) == 2
    for p in link_probes:
        assert len(p.args) == 3
        first, second, third = p.args
        assert first.kind == "const" and first.size == 4 and first.signed
        assert second.size == 8 and third.size == 8
        assert second.kind in ("reg", "deref") and third.kind in ("reg", "deref")
    assert sorted(p.args[0].value for p in link_probes) == [1, 2]


def test_usdt_forced_fallback(counts, prog):
    binary = target()
    with features.override(**FORCED), attach_usdt(prog, binary, "pybpf_test", "tick", cookie=8):
        run_target(binary, N, M)
    assert snapshot(counts) == {8: N + M}


# ------------------------------------------------------------------------ bad input

def test_unknown_symbol_lists_closest_names(prog):
    binary = target()
    with pytest.raises(SymbolNotFoundError) as err:
        attach_uprobe(prog, binary, "func_aa")
    assert "func_a" in str(err.value) and "did you mean" in str(err.value)
    assert "func_a" in err.value.close
    with pytest.raises(LookupError):
        attach_uprobe_multi(prog, binary, ["func_a", "fnuc_b"])


def test_missing_file(prog):
    with pytest.raises(FileNotFoundError):
        attach_uprobe(prog, "/nonexistent/pybpf/binary", "main")
    with pytest.raises(FileNotFoundError, match="libpybpf_no_such_library"):
        attach_uprobe(prog, "pybpf_no_such_library", "main")


def test_wrong_cookie_count(multi_prog):
    binary = target()
    with pytest.raises(ValueError, match="3 cookies for 2 probe points"):
        attach_uprobe_multi(multi_prog, binary, ["func_a", "func_b"], cookies=[1, 2, 3])
    with pytest.raises(ValueError, match="1 cookies for 2 probe points"):
        attach_uprobe_multi(multi_prog, binary, "func_[ab]", cookies=[1])


def test_wrong_program_type(counts):
    with cookie_counter(counts, ProgType.TRACEPOINT, name="tp") as tp:
        with pytest.raises(TypeError, match=r"program 'tp' is a TRACEPOINT program; attach it with attach_tracepoint\(\)"):
            attach_uprobe(tp, target(), "func_a")
        with pytest.raises(TypeError, match="attach_tracepoint"):
            attach_uprobe_multi(tp, target(), ["func_a"])
        with pytest.raises(TypeError, match="attach_tracepoint"):
            attach_usdt(tp, target(), "pybpf_test", "tick")


def test_bad_arguments(prog):
    binary = target()
    with pytest.raises(ValueError):
        attach_uprobe(prog, binary, None)  # neither symbol nor offset
    with pytest.raises(ValueError):
        attach_uprobe(prog, binary, "func_a", pid=0)
    with pytest.raises(TypeError):
        attach_uprobe(prog, binary, "func_a", cookie="1")


# ------------------------------------------------------------------------ Link life cycle

def test_link_close_is_idempotent_and_gc_detaches_a_taken_link(prog, counts):
    binary = target()
    link = attach_uprobe(prog, binary, "func_a", cookie=1)
    fd = link.fd
    assert os.path.exists(f"/proc/self/fd/{fd}")
    link.close()
    link.close()
    assert link.closed
    link = attach_uprobe(prog, binary, "func_a", cookie=2).take()  # the caller owns it now
    del link
    import gc

    gc.collect()
    run_target(binary, N, M)
    assert snapshot(counts) == {}


def test_link_pin_and_from_pin(prog, counts, tmp_path):
    binary = target()
    path = f"/sys/fs/bpf/pybpf_test_link_{os.getpid()}"
    with attach_uprobe(prog, binary, "func_a", cookie=1) as link:
        link.pin(path)
        assert link.pinned_path == path
    run_target(binary, N, M)  # still attached through the pin
    assert snapshot(counts) == {1: N}
    again = Link.from_pin(path)
    try:
        assert again.info().cookie == 1 and again.info().prog_id == prog.id
        assert again.kind == "perf_event"
    finally:
        again.unpin()
        again.close()
    assert not os.path.exists(path)
    run_target(binary, N, M)
    assert snapshot(counts) == {1: N}


def test_perf_link_update_is_not_supported(prog, counts):
    from pybpf.errors import BPFError

    binary = target()
    with cookie_counter(counts, name="other") as other, attach_uprobe(prog, binary, "func_a") as link:
        with pytest.raises(BPFError):
            link.update(other)


# ------------------------------------------------------------------------ USDT arguments (libbpf spec map)

def _usdt_arg_reader(specs, counts, k: int):
    """A hand-assembled bpf_usdt_arg(ctx, k) (libbpf's usdt.bpf.h): counts[bpf_usdt_cookie()] += arg k."""
    from pybpf._sys import HelperID
    from pybpf.asm import builder as b
    from pybpf.asm import opcodes as op
    from pybpf.program import Program

    a = 16 * k  # struct __bpf_usdt_arg_spec args[k]
    insns = b.assemble([
        b.mov64_reg(op.R6, op.R1),
        b.call_helper(HelperID.get_attach_cookie),          # spec id
        b.stx_mem(op.W, op.R10, op.R0, -4),
        b.ld_map_fd(op.R1, specs.fd),
        b.mov64_reg(op.R2, op.R10),
        b.alu64_imm(op.ADD, op.R2, -4),
        b.call_helper(HelperID.map_lookup_elem),
        b.jmp_imm(op.JEQ, op.R0, 0, "out"),
        b.mov64_reg(op.R7, op.R0),
        b.ldx_mem(op.DW, op.R8, op.R7, a + 0),              # val_off
        b.mov64_reg(op.R9, op.R8),
        b.ldx_mem(op.W, op.R1, op.R7, a + 8),               # arg_type
        b.jmp_imm(op.JEQ, op.R1, 0, "cast"),                # BPF_USDT_ARG_CONST
        b.ldx_mem(op.H, op.R3, op.R7, a + 12),              # reg_off
        b.alu64_reg(op.ADD, op.R3, op.R6),
        b.mov64_reg(op.R1, op.R10),
        b.alu64_imm(op.ADD, op.R1, -16),
        b.mov64_imm(op.R2, 8),
        b.call_helper(HelperID.probe_read_kernel),
        b.ldx_mem(op.DW, op.R9, op.R10, -16),
        b.ldx_mem(op.W, op.R1, op.R7, a + 8),
        b.jmp_imm(op.JEQ, op.R1, 1, "cast"),                # BPF_USDT_ARG_REG
        b.mov64_reg(op.R3, op.R9),                          # BPF_USDT_ARG_REG_DEREF
        b.alu64_reg(op.ADD, op.R3, op.R8),
        b.mov64_reg(op.R1, op.R10),
        b.alu64_imm(op.ADD, op.R1, -16),
        b.mov64_imm(op.R2, 8),
        b.call_helper(HelperID.probe_read_user),
        b.ldx_mem(op.DW, op.R9, op.R10, -16),
        b.label("cast"),
        b.ldx_mem(op.B, op.R1, op.R7, a + 15),              # arg_bitshift
        b.alu64_reg(op.LSH, op.R9, op.R1),
        b.ldx_mem(op.B, op.R2, op.R7, a + 14),              # arg_signed
        b.jmp_imm(op.JEQ, op.R2, 0, "unsigned"),
        b.alu64_reg(op.ARSH, op.R9, op.R1),
        b.ja("add"),
        b.label("unsigned"),
        b.alu64_reg(op.RSH, op.R9, op.R1),
        b.label("add"),
        b.ldx_mem(op.DW, op.R1, op.R7, 192),                # usdt_cookie
        b.stx_mem(op.DW, op.R10, op.R1, -8),
        b.ld_map_fd(op.R1, counts.fd),
        b.mov64_reg(op.R2, op.R10),
        b.alu64_imm(op.ADD, op.R2, -8),
        b.call_helper(HelperID.map_lookup_elem),
        b.jmp_imm(op.JEQ, op.R0, 0, "init"),
        b.atomic_op(op.DW, op.ADD, op.R0, op.R9, 0),
        b.ja("out"),
        b.label("init"),
        b.stx_mem(op.DW, op.R10, op.R9, -16),
        b.ld_map_fd(op.R1, counts.fd),
        b.mov64_reg(op.R2, op.R10),
        b.alu64_imm(op.ADD, op.R2, -8),
        b.mov64_reg(op.R3, op.R10),
        b.alu64_imm(op.ADD, op.R3, -16),
        b.mov64_imm(op.R4, 0),
        b.call_helper(HelperID.map_update_elem),
        b.label("out"),
        b.mov64_imm(op.R0, 0),
        b.exit_(),
    ])
    return Program.load(insns, prog_type=ProgType.KPROBE, name=f"usdt_arg{k}")


def test_usdt_arguments_through_libbpf_spec_map(counts):
    from pybpf.maps import ArrayMap

    binary = target()
    with ArrayMap(key="u32", value=208, max_entries=256, name="usdt_specs") as specs:
        progs = [_usdt_arg_reader(specs, counts, k) for k in range(3)]
        try:
            links = [attach_usdt(p, binary, "pybpf_test", "tick", cookie=k, spec_map=specs)
                     for k, p in enumerate(progs)]
            try:
                assert sorted(i.cookie for link in links for i in link.info()) == list(range(6))  # spec ids
                run_target(binary, N, M)
            finally:
                for link in links:
                    link.close()
        finally:
            for p in progs:
                p.close()
    assert snapshot(counts) == {
        0: N * 1 + M * 2,                                           # -4@$1 / -4@$2
        1: sum(range(N)) + sum(range(M)),                           # i
        2: sum(1000 + i for i in range(N)) + sum(1000 + i for i in range(M)),
    }


# ------------------------------------------------------------------------ legacy tracefs uprobes

def test_tracefs_uprobe_path_leaves_no_entry(prog, counts, monkeypatch):
    """Kernels without the uprobe PMU (before 4.17) get a probe written into tracefs uprobe_events."""
    from pybpf.links import _tracefs, uprobe

    monkeypatch.setattr(uprobe, "_FORCE_TRACEFS", True)
    binary = target()
    events = os.path.join(_tracefs.tracefs_root(), "uprobe_events")
    with attach_uprobe(prog, binary, "func_a", cookie=1) as la, \
            attach_uprobe(prog, binary, "func_b", cookie=2, retprobe=True) as lb:
        with open(events) as f:
            text = f.read()
        assert f"pybpf_{os.getpid()}_" in text and text.count(str(binary)) >= 2
        run_target(binary, N, M)
        assert la.info().cookie == 1 and lb.info().cookie == 2
        assert (la.info().perf_type, lb.info().perf_type) == ("uprobe", "uretprobe")
    assert snapshot(counts) == {1: N, 2: M}
    with open(events) as f:
        assert f"pybpf_{os.getpid()}_" not in f.read(), "the tracefs entries are removed with their links"


# ------------------------------------------------------------------------ the section kind is the default

def test_uretprobe_section_attaches_a_return_probe(prog, counts):
    binary = target()
    prog.section = "uretprobe"
    with prog.attach_uprobe(binary, "func_a", cookie=1) as link:
        assert link.kind == "uretprobe" and link.info().retprobe is True
        run_target(binary, N, M)
    with pytest.raises(ValueError, match=r'attach_uprobe\(retprobe=False\) conflicts with .*SEC\("uretprobe"\)'):
        prog.attach_uprobe(binary, "func_a", retprobe=False)
    prog.section = "uprobe"
    with pytest.raises(ValueError, match=r'attach_uprobe\(retprobe=True\).*SEC\("uprobe"\).*an entry probe'):
        prog.attach_uretprobe(binary, "func_a")
    assert snapshot(counts) == {1: N}


def test_a_link_group_behaves_like_a_link(prog, counts):
    binary = target()
    with features.override(uprobe_multi_link=False):
        group = prog.attach_uprobe_multi(binary, ["func_a", "func_b"], cookies=[1, 2])
    assert isinstance(group, LinkGroup) and prog.links == (group,)   # the program owns the group, not its members
    info = group.info()
    assert group.id == 0 and info.id == 0 and info.prog_id == prog.id and info.count == 2
    assert info.type == LinkType.PERF_EVENT and [m.cookie for m in info] == [1, 2] and len(info) == 2
    run_target(binary, N, M)
    prog.close_links()
    assert group.closed and all(link.closed for link in group.links)
    assert snapshot(counts) == {1: N, 2: M}
