"""Network hooks of pybpf.links: XDP and tcx on a veth pair whose peer lives in a network
namespace the test creates, cgroup_skb on a cgroup v2 directory, socket filters; and the netlink
fallbacks of older kernels (IFLA_XDP, clsact + cls_bpf), forced with features.override and read
back with `ip link` and `tc`.

Each program counts UDP packets to one port (parsing the headers), so the
counts are exact even with ARP and other traffic on the interfaces.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass

import pytest

from pybpf._sys import AttachType, HelperID, LinkType, ProgType
from pybpf.asm import builder as b
from pybpf.asm import opcodes as op
from pybpf.errors import BPFError, SyscallError
from pybpf.links import Link, attach_cgroup, attach_socket, attach_tc, attach_xdp
from pybpf.links.cgroup import cgroup2_mounts
from pybpf.program import Program

from test_links_support import counts_map, snapshot

pytestmark = pytest.mark.root  # against the kernel: needs root

PORT = 40404
N = 17


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@dataclass
class Veth:
    ns: str
    host: str
    peer: str
    host_ip: str
    peer_ip: str

    def send_from_peer(self, n: int, port: int = PORT) -> None:
        code = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                f"for _ in range({n}): s.sendto(b'pybpf', ('{self.host_ip}', {port}))")
        subprocess.run(["ip", "netns", "exec", self.ns, sys.executable, "-c", code], check=True, timeout=30)

    def send_from_host(self, n: int, port: int = PORT) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(n):
                s.sendto(b"pybpf", (self.peer_ip, port))


@pytest.fixture
def veth():
    assert shutil.which("ip"), "iproute2 (ip) is needed: scripts/install-test-deps.sh installs it"
    tag = os.getpid() % 100000
    v = Veth(ns=f"pybpf_t{tag}", host=f"pbh{tag}", peer=f"pbp{tag}", host_ip="10.199.7.1", peer_ip="10.199.7.2")
    _ip("netns", "del", v.ns, check=False)
    _ip("link", "del", v.host, check=False)
    try:
        _ip("netns", "add", v.ns)
        _ip("link", "add", v.host, "type", "veth", "peer", "name", v.peer)
        _ip("link", "set", v.peer, "netns", v.ns)
        _ip("addr", "add", f"{v.host_ip}/24", "dev", v.host)
        _ip("link", "set", v.host, "up")
        _ip("-n", v.ns, "addr", "add", f"{v.peer_ip}/24", "dev", v.peer)
        _ip("-n", v.ns, "link", "set", v.peer, "up")
        _ip("-n", v.ns, "link", "set", "lo", "up")
        yield v
    finally:
        _ip("link", "del", v.host, check=False)
        _ip("netns", "del", v.ns, check=False)


@pytest.fixture
def counts():
    with counts_map() as m:
        yield m


def udp_counter(counts, prog_type: ProgType, *, data: int, data_end: int, l3: int, retval: int, key: int = 0,
                name: str = "udp_count", **load) -> Program:
    """Count UDP packets to PORT in ``counts[key]``; ``l3`` is where the IPv4 header starts."""
    dport = ((PORT & 0xFF) << 8) | (PORT >> 8)  # network order, read as a little-endian u16
    insns = b.assemble([
        b.mov64_reg(op.R6, op.R1),
        b.ldx_mem(op.W, op.R2, op.R6, data),
        b.ldx_mem(op.W, op.R3, op.R6, data_end),
        b.mov64_reg(op.R4, op.R2),
        b.alu64_imm(op.ADD, op.R4, l3 + 24),
        b.jmp_reg(op.JGT, op.R4, op.R3, "out"),
        b.ldx_mem(op.B, op.R5, op.R2, l3 + 9),           # protocol
        b.jmp_imm(op.JNE, op.R5, 17, "out"),
        b.ldx_mem(op.H, op.R5, op.R2, l3 + 22),          # UDP destination port
        b.jmp_imm(op.JNE, op.R5, dport, "out"),
        b.st_mem(op.DW, op.R10, -8, key),
        b.ld_map_fd(op.R1, counts.fd),
        b.mov64_reg(op.R2, op.R10),
        b.alu64_imm(op.ADD, op.R2, -8),
        b.call_helper(HelperID.map_lookup_elem),
        b.jmp_imm(op.JEQ, op.R0, 0, "init"),
        b.mov64_imm(op.R1, 1),
        b.atomic_op(op.DW, op.ADD, op.R0, op.R1, 0),
        b.ja("out"),
        b.label("init"),
        b.st_mem(op.DW, op.R10, -16, 1),
        b.ld_map_fd(op.R1, counts.fd),
        b.mov64_reg(op.R2, op.R10),
        b.alu64_imm(op.ADD, op.R2, -8),
        b.mov64_reg(op.R3, op.R10),
        b.alu64_imm(op.ADD, op.R3, -16),
        b.mov64_imm(op.R4, 0),
        b.call_helper(HelperID.map_update_elem),
        b.label("out"),
        b.mov64_imm(op.R0, retval),
        b.exit_(),
    ])
    return Program.load(insns, prog_type=prog_type, name=name, **load)


XDP_PASS, TCX_PASS, TCX_NEXT = 2, 0, -1
XDP_CTX = dict(data=0, data_end=4, l3=14)
SKB_CTX = dict(data=76, data_end=80)  # struct __sk_buff


# ------------------------------------------------------------------------ XDP

@pytest.mark.parametrize("mode", ["skb", "drv", None])
def test_xdp_counts_packets(veth, counts, mode):
    with udp_counter(counts, ProgType.XDP, retval=XDP_PASS, **XDP_CTX) as prog:
        with attach_xdp(prog, veth.host, mode=mode) as link:
            veth.send_from_peer(N)
            info = link.info()
            assert (info.type, info.ifindex, info.prog_id) == (LinkType.XDP, socket.if_nametoindex(veth.host), prog.id)
        veth.send_from_peer(3)  # detached: not counted
    assert snapshot(counts) == {0: N}


def test_xdp_update_pin_and_busy(veth, counts):
    with udp_counter(counts, ProgType.XDP, retval=XDP_PASS, key=1, **XDP_CTX) as first, \
            udp_counter(counts, ProgType.XDP, retval=XDP_PASS, key=2, **XDP_CTX) as second:
        index = socket.if_nametoindex(veth.host)
        with attach_xdp(first, index, mode="skb") as link:
            veth.send_from_peer(N)
            link.update(second)
            assert link.info().prog_id == second.id and link.program is second
            veth.send_from_peer(5)
            with pytest.raises(SyscallError, match="already has an XDP program"):
                attach_xdp(first, veth.host, mode="skb")
            path = f"/sys/fs/bpf/pybpf_test_xdp_{os.getpid()}"
            link.pin(path)
        veth.send_from_peer(2)  # the pin keeps it attached
        pinned = Link.from_pin(path)
        assert pinned.info().ifindex == index
        pinned.unpin()
        pinned.close()
        veth.send_from_peer(4)
    assert snapshot(counts) == {1: N, 2: 7}


def test_xdp_bad_interface(counts):
    with udp_counter(counts, ProgType.XDP, retval=XDP_PASS, **XDP_CTX) as prog:
        with pytest.raises(LookupError, match="no network interface"):
            attach_xdp(prog, "pybpf_no_such_if")
        with pytest.raises(ValueError, match="unknown XDP mode"):
            attach_xdp(prog, "lo", mode="turbo")
    with udp_counter(counts, ProgType.SCHED_CLS, retval=0, l3=14, **SKB_CTX) as tc:
        with pytest.raises(TypeError, match=r"SCHED_CLS program; attach it with attach_tc\(\)"):
            attach_xdp(tc, "lo")


# ------------------------------------------------------------------------ tc / tcx

@pytest.mark.parametrize("direction", ["ingress", "egress"])
def test_tcx_counts_packets(veth, counts, direction):
    with udp_counter(counts, ProgType.SCHED_CLS, retval=TCX_PASS, l3=14, **SKB_CTX) as prog:
        with attach_tc(prog, veth.host, direction) as link:
            if direction == "ingress":
                veth.send_from_peer(N)
            else:
                veth.send_from_host(N)
            info = link.info()
            assert info.type == LinkType.TCX and info.ifindex == socket.if_nametoindex(veth.host)
            assert info.attach_type == (AttachType.TCX_INGRESS if direction == "ingress" else AttachType.TCX_EGRESS)
    assert snapshot(counts) == {0: N}


def test_tcx_ordering_and_update(veth, counts):
    with udp_counter(counts, ProgType.SCHED_CLS, retval=TCX_PASS, key=1, l3=14, **SKB_CTX) as p1, \
            udp_counter(counts, ProgType.SCHED_CLS, retval=TCX_NEXT, key=2, l3=14, **SKB_CTX) as p2, \
            udp_counter(counts, ProgType.SCHED_CLS, retval=TCX_NEXT, key=3, l3=14, **SKB_CTX) as p3:
        # p2 runs before p1 and passes the packet on (TCX_NEXT); p1 ends the chain (TCX_PASS).
        # Were p2 placed after p1, it would never see a packet.
        with attach_tc(p1, veth.host) as l1, attach_tc(p2, veth.host, before=l1) as l2:
            veth.send_from_peer(N)
            l2.update(p3)
            veth.send_from_peer(2)
            with pytest.raises(ValueError):
                attach_tc(p1, veth.host, "sideways")
    assert snapshot(counts) == {1: N + 2, 2: N, 3: 2}


# ------------------------------------------------------------------------ cgroup v2

@pytest.fixture
def cgroup_dir():
    mounts = cgroup2_mounts()
    if not mounts:  # cgroup v1 host: a cgroup2 hierarchy of our own, beside it
        os.makedirs("/run/pybpf-cgroup2", exist_ok=True)
        subprocess.run(["mount", "-t", "cgroup2", "none", "/run/pybpf-cgroup2"], check=True)
        mounts = cgroup2_mounts()
    path = os.path.join(mounts[0], f"pybpf_test_{os.getpid()}")
    os.makedirs(path, exist_ok=True)
    try:
        yield path
    finally:
        try:
            os.rmdir(path)
        except OSError:
            pass


def _send_in_cgroup(cgroup: str, n: int) -> None:
    code = ("import socket, os\n"
            f"open(os.path.join({cgroup!r}, 'cgroup.procs'), 'w').write(str(os.getpid()))\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            f"for _ in range({n}): s.sendto(b'pybpf', ('127.0.0.1', {PORT}))")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


def test_cgroup_skb_egress(cgroup_dir, counts):
    with udp_counter(counts, ProgType.CGROUP_SKB, retval=1, l3=0, name="cg_egress", **SKB_CTX) as prog:
        with attach_cgroup(prog, cgroup_dir, "egress") as link:
            _send_in_cgroup(cgroup_dir, N)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # this process: another cgroup
                for _ in range(5):
                    s.sendto(b"x", ("127.0.0.1", PORT))
            info = link.info()
            assert info.type == LinkType.CGROUP
            assert info.attach_type == AttachType.CGROUP_INET_EGRESS
            assert info.cgroup_id == os.stat(cgroup_dir).st_ino
        _send_in_cgroup(cgroup_dir, 3)
    assert snapshot(counts) == {0: N}


def test_cgroup_errors(cgroup_dir, counts, tmp_path):
    with udp_counter(counts, ProgType.CGROUP_SKB, retval=1, l3=0, **SKB_CTX) as prog:
        with pytest.raises(ValueError, match="ingress' or 'egress"):
            attach_cgroup(prog, cgroup_dir)
        with pytest.raises(FileNotFoundError):
            attach_cgroup(prog, cgroup_dir + "_missing", "ingress")
        with pytest.raises(BPFError, match="not in a cgroup v2 hierarchy"):
            attach_cgroup(prog, str(tmp_path), "ingress")


# ------------------------------------------------------------------------ socket filters

def _socket_counter(counts, keep: bool) -> Program:
    """Count every packet; keep it (return skb->len) or drop it (return 0)."""
    insns = b.assemble([
        b.mov64_reg(op.R6, op.R1),
        b.st_mem(op.DW, op.R10, -8, 0),
        b.ld_map_fd(op.R1, counts.fd),
        b.mov64_reg(op.R2, op.R10),
        b.alu64_imm(op.ADD, op.R2, -8),
        b.call_helper(HelperID.map_lookup_elem),
        b.jmp_imm(op.JEQ, op.R0, 0, "out"),
        b.mov64_imm(op.R1, 1),
        b.atomic_op(op.DW, op.ADD, op.R0, op.R1, 0),
        b.label("out"),
        b.ldx_mem(op.W, op.R0, op.R6, 0) if keep else b.mov64_imm(op.R0, 0),
        b.exit_(),
    ])
    return Program.load(insns, prog_type=ProgType.SOCKET_FILTER, name="sock_count")


def test_socket_filter_udp(counts):
    counts[0] = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(2)
        with _socket_counter(counts, keep=True) as prog, attach_socket(prog, rx) as link:
            for i in range(N):
                tx.sendto(b"%d" % i, rx.getsockname())
            got = [rx.recv(100) for _ in range(N)]
            assert got == [b"%d" % i for i in range(N)]
            assert link.info().prog_id == prog.id
        tx.sendto(b"after", rx.getsockname())
        assert rx.recv(100) == b"after"
    assert snapshot(counts) == {0: N}


def test_socket_filter_drops_on_socketpair(counts):
    counts[0] = 0
    a, b_ = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b_:
        b_.settimeout(0.3)
        with _socket_counter(counts, keep=False) as prog:
            with attach_socket(prog, b_.fileno()):
                a.send(b"dropped")
                with pytest.raises(socket.timeout):
                    b_.recv(10)
            a.send(b"kept")
            assert b_.recv(10) == b"kept"
    assert snapshot(counts) == {0: 1}


def test_xdp_detach_keeps_fd(veth, counts):
    with udp_counter(counts, ProgType.XDP, retval=XDP_PASS, **XDP_CTX) as prog:
        with attach_xdp(prog, veth.host, mode="skb") as link:
            veth.send_from_peer(3)
            link.detach()
            veth.send_from_peer(4)
            assert not link.closed
        # the interface is free again
        attach_xdp(prog, veth.host, mode="skb").close()
    assert snapshot(counts) == {0: 3}


def test_tcx_revision_needs_tcx(veth, counts):
    """Without tcx the attach falls back to a tc filter, which has no revision: expected_revision= is refused."""
    from pybpf import features
    from pybpf.errors import NotSupportedError

    with udp_counter(counts, ProgType.SCHED_CLS, retval=TCX_PASS, l3=14, **SKB_CTX) as prog:
        with features.override(tcx=False):
            with pytest.raises(NotSupportedError, match=r"tcx .*needs Linux 6.6"):
                attach_tc(prog, veth.host, expected_revision=1)


def test_cgroup_prog_attach_fallback(cgroup_dir, counts, monkeypatch):
    """Kernels before 5.7 have no cgroup links: BPF_PROG_ATTACH/DETACH (real syscalls; only the
    link_create refusal is simulated)."""
    import errno

    from pybpf._sys.syscall import error
    from pybpf.links import cgroup as cgroup_mod

    def no_links(attr, what="link"):
        raise error(errno.EINVAL, "create link")

    monkeypatch.setattr(cgroup_mod, "link_create", no_links)
    with udp_counter(counts, ProgType.CGROUP_SKB, retval=1, l3=0, **SKB_CTX) as prog:
        with attach_cgroup(prog, cgroup_dir, "egress") as link:
            assert not link.is_bpf_link
            assert link.info().cgroup_id == os.stat(cgroup_dir).st_ino
            _send_in_cgroup(cgroup_dir, N)
        _send_in_cgroup(cgroup_dir, 2)
    assert snapshot(counts) == {0: N}


# ------------------------------------------------------------------------ netlink fallbacks
# Kernels before 5.9 (XDP links) and 6.6 (tcx) attach through rtnetlink; the override makes this
# kernel take those paths.  `ip` and `tc` read the interface back.

def _xdp_shown(dev: str) -> str:
    return _ip("link", "show", "dev", dev).stdout


def _tc(*args: str) -> str:
    return subprocess.run(["tc", *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def no_xdp_link():
    from pybpf import features

    with features.override(xdp_link=False):
        yield


@pytest.fixture
def no_tcx():
    from pybpf import features

    assert shutil.which("tc"), "iproute2 (tc) is needed: scripts/install-test-deps.sh installs it"
    with features.override(tcx=False):
        yield


@pytest.mark.parametrize("mode", ["skb", "drv", None])
def test_xdp_netlink_counts_packets(veth, counts, no_xdp_link, mode):
    from pybpf.links.xdp import XdpNetlinkLink

    with udp_counter(counts, ProgType.XDP, retval=XDP_PASS, **XDP_CTX) as prog:
        with attach_xdp(prog, veth.host, mode=mode) as link:
            assert isinstance(link, XdpNetlinkLink) and not link.is_bpf_link
            veth.send_from_peer(N)
            info = link.info()
            assert (info.type, info.id, info.ifindex, info.prog_id) == (
                LinkType.XDP, 0, socket.if_nametoindex(veth.host), prog.id)
            assert info.via == "netlink" and info.attached
            assert info.mode == (mode or "drv")  # veth has native XDP: the kernel's default is drv
            shown = _xdp_shown(veth.host)
            assert f"prog/xdp id {prog.id}" in shown
            assert (" xdpgeneric " if mode == "skb" else " xdp ") in shown
        shown = _xdp_shown(veth.host)
        assert "prog/xdp" not in shown and " xdp" not in shown
        veth.send_from_peer(3)  # detached: not counted
    assert snapshot(counts) == {0: N}


def test_xdp_netlink_refuses_to_replace(veth, counts, no_xdp_link):
    with udp_counter(counts, ProgType.XDP, retval=XDP_PASS, key=1, **XDP_CTX) as first, \
            udp_counter(counts, ProgType.XDP, retval=XDP_PASS, key=2, **XDP_CTX) as second:
        with attach_xdp(first, veth.host, mode="skb") as l1:
            with pytest.raises(SyscallError, match="already has an XDP program.*replace=True") as err:
                attach_xdp(second, veth.host, mode="skb")
            assert err.value.errno == errno.EBUSY
            with pytest.raises(SyscallError, match="other mode"):
                attach_xdp(second, veth.host, mode="drv")
            veth.send_from_peer(N)                 # still the first program
            with attach_xdp(second, veth.host, mode="skb", replace=True):
                veth.send_from_peer(5)
                assert l1.info().prog_id == second.id and not l1.info().attached
                l1.close()                         # no longer ours: leaves the second program alone
                assert f"prog/xdp id {second.id}" in _xdp_shown(veth.host)
                veth.send_from_peer(2)
            assert "prog/xdp" not in _xdp_shown(veth.host)
        veth.send_from_peer(4)
    assert snapshot(counts) == {1: N, 2: 7}


def test_xdp_netlink_update_pin_detach(veth, counts, no_xdp_link):
    from pybpf.errors import LinkError, NotSupportedError

    with udp_counter(counts, ProgType.XDP, retval=XDP_PASS, key=1, **XDP_CTX) as first, \
            udp_counter(counts, ProgType.XDP, retval=XDP_PASS, key=2, **XDP_CTX) as second:
        with attach_xdp(first, veth.host, mode="skb") as link:
            veth.send_from_peer(N)
            link.update(second)
            assert link.info().prog_id == second.id and link.program is second
            veth.send_from_peer(5)
            with pytest.raises(SyscallError, match="no longer the one") as err:
                link.update(first, old_program=first)  # first is not attached any more
            assert err.value.errno == errno.EEXIST
            with pytest.raises(NotSupportedError, match="netlink.*only BPF links can be pinned"):
                link.pin(f"/sys/fs/bpf/pybpf_test_xdp_nl_{os.getpid()}")
            link.detach()
            assert not link.closed and "prog/xdp" not in _xdp_shown(veth.host)
            veth.send_from_peer(2)
            with pytest.raises(LinkError, match="detached"):
                link.update(first)
        with pytest.raises(LinkError, match="closed"):
            link.info()
    assert snapshot(counts) == {1: N, 2: 5}


def test_xdp_netlink_cannot_replace_a_link(veth, counts):
    from pybpf import features

    with udp_counter(counts, ProgType.XDP, retval=XDP_PASS, **XDP_CTX) as prog:
        with attach_xdp(prog, veth.host, mode="skb") as link:
            assert link.is_bpf_link
            with features.override(xdp_link=False):
                with pytest.raises(SyscallError, match="held by a BPF link"):
                    attach_xdp(prog, veth.host, mode="skb", replace=True)


def test_xdp_netlink_closes_when_collected(veth, counts, no_xdp_link):
    import gc

    with udp_counter(counts, ProgType.XDP, retval=XDP_PASS, **XDP_CTX) as prog:
        attach_xdp(prog, veth.host, mode="skb").take()  # owned by the caller, who drops it
        gc.collect()
        assert "prog/xdp" not in _xdp_shown(veth.host)


def test_netlink_bad_interface(counts, no_xdp_link, no_tcx):
    with udp_counter(counts, ProgType.XDP, retval=XDP_PASS, **XDP_CTX) as prog:
        with pytest.raises(LookupError, match="no network interface 'pybpf_no_such_if'"):
            attach_xdp(prog, "pybpf_no_such_if")
    with udp_counter(counts, ProgType.SCHED_CLS, retval=TCX_PASS, l3=14, **SKB_CTX) as prog:
        with pytest.raises(LookupError, match="no network interface with index 999999"):
            attach_tc(prog, 999999)


@pytest.mark.parametrize("direction", ["ingress", "egress"])
def test_tc_netlink_counts_packets(veth, counts, no_tcx, direction):
    from pybpf.links.tc import TcNetlinkLink

    with udp_counter(counts, ProgType.SCHED_CLS, retval=TCX_PASS, l3=14, **SKB_CTX) as prog:
        with attach_tc(prog, veth.host, direction) as link:
            assert isinstance(link, TcNetlinkLink) and not link.is_bpf_link
            send = veth.send_from_peer if direction == "ingress" else veth.send_from_host
            send(N)
            info = link.info()
            assert (info.type, info.id, info.ifindex, info.prog_id) == (
                LinkType.TCX, 0, socket.if_nametoindex(veth.host), prog.id)
            assert info.attach_type == (AttachType.TCX_INGRESS if direction == "ingress" else AttachType.TCX_EGRESS)
            assert info.via == "netlink" and info.direct_action and info.qdisc_created
            assert (info.priority, info.handle) == (link.priority, 1)
            assert "qdisc clsact ffff:" in _tc("qdisc", "show", "dev", veth.host)
            shown = _tc("filter", "show", "dev", veth.host, direction)
            assert f"pref {link.priority} bpf" in shown and "handle 0x1" in shown
            assert "direct-action" in shown and f"id {prog.id}" in shown
            other = "egress" if direction == "ingress" else "ingress"
            assert _tc("filter", "show", "dev", veth.host, other) == ""
        assert _tc("filter", "show", "dev", veth.host, direction) == ""
        assert "clsact" not in _tc("qdisc", "show", "dev", veth.host)  # we made it, we removed it
        send(3)
    assert snapshot(counts) == {0: N}


def test_tc_netlink_ordering_and_update(veth, counts, no_tcx):
    """The tcx ordering test through classic filters: priorities stand in for tcx's order."""
    from pybpf.errors import LinkError, NotSupportedError

    with udp_counter(counts, ProgType.SCHED_CLS, retval=TCX_PASS, key=1, l3=14, **SKB_CTX) as p1, \
            udp_counter(counts, ProgType.SCHED_CLS, retval=TCX_NEXT, key=2, l3=14, **SKB_CTX) as p2, \
            udp_counter(counts, ProgType.SCHED_CLS, retval=TCX_NEXT, key=3, l3=14, **SKB_CTX) as p3:
        with attach_tc(p1, veth.host) as l1, attach_tc(p2, veth.host, before=l1) as l2:
            assert l2.priority < l1.priority
            veth.send_from_peer(N)
            l2.update(p3)
            assert l2.info().prog_id == p3.id
            veth.send_from_peer(2)
            with attach_tc(p2, veth.host, after=p1) as l3:   # after the filter running p1: never reached
                assert l3.priority > l1.priority
                veth.send_from_peer(1)
            with pytest.raises(LinkError, match="not attached to .* as a tc filter"):
                attach_tc(p2, veth.host, before=p2)
            with pytest.raises(SyscallError, match="already has a filter with priority") as err:
                attach_tc(p2, veth.host, priority=l1.priority)
            assert err.value.errno == errno.EEXIST
            with pytest.raises(NotSupportedError, match="only BPF links"):
                l1.pin(f"/sys/fs/bpf/pybpf_test_tc_nl_{os.getpid()}")
            l1.detach()
            assert f"id {p1.id}" not in _tc("filter", "show", "dev", veth.host, "ingress")
            assert f"id {p3.id}" in _tc("filter", "show", "dev", veth.host, "ingress")
        assert _tc("filter", "show", "dev", veth.host, "ingress") == ""
    assert snapshot(counts) == {1: N + 3, 2: N, 3: 3}


