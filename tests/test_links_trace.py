"""Kernel-side hooks of pybpf.links: tracepoints, raw tracepoints, tp_btf, perf events,
iterators, kprobes/fentry (their clean errors on this kernel) and auto-attach."""

from __future__ import annotations

import os
import platform
import time

import pytest

from pybpf import features
from pybpf._sys import AttachType, LinkType, ProgType
from pybpf.asm import builder as b
from pybpf.asm import opcodes as op
from pybpf.errors import BPFError, NotSupportedError, SyscallError
from pybpf.links import (
    Link, LinkGroup, attach, attach_all, attach_iter, attach_kprobe, attach_kprobe_multi, attach_perf_event,
    attach_raw_tracepoint, attach_tracepoint, attach_tracing, fallback,
)
from pybpf.links.auto import AutoAttachError
from pybpf.program import Program

from test_links_support import cookie_counter, counts_map, run_target, snapshot, target

pytestmark = pytest.mark.root  # against the kernel: needs root

GETPID_NR = {"x86_64": 39, "aarch64": 172}[platform.machine()]
CALLS = 25


@pytest.fixture
def counts():
    with counts_map() as m:
        yield m


def _getpids(n: int = CALLS) -> None:
    for _ in range(n):
        os.getpid()


def _btf_id(name: str, kind: str) -> int:
    from pybpf.btf.kernel import kernel_spec
    from pybpf.btf.types import BTFKind

    t = kernel_spec().find(name, getattr(BTFKind, kind))
    assert t is not None, f"no {name} in kernel BTF"
    return t.id


# ------------------------------------------------------------------------ tracepoints

@pytest.mark.parametrize("spelling", ["two", "slash", "colon"])
def test_tracepoint_cookie(counts, spelling):
    with cookie_counter(counts, ProgType.TRACEPOINT, tgid=os.getpid(), name="tp") as prog:
        args = {"two": ("syscalls", "sys_enter_getpid"), "slash": ("syscalls/sys_enter_getpid",),
                "colon": ("syscalls:sys_enter_getpid",)}[spelling]
        with attach_tracepoint(prog, *args, cookie=7) as link:
            _getpids()
            info = link.info()
            assert (info.type, info.perf_type, info.tp_name, info.cookie) == (
                LinkType.PERF_EVENT, "tracepoint", "sys_enter_getpid", 7)
            assert info.prog_id == prog.id
        _getpids()
    assert snapshot(counts) == {7: CALLS}


def test_tracepoint_forced_fallback(counts):
    with cookie_counter(counts, ProgType.TRACEPOINT, tgid=os.getpid(), name="tp") as prog:
        with features.override(bpf_cookie=False, perf_link=False):
            with attach_tracepoint(prog, "syscalls", "sys_enter_getpid", cookie=(1 << 33) + 1) as a, \
                    attach_tracepoint(prog, "syscalls", "sys_enter_getppid", cookie=2):
                assert not a.is_bpf_link
                _getpids()
                for _ in range(3):
                    os.getppid()
        assert fallback.live_clones(prog) == {}
    assert snapshot(counts) == {(1 << 33) + 1: CALLS, 2: 3}


def test_tracepoint_unknown_lists_close_names(counts):
    with cookie_counter(counts, ProgType.TRACEPOINT) as prog:
        with pytest.raises(FileNotFoundError, match="sys_enter_getpid"):
            attach_tracepoint(prog, "syscalls", "sys_enter_getpidd")
        with pytest.raises(FileNotFoundError, match="no tracepoint category"):
            attach_tracepoint(prog, "syscallz", "sys_enter_getpid")
        with pytest.raises(ValueError):
            attach_tracepoint(prog, "syscalls")


