"""Tests of the kernel BTF index cache (pybpf.btf.kcache) and the sorted name index.

No root needed: the cache is pointed at a temporary XDG_CACHE_HOME, and most
tests use a small hand-built blob; one runs against /sys/kernel/btf/vmlinux.
"""

from __future__ import annotations

import zlib
from array import array
from pathlib import Path

import pytest

from pybpf.btf import kcache
from pybpf.btf.layout import U32
from pybpf.btf.names import ScanIndex, SortedIndex
from pybpf.btf.reader import Spec
from pybpf.btf.types import Int, Member, Pointer, Struct, Typedef
from pybpf.btf.writer import encode
from pybpf.errors import ObjectError

VMLINUX = Path("/sys/kernel/btf/vmlinux")


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "pybpf" / "vmlinux.btfidx"


def small_blob() -> bytes:
    i32 = Int("int", 4)
    task = Struct("task", 8, [Member("pid", i32, 0), Member("tgid", i32, 32)])
    task_old = Struct("task___old", 4, [Member("pid", i32, 0)])
    task_2 = Struct("task", 8, [Member("next", Pointer(task), 0)])     # a second "task"
    return encode([task, task_old, task_2, Typedef("task_t", task), Struct("taskx", 0)])


def lookups(spec: Spec) -> list:
    return [[t.id for t in spec.types_by_name(n)] for n in ("task", "task___old", "int", "nope", "")] + \
        [[t.id for t in spec.types_by_essential_name(n)] for n in ("task", "taskx", "tas")]


def test_sorted_index_answers_as_the_scan_does():
    scanned = Spec.parse(small_blob())
    offs, sorted_ids = scanned.index()
    indexed = Spec.from_index(small_blob(), offs, sorted_ids)
    assert isinstance(scanned._names, ScanIndex) and isinstance(indexed._names, SortedIndex)
    assert lookups(indexed) == lookups(scanned)
    assert lookups(scanned)[0] == [1, 3] and lookups(scanned)[5] == [1, 2, 3]
    assert indexed._names.prefixed("task") == scanned._names.prefixed("task") == [1, 2, 3, 4, 5]


def test_cache_is_written_then_used(cache_home):
    first = kcache.load(small_blob())
    assert isinstance(first._names, ScanIndex) and cache_home.is_file()
    second = kcache.load(small_blob())
    assert isinstance(second._names, SortedIndex)
    assert lookups(second) == lookups(first)


@pytest.mark.parametrize("damage", ["flip_payload", "truncate", "empty", "bad_magic", "other_blob"])
def test_a_bad_cache_is_ignored_and_rewritten(cache_home, damage):
    kcache.load(small_blob())
    raw = bytearray(cache_home.read_bytes())
    if damage == "flip_payload":
        raw[-3] ^= 0x40
    elif damage == "truncate":
        raw = raw[:len(raw) - 4]
    elif damage == "empty":
        raw = bytearray()
    elif damage == "bad_magic":
        raw[0] ^= 1
    cache_home.write_bytes(bytes(raw))
    blob = small_blob() if damage != "other_blob" else encode([Int("long", 8)])
    spec = kcache.load(blob)
    assert isinstance(spec._names, ScanIndex)                  # scanned again, not trusted
    assert isinstance(kcache.load(blob)._names, SortedIndex)   # and the rewritten cache is good
    assert lookups(kcache.load(blob)) == lookups(Spec.parse(blob))


def test_an_index_that_does_not_fit_the_blob_is_refused(cache_home):
    offs, sorted_ids = Spec.parse(small_blob()).index()
    bad_offs = offs[:]
    bad_offs[-1] += 1
    with pytest.raises(ObjectError, match="index does not fit"):
        Spec.from_index(small_blob(), bad_offs, sorted_ids)
    with pytest.raises(ObjectError, match="index does not fit"):
        Spec.from_index(small_blob(), offs, sorted_ids + array(U32, [99]))
    # a forged file with a good checksum but shifted offsets: refused by the fit check, then rescanned
    kcache._write(cache_home, (len(small_blob()), zlib.crc32(small_blob())), bad_offs, sorted_ids)
    assert isinstance(kcache.load(small_blob())._names, ScanIndex)


def test_an_unwritable_cache_costs_only_the_scan(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    spec = kcache.load(small_blob())
    assert spec.find("task_t").name == "task_t"


@pytest.mark.skipif(not VMLINUX.exists(), reason="kernel BTF is not supported by this kernel (CONFIG_DEBUG_INFO_BTF)")
def test_vmlinux_through_the_cache(cache_home):
    data = VMLINUX.read_bytes()
    scanned = kcache.load(data)
    cached = kcache.load(data)
    assert isinstance(cached._names, SortedIndex)
    for name in ("task_struct", "pid", "list_head", "bpf_prog", "sk_buff", "__u32"):
        assert [t.id for t in cached.types_by_name(name)] == [t.id for t in scanned.types_by_name(name)]
        assert [t.id for t in cached.types_by_essential_name(name)] == \
            [t.id for t in scanned.types_by_essential_name(name)]
    task = cached.find("task_struct", Struct)
    assert task.member("pid").offset == scanned.find("task_struct", Struct).member("pid").offset