def test_tc_netlink_leaves_what_it_did_not_make(veth, counts, no_tcx):
    """A clsact qdisc and a filter that were there before stay; our filter goes."""
    subprocess.run(["tc", "qdisc", "add", "dev", veth.host, "clsact"], check=True)
    # classic BPF `ret #-1`: TC_ACT_UNSPEC in direct-action mode, so the next filter runs too
    subprocess.run(["tc", "filter", "add", "dev", veth.host, "ingress", "pref", "5", "protocol", "all",
                    "bpf", "da", "bytecode", "1,6 0 0 4294967295,"], check=True)
    with udp_counter(counts, ProgType.SCHED_CLS, retval=TCX_PASS, l3=14, **SKB_CTX) as prog:
        with attach_tc(prog, veth.host, "ingress", priority=7, handle=3) as link:
            info = link.info()
            assert (info.priority, info.handle, info.qdisc_created) == (7, 3, False)
            veth.send_from_peer(N)
            assert "pref 7 bpf chain 0 handle 0x3" in _tc("filter", "show", "dev", veth.host, "ingress")
        shown = _tc("filter", "show", "dev", veth.host, "ingress")
        assert "pref 5 " in shown and "pref 7 " not in shown
        assert "qdisc clsact ffff:" in _tc("qdisc", "show", "dev", veth.host)
    assert snapshot(counts) == {0: N}


