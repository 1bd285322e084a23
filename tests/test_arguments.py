"""Integers that would wrap in a kernel field are refused, at every public entry point.

ctypes keeps the low bits of an integer silently: ``max_entries=2**32 + 4``
would create a map of 4 entries, ``offset=2**64 + off`` probe at ``off``,
``pid=2**32 + pid`` trace that pid.  The attr layer checks every field
(pybpf._sys.attrs); these tests walk the public API with values one past
each field's range and expect an ArgumentError (a BPFError and a ValueError)
that names the argument and the range.
"""

from __future__ import annotations

import os

import pytest

import pybpf
from pybpf._sys import AttachType
from pybpf._sys.attrs import MapCreateAttr, PerfEventAttr, check_int, u64_array
from pybpf.links import attach_tracepoint, attach_uprobe, attach_uprobe_multi
from pybpf.maps.array import ArrayMap
from pybpf.maps.hash import HashMap
from pybpf.maps.ringbuf import RingBuf

from test_links_support import cookie_counter, counts_map, target

U32, U64 = 2**32, 2**64


def _refused(call, name: str) -> pybpf.ArgumentError:
    with pytest.raises(pybpf.ArgumentError) as info:
        call()
    err = info.value
    assert isinstance(err, pybpf.BPFError) and isinstance(err, ValueError)
    assert name in str(err) and ".." in str(err), str(err)
    return err


def test_the_attr_structs_check_every_integer_field():
    _refused(lambda: MapCreateAttr(max_entries=U32 + 4), "max_entries")
    attr = MapCreateAttr()
    _refused(lambda: setattr(attr, "map_flags", U64), "flags")
    _refused(lambda: setattr(attr, "key_size", -1), "key_size")
    _refused(lambda: PerfEventAttr(config2=U64 + 5), "config2")
    assert MapCreateAttr(max_entries=U32 - 1).max_entries == U32 - 1
    assert check_int("pid", -1, 32, signed=True) == -1
    _refused(lambda: u64_array("offset", [1, U64]), "offset")


@pytest.mark.parametrize("kw, name", [
    (dict(max_entries=U32 + 4), "max_entries"),
    (dict(max_entries=4, flags=U32), "flags"),
    (dict(max_entries=4, flags=U64), "flags"),
    (dict(max_entries=4, key_size=U32 + 8), "key_size"),
])
def test_map_creation(kw, name):
    _refused(lambda: HashMap(**{"key": kw.pop("key_size", "<I"), "value": "<Q", **kw}), name)


@pytest.mark.root
def test_other_map_families_and_updates():
    _refused(lambda: ArrayMap(value="<Q", max_entries=U32 + 1), "max_entries")
    _refused(lambda: RingBuf(size=U32 * 2), "max_entries")
    with HashMap(key="<I", value="<Q", max_entries=4) as m:
        _refused(lambda: m.put(1, 2, flags=U64), "flags")
        _refused(lambda: m.put(1, 2, flags=-1), "flags")
        assert len(m) == 0


@pytest.fixture
def counts():
    with counts_map() as m:
        yield m


@pytest.mark.root
def test_uprobe_offset_pid_and_cookie(counts):
    binary = target()
    with cookie_counter(counts) as prog:
        _refused(lambda: attach_uprobe(prog, binary, "func_a", offset=U64 + 4), "offset")
        _refused(lambda: attach_uprobe(prog, binary, None, offset=U64 + 0x1000), "offset")
        _refused(lambda: attach_uprobe(prog, binary, "func_a", pid=U32 + os.getpid()), "pid")
        _refused(lambda: attach_uprobe(prog, binary, "func_a", cookie=U64), "cookie")
        _refused(lambda: attach_uprobe(prog, binary, "func_a", cookie=-1 - 2**63), "cookie")


@pytest.mark.root
def test_uprobe_multi_offsets_pid_and_cookies(counts):
    binary = target()
    with cookie_counter(counts, expected_attach_type=AttachType.TRACE_UPROBE_MULTI) as prog:
        _refused(lambda: attach_uprobe_multi(prog, binary, ["func_a"], pid=U32 + os.getpid()), "pid")
        _refused(lambda: attach_uprobe_multi(prog, binary, ["func_a"], cookies=[U64 + 1]), "cookie")
        _refused(lambda: attach_uprobe_multi(prog, binary, offsets=[U64 + 0x1000]), "offset")


@pytest.mark.root
def test_tracepoint_cookie(counts):
    with cookie_counter(counts, pybpf._sys.ProgType.TRACEPOINT) as prog:
        _refused(lambda: attach_tracepoint(prog, "syscalls", "sys_enter_getpid", cookie=U64 + 7), "cookie")


@pytest.mark.root
def test_test_run_repeat(counts):
    with cookie_counter(counts, pybpf._sys.ProgType.XDP, key_from_cookie=False) as prog:
        _refused(lambda: prog.test_run(bytes(64), repeat=U32 + 1), "repeat")


def test_ids_fds_and_perf_event_pids():
    from pybpf.links import attach_perf_event
    from pybpf.maps import Map
    from pybpf.program import Program

    _refused(lambda: Map.from_id(U32 + 1), "start_id")
    _refused(lambda: Program.from_id(U32 + 1), "start_id")
    _refused(lambda: Map.from_fd(U32 + 3), "fd")
    with counts_map() as counts, cookie_counter(counts, pybpf._sys.ProgType.PERF_EVENT) as prog:
        _refused(lambda: attach_perf_event(prog, "software", "cpu-clock", pid=U32 + os.getpid(),
                                           sample_period=1_000_000), "pid")
