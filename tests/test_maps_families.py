"""pybpf.maps families against the real kernel: arrays, per-CPU, LPM, queue/stack, bloom,
stack traces, prog arrays and maps of maps."""

from __future__ import annotations

import ctypes
import errno
import gc
import ipaddress
import os
import struct

import pytest

from pybpf._sys import FD, Cmd, ProgLoadAttr, ProgType, TestRunAttr, bpf
from pybpf._sys.commands import map_info, prog_info
from pybpf.errors import KeyNotFoundError, MapError, MapFullError
from pybpf.maps import (
    ArrayMap, ArrayOfMapsMap, BloomFilterMap, HashMap, HashOfMapsMap, LPMTrieMap, LRUPerCPUHashMap, Map,
    MapFlag, MapType, PerCPUArrayMap, PerCPUHashMap, ProgArrayMap, QueueMap, StackMap, StackTraceMap, create,
    possible_cpus,
)

pytestmark = pytest.mark.root  # against the kernel: needs root


@pytest.fixture(autouse=True)
def no_fd_leaks():
    """Every test closes every fd it opens."""
    gc.collect()
    before = set(os.listdir("/proc/self/fd"))
    yield
    gc.collect()
    leaked = {fd for fd in set(os.listdir("/proc/self/fd")) - before if os.path.exists(f"/proc/self/fd/{fd}")}
    assert not leaked, f"leaked fds: {sorted(leaked)}"


# ---------------------------------------------------------------- programs, hand-assembled

def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


RETURN_ZERO = b"\xb7\x00\x00\x00\x00\x00\x00\x00\x95\x00\x00\x00\x00\x00\x00\x00"  # r0 = 0; exit


def load_program(prog_type: ProgType, insns: bytes, license: bytes = b"GPL") -> FD:
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license)
    log = ctypes.create_string_buffer(1 << 16)
    attr = ProgLoadAttr(prog_type=prog_type, insn_cnt=len(insns) // 8, insns=ctypes.addressof(code),
                        license=ctypes.addressof(lic), log_level=1, log_size=len(log),
                        log_buf=ctypes.addressof(log))
    try:
        return FD(bpf(Cmd.PROG_LOAD, attr), "program")
    except Exception as exc:
        raise AssertionError(f"load failed: {exc}\n{log.value.decode(errors='replace')}") from None


class Prog:
    """Stands in for pybpf's Program: anything with ``.fd``."""

    def __init__(self, fd: FD) -> None:
        self._fd = fd

    @property
    def fd(self) -> int:
        return self._fd.fileno()


# ---------------------------------------------------------------- arrays

def test_array_keys_values_and_limits():
    with ArrayMap(value="u32", max_entries=8, name="arr") as a:
        info = map_info(a.fd)
        assert (info.type, info.key_size, info.value_size, info.max_entries) == (MapType.ARRAY, 4, 4, 8)
        assert len(a) == 8 and list(a.keys()) == list(range(8)) and list(a.values()) == [0] * 8
        a[3] = 33
        assert a[3] == 33 and dict(a.items())[3] == 33 and 3 in a and 8 not in a
        with pytest.raises(KeyNotFoundError, match=r"map 'arr': lookup: key 8 not found \(index out of range"):
            a[8]
        with pytest.raises(MapError, match=r"update: E2BIG \(index 8 is out of range \(max_entries=8\)\)"):
            a[8] = 1
        with pytest.raises(MapError, match="cannot be deleted") as exc:
            del a[3]
        assert exc.value.errno == errno.EINVAL
        with pytest.raises(TypeError, match=r"key must be 4 bytes \(u32\), got str"):
            a["x"]
        a.clear()
        assert list(a.values()) == [0] * 8


# ---------------------------------------------------------------- per-CPU

def _possible_from_sysfs() -> int:
    text = open("/sys/devices/system/cpu/possible").read().strip()
    total = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        total += int(hi or lo) - int(lo) + 1
    return total


