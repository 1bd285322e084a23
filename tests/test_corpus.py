"""Acceptance tests of the ELF loader: a corpus of C programs, each loaded and run.

Every ``tests/progs/corpus_*.bpf.c`` is compiled with clang-19 (tests/buildprogs.py),
parsed with :class:`pybpf.ObjectSpec`, loaded into the running kernel and run:
through ``BPF_PROG_TEST_RUN`` for the program types that support it, or attached
(tracepoint, tp_btf, uprobe, uprobe.multi, usdt, perf_event, cgroup, iter) and
triggered.  The assertions compare numbers computed by the programs with what
Python knows (packet bytes, /proc, /proc/kallsyms, /proc/config.gz, ...).

Attaching uses ``Program.attach_*`` when the hooks layer provides it; otherwise
(or with ``PYBPF_CORPUS_RAW_ATTACH=1``, to take the hooks layer out of a failure)
the kernel ABI directly: perf_event_open + PERF_EVENT_IOC_SET_BPF, BPF_LINK_CREATE,
BPF_RAW_TRACEPOINT_OPEN.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import gzip
import mmap
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

import pybpf
import kernel_facts
from buildprogs import BUILD, PROGS, build
from pybpf._sys import (
    AttachType, Cmd, LinkCreateAttr, MapElemAttr, MapType, PerfEventAttr, PerfSwConfig, PerfType,
    ProgType, address, bpf,
)
from pybpf._sys import commands as _cmd
from pybpf._sys import perf as _perf

pytestmark = pytest.mark.root  # against the kernel: needs root

RAW_ATTACH = os.environ.get("PYBPF_CORPUS_RAW_ATTACH") == "1"

XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX = 0, 1, 2, 3
SK_BUFF_SIZE = 192  # sizeof(struct __sk_buff) on this kernel (checked in test_ctx_sizes)
PAGE = mmap.PAGESIZE

CORPUS = sorted(p.name[: -len(".bpf.c")] for p in PROGS.glob("corpus_*.bpf.c"))


# ----------------------------------------------------------------------------- packets

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


def ipv4(proto: int, payload: bytes, src: str = "10.0.0.1", dst: str = "10.0.0.2", ttl: int = 64) -> bytes:
    total = 20 + len(payload)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, 0, ttl, proto, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    return hdr + payload


def eth(ethertype: int, payload: bytes, dst: bytes = MAC_B, src: bytes = MAC_A) -> bytes:
    frame = dst + src + struct.pack("!H", ethertype) + payload
    return frame + bytes(max(0, 60 - len(frame)))  # minimum Ethernet frame


def udp4(sport: int = 1234, dport: int = 53, dst: str = "10.0.0.2", payload: bytes = b"pybpf") -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return eth(0x0800, ipv4(17, udp, dst=dst))


def tcp4(sport: int = 40000, dport: int = 443, dst: str = "10.0.0.2") -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x02, 1024, 0, 0)
    return eth(0x0800, ipv4(6, tcp, dst=dst))


def ipv6_pkt() -> bytes:
    hdr = struct.pack("!IHBB16s16s", 6 << 28, 8, 17, 64, bytes(15) + b"\x01", bytes(15) + b"\x02")
    return eth(0x86DD, hdr + struct.pack("!HHHH", 1, 2, 8, 0))


# ----------------------------------------------------------------------------- helpers

def spec_of(name: str) -> pybpf.ObjectSpec:
    return pybpf.ObjectSpec.from_file(build(name))


@contextlib.contextmanager
def loaded(name: str, variables: dict[str, Any] | None = None, **load_kw: Any) -> Iterator[Any]:
    """Parse, set variables, load; close the object afterwards."""
    spec = spec_of(name)
    for var, value in (variables or {}).items():
        spec.variables[var].value = value
    obj = spec.load(**load_kw)
    try:
        yield obj
    finally:
        obj.close()


def total(value: Any) -> int:
    """The sum over CPUs of a per-CPU value (a list), or the value itself."""
    if isinstance(value, (list, tuple)):
        return sum(total(v) for v in value)
    return as_int(value)


def as_int(value: Any) -> int:
    if isinstance(value, (bytes, bytearray)):
        return int.from_bytes(value, "little")
    return int(value)


def field(record: Any, name: str) -> Any:
    if isinstance(record, dict):
        return record[name]
    return getattr(record, name)


def cstr(value: Any) -> bytes:
    """A char array decoded by BTF (bytes up to NUL) or raw: the bytes before the first NUL."""
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, (list, tuple)):
        value = bytes(v & 0xFF for v in value)
    return bytes(value).split(b"\0", 1)[0]


def var(obj: Any, name: str) -> Any:
    return obj.variables[name].value


def kallsyms() -> dict[str, int]:
    out: dict[str, int] = {}
    with open("/proc/kallsyms") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3:  # vmlinux symbols only (module ones have a 4th column)
                out.setdefault(parts[2], int(parts[0], 16))
    return out


def kernel_config() -> dict[str, str]:
    cfg: dict[str, str] = {}
    with gzip.open("/proc/config.gz", "rt") as f:
        for line in f:
            if line.startswith("CONFIG_") and "=" in line:
                key, _, value = line.rstrip("\n").partition("=")
                cfg[key] = value
    return cfg


def raw_map_op(cmd: Cmd, map_fd: int, key: bytes | None, value_size: int, flags: int = 0,
               value: bytes | None = None) -> bytes | None:
    """A map syscall straight through the ABI layer (queue/stack/bloom have no key)."""
    kbuf = ctypes.create_string_buffer(key, len(key)) if key is not None else None
    vbuf = ctypes.create_string_buffer(value, value_size) if value is not None else ctypes.create_string_buffer(value_size)
    attr = MapElemAttr(map_fd=map_fd, key=address(kbuf), value=address(vbuf), flags=flags)
    try:
        bpf(cmd, attr)
    except pybpf.SyscallError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise
    return vbuf.raw


class _Closer:
    """Holds fds/links of a raw attachment; close() releases them."""

    def __init__(self, *items: Any) -> None:
        self.items = list(items)

    def close(self) -> None:
        for item in reversed(self.items):
            item.close()
        self.items.clear()

    def __enter__(self) -> "_Closer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def perf_open(attr: PerfEventAttr, pid: int, cpu: int) -> Any:
    """pybpf._sys.perf.perf_event_open, or a private ctypes call when that one trips over the
    argtypes that pybpf._sys.syscall sets on the shared libc ``syscall`` function object."""
    try:
        return _perf.perf_event_open(attr, pid=pid, cpu=cpu)
    except ctypes.ArgumentError:
        pass
    from pybpf._sys.flags import PERF_FLAG_FD_CLOEXEC
    from pybpf._sys.syscall import FD, NR_PERF_EVENT_OPEN

    fn = ctypes.CDLL(None, use_errno=True).syscall  # a fresh function object: no argtypes set
    fn.restype = ctypes.c_long
    attr.size = ctypes.sizeof(PerfEventAttr)
    res = fn(ctypes.c_long(NR_PERF_EVENT_OPEN), ctypes.c_void_p(ctypes.addressof(attr)), ctypes.c_int(pid),
             ctypes.c_int(cpu), ctypes.c_int(-1), ctypes.c_ulong(PERF_FLAG_FD_CLOEXEC))
    if res < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"perf_event_open: {os.strerror(err)}")
    return FD(res, "perf event")


def _has(prog: Any, method: str) -> bool:
    return not RAW_ATTACH and hasattr(prog, method)


def attach_tracepoint(prog: Any, category: str, name: str) -> Any:
    if _has(prog, "attach_tracepoint"):
        return prog.attach_tracepoint(category, name)
    tp_id = int(Path(f"/sys/kernel/tracing/events/{category}/{name}/id").read_text())
    # One event is enough: a tracepoint's BPF programs hang off the tracepoint itself and
    # run on every CPU; a second PERF_EVENT_IOC_SET_BPF of the same program gives EEXIST.
    attr = PerfEventAttr(type=PerfType.TRACEPOINT, config=tp_id, sample_period=1, wakeup_events=1)
    event = perf_open(attr, pid=-1, cpu=0)
    try:
        _perf.set_bpf(event.fileno(), prog.fd)
        _perf.enable(event.fileno())
    except BaseException:
        event.close()
        raise
    return _Closer(event)


def elf_file_offset(path: str | Path, symbol: str | None = None, vaddr: int | None = None) -> int:
    """File offset of a function symbol (or virtual address) of an executable: what uprobes take."""
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        elf = ELFFile(f)
        if symbol is not None:
            symtab = elf.get_section_by_name(".symtab")
            matches = [s for s in symtab.iter_symbols() if s.name == symbol]
            assert matches, f"{symbol} not in {path}"
            vaddr = matches[0]["st_value"]
        assert vaddr is not None
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_LOAD" and seg["p_vaddr"] <= vaddr < seg["p_vaddr"] + seg["p_memsz"]:
                return vaddr - seg["p_vaddr"] + seg["p_offset"]
    raise AssertionError(f"address {vaddr:#x} is in no PT_LOAD segment of {path}")


def attach_uprobe(prog: Any, path: Path, symbol: str | None = None, *, offset: int | None = None,
                  retprobe: bool = False) -> Any:
    if _has(prog, "attach_uprobe") and offset is None:
        return prog.attach_uprobe(str(path), symbol, retprobe=retprobe)
    if offset is None:
        offset = elf_file_offset(path, symbol)
    pmu = int(Path("/sys/bus/event_source/devices/uprobe/type").read_text())
    fmt = Path("/sys/bus/event_source/devices/uprobe/format/retprobe").read_text().strip()  # "config:0"
    bit = int(fmt.partition(":")[2])
    cpath = ctypes.create_string_buffer(os.fsencode(str(path)))
    attr = PerfEventAttr(type=pmu, config=(1 << bit) if retprobe else 0, config1=ctypes.addressof(cpath),
                         config2=offset, sample_period=1, wakeup_events=1)
    event = perf_open(attr, pid=-1, cpu=0)
    try:
        _perf.set_bpf(event.fileno(), prog.fd)
        _perf.enable(event.fileno())
    except BaseException:
        event.close()
        raise
    return _Closer(event)


def attach_uprobe_multi(prog: Any, path: Path, symbols: list[str], cookies: list[int]) -> Any:
    if _has(prog, "attach_uprobe_multi"):
        return prog.attach_uprobe_multi(str(path), symbols, cookies=cookies)
    offsets = (ctypes.c_uint64 * len(symbols))(*[elf_file_offset(path, s) for s in symbols])
    cookie_arr = (ctypes.c_uint64 * len(symbols))(*cookies)
    cpath = ctypes.create_string_buffer(os.fsencode(str(path)))
    attr = LinkCreateAttr(prog_fd=prog.fd, attach_type=AttachType.TRACE_UPROBE_MULTI)
    um = attr.u.uprobe_multi
    um.path, um.offsets, um.cookies, um.cnt = ctypes.addressof(cpath), ctypes.addressof(offsets), \
        ctypes.addressof(cookie_arr), len(symbols)
    return _Closer(_cmd.link_create(attr))


def attach_raw_tp_btf(prog: Any) -> Any:
    if _has(prog, "attach"):
        return prog.attach()
    return _Closer(_cmd.raw_tracepoint_open(prog.fd, None))


def attach_iter(prog: Any) -> Any:
    if _has(prog, "attach_iter"):
        return prog.attach_iter()
    return _Closer(_cmd.link_create(LinkCreateAttr(prog_fd=prog.fd, attach_type=AttachType.TRACE_ITER)))


def read_iter(link: Any) -> str:
    if not isinstance(link, _Closer) and hasattr(link, "read"):
        text = link.read()
        return text.decode() if isinstance(text, bytes) else text
    fd = _cmd.iter_create(link.fd if not isinstance(link, _Closer) else link.items[0].fileno())
    chunks = []
    try:
        while True:
            chunk = os.read(fd.fileno(), 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        fd.close()
    return b"".join(chunks).decode()


# ----------------------------------------------------------------------------- fixtures

TARGET_C = r"""
/* uprobe / uprobe.multi / usdt target for tests/test_corpus.py. */
#include <stdio.h>
#include <stdlib.h>

