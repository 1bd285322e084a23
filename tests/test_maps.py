"""pybpf.maps: the Map base, hash maps, codecs, errors, iteration, batch ops, pinning.

Real kernel round trips, as root.  Family-specific tests are in
test_maps_families.py, the mmap path in test_maps_mmap.py.
"""

from __future__ import annotations

import ctypes
import errno
import gc
import os
import subprocess
import threading

import pytest

import pybpf
from pybpf._sys.commands import map_info
from pybpf.errors import BPFError, KeyNotFoundError, MapError, MapFullError
from pybpf.maps import (
    ArrayMap, HashMap, LRUHashMap, Map, MapFlag, MapType, UpdateFlag, create, make_codec, map_class,
)
from pybpf.maps import batch as _batch

pytestmark = pytest.mark.root  # against the kernel: needs root


@pytest.fixture(autouse=True)
def no_fd_leaks():
    """Every test closes every fd it opens."""
    gc.collect()
    before = set(os.listdir("/proc/self/fd"))
    yield
    gc.collect()
    leaked = set(os.listdir("/proc/self/fd")) - before
    leaked = {fd for fd in leaked if os.path.exists(f"/proc/self/fd/{fd}")}
    assert not leaked, f"leaked fds: {sorted(leaked)}"


@pytest.fixture
def bpffs(tmp_path):
    if not os.path.ismount("/sys/fs/bpf"):
        subprocess.run(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"], check=True)
    path = f"/sys/fs/bpf/pybpf_test_maps_{os.getpid()}"
    yield path
    if os.path.exists(path):
        os.unlink(path)


# ---------------------------------------------------------------- codecs (no kernel)

def test_codec_scalars_round_trip():
    for name, value, size in [("u8", 255, 1), ("u16", 65535, 2), ("u32", 2**32 - 1, 4), ("u64", 2**64 - 1, 8),
                              ("i8", -128, 1), ("i16", -2, 2), ("i32", -(2**31), 4), ("i64", -1, 8)]:
        c = make_codec(name)
        assert c.size == size
        assert c.decode(c.encode(value)) == value
    assert make_codec("bool").decode(make_codec("bool").encode(True)) is True
    assert make_codec("f64").decode(make_codec("f64").encode(1.5)) == 1.5


def test_codec_struct_formats():
    c = make_codec("<IQ")
    assert c.size == 12 and c.decode(c.encode((1, 2))) == (1, 2)
    one = make_codec("<H")
    assert one.decode(one.encode(7)) == 7  # one field: a scalar, not a 1-tuple
    s = make_codec("4s")
    assert s.decode(s.encode(b"abcd")) == b"abcd"
    with pytest.raises(TypeError, match="4 bytes"):
        s.encode(b"abc")  # struct would pad silently; we refuse


def test_codec_ctypes_and_raw():
    class Pair(ctypes.Structure):
        _fields_ = [("a", ctypes.c_uint32), ("b", ctypes.c_uint32)]

    c = make_codec(Pair)
    out = c.decode(c.encode(Pair(1, 2)))
    assert isinstance(out, Pair) and (out.a, out.b) == (1, 2)
    assert c.decode(bytes(8)).a == 0
    raw = make_codec(3)
    assert raw.decode(raw.encode(b"xyz")) == b"xyz"
    with pytest.raises(TypeError, match="3 bytes"):
        raw.encode(b"toolong")
    arr = make_codec(ctypes.c_uint8 * 4)
    assert list(arr.decode(b"\x01\x02\x03\x04")) == [1, 2, 3, 4]
    assert make_codec(ctypes.c_uint32).decode(b"\x05\0\0\0") == 5


def test_codec_foreign_object():
    class Upper:
        size = 4

        def encode(self, value):
            return value.upper().encode()

        def decode(self, buf):
            return buf.decode().lower()

    c = make_codec(Upper())
    buf = bytearray(4)
    c.pack_into(buf, 0, "abcd")
    assert bytes(buf) == b"ABCD" and c.unpack_from(buf, 0)[0] == "abcd"


def test_codec_errors_name_sizes_and_ranges():
    u32 = make_codec("u32")
    buf = bytearray(4)
    for bad, cls, text in [
        (b"12345678", TypeError, "key must be 4 bytes (u32), got 8 bytes"),
        ("x", TypeError, "key must be 4 bytes (u32), got str"),
        (2**32, OverflowError, "out of range for u32 (0..4294967295)"),
        (-1, OverflowError, "out of range for u32"),
    ]:
        with pytest.raises(cls, match=text.replace("(", r"\(").replace(")", r"\)")):
            try:
                u32.pack_into(buf, 0, bad)
            except Exception as exc:
                raise u32.error("key", bad, exc) from None
    with pytest.raises(TypeError, match="not a codec"):
        make_codec("definitely not a format")
    with pytest.raises(TypeError, match="8 bytes.*key_size is 4"):
        make_codec("u64", size=4, role="key")


# ---------------------------------------------------------------- hash maps against the kernel

def test_hash_map_attributes_match_the_kernel():
    with HashMap(key="u32", value="u64", max_entries=1024, name="counts") as m:
        info = map_info(m.fd)
        assert (info.type, info.key_size, info.value_size, info.max_entries) == (MapType.HASH, 4, 8, 1024)
        assert info.name == b"counts" and m.name == "counts"
        assert m.type == MapType.HASH and m.id == info.id > 0
        assert (m.key_size, m.value_size, m.max_entries) == (4, 8, 1024)
        i = m.info()
        assert i.id == m.id and i.type == MapType.HASH and i.max_entries == 1024 and i.name == "counts"
        assert isinstance(m, Map) and map_class(MapType.HASH) is HashMap
    assert m.closed
    with pytest.raises(ValueError):
        m.fd


def test_hash_map_dict_operations():
    with HashMap(key="u32", value="u64", max_entries=64, name="dict_ops") as m:
        assert not m and len(m) == 0
        m[1] = 10
        m[2] = 20
        assert m[1] == 10 and m.get(2) == 20 and m.get(3) is None and m.get(3, -1) == -1
        assert 1 in m and 3 not in m and bool(m)
        assert sorted(m) == [1, 2] and sorted(m.keys()) == [1, 2] and sorted(m.values()) == [10, 20]
        assert dict(m.items()) == {1: 10, 2: 20} and len(m) == 2
        del m[1]
        assert 1 not in m and len(m) == 1
        m.update({5: 50, 6: 60})
        m.update([(7, 70)])
        assert dict(m.items()) == {2: 20, 5: 50, 6: 60, 7: 70}
        assert m.pop(5) == 50 and 5 not in m
        assert m.pop(5, "gone") == "gone"
        assert m.setdefault(8, 80) == 80 and m.setdefault(8, 99) == 80 and m[8] == 80
        m.put(9, 90, UpdateFlag.NOEXIST)
        with pytest.raises(MapError, match="EEXIST") as exc:
            m.put(9, 91, UpdateFlag.NOEXIST)
        assert exc.value.errno == errno.EEXIST
        with pytest.raises(KeyNotFoundError):
            m.put(100, 1, UpdateFlag.EXIST)
        m.clear()
        assert len(m) == 0 and list(m.items()) == []


def test_missing_key_is_key_not_found_error():
    with HashMap(key="u32", value="u64", max_entries=8, name="counts") as m:
        with pytest.raises(KeyNotFoundError) as exc:
            m[5]
        assert str(exc.value) == "map 'counts': lookup: key 5 not found"
        assert isinstance(exc.value, KeyError) and isinstance(exc.value, pybpf.BPFError)
        assert exc.value.errno == errno.ENOENT
        with pytest.raises(KeyError, match="delete: key 5 not found"):
            del m[5]
        with pytest.raises(KeyError, match="pop: key 5 not found"):
            m.pop(5)


def test_full_hash_map_raises_map_full_error():
    with HashMap(key="u32", value="u64", max_entries=4, name="counts") as m:
        for k in range(4):
            m[k] = k
        with pytest.raises(MapFullError) as exc:
            m[4] = 4
        assert exc.value.errno == errno.E2BIG
        assert str(exc.value) == "map 'counts': update: E2BIG (map is full, max_entries=4)"
        m[3] = 33  # replacing an existing key still works when full
        assert m[3] == 33 and len(m) == 4


def test_lru_hash_evicts_instead_of_failing():
    with LRUHashMap(key="u32", value="u32", max_entries=64) as m:
        for k in range(1000):
            m[k] = k
        assert 0 < len(m) <= 64  # preallocated: never more than max_entries
        assert m[999] == 999  # the newest survives


def test_wrong_key_or_value_is_type_error_naming_the_size():
    with HashMap(key="u32", value="u64", max_entries=8, name="typed") as m:
        with pytest.raises(TypeError, match=r"key must be 4 bytes \(u32\), got 8 bytes"):
            m[b"12345678"] = 1
        with pytest.raises(TypeError, match=r"value must be 8 bytes \(u64\), got str"):
            m[1] = "x"
        with pytest.raises(OverflowError, match=r"key 4294967296 out of range for u32 \(0\.\.4294967295\)"):
            m[2**32]
        with pytest.raises(OverflowError, match=r"out of range for u64"):
            m[1] = -1
        assert len(m) == 0  # nothing was written
    with HashMap(key=4, value=8, max_entries=8) as raw:
        raw[b"abcd"] = b"12345678"
        assert raw[b"abcd"] == b"12345678"
        with pytest.raises(TypeError, match=r"value must be 8 bytes \(raw bytes\), got 3 bytes"):
            raw[b"abcd"] = b"123"


def test_struct_and_ctypes_codecs_against_the_kernel():
    class Flow(ctypes.Structure):
        _fields_ = [("saddr", ctypes.c_uint32), ("dport", ctypes.c_uint16), ("proto", ctypes.c_uint8),
                    ("pad", ctypes.c_uint8)]

    with HashMap(key=Flow, value="<IQ", max_entries=8) as m:
        assert (m.key_size, m.value_size) == (8, 12)
        m[Flow(1, 80, 6)] = (3, 4)
        ((k, v),) = list(m.items())
        assert (k.saddr, k.dport, k.proto) == (1, 80, 6) and v == (3, 4)
        assert m[Flow(1, 80, 6)] == (3, 4)
        with pytest.raises(TypeError, match="2 fields"):
            m[Flow(1, 80, 6)] = (1, 2, 3)


def test_set_codecs_retypes_an_existing_map():
    with HashMap(key_size=4, value_size=8, max_entries=8) as m:
        m[b"\x01\0\0\0"] = b"\x02\0\0\0\x03\0\0\0"
        m.set_codecs(key="u32", value="<II")
        assert m[1] == (2, 3)
        with pytest.raises(TypeError, match="value_size is 8"):
            m.set_codecs(value="u32")
        assert m[1] == (2, 3)  # unchanged after the refused retype


def test_create_returns_the_family_class():
    with create(MapType.HASH, key="u32", value="u64", max_entries=16, name="c1") as m:
        assert type(m) is HashMap
        m[1] = 2
        assert m[1] == 2
    with create(MapType.ARRAY, key_size=4, value_size=4, max_entries=2) as a:
        assert type(a) is ArrayMap
        a[1] = b"abcd"
        assert a[1] == b"abcd" and a[0] == bytes(4)
    with pytest.raises(TypeError, match="key_size is 4"):
        create(MapType.HASH, key="u64", key_size=4, value="u32", max_entries=4)
    with pytest.raises(MapError, match="map 'bad': create: EINVAL") as exc:
        create(MapType.HASH, key="u32", value="u32", max_entries=0, name="bad")
    assert "hash maps need Linux 3.19" in str(exc.value)


def test_closed_map_says_closed():
    m = HashMap(key="u32", value="u32", max_entries=4, name="shut")
    m[1] = 1
    m.close()
    m.close()  # idempotent
    with pytest.raises(ValueError, match="map 'shut'.* closed"):
        m[1]
    with pytest.raises(ValueError, match="closed"):
        m[1] = 2
    assert "closed" in repr(m)


def test_map_is_closed_by_garbage_collection():
    m = HashMap(key="u32", value="u32", max_entries=4)
    fd = m.fd
    assert os.path.exists(f"/proc/self/fd/{fd}")
    del m
    gc.collect()
    assert not os.path.exists(f"/proc/self/fd/{fd}") or "bpf-map" not in os.readlink(f"/proc/self/fd/{fd}")


# ---------------------------------------------------------------- iteration

def _fill(m, n):
    m.update_batch(range(n), [k * 10 for k in range(n)])


@pytest.mark.parametrize("path", ["batch", "per-key"])
def test_iteration_survives_deleting_the_current_key(path):
    with HashMap(key="u32", value="u64", max_entries=2048) as m:
        if path == "per-key":
            m._nobatch.add(_batch.LOOKUP_BATCH)  # force the GET_NEXT_KEY walk
        _fill(m, 1000)
        seen = []
        for k in m:
            seen.append(k)
            del m[k]  # GET_NEXT_KEY(k) now finds no k: the kernel restarts from the first key
        assert sorted(seen) == list(range(1000))  # each key exactly once
        assert len(m) == 0


@pytest.mark.parametrize("path", ["batch", "per-key"])
def test_iteration_with_concurrent_deletion_of_other_keys(path):
    with HashMap(key="u32", value="u64", max_entries=2048) as m:
        if path == "per-key":
            m._nobatch.add(_batch.LOOKUP_BATCH)
        _fill(m, 1000)
        deleted = set()
        seen = []
        for k, v in m.items():
            assert v == k * 10
            seen.append(k)
            victim = (k * 7 + 3) % 1000
            if victim not in seen and victim in m:
                del m[victim]
                deleted.add(victim)
        assert len(seen) == len(set(seen))  # no duplicates
        untouched = set(range(1000)) - deleted
        assert untouched <= set(seen)  # every key that stayed was found
        assert set(seen) - untouched <= deleted
        assert len(m) == 1000 - len(deleted)


def test_len_counts_by_iterating():
    with HashMap(key="u32", value="u32", max_entries=10000) as m:
        _fill(m, 5000)
        assert len(m) == 5000
        m._nobatch.add(_batch.LOOKUP_BATCH)
        assert len(m) == 5000


# ---------------------------------------------------------------- batch operations

def test_batch_ops_on_hash():
    with HashMap(key="u32", value="u64", max_entries=10000, name="batched") as m:
        m.update_batch(range(3000), [k * 2 for k in range(3000)])
        assert len(m) == 3000 and m[2999] == 5998
        chunks = list(m.lookup_batch(batch_size=512))
        assert all(len(ks) == len(vs) <= 1024 for ks, vs in chunks)  # (grows only on ENOSPC)
        got = {k: v for ks, vs in chunks for k, v in zip(ks, vs)}
        assert got == {k: k * 2 for k in range(3000)}
        assert dict(m.items_batch(batch_size=100)) == got
        m.delete_batch(range(1000))
        assert len(m) == 2000 and 0 not in m and 1000 in m
        with pytest.raises(KeyNotFoundError, match="delete_batch: key 5 not found"):
            m.delete_batch([1500, 5, 1600])
        assert 1500 not in m and 1600 in m  # deleted up to the missing key
        drained = m.lookup_and_delete_batch(batch_size=256)
        assert len(drained) == 1999 and dict(drained)[2000] == 4000
        assert len(m) == 0
        with pytest.raises(ValueError, match="3 keys but 2 values"):
            m.update_batch([1, 2, 3], [1, 2])


def test_batch_update_on_full_hash_names_the_key():
    with HashMap(key="u32", value="u32", max_entries=10, name="small") as m:
        with pytest.raises(MapFullError) as exc:
            m.update_batch(range(20), range(20))
        assert "max_entries=10" in str(exc.value) and "keys[10]=10" in str(exc.value)
        assert len(m) == 10


def test_batch_update_with_noexist_falls_back_per_key():
    with HashMap(key="u32", value="u32", max_entries=16) as m:
        m.update_batch([1, 2], [1, 2], UpdateFlag.NOEXIST)  # the kernel's batch update takes ANY/LOCK only
        with pytest.raises(MapError, match="EEXIST"):
            m.update_batch([3, 1], [3, 1], UpdateFlag.NOEXIST)
        assert dict(m.items()) == {1: 1, 2: 2, 3: 3}


def test_batch_ops_on_array():
    with ArrayMap(value="u32", max_entries=100) as a:
        a.update_batch(range(100), range(100, 200))
        got = {k: v for ks, vs in a.lookup_batch(batch_size=32) for k, v in zip(ks, vs)}
        assert got == {k: k + 100 for k in range(100)}
        assert list(a.values()) == list(range(100, 200))
        with pytest.raises(MapError) as exc:
            a.delete_batch([1])  # arrays cannot delete
        assert exc.value.errno in (errno.EINVAL, 524)
        a.clear()
        assert set(a.values()) == {0}


# ---------------------------------------------------------------- objects: ids, fds, pins, freeze

def test_from_id_and_from_fd_return_the_family_class():
    with HashMap(key="u32", value="u64", max_entries=8, name="shared") as m:
        m[1] = 2
        with Map.from_id(m.id) as same:
            assert type(same) is HashMap and same.id == m.id and same.name == "shared"
            assert same[b"\x01\0\0\0"] == (2).to_bytes(8, "little")  # no types known: raw bytes
        with Map.from_id(m.id, key="u32", value="u64") as typed:
            assert typed[1] == 2
        with Map.from_fd(m.fd) as dup:
            assert dup.fd != m.fd and dup.id == m.id
        with HashMap.from_fd(m.fd, key="u32", value="u64") as again:
            assert again[1] == 2
        with pytest.raises(TypeError, match="is a HASH map, not a ArrayMap"):
            ArrayMap.from_fd(m.fd)
        with open("/dev/null") as f, pytest.raises(MapError, match="not a BPF map"):
            Map.from_fd(f.fileno())
        raw_fd = os.dup(m.fd)
        owned = Map.from_fd(raw_fd, dup=False)
        assert owned.fd == raw_fd
        owned.close()
        assert not os.path.exists(f"/proc/self/fd/{raw_fd}") or \
            "bpf-map" not in os.readlink(f"/proc/self/fd/{raw_fd}")


def test_pin_from_pin_unpin(bpffs):
    with HashMap(key="u32", value="u64", max_entries=8, name="pinned") as m:
        m[7] = 70
        m.pin(bpffs)
        assert os.path.exists(bpffs) and m.pinned == bpffs
        with Map.from_pin(bpffs, key="u32", value="u64") as again:
            assert type(again) is HashMap and again.id == m.id and again[7] == 70
            again[8] = 80
        assert m[8] == 80
        m.unpin()
        assert not os.path.exists(bpffs) and m.pinned is None
        with pytest.raises(BPFError, match="map 'pinned'.*unpin.*ENOENT"):
            m.unpin(bpffs)
    with pytest.raises(BPFError, match="open pinned"):
        Map.from_pin(bpffs)


def test_pin_outside_bpffs_has_a_hint(tmp_path):
    with HashMap(key="u32", value="u64", max_entries=8, name="p") as m:
        with pytest.raises(BPFError, match="map 'p'") as exc:
            m.pin(tmp_path / "x")
        assert exc.value.errno in (errno.EPERM, errno.EINVAL, errno.ENOENT, errno.EACCES)


def test_freeze_makes_the_map_read_only_for_user_space():
    with HashMap(key="u32", value="u32", max_entries=8, name="ice") as m:
        m[1] = 1
        assert not m.frozen
        m.freeze()
        assert m.frozen and m[1] == 1
        with pytest.raises(MapError, match="frozen") as exc:
            m[1] = 2
        assert exc.value.errno == errno.EPERM


def test_unknown_map_types_get_the_generic_map():
    assert map_class(10_000) is Map
    # DEVMAP has no family class: the generic Map reads and writes it with raw bytes.
    lo = socket_if_index("lo")
    with create(MapType.DEVMAP, key_size=4, value_size=4, max_entries=4, name="devs") as m:
        assert type(m) is Map and m.type == MapType.DEVMAP
        m.set_codecs(key="u32", value="u32")
        m[0] = lo
        assert m[0] == lo and dict(m.items()) == {0: lo}


def socket_if_index(name: str) -> int:
    import socket
    return socket.if_nametoindex(name)


def test_map_is_usable_from_several_threads():
    with HashMap(key="u32", value="u64", max_entries=4096) as m:
        errors = []

        def worker(base: int) -> None:
            try:
                for i in range(2000):
                    k = base + (i % 500)
                    m[k] = k * 3
                    if m[k] != k * 3:
                        errors.append((k, m[k]))
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(t * 1000,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and len(m) == 2000


def test_numa_and_flags_reach_the_kernel():
    with HashMap(key="u32", value="u32", max_entries=8, preallocate=False) as m:
        assert m.flags & MapFlag.NO_PREALLOC and map_info(m.fd).map_flags & MapFlag.NO_PREALLOC