def test_percpu_hash_lists_one_value_per_possible_cpu():
    n = _possible_from_sysfs()
    assert possible_cpus() == n
    with PerCPUHashMap(key="u32", value="u32", max_entries=16, name="pcpu") as m:
        assert map_info(m.fd).value_size == 4  # the kernel's per-CPU size; slots are padded to 8
        assert m.ncpus == n
        m[1] = list(range(1, n + 1))
        assert m[1] == list(range(1, n + 1)) and len(m[1]) == n
        assert m.sum(1) == n * (n + 1) // 2
        m[2] = 7  # one value: every CPU
        assert m[2] == [7] * n and m.sum(2) == 7 * n
        assert dict(m.items()) == {1: list(range(1, n + 1)), 2: [7] * n}
        with pytest.raises(TypeError, match=f"list of {n} values \\(one per possible CPU\\)"):
            m[3] = [1] * (n + 1)
        with pytest.raises(OverflowError, match=r"value\[cpu 0\] -1 out of range for u32"):
            m[3] = [-1] * n
        with pytest.raises(KeyNotFoundError):
            m.sum(99)
        assert m.sum(99, default=0) == 0
        m.update_batch([10, 11], [[1] * n, [2] * n])
        got = {k: v for ks, vs in m.lookup_batch() for k, v in zip(ks, vs)}
        assert got[10] == [1] * n and got[11] == [2] * n


def test_percpu_struct_values_and_lru_percpu():
    n = possible_cpus()
    with PerCPUArrayMap(value="<IH", max_entries=2) as a:  # 8-byte values: tuples, generic path
        a[0] = [(i, i + 1) for i in range(n)]
        assert a[0] == [(i, i + 1) for i in range(n)]
        assert a.sum(0) == (sum(range(n)), sum(range(1, n + 1)))
        assert a[1] == [(0, 0)] * n and len(a) == 2
    with LRUPerCPUHashMap(key="u32", value="u64", max_entries=8) as m:
        m[5] = 3
        assert m.sum(5) == 3 * n and m.type == MapType.LRU_PERCPU_HASH


# ---------------------------------------------------------------- LPM trie

def test_lpm_longest_prefix_match():
    with LPMTrieMap(key="ipv4", value="u32", max_entries=16, name="routes") as t:
        info = map_info(t.fd)
        assert info.key_size == 8 and info.map_flags & MapFlag.NO_PREALLOC
        t["10.0.0.0/8"] = 1
        t[(16, "10.1.0.0")] = 2
        t[(24, ipaddress.IPv4Address("10.1.2.0"))] = 3
        assert t.match("10.1.2.3") == 3
        assert t.match("10.1.9.9") == 2
        assert t.match("10.200.0.1") == 1
        assert t.match("11.0.0.1") is None
        assert t[(32, "10.1.2.200")] == 3  # a plain lookup is a longest-prefix match too
        with pytest.raises(KeyNotFoundError):
            t[(32, "192.168.0.1")]
        assert sorted(t.keys()) == [(8, ipaddress.IPv4Address("10.0.0.0")),
                                    (16, ipaddress.IPv4Address("10.1.0.0")),
                                    (24, ipaddress.IPv4Address("10.1.2.0"))]
        del t["10.1.0.0/16"]
        assert t.match("10.1.9.9") == 1 and len(t) == 2
        with pytest.raises(OverflowError, match=r"prefixlen 33 out of range \(0\.\.32\)"):
            t[(33, "10.0.0.0")] = 1
        with pytest.raises(TypeError, match="8 bytes"):
            t[(8, b"\x0a\x00")] = 1


def test_lpm_bytes_keys_ipv6_full_and_from_fd():
    with LPMTrieMap(key="ipv6", value="u8", max_entries=2) as t6:
        t6["2001:db8::/32"] = 6
        assert t6.match("2001:db8::1") == 6
        t6["fe80::/10"] = 10
        with pytest.raises(MapFullError, match="map is full, max_entries=2"):
            t6["::1/128"] = 1
    with LPMTrieMap(key=2, value="u8", max_entries=4) as t:
        t[(8, b"\xab\x00")] = 1
        assert t[(16, b"\xab\xcd")] == 1 and list(t.keys()) == [(8, b"\xab\x00")]
        with Map.from_fd(t.fd) as again:
            assert type(again) is LPMTrieMap and again[(16, b"\xab\xcd")] == b"\x01"
            again.set_codecs(value="u8")
            assert again.match(b"\xab\x01") == 1
    with create(MapType.LPM_TRIE, key_size=8, value="u32", max_entries=4) as c:
        assert type(c) is LPMTrieMap and c.flags & MapFlag.NO_PREALLOC
        c.set_codecs(key="ipv4")
        c["1.2.0.0/16"] = 5
        assert c.match("1.2.3.4") == 5