def test_tracepoint_pin_survives_close(counts):
    path = f"/sys/fs/bpf/pybpf_test_tp_{os.getpid()}"
    with cookie_counter(counts, ProgType.TRACEPOINT, tgid=os.getpid()) as prog:
        with attach_tracepoint(prog, "syscalls", "sys_enter_getpid", cookie=3) as link:
            link.pin(path)
        _getpids()
        pinned = Link.from_pin(path)
        assert pinned.info().tp_name == "sys_enter_getpid"
        pinned.unpin()
        pinned.close()
        _getpids()
    assert snapshot(counts) == {3: CALLS}


# ------------------------------------------------------------------------ raw tracepoints

def test_raw_tracepoint_cookie(counts):
    with cookie_counter(counts, ProgType.RAW_TRACEPOINT, tgid=os.getpid(), ctx_equals=(8, GETPID_NR)) as prog:
        with attach_raw_tracepoint(prog, "sys_enter", cookie=9) as link:
            _getpids()
            info = link.info()
            assert (info.type, info.tp_name, info.cookie, info.prog_id) == (
                LinkType.RAW_TRACEPOINT, "sys_enter", 9, prog.id)
    assert snapshot(counts) == {9: CALLS}


def test_raw_tracepoint_forced_fallback(counts):
    with cookie_counter(counts, ProgType.RAW_TRACEPOINT, tgid=os.getpid(), ctx_equals=(8, GETPID_NR)) as prog:
        with features.override(bpf_cookie=False):
            with attach_raw_tracepoint(prog, "sys_enter", cookie=4) as link:
                assert link.info().cookie == 0 and link.attached_program is not prog
                _getpids()
            with pytest.raises(NotSupportedError, match="raw_tp cookie"):
                attach_raw_tracepoint(prog, "sys_enter", cookie=4, fallback=False)
    assert snapshot(counts) == {4: CALLS}


def test_raw_tracepoint_unknown(counts):
    with cookie_counter(counts, ProgType.RAW_TRACEPOINT) as prog:
        with pytest.raises(SyscallError, match="no raw tracepoint"):
            attach_raw_tracepoint(prog, "no_such_tracepoint_pybpf")


# ------------------------------------------------------------------------ tp_btf / fentry

def test_tp_btf_cookie(counts):
    tid = _btf_id("btf_trace_sys_enter", "TYPEDEF")
    try:
        prog = cookie_counter(counts, ProgType.TRACING, expected_attach_type=AttachType.TRACE_RAW_TP,
                              attach_btf_id=tid, tgid=os.getpid(), ctx_equals=(8, GETPID_NR), name="tpbtf")
    except SyscallError as exc:  # refused by lockdown on some kernels: the error must say so
        assert exc.errno == 1 and "lockdown" in str(exc)
        return
    with prog, attach_tracing(prog, cookie=5) as link:
        _getpids()
        info = link.info()
        assert info.cookie == 5 and info.prog_id == prog.id
    assert snapshot(counts) == {5: CALLS}


def test_tp_btf_through_attach_raw_tracepoint(counts):
    tid = _btf_id("btf_trace_sys_enter", "TYPEDEF")
    with cookie_counter(counts, ProgType.TRACING, expected_attach_type=AttachType.TRACE_RAW_TP,
                        attach_btf_id=tid, tgid=os.getpid(), ctx_equals=(8, GETPID_NR)) as prog:
        with attach_raw_tracepoint(prog, cookie=6):
            _getpids()
    assert snapshot(counts) == {6: CALLS}


def test_fentry_is_refused_under_lockdown_with_a_clear_error(counts):
    tid = _btf_id("do_sys_openat2", "FUNC")
    if features.has("fentry"):  # no lockdown: the same program loads
        with cookie_counter(counts, ProgType.TRACING, expected_attach_type=AttachType.TRACE_FENTRY,
                            attach_btf_id=tid) as prog:
            assert prog.type == ProgType.TRACING
        return
    with pytest.raises(SyscallError) as err:
        cookie_counter(counts, ProgType.TRACING, expected_attach_type=AttachType.TRACE_FENTRY, attach_btf_id=tid)
    assert err.value.errno == 1
    assert "fentry" in str(err.value) and "lockdown" in str(err.value)