/* A USDT probe written out by hand in the <sys/sdt.h> note format
 * (.note.stapsdt, type 3, "stapsdt": pc, base, semaphore, provider, name, args). */
#define CORPUS_USDT2(provider, name, a1, a2)                                        \
	__asm__ __volatile__(                                                       \
		"990: nop\n"                                                        \
		".pushsection .note.stapsdt,\"?\",\"note\"\n"                       \
		".balign 4\n"                                                       \
		".4byte 992f-991f, 994f-993f, 3\n"                                  \
		"991: .asciz \"stapsdt\"\n"                                         \
		"992: .balign 4\n"                                                  \
		"993: .8byte 990b\n"                                                \
		".8byte _.stapsdt.base\n"                                           \
		".8byte 0\n"                                                        \
		".asciz \"" #provider "\"\n"                                        \
		".asciz \"" #name "\"\n"                                            \
		".asciz \"-8@%0 -8@%1\"\n"                                          \
		"994: .balign 4\n"                                                  \
		".popsection\n"                                                     \
		".ifndef _.stapsdt.base\n"                                          \
		".pushsection .stapsdt.base,\"aG\",\"progbits\",.stapsdt.base,comdat\n" \
		".weak _.stapsdt.base\n"                                            \
		".hidden _.stapsdt.base\n"                                          \
		"_.stapsdt.base: .space 1\n"                                        \
		".size _.stapsdt.base, 1\n"                                         \
		".popsection\n"                                                     \
		".endif\n"                                                          \
		:: "r"(a1), "r"(a2))

__attribute__((noinline)) long corpus_add(long a, long b)
{
	__asm__ volatile("" ::: "memory");
	return a + b;
}