def test_lpm_batch_operations_fall_back_per_key():
    # Tries implement no batch commands (ENOTSUPP): pybpf walks GET_NEXT_KEY instead.
    with LPMTrieMap(key="ipv4", value="u32", max_entries=16) as t:
        t.update_batch([f"10.{i}.0.0/16" for i in range(5)], range(5))
        chunks = list(t.lookup_batch(batch_size=2))
        assert [len(ks) for ks, _vs in chunks] == [2, 2, 1]
        assert {k[1].packed[1]: v for ks, vs in chunks for k, v in zip(ks, vs)} == {i: i for i in range(5)}
        t.delete_batch(["10.0.0.0/16", "10.1.0.0/16"])
        assert len(t) == 3
        drained = dict(t.lookup_and_delete_batch())
        assert sorted(drained.values()) == [2, 3, 4] and len(t) == 0


def test_lpm_iteration_survives_deletion():
    with LPMTrieMap(key="ipv4", value="u32", max_entries=300) as t:
        for i in range(256):
            t[(24, f"10.0.{i}.0")] = i
        seen = []
        for key in t:
            seen.append(key)
            del t[key]
        assert len(seen) == len(set(seen)) == 256 and len(t) == 0


# ---------------------------------------------------------------- queue and stack

def test_queue_is_fifo_and_stack_is_lifo():
    with QueueMap(value="u32", max_entries=4, name="q") as q:
        assert map_info(q.fd).key_size == 0 and not q
        for v in (1, 2, 3):
            q.push(v)
        assert q and q.peek() == 1
        assert [q.pop(), q.pop(), q.pop()] == [1, 2, 3]
        with pytest.raises(KeyNotFoundError, match="map 'q': pop: queue is empty"):
            q.pop()
        assert q.pop(None) is None and q.peek("empty") == "empty"
        for v in range(4):
            q.push(v)
        with pytest.raises(MapFullError, match=r"push: E2BIG \(map is full, max_entries=4"):
            q.push(9)
        q.push(9, overwrite=True)  # drops the oldest (0)
        assert q.drain() == [1, 2, 3, 9]
        with pytest.raises(TypeError, match="no keys"):
            q[0]
        with pytest.raises(TypeError):
            len(q)
        with pytest.raises(TypeError):
            list(q)
    with StackMap(value="u64", max_entries=8) as s:
        for v in (1, 2, 3):
            s.push(v)
        assert s.peek() == 3 and s.drain() == [3, 2, 1]
        with pytest.raises(KeyNotFoundError, match="stack is empty"):
            s.peek()


# ---------------------------------------------------------------- bloom filter

def test_bloom_filter_membership():
    with BloomFilterMap(value="u32", max_entries=200, hashes=3, name="bloom") as b:
        info = map_info(b.fd)
        assert info.type == MapType.BLOOM_FILTER and info.map_extra == 3 and info.key_size == 0
        assert b.hashes == 3
        for v in range(100):
            b.add(v)
        assert all(v in b for v in range(100))  # no false negatives
        false_positives = sum(v in b for v in range(1000, 2000))
        assert false_positives < 100  # a handful at most for 100 values in a 200-entry filter
        with pytest.raises(TypeError, match="add\\(\\) and the in operator"):
            b[1] = 1
        with pytest.raises(TypeError, match="value must be 4 bytes"):
            b.add(b"12345678")
    with pytest.raises(ValueError):
        BloomFilterMap(value="u32", max_entries=10, hashes=16)


# ---------------------------------------------------------------- stack traces