def test_tc_netlink_qdisc_lives_while_used(veth, counts, no_tcx):
    """The clsact pybpf made stays while another pybpf filter uses it, whichever closes first."""
    with udp_counter(counts, ProgType.SCHED_CLS, retval=TCX_PASS, l3=14, **SKB_CTX) as prog:
        ingress = attach_tc(prog, veth.host, "ingress")
        egress = attach_tc(prog, veth.host, "egress")
        assert ingress.info().qdisc_created and egress.info().qdisc_created
        ingress.close()
        assert "clsact" in _tc("qdisc", "show", "dev", veth.host)
        veth.send_from_host(N)
        egress.close()
        assert "clsact" not in _tc("qdisc", "show", "dev", veth.host)
    assert snapshot(counts) == {0: N}


def test_tc_netlink_ingress_qdisc(veth, counts, no_tcx):
    """A plain `ingress` qdisc takes ingress filters; it has no egress hook."""
    from pybpf.errors import LinkError

    subprocess.run(["tc", "qdisc", "add", "dev", veth.host, "ingress"], check=True)
    with udp_counter(counts, ProgType.SCHED_CLS, retval=TCX_PASS, l3=14, **SKB_CTX) as prog:
        with pytest.raises(LinkError, match="'ingress' qdisc, which has no egress hook"):
            attach_tc(prog, veth.host, "egress")
        with attach_tc(prog, veth.host, "ingress"):
            veth.send_from_peer(N)
        assert "qdisc ingress ffff:" in _tc("qdisc", "show", "dev", veth.host)
        assert _tc("filter", "show", "dev", veth.host, "ingress") == ""
    assert snapshot(counts) == {0: N}