__attribute__((noinline)) void corpus_name(const char *s)
{
	__asm__ volatile("" :: "r"(s) : "memory");
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 5, sum = 0;

	for (volatile long i = 1; i <= n; i++) {
		long x = i, y = 100 + i;

		sum += corpus_add(i, 10 * i);
		CORPUS_USDT2(corpus, tick, x, y);
	}
	corpus_name("pybpf-corpus");
	printf("%ld\n", sum);
	return 0;
}
"""


@pytest.fixture(scope="session")
def target() -> Path:
    """A small executable with corpus_add/corpus_name and a USDT probe corpus:tick."""
    BUILD.mkdir(parents=True, exist_ok=True)
    src = BUILD / "corpus_target.c"
    exe = BUILD / "corpus_target"
    if not exe.exists() or not src.exists() or src.read_text() != TARGET_C:
        src.write_text(TARGET_C)
        subprocess.run(["cc", "-O1", "-g", "-o", str(exe), str(src)], check=True)
    return exe


def run_target(exe: Path, n: int = 5) -> int:
    out = subprocess.run([str(exe), str(n)], check=True, capture_output=True, text=True).stdout
    return int(out)


@pytest.fixture
def pin_dir() -> Iterator[Path]:
    path = Path(f"/sys/fs/bpf/pybpf_corpus_{os.getpid()}")
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


# ----------------------------------------------------------------------------- parsing

# object -> {program: (section, program type)}
EXPECTED_PROGRAMS: dict[str, dict[str, tuple[str, ProgType]]] = {
    "corpus_xdp": {"xdp_pass_all": ("xdp", ProgType.XDP), "xdp_drop_ipv6": ("xdp", ProgType.XDP),
                   "xdp_swap_macs": ("xdp", ProgType.XDP), "xdp_frags_len": ("xdp.frags", ProgType.XDP)},
    "corpus_tc": {"tc_mark": ("tc", ProgType.SCHED_CLS), "tcx_drop_udp": ("tcx/ingress", ProgType.SCHED_CLS),
                  "tc_egress_ttl": ("tc/egress", ProgType.SCHED_CLS),
                  "cls_count_bytes": ("classifier", ProgType.SCHED_CLS)},
    "corpus_socket": {"sock_keep_all": ("socket", ProgType.SOCKET_FILTER),
                      "sock_udp_only": ("socket", ProgType.SOCKET_FILTER)},
    "corpus_cgroup_skb": {"cg_ingress_filter": ("cgroup_skb/ingress", ProgType.CGROUP_SKB),
                          "cg_egress_bytes": ("cgroup_skb/egress", ProgType.CGROUP_SKB)},
    "corpus_cgroup_sock": {"sock_create_count": ("cgroup/sock_create", ProgType.CGROUP_SOCK)},
    "corpus_sk_lookup": {"sk_lookup_port_filter": ("sk_lookup", ProgType.SK_LOOKUP)},
    "corpus_syscall_core": {"read_task_facts": ("syscall", ProgType.SYSCALL)},
    "corpus_kfuncs": {"query_task": ("syscall", ProgType.SYSCALL)},
    "corpus_raw_tp": {"raw_sys_enter": ("raw_tp/sys_enter", ProgType.RAW_TRACEPOINT),
                      "raw_sum_args": ("raw_tracepoint/sched_process_exit", ProgType.RAW_TRACEPOINT)},
    "corpus_tp_btf": {"tp_btf_getppid": ("tp_btf/sys_enter", ProgType.TRACING)},
    "corpus_tracepoint": {"tp_enter_getppid": ("tracepoint/syscalls/sys_enter_getppid", ProgType.TRACEPOINT),
                          "tp_exit_getppid": ("tp/syscalls/sys_exit_getppid", ProgType.TRACEPOINT)},
    "corpus_uprobe": {"on_add": ("uprobe", ProgType.KPROBE), "on_add_ret": ("uretprobe", ProgType.KPROBE),
                      "on_name": ("uprobe.s", ProgType.KPROBE)},
    "corpus_uprobe_multi": {"on_multi": ("uprobe.multi", ProgType.KPROBE)},
    "corpus_usdt": {"on_usdt": ("usdt", ProgType.KPROBE)},
    "corpus_kprobe": {"kp_unlinkat": ("kprobe/do_unlinkat", ProgType.KPROBE),
                      "krp_unlinkat": ("kretprobe/do_unlinkat", ProgType.KPROBE),
                      "ks_getppid": ("ksyscall/getppid", ProgType.KPROBE),
                      "kpm_unlinkat": ("kprobe.multi/do_unlinkat", ProgType.KPROBE)},
    "corpus_fentry": {"fentry_unlinkat": ("fentry/do_unlinkat", ProgType.TRACING),
                      "fexit_unlinkat": ("fexit/do_unlinkat", ProgType.TRACING),
                      "fentry_sleepable_unlinkat": ("fentry.s/do_unlinkat", ProgType.TRACING),
                      "lsm_file_open": ("lsm/file_open", ProgType.LSM)},
    "corpus_fentry_notarget": {"fentry_no_target": ("fentry", ProgType.TRACING)},
    "corpus_fentry_missing": {"fentry_missing_target": ("fentry/pybpf_corpus_no_such_function", ProgType.TRACING)},
    "corpus_perf_event": {"on_cpu_clock": ("perf_event", ProgType.PERF_EVENT)},
    "corpus_iter": {"dump_maps": ("iter/bpf_map", ProgType.TRACING), "dump_tasks": ("iter/task", ProgType.TRACING)},
    "corpus_subprogs": {"xdp_calls": ("xdp", ProgType.XDP), "syscall_calls": ("syscall", ProgType.SYSCALL)},
    "corpus_callbacks": {"run_callbacks": ("syscall", ProgType.SYSCALL)},
    "corpus_maps": {"fill_maps": ("raw_tp/sys_enter", ProgType.RAW_TRACEPOINT)},
    "corpus_tailcall": {"tail_ret_10": ("xdp", ProgType.XDP), "tail_ret_20": ("xdp", ProgType.XDP),
                        "tail_ret_30": ("xdp", ProgType.XDP), "tail_dispatch": ("xdp", ProgType.XDP)},
    "corpus_map_in_map": {"use_maps_of_maps": ("syscall", ProgType.SYSCALL)},
    "corpus_legacy_maps": {"legacy_count": ("socket", ProgType.SOCKET_FILTER)},
    "corpus_globals": {"use_globals": ("xdp", ProgType.XDP)},
    "corpus_rodata_filters": {"xdp_filter": ("xdp", ProgType.XDP)},
    "corpus_kconfig": {"read_kconfig": ("syscall", ProgType.SYSCALL)},
    "corpus_ksyms": {"read_ksyms": ("raw_tp/sys_enter", ProgType.RAW_TRACEPOINT)},
    "corpus_ksyms_percpu": {"read_percpu_ksyms": ("raw_tp/sys_enter", ProgType.RAW_TRACEPOINT)},
    "corpus_pinned": {"count_runs": ("xdp", ProgType.XDP)},
    "corpus_verifier_error": {"good_prog": ("xdp", ProgType.XDP), "unchecked_read": ("xdp", ProgType.XDP)},
    "corpus_flow_dissector": {"dissect": ("flow_dissector", ProgType.FLOW_DISSECTOR)},
}

# object -> user-declared maps (internal .data/.bss/.rodata/.kconfig maps are not listed)
EXPECTED_MAPS: dict[str, dict[str, MapType]] = {
    "corpus_xdp": {"xdp_verdicts": MapType.PERCPU_ARRAY},
    "corpus_tc": {"tc_bytes": MapType.HASH},
    "corpus_cgroup_skb": {"cg_packets": MapType.ARRAY},
    "corpus_cgroup_sock": {"sock_types": MapType.ARRAY},
    "corpus_sk_lookup": {"lookups": MapType.LRU_HASH},
    "corpus_syscall_core": {"facts": MapType.ARRAY},
    "corpus_tracepoint": {"getppid_enter": MapType.HASH},
    "corpus_uprobe_multi": {"multi_hits": MapType.HASH},
    "corpus_usdt": {"__bpf_usdt_specs": MapType.ARRAY, "__bpf_usdt_ip_to_spec_id": MapType.HASH},
    "corpus_perf_event": {"samples": MapType.PERCPU_ARRAY},
    "corpus_callbacks": {"cb_values": MapType.ARRAY},
    "corpus_maps": {
        "m_hash": MapType.HASH, "m_array": MapType.ARRAY, "m_percpu_hash": MapType.PERCPU_HASH,
        "m_percpu_array": MapType.PERCPU_ARRAY, "m_lru": MapType.LRU_HASH,
        "m_lru_percpu": MapType.LRU_PERCPU_HASH, "m_lpm": MapType.LPM_TRIE, "m_queue": MapType.QUEUE,
        "m_stack": MapType.STACK, "m_bloom": MapType.BLOOM_FILTER, "m_ringbuf": MapType.RINGBUF,
    },
    "corpus_tailcall": {"jump_table": MapType.PROG_ARRAY},
    "corpus_map_in_map": {"inner_a": MapType.ARRAY, "inner_b": MapType.ARRAY,
                          "outer_array": MapType.ARRAY_OF_MAPS, "outer_hash": MapType.HASH_OF_MAPS},
    "corpus_legacy_maps": {"legacy_counts": MapType.ARRAY, "legacy_hash": MapType.HASH},
    "corpus_pinned": {"pinned_runs": MapType.ARRAY, "not_pinned": MapType.HASH},
}


def test_corpus_is_complete():
    assert len(CORPUS) >= 25
    assert set(CORPUS) == set(EXPECTED_PROGRAMS), "every corpus object has an expectation and vice versa"


@pytest.mark.parametrize("name", CORPUS)
def test_parse(name):
    """from_file: the programs with their sections, types and license; the maps; determinism."""
    path = build(name)
    spec = pybpf.ObjectSpec.from_file(path)
    expected = EXPECTED_PROGRAMS[name]
    assert set(spec.programs) == set(expected)
    for prog_name, (section, ptype) in expected.items():
        p = spec.programs[prog_name]
        assert p.name == prog_name
        assert p.section == section
        assert p.type == ptype, f"{prog_name}: {p.type!r}"
        assert p.license == "GPL"
        assert len(p.instructions) > 0
    for map_name, mtype in EXPECTED_MAPS.get(name, {}).items():
        assert map_name in spec.maps, f"{map_name} missing from {sorted(spec.maps)}"
        assert spec.maps[map_name].type == mtype, f"{map_name}: {spec.maps[map_name].type!r}"
    # Parsing is pure and deterministic: the same bytes give the same spec.
    again = pybpf.ObjectSpec.from_bytes(Path(path).read_bytes())
    assert set(again.programs) == set(spec.programs) and set(again.maps) == set(spec.maps)
    for prog_name in expected:
        assert _insn_bytes(again.programs[prog_name].instructions) == _insn_bytes(spec.programs[prog_name].instructions)


def _insn_bytes(insns: Any) -> bytes:
    if isinstance(insns, (bytes, bytearray)):
        return bytes(insns)
    return b"".join(i.encode() for i in insns)


def test_attach_types_and_sleepable_flags():
    xdp = spec_of("corpus_xdp").programs
    assert xdp["xdp_frags_len"].attach_type == AttachType.XDP
    tc = spec_of("corpus_tc").programs
    assert tc["tcx_drop_udp"].attach_type == AttachType.TCX_INGRESS
    assert tc["tc_egress_ttl"].attach_type == AttachType.TCX_EGRESS
    cg = spec_of("corpus_cgroup_skb").programs
    assert cg["cg_ingress_filter"].attach_type == AttachType.CGROUP_INET_INGRESS
    assert cg["cg_egress_bytes"].attach_type == AttachType.CGROUP_INET_EGRESS
    assert spec_of("corpus_cgroup_sock").programs["sock_create_count"].attach_type == AttachType.CGROUP_INET_SOCK_CREATE
    assert spec_of("corpus_sk_lookup").programs["sk_lookup_port_filter"].attach_type == AttachType.SK_LOOKUP
    assert spec_of("corpus_tp_btf").programs["tp_btf_getppid"].attach_type == AttachType.TRACE_RAW_TP
    assert spec_of("corpus_uprobe_multi").programs["on_multi"].attach_type == AttachType.TRACE_UPROBE_MULTI
    assert spec_of("corpus_kprobe").programs["kpm_unlinkat"].attach_type == AttachType.TRACE_KPROBE_MULTI
    fentry = spec_of("corpus_fentry").programs
    assert fentry["fentry_unlinkat"].attach_type == AttachType.TRACE_FENTRY
    assert fentry["fexit_unlinkat"].attach_type == AttachType.TRACE_FEXIT
    assert fentry["lsm_file_open"].attach_type == AttachType.LSM_MAC
    assert spec_of("corpus_iter").programs["dump_tasks"].attach_type == AttachType.TRACE_ITER
    # Sleepable (".s") and frags flags, where the spec exposes them.
    for prog, want in ((spec_of("corpus_uprobe").programs["on_name"], True),
                       (spec_of("corpus_uprobe").programs["on_add"], False),
                       (fentry["fentry_sleepable_unlinkat"], True)):
        if hasattr(prog, "sleepable"):
            assert prog.sleepable is want, prog.name


def test_ctx_sizes():
    """The context layouts the tests pack by hand match the kernel's BTF."""
    out = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "raw"],
                         check=True, capture_output=True, text=True).stdout
    sizes = dict(re.findall(r"STRUCT '(__sk_buff|bpf_sk_lookup|bpf_flow_keys)' size=(\d+)", out))
    assert sizes == {"__sk_buff": str(SK_BUFF_SIZE), "bpf_sk_lookup": "72", "bpf_flow_keys": "56"}


