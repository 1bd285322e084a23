"""pybpf.Program against the running kernel: load, test_run, info, stats, pins, ids, errors."""

from __future__ import annotations

import errno
import gc
import os
import struct
import tempfile

import pytest

import pybpf
from pybpf._sys import (
    FD, AttachType, Cmd, HelperID, MapCreateAttr, MapType, ProgFlag, ProgType, TestRunFlag, bpf,
)
from pybpf.asm import builder as b, opcodes as op
from pybpf.asm import encode_all
from pybpf.program import Program, ProgramInfo, TestRunResult, enable_stats

pytestmark = pytest.mark.root  # against the kernel: needs root

PACKET = bytes(range(64))

# Offsets in the context structs (include/uapi/linux/bpf.h).
SKB_LEN, SKB_MARK, SKB_DATA, SKB_DATA_END = 0, 8, 76, 80
SK_BUFF_SIZE = 192
XDP_DATA, XDP_DATA_END = 0, 4


def ret(value: int) -> list:
    return b.assemble([b.mov64_imm(op.R0, value), b.exit_()])


def map_create(map_type: MapType, key_size: int, value_size: int, max_entries: int) -> FD:
    attr = MapCreateAttr(map_type=map_type, key_size=key_size, value_size=value_size, max_entries=max_entries)
    return FD(bpf(Cmd.MAP_CREATE, attr), "map")


def fdinfo(fd: int) -> dict[str, str]:
    with open(f"/proc/self/fdinfo/{fd}") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


# -- load -------------------------------------------------------------------------------

def test_load_attributes_and_close():
    insns = ret(1)
    prog = Program.load(insns, prog_type=ProgType.SOCKET_FILTER, name="ret_one")
    with prog:
        assert prog.name == "ret_one"
        assert prog.type == ProgType.SOCKET_FILTER
        assert prog.expected_attach_type is None
        assert prog.license == "GPL"
        assert prog.insns == insns and prog.insns is not insns
        info = fdinfo(prog.fd)
        assert prog.id == int(info["prog_id"]) > 0
        assert prog.tag == info["prog_tag"] and len(prog.tag) == 16
        assert repr(prog) == f"<Program 'ret_one' socket_filter fd={prog.fd}>"
    assert prog.closed
    with pytest.raises(pybpf.BPFError, match=r"^program 'ret_one': the program is closed$"):
        prog.fd
    with pytest.raises(pybpf.BPFError, match=r"^program 'ret_one': the program is closed$"):
        prog.test_run(PACKET)
    prog.close()  # twice is fine


def test_load_from_bytes_and_instructions_agree():
    insns = ret(3)
    with Program.load(encode_all(insns), prog_type=ProgType.SOCKET_FILTER) as a, \
            Program.load(insns, prog_type=ProgType.SOCKET_FILTER) as c:
        assert a.tag == c.tag
        assert a.test_run(PACKET).retval == c.test_run(PACKET).retval == 3


def test_closed_on_garbage_collection():
    prog = Program.load(ret(0), prog_type=ProgType.SOCKET_FILTER)
    fd = prog.fd
    target = os.readlink(f"/proc/self/fd/{fd}")
    del prog
    gc.collect()
    try:
        assert os.readlink(f"/proc/self/fd/{fd}") != target
    except FileNotFoundError:
        pass


def test_kernel_name_is_truncated_to_15_bytes():
    with Program.load(ret(0), prog_type=ProgType.SOCKET_FILTER, name="a_rather_long_program-name") as prog:
        assert prog.name == "a_rather_long_program-name"
        assert prog.info().name == "a_rather_long_p"


@pytest.mark.parametrize("insns, message", [
    (b"", "no instructions"),
    (b"\x95" * 12, "instructions are 12 bytes, not a multiple of 8"),
    ([b.mov64_imm(op.R0, 0), object()], "instruction 1: object has no encode()"),
])
def test_load_rejects_bad_input_with_context(insns, message):
    with pytest.raises(pybpf.BPFError) as info:
        Program.load(insns, prog_type=ProgType.SOCKET_FILTER, name="x")
    assert str(info.value) == f"program 'x': load: {message}"


def test_load_error_without_verifier_log_is_a_syscall_error():
    with pytest.raises(pybpf.SyscallError) as info:
        Program.load(ret(0), prog_type=9999, name="odd")
    err = info.value
    assert not isinstance(err, pybpf.VerifierError)
    assert err.errno == errno.EINVAL
    assert str(err).startswith("program 'odd': load: EINVAL")
    with pytest.raises(pybpf.SyscallError, match=r"^xdp program: load: EINVAL"):
        Program.load(ret(0), prog_type=ProgType.XDP, flags=1 << 30)


