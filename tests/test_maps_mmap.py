"""Memory-mapped arrays (BPF_F_MMAPABLE, Linux 5.5): element access without system calls."""

from __future__ import annotations

import errno
import gc
import os

import pytest

from pybpf._sys import Cmd
from pybpf._sys import syscall as _syscall
from pybpf._sys.commands import map_info
from pybpf.errors import KeyNotFoundError, MapError
from pybpf.maps import ArrayMap, Map, MapFlag, MapType, create

pytestmark = pytest.mark.root  # against the kernel: needs root


@pytest.fixture(autouse=True)
def no_fd_leaks():
    gc.collect()
    before = set(os.listdir("/proc/self/fd"))
    yield
    gc.collect()
    leaked = {fd for fd in set(os.listdir("/proc/self/fd")) - before if os.path.exists(f"/proc/self/fd/{fd}")}
    assert not leaked, f"leaked fds: {sorted(leaked)}"


@pytest.fixture
def bpf_calls(monkeypatch):
    """Count every bpf(2) call pybpf makes (all of them go through _sys.syscall._syscall4)."""
    calls = []
    real = _syscall._syscall4

    def counting(nr, cmd, addr, size):
        if int(getattr(nr, "value", nr)) == _syscall.NR_BPF:
            calls.append(int(getattr(cmd, "value", cmd)))
        return real(nr, cmd, addr, size)

    monkeypatch.setattr(_syscall, "_syscall4", counting)
    return calls


def test_the_counter_sees_ordinary_map_operations(bpf_calls):
    with ArrayMap(value="u64", max_entries=4) as plain:  # not mmapable: every access is a syscall
        bpf_calls.clear()
        plain[1] = 5
        assert plain[1] == 5
        assert len(bpf_calls) == 2


def test_mmapable_reads_and_writes_make_no_syscalls(bpf_calls):
    with ArrayMap(value="u64", max_entries=1000, mmapable=True, name="mm") as a:
        assert a.mmapped and a.flags & MapFlag.MMAPABLE
        assert map_info(a.fd).map_flags & MapFlag.MMAPABLE
        bpf_calls.clear()
        for i in range(1000):
            a[i] = i * 3
        total = sum(a[i] for i in range(1000))
        values = list(a.values())
        assert a.get(999) == 2997 and 5 in a and len(a) == 1000
        assert bpf_calls == []  # not a single bpf(2) call
        assert total == 3 * sum(range(1000)) and values[10] == 30
        # The same memory seen through the syscall path of a second handle:
        with Map.from_id(a.id, value="u64") as other:
            bpf_calls.clear()
            assert Map.__getitem__(other, 7) == 21  # BPF_MAP_LOOKUP_ELEM, not the mapping
            Map.__setitem__(other, 8, 12345)        # BPF_MAP_UPDATE_ELEM
            assert bpf_calls == [Cmd.MAP_LOOKUP_ELEM, Cmd.MAP_UPDATE_ELEM]
        assert a[8] == 12345  # visible in our mapping at once


def test_mmap_memory_view_and_layout():
    with ArrayMap(value="u32", max_entries=5, mmapable=True) as a:
        mem = a.memory
        assert mem.nbytes == 8 * 5  # value_size rounded up to 8, times max_entries
        a[1] = 0x11223344
        assert bytes(mem[8:12]) == (0x11223344).to_bytes(4, "little")
        mem[16:20] = (7).to_bytes(4, "little")
        assert a[2] == 7 and Map.__getitem__(a, 2) == 7  # the kernel sees the store
        del mem
        with pytest.raises(KeyNotFoundError):
            a[5]  # out of range goes to the kernel, which says ENOENT
        with pytest.raises(OverflowError, match=r"value -1 out of range for u32"):
            a[1] = -1
        a.clear()
        assert list(a.values()) == [0] * 5
    with ArrayMap(value="u32", max_entries=2) as plain:
        with pytest.raises(MapError, match="not mmapable"):
            plain.memory


def test_read_only_maps_are_mapped_read_only():
    # .rodata the way a loader makes it: mmapable and read-only for programs.  The kernel
    # refuses writable mappings of BPF_F_RDONLY_PROG maps (EACCES) and of frozen maps (EPERM),
    # so the map is mapped read-only and initial contents go through BPF_MAP_UPDATE_ELEM.
    with create(MapType.ARRAY, key_size=4, value_size=16, max_entries=1,
                flags=MapFlag.MMAPABLE | MapFlag.RDONLY_PROG, name=".rodata") as ro:
        assert ro.mmapped and ro.memory.readonly
        ro[0] = b"hello, rodata!!\0"  # the syscall path
        assert bytes(ro.memory) == b"hello, rodata!!\0"  # seen through the mapping
        ro.freeze()
        assert ro.frozen and ro[0] == b"hello, rodata!!\0"
        with pytest.raises(MapError, match="frozen") as exc:
            ro[0] = bytes(16)
        assert exc.value.errno == errno.EPERM
        with Map.from_id(ro.id) as again:
            assert type(again) is ArrayMap and again.mmapped and again.memory.readonly
            assert again[0] == b"hello, rodata!!\0"
    # A writable-mapped map frozen by someone else: a new handle gets a read-only mapping (EPERM).
    with create(MapType.ARRAY, value="u32", max_entries=2, flags=MapFlag.MMAPABLE) as d:
        assert not d.memory.readonly
        d[1] = 9
        d.freeze()
        with Map.from_id(d.id, value="u32") as again:
            assert again.memory.readonly and again[1] == 9


def test_freeze_remaps_read_only():
    with ArrayMap(value="u64", max_entries=1, mmapable=True) as a:
        a[0] = 1
        a.freeze()  # our own writable mapping is dropped first, so the kernel agrees
        assert a.frozen and a[0] == 1 and a.memory.readonly


def test_freeze_with_views_held_is_refused_cleanly():
    with ArrayMap(value="u64", max_entries=2, mmapable=True, name="held") as a:
        view = a.memory[0:8]
        with pytest.raises(MapError, match="map 'held': freeze: views of m.memory are still held") as exc:
            a.freeze()
        assert exc.value.errno == errno.EBUSY and not a.frozen
        a[1] = 5  # still mapped writable, still zero-syscall
        assert a[1] == 5
        view.release()
        a.freeze()
        assert a.frozen and a.memory.readonly