# ----------------------------------------------------------------------------- XDP

def test_xdp_programs():
    pkt, v6 = udp4(), ipv6_pkt()
    with loaded("corpus_xdp") as obj:
        progs = obj.programs
        res = progs["xdp_pass_all"].test_run(data=pkt, repeat=5)
        assert res.retval == XDP_PASS
        assert res.data_out == pkt
        assert progs["xdp_drop_ipv6"].test_run(data=v6).retval == XDP_DROP
        assert progs["xdp_drop_ipv6"].test_run(data=pkt).retval == XDP_PASS
        res = progs["xdp_swap_macs"].test_run(data=pkt)
        assert res.retval == XDP_TX
        assert res.data_out == pkt[6:12] + pkt[0:6] + pkt[12:]
        verdicts = obj.maps["xdp_verdicts"]
        assert [total(verdicts[i]) for i in range(5)] == [0, 1, 5 + 1, 1, 0]


def test_xdp_frags():
    pkt = udp4()
    with loaded("corpus_xdp") as obj:
        prog = obj.programs["xdp_frags_len"]
        assert prog.test_run(data=pkt).retval == XDP_PASS
        assert var(obj, "frags_len") == len(pkt)
        jumbo = udp4(payload=bytes(range(256)) * 20)  # 5,162 bytes: more than a page, so fragments
        assert prog.test_run(data=jumbo).retval == XDP_DROP
        assert var(obj, "frags_len") == len(jumbo)


# ----------------------------------------------------------------------------- tc

def test_tc_programs():
    pkt, tcp, v6 = udp4(), tcp4(), ipv6_pkt()
    with loaded("corpus_tc") as obj:
        progs = obj.programs
        res = progs["tc_mark"].test_run(data=pkt, ctx=bytes(SK_BUFF_SIZE))
        assert res.retval == 0
        mark, = struct.unpack_from("<I", res.ctx_out, 8)
        cb0, = struct.unpack_from("<I", res.ctx_out, 48)
        assert (mark, cb0) == (len(pkt) + 1, 0x0800)

        assert progs["tcx_drop_udp"].test_run(data=pkt).retval == 2            # TC_ACT_SHOT
        assert progs["tcx_drop_udp"].test_run(data=tcp).retval == 0xFFFFFFFF   # TCX_NEXT (-1)

        res = progs["tc_egress_ttl"].test_run(data=pkt)
        assert res.retval == 0
        assert pkt[14 + 8] == 64 and res.data_out[14 + 8] == 1
        assert res.data_out[:22] == pkt[:22] and res.data_out[23:] == pkt[23:]

        for data in (pkt, v6, v6):
            assert progs["cls_count_bytes"].test_run(data=data).retval == 0
        assert {k: as_int(v) for k, v in obj.maps["tc_bytes"].items()} == {0x0800: len(pkt), 0x86DD: 2 * len(v6)}


# ----------------------------------------------------------------------------- socket