def test_clone_loads_again_with_the_same_options():
    with Program.load(ret(2), prog_type=ProgType.XDP, expected_attach_type=AttachType.XDP, name="orig") as prog:
        with prog.clone() as same, prog.clone(ret(1), name="other") as other:
            assert same.id != prog.id and same.tag == prog.tag
            assert same.expected_attach_type == AttachType.XDP and same.name == "orig"
            assert same.test_run(PACKET).retval == 2
            assert other.name == "other" and other.test_run(PACKET).retval == 1
        with Program.from_id(prog.id) as opened, pytest.raises(pybpf.BPFError, match="clone: .*not loaded by pybpf"):
            opened.clone()


def test_fd_array_and_btf_fd_accept_fd_objects():
    # fd_array entries and fds may be given as FD objects (or anything with fileno()).
    with map_create(MapType.ARRAY, 4, 8, 1) as m:
        insns = b.assemble([b.ld_imm64(op.R1, 0, src=op.PSEUDO_MAP_IDX), *ret(0)])
        with Program.load(insns, prog_type=ProgType.SOCKET_FILTER, fd_array=[m]) as prog:
            map_id = _map_id(m.fileno())
            assert prog.info().map_ids == (map_id,)


def _map_id(fd: int) -> int:
    return int(fdinfo(fd)["map_id"])


# -- info -------------------------------------------------------------------------------

def test_info_of_a_simple_program():
    insns = ret(7)
    with Program.load(insns, prog_type=ProgType.SOCKET_FILTER, name="seven") as prog:
        info = prog.info()
        assert isinstance(info, ProgramInfo)
        assert info.id == prog.id and info.tag == prog.tag
        assert info.name == "seven" and info.type == ProgType.SOCKET_FILTER
        assert info.xlated_size == 8 * len(insns) == 16
        assert info.jited_size > 0
        assert info.verified_insns == 2
        assert info.map_ids == () and info.btf_id == 0
        assert info.created_by_uid == os.geteuid()
        assert info.load_time > 0
        assert info.memlock == int(fdinfo(prog.fd)["memlock"]) > 0
        assert info.gpl_compatible
        assert prog.xlated_insns() == encode_all(insns)
        assert prog.disassemble() == "0: (b7) r0 = 7\n1: (95) exit"


def test_info_lists_the_maps_used():
    with map_create(MapType.ARRAY, 4, 8, 1) as m1, map_create(MapType.HASH, 4, 4, 8) as m2:
        insns = b.assemble([
            b.ld_map_fd(op.R1, m1.fileno()), b.ld_map_fd(op.R1, m2.fileno()), b.mov64_imm(op.R0, 0), b.exit_(),
        ])
        with Program.load(insns, prog_type=ProgType.SOCKET_FILTER) as prog:
            assert sorted(prog.info().map_ids) == sorted([_map_id(m1.fileno()), _map_id(m2.fileno())])
            # The translated program names the maps by id.
            xlated = prog.disassemble()
            assert "map" in xlated or "0x" in xlated


def test_enable_stats_counts_runs():
    with Program.load(ret(2), prog_type=ProgType.XDP, name="counted") as prog:
        # Another process may hold statistics on machine-wide: count what our runs add.
        with enable_stats():
            before = prog.info()
            for _ in range(5):
                prog.test_run(PACKET)
            prog.test_run(PACKET, repeat=10)
            info = prog.info()
        assert info.run_count - before.run_count == 15
        assert info.run_time_ns > before.run_time_ns


# -- test_run ---------------------------------------------------------------------------

def test_socket_filter_returns_packet_length():
    insns = b.assemble([b.ldx_mem(op.W, op.R0, op.R1, SKB_LEN), b.exit_()])
    with Program.load(insns, prog_type=ProgType.SOCKET_FILTER) as prog:
        res = prog.test_run(PACKET, repeat=3)
        assert isinstance(res, TestRunResult)
        assert res.retval == len(PACKET) - 14  # the kernel pulls the Ethernet header first
        assert len(res.data_out) == len(PACKET) and res.data_out[14:] == PACKET[14:]
        assert res.ctx_out is None
        assert res.duration_ns >= 0
        assert prog.test_run(PACKET + bytes(36)).retval == 100 - 14