# ------------------------------------------------------------------------ kprobes (missing here)

@features.override(kprobes=False, kprobe_multi_link=False)  # as here, on any kernel
def test_kprobe_not_supported(counts):
    with cookie_counter(counts) as prog:
        with pytest.raises(NotSupportedError, match=r"kprobes is not supported by this kernel \(needs Linux 4.1\)"):
            attach_kprobe(prog, "do_sys_openat2", cookie=1)
        with pytest.raises(NotSupportedError, match="kprobes"):
            attach_kprobe(prog, "do_sys_openat2", retprobe=True)
        with pytest.raises(NotSupportedError, match="kprobes"):
            attach_kprobe_multi(prog, ["do_sys_openat2", "vfs_read"], cookies=[1, 2])
        with pytest.raises(NotSupportedError, match=r"kprobe_multi_link .*needs Linux 5.18"):
            attach_kprobe_multi(prog, "vfs_*", fallback=False)


def test_kprobe_argument_checks(counts):
    with cookie_counter(counts, ProgType.TRACEPOINT, name="tp") as tp:
        with pytest.raises(TypeError, match="attach_tracepoint"):
            attach_kprobe(tp, "vfs_read")
    with cookie_counter(counts) as prog:
        with pytest.raises(ValueError):
            attach_kprobe(prog, "bad name")


# ------------------------------------------------------------------------ perf events

def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1


def test_perf_event_cpu_clock_every_cpu(counts):
    with cookie_counter(counts, ProgType.PERF_EVENT, tgid=os.getpid(), name="pe") as prog:
        with attach_perf_event(prog, "software", "cpu-clock", sample_period=200_000, cookie=11) as link:
            _spin(0.2)
            infos = link.info() if isinstance(link, LinkGroup) else [link.info()]
            assert all(i.cookie == 11 and i.perf_type == "event" and i.config == 0 for i in infos)
        got = snapshot(counts)
    assert set(got) == {11}
    # 0.2 s of CPU time sampled every 0.2 ms: about 1000 samples; be generous with a busy VM
    assert 50 <= got[11] <= 2000


def test_perf_event_one_process(counts):
    with cookie_counter(counts, ProgType.PERF_EVENT, name="pe") as prog:
        with attach_perf_event(prog, "software", "task-clock", sample_freq=1000, pid=os.getpid(), cookie=12) as link:
            assert isinstance(link, Link) and not isinstance(link, LinkGroup)
            _spin(0.2)
            assert link.info().cookie == 12
    assert 20 <= snapshot(counts)[12] <= 1000


def test_perf_event_fallback_and_errors(counts):
    with cookie_counter(counts, ProgType.PERF_EVENT, tgid=os.getpid(), name="pe") as prog:
        with features.override(bpf_cookie=False, perf_link=False):
            with attach_perf_event(prog, "software", "cpu-clock", sample_period=200_000, cookie=13, cpu=0):
                _spin(0.05)
        with pytest.raises(ValueError, match="unknown"):
            attach_perf_event(prog, "software", "no-such-event")
        with pytest.raises(ValueError):
            attach_perf_event(prog, sample_period=10, sample_freq=10)
        try:
            attach_perf_event(prog, "hardware", "cycles", sample_period=1_000_000, cpu=0).close()
        except SyscallError as exc:  # hardware counters are often missing in VMs
            assert exc.errno in (2, 95, 19) and "perf_event_open" in str(exc)
    assert set(snapshot(counts)) <= {13}


# ------------------------------------------------------------------------ iterators