def test_socket_filters():
    pkt, tcp = udp4(), tcp4()
    with loaded("corpus_socket") as obj:
        keep, udp_only = obj.programs["sock_keep_all"], obj.programs["sock_udp_only"]
        # Socket filters see the packet from the network header: skb->len excludes Ethernet.
        assert keep.test_run(data=pkt, repeat=3).retval == len(pkt) - 14
        assert var(obj, "sock_seen") == 3
        assert udp_only.test_run(data=pkt).retval == 64
        assert udp_only.test_run(data=tcp).retval == 0


def test_legacy_bpf_map_def():
    pkt = udp4()
    spec = spec_of("corpus_legacy_maps")
    counts, h = spec.maps["legacy_counts"], spec.maps["legacy_hash"]
    assert (counts.type, counts.key_size, counts.value_size, counts.max_entries) == (MapType.ARRAY, 4, 8, 4)
    assert (h.type, h.key_size, h.value_size, h.max_entries) == (MapType.HASH, 4, 4, 16)
    with spec.load() as obj:
        assert obj.programs["legacy_count"].test_run(data=pkt, repeat=2).retval == 0
        l3 = len(pkt) - 14
        assert as_int(obj.maps["legacy_counts"][0x45 & 3]) == 2 * l3  # first IP byte 0x45
        assert {as_int(k): as_int(v) for k, v in obj.maps["legacy_hash"].items()} == {l3: 0x45}
        info = obj.maps["legacy_counts"].info()
        assert (info.type, info.key_size, info.value_size, info.max_entries) == (MapType.ARRAY, 4, 8, 4)


# ----------------------------------------------------------------------------- cgroup

def test_cgroup_skb():
    allowed, blocked = udp4(dst="10.0.0.3"), udp4(dst="10.0.0.2")
    blocked_addr = struct.unpack("<I", socket.inet_aton("10.0.0.2"))[0]
    with loaded("corpus_cgroup_skb", {"blocked_daddr": blocked_addr}) as obj:
        ingress, egress = obj.programs["cg_ingress_filter"], obj.programs["cg_egress_bytes"]
        assert ingress.test_run(data=blocked).retval == 0
        assert ingress.test_run(data=allowed).retval == 1
        assert ingress.test_run(data=allowed).retval == 1
        assert [as_int(obj.maps["cg_packets"][i]) for i in (0, 1)] == [2, 1]
        assert egress.test_run(data=allowed).retval == 1
        assert var(obj, "egress_bytes") == len(allowed) - 14
    assert spec_of("corpus_cgroup_skb").variables["blocked_daddr"].value == 0


def _cgroup2_root() -> Path:
    with open("/proc/mounts") as f:
        for line in f:
            dev, mnt, fstype, *_ = line.split()
            if fstype == "cgroup2":
                return Path(mnt)
    path = Path("/sys/fs/cgroup/unified")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "cgroup2", "none", str(path)], check=True)
    return path


SOCKET_CHILD = """
import errno, socket
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
socks += [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(2)]
try:
    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    print("raw: allowed")
except OSError as exc:
    print("raw:", errno.errorcode[exc.errno])
"""


def test_cgroup_sock_create():
    cg = _cgroup2_root() / f"pybpf_corpus_{os.getpid()}"
    cg.mkdir()
    try:
        with loaded("corpus_cgroup_sock") as obj:
            prog = obj.programs["sock_create_count"]
            cg_fd = os.open(cg, os.O_RDONLY | os.O_DIRECTORY)
            try:
                if _has(prog, "attach_cgroup"):
                    link = prog.attach_cgroup(str(cg))
                else:
                    link = _Closer(_cmd.link_create(LinkCreateAttr(
                        prog_fd=prog.fd, target_fd=cg_fd, attach_type=AttachType.CGROUP_INET_SOCK_CREATE)))
                with link:
                    procs = str(cg / "cgroup.procs")
                    out = subprocess.run(
                        [sys.executable, "-c", SOCKET_CHILD], check=True, capture_output=True, text=True,
                        preexec_fn=lambda: Path(procs).write_text(str(os.getpid())),
                    ).stdout
            finally:
                os.close(cg_fd)
            assert out.strip() == "raw: EPERM"
            counts = {i: as_int(obj.maps["sock_types"][i]) for i in range(8)}
            assert counts == {0: 0, 1: 2, 2: 3, 3: 0, 4: 0, 5: 0, 6: 0, 7: 0}
    finally:
        for _ in range(50):
            try:
                cg.rmdir()
                break
            except OSError:
                time.sleep(0.1)


# ----------------------------------------------------------------------------- sk_lookup

def sk_lookup_ctx(local_port: int, remote_port: int = 5555) -> bytes:
    ctx = bytearray(72)
    struct.pack_into("<II", ctx, 8, socket.AF_INET, socket.IPPROTO_TCP)
    struct.pack_into("4s", ctx, 16, socket.inet_aton("10.0.0.1"))
    struct.pack_into("!H", ctx, 36, remote_port)
    struct.pack_into("4s", ctx, 40, socket.inet_aton("10.0.0.2"))
    struct.pack_into("<I", ctx, 60, local_port)
    return bytes(ctx)


def test_sk_lookup():
    with loaded("corpus_sk_lookup", {"blocked_port": 8080}) as obj:
        prog = obj.programs["sk_lookup_port_filter"]
        assert prog.test_run(ctx=sk_lookup_ctx(8080)).retval == 0    # SK_DROP
        assert prog.test_run(ctx=sk_lookup_ctx(80)).retval == 1      # SK_PASS
        assert prog.test_run(ctx=sk_lookup_ctx(80)).retval == 1
        assert {as_int(k): as_int(v) for k, v in obj.maps["lookups"].items()} == {8080: 1, 80: 2}


# ----------------------------------------------------------------------------- flow dissector

def test_flow_dissector():
    pkt = tcp4(sport=40000, dport=443, dst="10.0.0.2")
    with loaded("corpus_flow_dissector") as obj:
        prog = obj.programs["dissect"]
        res = prog.test_run(data=pkt)
        assert res.retval == 0  # BPF_OK
        keys = res.data_out  # the kernel returns struct bpf_flow_keys as data_out
        nhoff, thoff, addr_proto = struct.unpack_from("<HHH", keys, 0)
        ip_proto, = struct.unpack_from("B", keys, 9)
        n_proto, sport, dport = struct.unpack_from("!HHH", keys, 10)
        src, dst = keys[16:20], keys[20:24]
        assert (nhoff, thoff, addr_proto, ip_proto) == (14, 34, 0x0800, 6)
        assert (n_proto, sport, dport) == (0x0800, 40000, 443)
        assert (socket.inet_ntoa(src), socket.inet_ntoa(dst)) == ("10.0.0.1", "10.0.0.2")
        arp = eth(0x0806, bytes(28))
        assert prog.test_run(data=arp).retval == 2  # BPF_DROP


# ----------------------------------------------------------------------------- syscall + CO-RE

def _task_struct_size() -> int:
    out = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "raw"],
                         check=True, capture_output=True, text=True).stdout
    return int(re.search(r"STRUCT 'task_struct' size=(\d+)", out).group(1))


def test_syscall_core_reads_match_proc():
    with loaded("corpus_syscall_core") as obj:
        res = obj.programs["read_task_facts"].test_run()
        assert res.retval == 0
        f = obj.maps["facts"][0]
    comm = Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip().encode()
    assert field(f, "pid") == threading.get_native_id()
    assert field(f, "tgid") == os.getpid()
    assert field(f, "ppid") == os.getppid()
    assert field(f, "flavor_pid") == threading.get_native_id()
    assert field(f, "has_pid") == 1
    assert field(f, "has_missing") == 0
    assert field(f, "task_size") == _task_struct_size()
    assert field(f, "comm_size") == 16
    assert field(f, "pidtype_tgid") == 1  # enum pid_type { PIDTYPE_PID, PIDTYPE_TGID, ... }
    assert field(f, "has_missing_enum") == 0
    assert cstr(field(f, "comm")) == comm


