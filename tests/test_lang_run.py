"""pybpf.lang programs run for real: a syscall counter, a ring-buffer event tool, an XDP packet
counter on a veth pair, print() through the log ring buffer, and a VerifierError at the Python line."""

from __future__ import annotations

import os
import platform

import pytest

import pybpf
from pybpf.lang import FakeCtx, LogReader

import lang_tools
from lang_support import module_from_source
from test_links_net import N, PORT, veth  # noqa: F401 - the veth fixture

pytestmark = pytest.mark.root  # against the kernel: needs root

GETPPID = {"x86_64": 110, "aarch64": 173}[platform.machine()]


def _spec(*progs):
    spec = pybpf.compile(*progs)
    spec.variables["TARGET_TGID"].value = os.getpid()
    return spec


def test_tracepoint_syscall_counter():
    with _spec(lang_tools.count_syscalls).load() as obj:
        with obj.programs["count_syscalls"].attach():
            for _ in range(9):
                os.getppid()
        counts = dict(obj.maps["syscalls"].items())
    assert counts[GETPPID] == 9


def test_ring_buffer_event_tool():
    lang_tools.GETPPID = GETPPID
    with _spec(lang_tools.snoop).load() as obj:
        with obj.programs["snoop"].attach():
            for _ in range(4):
                os.getppid()
        with pybpf.RingBufReader(obj.maps["events"], record=lang_tools.Event.btf()) as reader:
            events = list(reader.poll(timeout=0))
    assert len(events) == 4
    comm = open("/proc/self/comm", "rb").read().strip()
    for e in events:
        assert e.pid == os.getpid() and e.nr == GETPPID and e.comm.rstrip(b"\0") == comm[:15]
    assert [e.ts for e in events] == sorted(e.ts for e in events)


def test_xdp_packet_counter_on_veth(veth):  # noqa: F811
    assert lang_tools.PORT == PORT
    with pybpf.compile(lang_tools.count_udp).load() as obj:
        with obj.programs["count_udp"].attach_xdp(veth.host):
            veth.send_from_peer(N)
            veth.send_from_peer(3, port=PORT + 1)
        assert obj.maps["packets"][0] == N


def test_xdp_counter_same_in_cpython_and_test_run():
    import struct

    pkt = bytes(12) + b"\x08\x00" + bytes(9) + b"\x11" + bytes(12) + struct.pack(">H", PORT) + bytes(8)
    other = bytes(12) + b"\x86\xdd" + bytes(40)
    lang_tools.packets.clear()
    for p in (pkt, pkt, other):
        assert lang_tools.count_udp(FakeCtx(packet=p)) == 2
    with pybpf.compile(lang_tools.count_udp).load() as obj:
        prog = obj.programs["count_udp"]
        for p in (pkt, pkt, other):
            assert prog.test_run(data=p).retval == 2
        assert dict(obj.maps["packets"].items()) == {k: int(v) for k, v in lang_tools.packets.items()}


def test_print_goes_through_the_log_ring_buffer(capsys):
    mod = module_from_source('''
from pybpf.lang import *

TARGET_TGID = Const(u32, 0)


@tracepoint("syscalls/sys_enter_getppid")
def hello(ctx) -> int:
    if tgid() != TARGET_TGID:
        return 0
    x = i32(-5)
    print("getppid from", tgid(), "x =", x, "nr", ctx.__syscall_nr)
    return 0
''')
    spec = _spec(mod.hello)
    with spec.load() as obj, LogReader(obj) as log:
        with obj.programs["hello"].attach():
            os.getppid()
        lines = list(log.read(timeout=0))
    assert lines == [f"getppid from {os.getpid()} x = -5 nr {GETPPID}"]
    mod.TARGET_TGID = pybpf.lang.u32(os.getpid())
    mod.hello(FakeCtx(__syscall_nr=GETPPID))
    assert capsys.readouterr().out.strip() == lines[0], "CPython prints the same line"


def test_verifier_error_shows_the_python_line():
    mod = module_from_source('''
from pybpf.lang import *

OUT = u64(0)


@syscall
def spin(ctx) -> int:
    global OUT
    i = ctx.arg(0)
    while i > 0:
        OUT += 1          # i never changes: the verifier cannot prove the loop ends
    return 0
''')
    with pytest.raises(pybpf.VerifierError) as exc:
        pybpf.compile(mod.spin).load()
    err = exc.value
    assert "OUT += 1" in (err.source_line or "")
    assert f"{os.path.basename(mod.__file__)}:12" in str(err)