def _map_iter_program() -> Program:
    """For each map: bpf_seq_write(meta->seq, "M\\n", 2)."""
    tid = _btf_id("bpf_iter_bpf_map", "FUNC")
    insns = b.assemble([
        b.ldx_mem(op.DW, op.R6, op.R1, 0),      # ctx->meta
        b.ldx_mem(op.DW, op.R7, op.R1, 8),      # ctx->map (NULL at the end)
        b.jmp_imm(op.JEQ, op.R7, 0, "out"),
        b.ldx_mem(op.DW, op.R1, op.R6, 0),      # meta->seq
        b.st_mem(op.DW, op.R10, -8, 0x0A4D),    # "M\n"
        b.mov64_reg(op.R2, op.R10),
        b.alu64_imm(op.ADD, op.R2, -8),
        b.mov64_imm(op.R3, 2),
        b.call_helper(127),                     # bpf_seq_write
        b.label("out"),
        b.mov64_imm(op.R0, 0),
        b.exit_(),
    ])
    return Program.load(insns, prog_type=ProgType.TRACING, expected_attach_type=AttachType.TRACE_ITER,
                        attach_btf_id=tid, name="map_iter")


def test_iterator_reads_one_line_per_map(counts):
    from pybpf._sys.commands import map_ids

    try:
        prog = _map_iter_program()
    except SyscallError as exc:
        assert exc.errno == 1 and "lockdown" in str(exc)
        return
    with prog, attach_iter(prog) as it:
        expected = len(list(map_ids()))
        assert it.read() == b"M\n" * expected
        with it.open() as f:  # a second, independent pass
            assert f.read() == b"M\n" * expected
        assert it.info().type == LinkType.ITER


def test_iterator_wrong_type(counts):
    with cookie_counter(counts, ProgType.TRACEPOINT, name="tp") as tp:
        with pytest.raises(TypeError, match="attach_tracepoint"):
            attach_iter(tp)


# ------------------------------------------------------------------------ auto-attach

def test_auto_attach_from_section_names(counts):
    binary = target()
    with cookie_counter(counts, tgid=None) as up, \
            cookie_counter(counts, ProgType.TRACEPOINT, tgid=os.getpid(), key_from_cookie=False) as tp:
        up.section = f"uprobe/{binary}:func_a"
        tp.section = "tp/syscalls/sys_enter_getpid"
        with attach(up, cookie=21) as l1, attach(tp) as l2:
            run_target(binary, 3, 5)
            _getpids()
            assert l1.info().cookie == 21 and l2.info().tp_name == "sys_enter_getpid"
        up.section = f"uretprobe/{binary}:func_b"
        links = attach_all({"up": up, "tp": tp})
        try:
            assert set(links) == {"up", "tp"}
            run_target(binary, 3, 5)
        finally:
            for link in links.values():
                link.close()
    got = snapshot(counts)
    assert got[21] == 3 and got[0] == CALLS + 5


@pytest.mark.parametrize("section, message", [
    ("xdp", "XDP needs an interface"),
    ("perf_event", "attach_perf_event"),
    ("cgroup_skb/ingress", "cgroup v2 directory"),
    ("tc/ingress", "tc needs an interface"),
    ("uprobe", "attach_uprobe"),
    ("socket", "attach_socket"),
    ("sk_msg", "does not auto-attach"),
    ("not_a_section", "unknown section name"),
])
def test_auto_attach_needs_arguments(counts, section, message):
    with cookie_counter(counts, ProgType.TRACEPOINT, name="p") as prog:
        prog.section = section
        with pytest.raises(AutoAttachError, match=message):
            attach(prog)
        assert attach_all([prog]) == {}


def test_auto_attach_without_section(counts):
    with cookie_counter(counts, ProgType.TRACEPOINT, name="p") as prog:
        with pytest.raises(AutoAttachError, match="no ELF section"):
            attach(prog)