def test_stack_trace_from_a_real_program():
    with StackTraceMap(max_entries=64, depth=32, name="stacks") as st:
        info = map_info(st.fd)
        assert (info.type, info.key_size, info.value_size) == (MapType.STACK_TRACE, 4, 8 * 32)
        # raw_tp program: return bpf_get_stackid(ctx, &stacks, 0)
        code = (insn(0xBF, 6, 1)                                  # r6 = r1
                + insn(0x18, 2, 1, imm=st.fd) + insn(0)           # r2 = map (BPF_PSEUDO_MAP_FD)
                + insn(0xBF, 1, 6)                                # r1 = r6
                + insn(0xB7, 3, imm=0)                            # r3 = 0
                + insn(0x85, imm=27)                              # call bpf_get_stackid
                + insn(0x95))                                     # exit
        with load_program(ProgType.RAW_TRACEPOINT, code) as prog:
            run = TestRunAttr(prog_fd=prog.fileno())
            bpf(Cmd.PROG_TEST_RUN, run)
        stack_id = ctypes.c_int32(run.retval).value
        assert stack_id >= 0, f"bpf_get_stackid failed: {stack_id}"
        frames = st[stack_id]
        assert 1 <= len(frames) <= 32
        assert all(addr >= 0xFFFF800000000000 for addr in frames)  # kernel text addresses
        assert dict(st.items()) == {stack_id: frames} and len(st) == 1
        del st[stack_id]
        assert len(st) == 0
        with pytest.raises(MapError, match="cannot write stack traces"):
            st[0] = [1, 2]


# ---------------------------------------------------------------- prog array

def test_prog_array_with_a_real_program():
    with load_program(ProgType.SOCKET_FILTER, RETURN_ZERO) as prog_fd, \
            ProgArrayMap(max_entries=4, name="jmp") as jmp:
        prog_id = prog_info(prog_fd.fileno()).id
        info = map_info(jmp.fd)
        assert (info.type, info.key_size, info.value_size) == (MapType.PROG_ARRAY, 4, 4)
        assert len(jmp) == 0 and not jmp and list(jmp.keys()) == []
        jmp[0] = Prog(prog_fd)        # an object with .fd
        jmp[2] = prog_fd.fileno()     # a plain fd
        assert jmp[0] == prog_id and jmp[2] == prog_id  # ids come out
        assert 0 in jmp and 1 not in jmp
        assert dict(jmp.items()) == {0: prog_id, 2: prog_id} and len(jmp) == 2 and jmp
        with pytest.raises(KeyNotFoundError):
            jmp[1]
        del jmp[0]
        assert list(jmp.keys()) == [2]
        with pytest.raises(TypeError, match="file descriptor"):
            jmp[1] = "not a program"
        jmp.clear()
        assert len(jmp) == 0


# ---------------------------------------------------------------- maps of maps

def test_array_of_maps():
    with ArrayMap(value="u64", max_entries=4) as inner_a, ArrayMap(value="u64", max_entries=4) as inner_b, \
            ArrayOfMapsMap(inner_map=inner_a, max_entries=3, name="outer") as outer:
        info = map_info(outer.fd)
        assert (info.type, info.key_size, info.value_size) == (MapType.ARRAY_OF_MAPS, 4, 4)
        outer[0] = inner_a
        outer[2] = inner_b.fd
        assert outer[0] == inner_a.id and outer[2] == inner_b.id
        assert dict(outer.items()) == {0: inner_a.id, 2: inner_b.id} and len(outer) == 2
        inner_b[1] = 99
        with outer.get_map(2, value_codec="u64") as got:
            assert type(got) is ArrayMap and got.id == inner_b.id and got[1] == 99
            got[2] = 5
        assert inner_b[2] == 5
        with HashMap(key="u32", value="u64", max_entries=4) as wrong:
            with pytest.raises(MapError) as exc:
                outer[1] = wrong  # not compatible with the template
            assert exc.value.errno == errno.EINVAL
        del outer[0]
        assert list(outer.keys()) == [2]


def test_hash_of_maps():
    with HashMap(key="u32", value="u32", max_entries=8) as template, \
            HashOfMapsMap(key="u64", inner_map=template, max_entries=2, name="by_id") as outer:
        assert map_info(outer.fd).key_size == 8
        outer[10**12] = template
        assert outer[10**12] == template.id and dict(outer.items()) == {10**12: template.id}
        with HashMap(key="u32", value="u32", max_entries=8) as other:
            outer[1] = other
            with pytest.raises(MapFullError):
                outer[2] = other
            assert outer.pop(1) == other.id
        assert len(outer) == 1