def test_sched_cls_writes_packet_and_context():
    insns = b.assemble([
        b.mov64_reg(op.R6, op.R1),
        b.ldx_mem(op.W, op.R7, op.R6, SKB_MARK),            # old mark, returned
        b.ldx_mem(op.W, op.R2, op.R6, SKB_DATA),
        b.ldx_mem(op.W, op.R3, op.R6, SKB_DATA_END),
        b.mov64_reg(op.R4, op.R2), b.alu64_imm(op.ADD, op.R4, 21),
        b.jmp_reg(op.JGT, op.R4, op.R3, "out"),
        b.st_mem(op.B, op.R2, 20, 0xAB),                    # packet[20] = 0xab
        b.mov64_imm(op.R5, 42), b.stx_mem(op.W, op.R6, op.R5, SKB_MARK),  # skb->mark = 42
        b.label("out"),
        b.mov64_reg(op.R0, op.R7),
        b.exit_(),
    ])
    ctx = bytearray(SK_BUFF_SIZE)
    struct.pack_into("<I", ctx, SKB_MARK, 7)
    with Program.load(insns, prog_type=ProgType.SCHED_CLS, name="tc_mark") as prog:
        res = prog.test_run(PACKET, ctx=bytes(ctx))
        assert res.retval == 7
        assert res.data_out == PACKET[:20] + b"\xab" + PACKET[21:]
        assert len(res.ctx_out) == SK_BUFF_SIZE
        assert struct.unpack_from("<I", res.ctx_out, SKB_MARK)[0] == 42
        # Without a context the packet is still written and nothing is copied back.
        res = prog.test_run(PACKET)
        assert res.retval == 0 and res.data_out[20] == 0xAB and res.ctx_out is None


def test_xdp_grows_the_packet_and_output_buffer_grows():
    insns = b.assemble([
        b.mov64_imm(op.R2, 16), b.call_helper(HelperID.xdp_adjust_tail),
        b.mov64_imm(op.R0, 2),  # XDP_PASS
        b.exit_(),
    ])
    with Program.load(insns, prog_type=ProgType.XDP, expected_attach_type=AttachType.XDP) as prog:
        res = prog.test_run(PACKET)
        assert res.retval == 2
        assert res.data_out == PACKET + bytes(16)
        # A too small output buffer is grown (ENOSPC), not truncated.
        small = prog.test_run(PACKET, data_size_out=8)
        assert small.data_out == PACKET + bytes(16)


def test_repeat_reports_mean_duration():
    with Program.load(ret(2), prog_type=ProgType.XDP) as prog:
        res = prog.test_run(PACKET, repeat=1000)
        assert res.retval == 2 and res.data_out == PACKET
        assert 0 < res.duration_ns < 1_000_000


def test_xdp_context_round_trip():
    insns = b.assemble([
        b.ldx_mem(op.W, op.R2, op.R1, XDP_DATA), b.ldx_mem(op.W, op.R3, op.R1, XDP_DATA_END),
        b.mov64_reg(op.R0, op.R3), b.alu64_reg(op.SUB, op.R0, op.R2),  # packet length
        b.exit_(),
    ])
    with Program.load(insns, prog_type=ProgType.XDP) as prog:
        ctx = struct.pack("<6I", 0, len(PACKET), 0, 0, 0, 0)
        res = prog.test_run(PACKET, ctx=ctx)
        assert res.retval == len(PACKET)
        assert len(res.ctx_out) == 24


def test_cgroup_skb_repeat():
    with Program.load(ret(1), prog_type=ProgType.CGROUP_SKB,
                      expected_attach_type=AttachType.CGROUP_INET_INGRESS) as prog:
        res = prog.test_run(PACKET, repeat=50)
        assert res.retval == 1
        assert len(res.data_out) == len(PACKET)


def test_raw_tracepoint_takes_ctx_only():
    insns = b.assemble([b.ldx_mem(op.DW, op.R0, op.R1, 8), b.exit_()])  # args[1]
    with Program.load(insns, prog_type=ProgType.RAW_TRACEPOINT, name="raw") as prog:
        res = prog.test_run(ctx=struct.pack("<QQ", 5, 77))
        assert res == TestRunResult(retval=77, data_out=None, ctx_out=None, duration_ns=0)
        assert prog.test_run(ctx=struct.pack("<QQ", 0, 9), flags=TestRunFlag.RUN_ON_CPU, cpu=0).retval == 9
        with pytest.raises(pybpf.BPFError, match=r"^program 'raw': test_run: raw_tracepoint programs run once"):
            prog.test_run(ctx=bytes(16), repeat=5)
        with pytest.raises(pybpf.BPFError, match=r"^program 'raw': test_run: raw_tracepoint programs take ctx only"):
            prog.test_run(PACKET)


def test_syscall_program_writes_its_context():
    insns = b.assemble([
        b.ldx_mem(op.W, op.R2, op.R1, 0), b.alu64_imm(op.MUL, op.R2, 3),
        b.stx_mem(op.W, op.R1, op.R2, 4),
        b.mov64_imm(op.R0, 11), b.exit_(),
    ])
    with Program.load(insns, prog_type=ProgType.SYSCALL, flags=ProgFlag.SLEEPABLE) as prog:
        res = prog.test_run(ctx=struct.pack("<II", 14, 0))
        assert res.retval == 11
        assert res.ctx_out == struct.pack("<II", 14, 42)
        assert res.data_out is None