def test_kfuncs_task_from_pid():
    with loaded("corpus_kfuncs") as obj:
        prog = obj.programs["query_task"]

        def query(pid: int) -> tuple[int, int, int, int]:
            res = prog.test_run(ctx=struct.pack("<iiiI", pid, 0, 0, 99))
            tgid, parent, weak = struct.unpack_from("<iiI", res.ctx_out, 4)
            return res.retval, tgid, parent, weak

        assert query(os.getpid()) == (0, os.getpid(), os.getppid(), 0)
        ppid = os.getppid()
        grandparent = int(re.search(r"^PPid:\s+(\d+)", Path(f"/proc/{ppid}/status").read_text(), re.M).group(1))
        assert query(ppid) == (0, ppid, grandparent, 0)
        assert query(2) == (0, 2, 0, 0)  # kthreadd; its real_parent is the idle task, tgid 0
        assert query(0x3FFFFFF0)[:2] == (1, -1)


def test_subprograms_and_static_functions():
    with loaded("corpus_subprogs") as obj:
        xdp = obj.programs["xdp_calls"]
        pkt = bytes([3, 4]) + bytes(range(10, 72))
        assert xdp.test_run(data=pkt).retval == 3 * 3 + 4 * 4
        assert var(obj, "packet_bytes_sum") == sum(pkt[:16])
        assert xdp.test_run(data=bytes([30, 40]) + bytes(62)).retval == 1000  # clamp(2500)
        sc = obj.programs["syscall_calls"]
        assert sc.test_run(ctx=struct.pack("<II", 5, 6)).retval == 25 + 36 + 4
        assert sc.test_run(ctx=struct.pack("<II", 100, 1)).retval == 1000 + 4


def test_callbacks_bpf_loop_and_for_each():
    with loaded("corpus_callbacks") as obj:
        values = obj.maps["cb_values"]
        for i in range(8):
            values[i] = i + 1
        res = obj.programs["run_callbacks"].test_run(ctx=struct.pack("<IIQIIQ", 10, 0, 0, 0, 0, 0))
        assert res.retval == 0
        n, loops, loop_sum, visited, _, weighted = struct.unpack("<IIQIIQ", res.ctx_out)
        assert (n, loops, loop_sum) == (10, 10, 45)
        assert (visited, weighted) == (8, sum(i * (i + 1) for i in range(8)))


# ----------------------------------------------------------------------------- maps

def test_maps_of_every_family():
    with loaded("corpus_maps") as obj:
        assert obj.programs["fill_maps"].test_run(ctx=bytes(16)).retval == 0
        m = obj.maps
        for name, mtype in EXPECTED_MAPS["corpus_maps"].items():
            assert m[name].info().type == mtype, name

        hashed = {k: (field(v, "a"), field(v, "b")) for k, v in m["m_hash"].items()}
        assert hashed == {1: (1, 100), 2: (2, 200), 3: (3, 300)}
        assert [as_int(m["m_array"][i]) for i in range(4)] == [0, 1000, 2000, 3000]
        assert {k: total(v) for k, v in m["m_percpu_hash"].items()} == {1: 8, 2: 9, 3: 10}
        assert total(m["m_percpu_array"][1]) == 42 and total(m["m_percpu_array"][0]) == 0
        assert {k: as_int(v) for k, v in m["m_lru"].items()} == {1 << 40: 3, 2 << 40: 6, 3 << 40: 9}
        assert {k: total(v) for k, v in m["m_lru_percpu"].items()} == {1: 3, 2: 6, 3: 9}
        assert len(list(m["m_lpm"].keys())) == 2

        r = var(obj, "result")
        assert (field(r, "lpm_10_1_2_3"), field(r, "lpm_10_9_9_9"), field(r, "lpm_11_0_0_1")) == (16, 8, 0)
        assert field(r, "bloom_hits") == 3
        assert (field(r, "queue_first"), field(r, "stack_first")) == (1, 3)
        assert field(r, "ringbuf_ok") == 3

        # What the program left behind in the keyless maps.
        pops = lambda name: [struct.unpack("<I", v)[0] for v in iter(  # noqa: E731
            lambda: raw_map_op(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, m[name].fd, None, 4), None)]
        assert pops("m_queue") == [2, 3]
        assert pops("m_stack") == [2, 1]
        bloom_has = lambda v: raw_map_op(  # noqa: E731
            Cmd.MAP_LOOKUP_ELEM, m["m_bloom"].fd, None, 4, value=struct.pack("<I", v)) is not None
        assert [bloom_has(v) for v in (1, 2, 3)] == [True, True, True]

        # Ring buffer: producer position and the three records, read through mmap.
        fd = m["m_ringbuf"].fd
        with mmap.mmap(fd, PAGE + 2 * 4096, mmap.MAP_SHARED, mmap.PROT_READ, offset=PAGE) as ring:
            producer, = struct.unpack_from("<Q", ring, 0)
            assert producer == 3 * (8 + 8)
            records = [struct.unpack_from("<IIII", ring, PAGE + 16 * i) for i in range(3)]
        assert [(length, seq, magic) for length, _pgoff, seq, magic in records] == \
            [(8, 0, 0xC0FFEE), (8, 1, 0xC0FFEE), (8, 2, 0xC0FFEE)]


def test_tail_calls_through_prog_array_values():
    with loaded("corpus_tailcall") as obj:
        prog = obj.programs["tail_dispatch"]
        results = {first: prog.test_run(data=bytes([first]) + bytes(63)).retval for first in range(8)}
        assert results == {0: 10, 1: 99, 2: 20, 3: 99, 4: 99, 5: 30, 6: 99, 7: 99}
        table = obj.maps["jump_table"]
        present = [k for k in range(8) if raw_map_op(Cmd.MAP_LOOKUP_ELEM, table.fd, struct.pack("<I", k), 4) is not None]
        assert present == [0, 2, 5]


def test_maps_of_maps():
    from pybpf.maps import HashMap

    with loaded("corpus_map_in_map") as obj:
        prog = obj.programs["use_maps_of_maps"]

        def run(outer_key: int, value: int) -> tuple[int, int, int]:
            res = prog.test_run(ctx=struct.pack("<IIiiQ", outer_key, value, 0, 0, 0))
            assert res.retval == 0
            _, _, found, hash_found, hash_value = struct.unpack("<IIiiQ", res.ctx_out)
            return found, hash_found, hash_value

        assert run(0, 77) == (1, 0, 0)
        assert run(3, 88) == (1, 0, 0)
        assert run(1, 99) == (0, 0, 0)
        assert as_int(obj.maps["inner_a"][1]) == 77
        assert as_int(obj.maps["inner_b"][1]) == 88

        with HashMap(key="u32", value="u64", max_entries=8, name="corpus_inner") as inner:
            inner[7] = 1234
            raw_map_op(Cmd.MAP_UPDATE_ELEM, obj.maps["outer_hash"].fd, struct.pack("<I", 5), 4,
                       value=struct.pack("<I", inner.fd))
            assert run(5, 0) == (0, 1, 1234)


def test_pinned_maps_are_reused(pin_dir):
    with loaded("corpus_pinned", pin_path=str(pin_dir)) as obj:
        assert obj.programs["count_runs"].test_run(data=udp4(), repeat=3).retval == 3
    assert sorted(p.name for p in pin_dir.iterdir()) == ["pinned_runs"]
    with loaded("corpus_pinned", pin_path=str(pin_dir)) as obj:
        assert obj.programs["count_runs"].test_run(data=udp4()).retval == 4
        assert as_int(obj.maps["pinned_runs"][0]) == 4
    from pybpf.maps import Map

    with Map.from_pin(pin_dir / "pinned_runs") as m:
        assert as_int(m[0]) == 4