@features.override(kprobes=False)  # as here, on any kernel
def test_auto_attach_kprobe_section_reports_missing_kprobes(counts):
    with cookie_counter(counts) as prog:
        prog.section = "kprobe/do_sys_openat2"
        with pytest.raises(NotSupportedError, match="kprobes"):
            attach(prog)
        prog.section = "ksyscall/openat"
        with pytest.raises(NotSupportedError, match="kprobes"):
            attach(prog)


def test_program_methods(counts):
    with cookie_counter(counts, ProgType.TRACEPOINT, tgid=os.getpid()) as prog:
        with prog.attach_tracepoint("syscalls", "sys_enter_getpid", cookie=2):
            _getpids()
    assert snapshot(counts) == {2: CALLS}


def test_link_errors_after_close(counts):
    with cookie_counter(counts, ProgType.TRACEPOINT) as prog:
        link = attach_tracepoint(prog, "syscalls", "sys_enter_getpid")
        link.close()
        with pytest.raises(BPFError, match="closed"):
            link.info()
        with pytest.raises(BPFError, match="closed"):
            link.pin("/sys/fs/bpf/x")


def test_kprobe_paths_report_what_is_missing(counts):
    """With the feature checks overridden, the kprobe code paths still end in a clear error
    (no kprobe PMU, no kprobe_events, no kprobe_multi in this kernel); where the kernel has
    them, the same calls attach."""
    from pybpf.errors import LinkError

    with cookie_counter(counts) as prog:
        if features.has("kprobes"):
            attach_kprobe(prog, "vfs_read", cookie=1).close()
        else:
            with features.override(kprobes=True):
                with pytest.raises(LinkError, match="kprobe_events does not exist"):
                    attach_kprobe(prog, "vfs_read", cookie=1)
        if features.has("kprobe_multi_link"):
            attach_kprobe_multi(prog, ["vfs_read", "vfs_write"], cookies=[1, 2]).close()
        else:
            with features.override(kprobe_multi_link=True):
                with pytest.raises(SyscallError, match="create link"):
                    attach_kprobe_multi(prog, ["vfs_read", "vfs_write"], cookies=[1, 2])
        assert fallback.live_clones(prog) == {}, "the retyped clone is released on failure"


# ------------------------------------------------------------------------ who owns a link

def test_a_dropped_link_stays_attached_until_the_program_closes(counts):
    import gc

    def calls(getpid: int, getppid: int) -> None:
        _getpids(getpid)
        for _ in range(getppid):
            os.getppid()

    with cookie_counter(counts, ProgType.TRACEPOINT, tgid=os.getpid(), name="tp") as prog:
        prog.attach_tracepoint("syscalls", "sys_enter_getpid", cookie=4)    # the Link is not kept
        attach_tracepoint(prog, "syscalls", "sys_enter_getppid", cookie=5)  # nor through the function
        gc.collect()
        calls(CALLS, 3)
        assert [link.cookie for link in prog.links] == [4, 5]
        prog.links[1].close()                          # a caller can still detach one early
        assert [link.cookie for link in prog.links] == [4]
        calls(2, 4)
        taken = prog.attach_tracepoint("syscalls", "sys_enter_getppid", cookie=6).take()
        assert [link.cookie for link in prog.links] == [4]
        calls(1, 5)
        del taken                                      # the caller took it: dropping it detaches
        gc.collect()
        calls(7, 6)
        owned = prog.links[0]
    assert owned.closed and prog.links == ()          # closing the program detached the rest
    calls(CALLS, 3)
    assert snapshot(counts) == {4: CALLS + 2 + 1 + 7, 5: 3, 6: 5}


def test_object_close_detaches_what_attach_all_made(counts):
    with cookie_counter(counts, ProgType.TRACEPOINT, tgid=os.getpid(), name="tp") as prog:
        prog.section = "tp/syscalls/sys_enter_getpid"
        attach_all({"tp": prog})
        _getpids(4)
        assert len(prog.links) == 1
    _getpids()
    assert snapshot(counts) == {0: 4}