def test_flow_dissector_returns_flow_keys():
    eth_ipv4 = bytes(12) + b"\x08\x00" + bytes([0x45]) + bytes(19) + bytes(20)
    with Program.load(ret(0), prog_type=ProgType.FLOW_DISSECTOR,
                      expected_attach_type=AttachType.FLOW_DISSECTOR) as prog:
        res = prog.test_run(eth_ipv4)
        assert res.retval == 0  # BPF_OK
        assert len(res.data_out) == 56  # struct bpf_flow_keys


def test_sk_lookup_context():
    ctx = struct.pack("<QII", 0, 2, 6).ljust(72, b"\0")  # AF_INET, IPPROTO_TCP
    with Program.load(ret(1), prog_type=ProgType.SK_LOOKUP, expected_attach_type=AttachType.SK_LOOKUP) as prog:
        res = prog.test_run(ctx=ctx, repeat=4)
        assert res.retval == 1  # SK_PASS
        assert res.data_out is None
        assert len(res.ctx_out) == 72 and res.ctx_out[8:16] == ctx[8:16]


def test_tracepoint_cannot_be_test_run():
    with Program.load(ret(0), prog_type=ProgType.TRACEPOINT, name="tp") as prog:
        with pytest.raises(pybpf.NotSupportedError) as info:
            prog.test_run(ctx=bytes(8))
    assert str(info.value) == ("program 'tp': test_run: test_run for tracepoint programs "
                               "is not supported by this kernel")
    assert info.value.errno == 524


def test_test_run_kernel_error_has_context():
    with Program.load(ret(2), prog_type=ProgType.XDP, name="short") as prog:
        with pytest.raises(pybpf.SyscallError) as info:
            prog.test_run(b"\x00" * 4)  # shorter than an Ethernet header
    assert info.value.errno == errno.EINVAL
    assert str(info.value).startswith("program 'short': test_run: EINVAL (the kernel refused the input")


# -- pins, ids, fds ---------------------------------------------------------------------

@pytest.fixture
def bpffs():
    if os.path.ismount("/sys/fs/bpf"):
        with tempfile.TemporaryDirectory(dir="/sys/fs/bpf", prefix="pybpf-test-") as path:
            yield path
        return
    with tempfile.TemporaryDirectory() as path:  # pragma: no cover - conftest mounts bpffs
        os.system(f"mount -t bpf bpf {path}")
        try:
            yield path
        finally:
            os.system(f"umount {path}")


def test_pin_from_pin_unpin(bpffs):
    path = os.path.join(bpffs, "prog")
    with Program.load(ret(2), prog_type=ProgType.XDP, name="pinned") as prog:
        prog.pin(path)
        assert prog.pinned_path == path and os.path.exists(path)
        prog_id = prog.id
    with Program.from_pin(path) as opened:
        assert opened.id == prog_id
        assert opened.type == ProgType.XDP and opened.name == "pinned"
        assert opened.insns is None
        assert opened.test_run(PACKET).retval == 2
        opened.unpin()
        assert not os.path.exists(path) and opened.pinned_path is None
        opened.unpin()  # nothing left to remove
    with pytest.raises(pybpf.SyscallError) as info:
        Program.from_pin(path)
    assert info.value.errno == errno.ENOENT
    assert str(info.value).startswith(f"program: open pinned {path}: ENOENT")


def test_from_id_and_from_fd():
    with Program.load(ret(1), prog_type=ProgType.SOCKET_FILTER, name="orig") as prog:
        with Program.from_id(prog.id) as by_id:
            assert by_id.tag == prog.tag and by_id.type == ProgType.SOCKET_FILTER and by_id.name == "orig"
        with Program.from_fd(prog.fd) as dup:
            assert dup.fd != prog.fd and dup.id == prog.id
        assert not prog.closed
        raw = os.dup(prog.fd)
        owned = Program.from_fd(raw, dup=False)
        assert owned.fd == raw and owned.id == prog.id
        owned.close()
        with pytest.raises(OSError):
            os.fstat(raw)  # closed by the Program that owned it
    with pytest.raises(pybpf.SyscallError, match=r"^program: open program id 4294967295: ENOENT"):
        Program.from_id(0xFFFFFFFF)


def test_from_fd_of_something_else():
    with map_create(MapType.ARRAY, 4, 4, 1) as m:
        with pytest.raises(pybpf.SyscallError) as info:
            Program.from_fd(m.fileno())
        assert info.value.errno == errno.EINVAL
        assert str(info.value).endswith("EINVAL (not a BPF program but bpf-map)")