# ----------------------------------------------------------------------------- global data

def test_global_data_sections():
    spec = spec_of("corpus_globals")
    assert spec.variables["g_rodata_table"].value == [11, 22, 33, 44]
    assert spec.variables["g_data"].value == 100
    assert spec.variables["g_custom_data"].value == 7
    assert spec.variables["g_custom_array"].value == [1, 2, 3]
    assert cstr(spec.variables["g_message"].value) == b"hello pybpf"
    spec.variables["g_rodata_scale"].value = 5
    spec.variables["g_custom_ro"].value = 9
    with spec.load() as obj:
        res = obj.programs["use_globals"].test_run(data=bytes([6]) + bytes(63))
        assert res.retval == 5 * 6 + 33 + 9
        assert var(obj, "g_data") == 101
        assert var(obj, "g_bss") == 6
        assert var(obj, "g_custom_data") == 14
        assert var(obj, "g_custom_array") == [1, 2, 13]
        assert cstr(var(obj, "g_message")) == b"Hello pybpf"
        assert var(obj, "g_rodata_scale") == 5


def test_global_data_written_after_load():
    with loaded("corpus_globals") as obj:
        obj.variables["g_data"].value = 500
        obj.variables["g_custom_data"].value = 50
        obj.programs["use_globals"].test_run(data=bytes([1]) + bytes(63))
        assert var(obj, "g_data") == 501
        assert var(obj, "g_custom_data") == 100


def test_rodata_is_frozen_after_load():
    with loaded("corpus_globals") as obj:
        with pytest.raises(pybpf.BPFError):
            obj.variables["g_rodata_scale"].value = 1
        assert var(obj, "g_rodata_scale") == 3


def test_const_volatile_filters():
    v6, v4 = ipv6_pkt(), udp4()
    with loaded("corpus_rodata_filters") as off:
        prog = off.programs["xdp_filter"]
        assert prog.test_run(data=v6).retval == XDP_PASS
        assert (var(off, "matched"), var(off, "unmatched")) == (0, 0)
        assert cstr(var(off, "seen_name")) == b"none"
        pruned = prog.info().xlated_size
    settings = {"filter_enabled": True, "filter_ethertype": 0x86DD, "filter_verdict": XDP_DROP,
                "filter_name": b"ipv6"}
    on = pybpf.load(build("corpus_rodata_filters"), variables=settings)
    with on:
        prog = on.programs["xdp_filter"]
        assert prog.test_run(data=v6).retval == XDP_DROP
        assert prog.test_run(data=v4).retval == XDP_PASS
        assert (var(on, "matched"), var(on, "unmatched")) == (1, 1)
        assert cstr(var(on, "seen_name")) == b"ipv6"
        # With the filter off the verifier removed it as dead code.
        assert pruned < prog.info().xlated_size


def test_kconfig_externs():
    cfg = kernel_config()
    release = os.uname().release
    major, minor, patch = (int(x) for x in re.match(r"(\d+)\.(\d+)\.?(\d*)", release).groups("0"))
    with loaded("corpus_kconfig") as obj:
        assert obj.programs["read_kconfig"].test_run().retval == 0
        out = var(obj, "kconfig_out")
    assert field(out, "kernel_version") == (major << 16) + (minor << 8) + min(patch, 255)
    assert field(out, "bpf_syscall") == (cfg.get("CONFIG_BPF_SYSCALL") == "y")
    assert field(out, "bpf_jit") == (cfg.get("CONFIG_BPF_JIT") == "y")
    assert field(out, "bpf_lsm") == {"y": 1, "m": 2}.get(cfg.get("CONFIG_BPF_LSM", ""), 0)
    assert field(out, "hz") == int(cfg["CONFIG_HZ"])
    assert (field(out, "missing_int"), field(out, "missing_bool")) == (0, 0)
    assert cstr(field(out, "localversion")) == cfg.get("CONFIG_LOCALVERSION", '""').strip('"').encode()[:15]


def test_ksyms_typed_untyped_and_weak():
    syms = kallsyms()
    with loaded("corpus_ksyms") as obj:
        assert obj.programs["read_ksyms"].test_run().retval == 0
        out = var(obj, "ksym_out")
    assert field(out, "schedule_addr") == syms["schedule"]
    assert field(out, "stext_addr") == syms["_stext"]
    assert field(out, "missing_weak_addr") == 0


def test_percpu_ksyms():
    if "runqueues" in kallsyms():
        with loaded("corpus_ksyms_percpu") as obj:
            assert obj.programs["read_percpu_ksyms"].test_run().retval == 0
            out = var(obj, "percpu_out")
        assert field(out, "rq_cpu") == field(out, "cpu")
        assert field(out, "rq0_cpu") == 0
        assert field(out, "active_readable") == 1
        return
    # No CONFIG_KALLSYMS_ALL: the kernel cannot find data symbols; the error must say which.
    with pytest.raises(pybpf.BPFError) as info:
        pybpf.load(build("corpus_ksyms_percpu")).close()
    assert "runqueues" in str(info.value)
    assert "read_percpu_ksyms" in str(info.value)


# ----------------------------------------------------------------------------- raw_tp, tp_btf, tracepoint

def test_raw_tracepoint_test_run():
    with loaded("corpus_raw_tp") as obj:
        res = obj.programs["raw_sys_enter"].test_run(ctx=struct.pack("<QQ", 0xDEAD, 39))
        assert res.retval == 39 * 2 + 1
        assert (var(obj, "raw_tp_calls"), var(obj, "raw_tp_last_id")) == (1, 39)
        assert obj.programs["raw_sum_args"].test_run(ctx=struct.pack("<QQQ", 1, 2, 40)).retval == 43


def test_tp_btf_counts_getppid():
    with loaded("corpus_tp_btf", {"target_tgid": os.getpid()}) as obj:
        with attach_raw_tp_btf(obj.programs["tp_btf_getppid"]):
            for _ in range(5):
                os.getppid()
        assert var(obj, "getppid_calls") == 5
        assert var(obj, "seen_parent_tgid") == os.getppid()


def test_tracepoints_count_getppid():
    with loaded("corpus_tracepoint", {"target_tgid": os.getpid()}) as obj:
        with attach_tracepoint(obj.programs["tp_enter_getppid"], "syscalls", "sys_enter_getppid"), \
                attach_tracepoint(obj.programs["tp_exit_getppid"], "syscalls", "sys_exit_getppid"):
            for _ in range(7):
                os.getppid()
        assert {as_int(k): as_int(v) for k, v in obj.maps["getppid_enter"].items()} == {os.getpid(): 7}
        assert var(obj, "last_getppid_ret") == os.getppid()


# ----------------------------------------------------------------------------- uprobes, usdt

def test_uprobe_uretprobe_and_sleepable(target):
    with loaded("corpus_uprobe") as obj:
        p = obj.programs
        with attach_uprobe(p["on_add"], target, "corpus_add"), \
                attach_uprobe(p["on_add_ret"], target, "corpus_add", retprobe=True), \
                attach_uprobe(p["on_name"], target, "corpus_name"):
            assert run_target(target, 5) == sum(11 * i for i in range(1, 6))
        stats = var(obj, "stats")
        assert (field(stats, "calls"), field(stats, "sum_a"), field(stats, "sum_b")) == (5, 15, 150)
        assert (field(stats, "returns"), field(stats, "sum_ret")) == (5, 165)
        assert var(obj, "name_calls") == 1
        assert cstr(var(obj, "seen_name")) == b"pybpf-corpus"