def test_tc_netlink_closes_when_collected(veth, counts, no_tcx):
    import gc

    with udp_counter(counts, ProgType.SCHED_CLS, retval=TCX_PASS, l3=14, **SKB_CTX) as prog:
        attach_tc(prog, veth.host, "egress").take()  # owned by the caller, who drops it
        gc.collect()
        assert _tc("filter", "show", "dev", veth.host, "egress") == ""
        assert "clsact" not in _tc("qdisc", "show", "dev", veth.host)


def test_xdp_netlink_before_replace_flag(veth, counts, no_xdp_link, monkeypatch):
    """Linux 4.8-5.6 refuse XDP_FLAGS_REPLACE with a bare EINVAL: close and update compare the attached
    program's id first (real netlink requests; only that refusal is simulated)."""
    from pybpf._sys.flags import XdpFlag
    from pybpf._sys.syscall import error
    from pybpf.links import _netlink

    real_set = _netlink.xdp_set

    def old_kernel_set(nl, ifindex, prog_fd, flags, expected_fd=None):
        if flags & XdpFlag.REPLACE:
            raise error(errno.EINVAL, "netlink RTM_SETLINK IFLA_XDP")
        real_set(nl, ifindex, prog_fd, flags, expected_fd)

    monkeypatch.setattr(_netlink, "xdp_set", old_kernel_set)
    with udp_counter(counts, ProgType.XDP, retval=XDP_PASS, key=1, **XDP_CTX) as first, \
            udp_counter(counts, ProgType.XDP, retval=XDP_PASS, key=2, **XDP_CTX) as second:
        with attach_xdp(first, veth.host, mode="skb") as link:
            link.update(second)
            assert f"prog/xdp id {second.id}" in _xdp_shown(veth.host)
            veth.send_from_peer(N)
        assert "prog/xdp" not in _xdp_shown(veth.host)
        l1 = attach_xdp(first, veth.host, mode="skb")
        with attach_xdp(second, veth.host, mode="skb", replace=True):
            l1.close()  # not ours any more: the id check leaves the second program attached
            assert f"prog/xdp id {second.id}" in _xdp_shown(veth.host)
        assert "prog/xdp" not in _xdp_shown(veth.host)
    assert snapshot(counts) == {2: N}