def test_uprobe_multi_with_cookies(target):
    with loaded("corpus_uprobe_multi") as obj:
        with attach_uprobe_multi(obj.programs["on_multi"], target, ["corpus_add", "corpus_name"], [111, 222]):
            run_target(target, 4)
        assert {as_int(k): as_int(v) for k, v in obj.maps["multi_hits"].items()} == {111: 4, 222: 1}


# x86-64 struct pt_regs offsets, for the raw USDT attach.
PT_REGS = {name: 8 * i for i, name in enumerate(
    "r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags rsp ss".split())}


def usdt_notes(path: Path) -> list[tuple[int, str, str, str]]:
    """(pc, provider, name, args) of every USDT note in ``path``."""
    from elftools.elf.elffile import ELFFile

    notes = []
    with open(path, "rb") as f:
        sec = ELFFile(f).get_section_by_name(".note.stapsdt")
        data = sec.data()
    off = 0
    while off + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from("<III", data, off)
        name_off = off + 12
        desc_off = name_off + ((namesz + 3) & ~3)
        desc = data[desc_off:desc_off + descsz]
        off = desc_off + ((descsz + 3) & ~3)
        if ntype != 3 or data[name_off:name_off + namesz].rstrip(b"\0") != b"stapsdt":
            continue
        pc, = struct.unpack_from("<Q", desc, 0)
        provider, name, args = desc[24:].split(b"\0")[:3]
        notes.append((pc, provider.decode(), name.decode(), args.decode()))
    return notes


def test_usdt(target):
    (pc, provider, name, args), = usdt_notes(target)
    assert (provider, name) == ("corpus", "tick")
    with loaded("corpus_usdt") as obj:
        prog = obj.programs["on_usdt"]
        if _has(prog, "attach_usdt"):
            link = prog.attach_usdt(str(target), "corpus", "tick")
        else:
            # What a USDT attach does, by hand: spec 0 describes the two register arguments,
            # a uprobe at the probe's address runs the program with cookie 0 (= spec id 0).
            specs = []
            for arg in args.split():
                size, _, reg = arg.partition("@%")
                assert size == "-8" and reg in PT_REGS, args
                specs.append({"val_off": 0, "arg_type": 1, "reg_off": PT_REGS[reg], "arg_signed": True,
                              "arg_bitshift": 0})
            empty = {"val_off": 0, "arg_type": 0, "reg_off": 0, "arg_signed": False, "arg_bitshift": 0}
            obj.maps["__bpf_usdt_specs"][0] = {"args": specs + [empty] * (12 - len(specs)),
                                                "usdt_cookie": 0, "arg_cnt": len(specs)}
            link = attach_uprobe(prog, target, offset=elf_file_offset(target, vaddr=pc))
        with link:
            run_target(target, 6)
        assert var(obj, "usdt_calls") == 6
        assert var(obj, "usdt_sum_arg0") == sum(range(1, 7))
        assert var(obj, "usdt_sum_arg1") == sum(100 + i for i in range(1, 7))
        assert var(obj, "usdt_arg_cnt") == 2


# ----------------------------------------------------------------------------- kprobes, trampolines

def test_kprobes_load_and_attach_where_the_kernel_has_them():
    with loaded("corpus_kprobe") as obj:
        for name in EXPECTED_PROGRAMS["corpus_kprobe"]:
            assert obj.programs[name].info().type == ProgType.KPROBE
        with pytest.raises(pybpf.NotSupportedError):
            obj.programs["kp_unlinkat"].test_run(ctx=bytes(168))
        prog = obj.programs["kp_unlinkat"]
        if pybpf.features.has("kprobes"):
            prog.attach_kprobe("do_unlinkat").close()
        else:  # no hook: the error names the feature (and, on a new kernel, the config option)
            with pytest.raises(pybpf.NotSupportedError, match="kprobes"):
                prog.attach_kprobe("do_unlinkat").close()


def test_fentry_fexit_lsm_refused_under_lockdown():
    if kernel_facts.lockdown() == "none":  # nothing refuses them: the object loads
        pybpf.load(build("corpus_fentry")).close()
        return
    with pytest.raises(pybpf.BPFError) as info:
        pybpf.load(build("corpus_fentry")).close()
    err = info.value
    msg = str(err)
    assert err.errno == errno.EPERM, msg
    assert "lockdown" in msg, msg
    assert re.search(r"fentry_unlinkat|fexit_unlinkat|fentry_sleepable_unlinkat|lsm_file_open", msg), msg
    assert re.search(r"fentry|fexit|lsm", msg.split(":")[-1] + (err.hint or "")), msg


def test_fentry_without_target_names_the_problem():
    spec = spec_of("corpus_fentry_notarget")
    assert spec.programs["fentry_no_target"].section == "fentry"
    with pytest.raises(pybpf.BPFError) as info:
        spec.load().close()
    msg = str(info.value)
    assert "fentry_no_target" in msg, msg
    assert re.search(r"no attach target|target not set|attach target", msg, re.I), msg


def test_fentry_on_missing_function_names_it():
    with pytest.raises(pybpf.BPFError) as info:
        pybpf.load(build("corpus_fentry_missing")).close()
    msg = str(info.value)
    assert "fentry_missing_target" in msg and "pybpf_corpus_no_such_function" in msg, msg


# ----------------------------------------------------------------------------- perf_event, iter

def test_perf_event_cpu_clock_samples():
    period_ns = 1_000_000
    with loaded("corpus_perf_event") as obj:
        prog = obj.programs["on_cpu_clock"]
        if _has(prog, "attach_perf_event"):
            link = prog.attach_perf_event(PerfType.SOFTWARE, PerfSwConfig.CPU_CLOCK, sample_period=period_ns,
                                          pid=threading.get_native_id())
        else:
            attr = PerfEventAttr(type=PerfType.SOFTWARE, config=PerfSwConfig.CPU_CLOCK, sample_period=period_ns)
            event = perf_open(attr, pid=0, cpu=-1)
            _perf.set_bpf(event.fileno(), prog.fd)
            _perf.enable(event.fileno())
            link = _Closer(event)
        with link:
            start = time.thread_time()
            while time.thread_time() - start < 0.3:
                pass
            cpu_ms = (time.thread_time() - start) * 1000
        samples = total(obj.maps["samples"][0])
        assert 0.5 * cpu_ms <= samples <= 1.5 * cpu_ms + 5, (samples, cpu_ms)
        assert var(obj, "last_period") == period_ns


def test_iterators():
    with loaded("corpus_iter", {"target_tgid": os.getpid()}) as obj:
        own = [m.info() for m in obj.maps.values()]
        with attach_iter(obj.programs["dump_maps"]) as link:
            text = read_iter(link)
        listed = {(int(a), int(b)) for a, b in re.findall(r"^map (\d+) (\d+)$", text, re.M)}
        assert {(i.id, i.max_entries) for i in own} <= listed
        assert len(listed) == len(text.splitlines())

        with attach_iter(obj.programs["dump_tasks"]) as link:
            text = read_iter(link)
        tids = {int(t) for t in re.findall(r"^tid (\d+)$", text, re.M)}
        assert tids == {int(t) for t in os.listdir("/proc/self/task")}
        assert re.search(r"^threads (\d+)$", text, re.M).group(1) == str(len(tids))


# ----------------------------------------------------------------------------- verifier errors

def test_verifier_error_names_the_c_line():
    with pytest.raises(pybpf.VerifierError) as info:
        pybpf.load(build("corpus_verifier_error")).close()
    err = info.value
    assert err.errno == errno.EACCES
    assert "unchecked_read" in str(err)
    assert "invalid access to packet" in err.log
    assert err.source_line and "CORPUS_BAD_LINE" in err.source_line, err.source_line
    assert "invalid access to packet" in err.summary
