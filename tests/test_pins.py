"""Pinning and the pseudo file systems (issue 9): one behaviour for maps, programs and links,
pin names from object files that cannot leave pin_path, unpin that only removes pins, and mounts
that are logged and never stacked on another file system.  Real kernel, as root."""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import subprocess

import pytest

import pybpf
from pybpf._sys import fs
from pybpf._sys.uapi import MapType, ProgType
from pybpf.asm import builder as b
from pybpf.errors import ObjectError, SyscallError
from pybpf.links.base import Link
from pybpf.maps import HashMap, Map
from pybpf.object.spec import MapSpec, ObjectSpec
from pybpf.program import Program

pytestmark = pytest.mark.root  # against the kernel: needs root

_libc = ctypes.CDLL(None, use_errno=True)


@pytest.fixture
def pin_dir():
    fs.ensure_bpffs(fs.BPFFS)
    path = f"{fs.BPFFS}/pybpf_test_pins_{os.getpid()}"
    os.makedirs(path, exist_ok=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _program() -> Program:
    return Program.load(b.assemble([b.mov64_imm(0, 0), b.exit_()]), prog_type=ProgType.SOCKET_FILTER,
                        name="pins")


def _mounts_at(path) -> list[str]:
    with open("/proc/self/mounts") as f:
        return [line.split()[2] for line in f if line.split()[1] == str(path)]


@pytest.fixture
def scratch_mount(tmp_path):
    """A directory to mount on; whatever gets mounted there is detached afterwards."""
    target = tmp_path / "mnt"
    yield target
    while _mounts_at(target):
        assert _libc.umount2(os.fsencode(target), 2) == 0, os.strerror(ctypes.get_errno())  # MNT_DETACH


# ---------------------------------------------------------------- one pinning behaviour

@pytest.mark.parametrize("kind", ["map", "program"])
def test_pin_from_pin_unpin_are_the_same_for_maps_and_programs(pin_dir, kind):
    path = os.path.join(pin_dir, kind)
    with (HashMap(key="u32", value="u32", max_entries=4) if kind == "map" else _program()) as obj:
        obj.pin(path)
        assert obj.pinned_path == path and fs.on_bpffs(path)
        opened = (Map if kind == "map" else Program).from_pin(path)
        with opened:
            assert opened.id == obj.id
            assert opened.pinned_path == path     # from_pin remembers where it came from
            opened.unpin()
            assert not os.path.exists(path) and opened.pinned_path is None
            opened.unpin()                        # nothing left: no error
        with pytest.raises(SyscallError, match="ENOENT"):
            obj.unpin(path)                       # a path the caller names must exist


def test_pin_outside_bpffs_says_so_for_every_kind(tmp_path):
    with HashMap(key="u32", value="u32", max_entries=4) as m, _program() as p:
        for obj in (m, p):
            with pytest.raises(SyscallError) as info:
                obj.pin(tmp_path / "x")
            assert "is not on a bpffs" in str(info.value)


# ---------------------------------------------------------------- unpin removes pins only

def test_unpin_never_deletes_an_ordinary_file(tmp_path):
    """Before: Map.unpin(path) was a plain unlink and removed any file."""
    victim = tmp_path / "file.txt"
    victim.write_text("keep me")
    with HashMap(key="u32", value="u32", max_entries=4) as m, _program() as p:
        for obj in (m, p, Link(None, kind="test")):
            with pytest.raises(SyscallError, match="not on a bpffs") as info:
                obj.unpin(victim)
            assert info.value.errno == 22
            assert victim.read_text() == "keep me"


# ---------------------------------------------------------------- pin names from object files

@pytest.mark.parametrize("name", ["../escaped", "/sys/fs/bpf/absolute", "a.b", "sub/dir"])
def test_map_names_cannot_leave_pin_path(pin_dir, name):
    """Before: os.path.join(pin_path, name) let '../x' and '/abs' escape (and reuse a pin there)."""
    inner = os.path.join(pin_dir, "inner")
    os.makedirs(inner)
    before = set(os.listdir(fs.BPFFS)), set(os.listdir(pin_dir))
    spec = ObjectSpec("pins", maps={name: MapSpec(name, MapType.HASH, 4, 4, 1, pinning=1)})
    with pytest.raises(ObjectError) as info:
        spec.load(pin_path=inner)
    assert repr(name) in str(info.value)          # the error names the map
    assert (set(os.listdir(fs.BPFFS)), set(os.listdir(pin_dir))) == before
    assert os.listdir(inner) == []


def test_a_good_map_name_is_pinned_under_pin_path(pin_dir):
    spec = ObjectSpec("pins", maps={"good_name": MapSpec("good_name", MapType.HASH, 4, 4, 1, pinning=1)})
    with spec.load(pin_path=pin_dir) as obj:
        assert obj.maps["good_name"].pinned_path == os.path.join(pin_dir, "good_name")
    assert os.path.exists(os.path.join(pin_dir, "good_name"))


# ---------------------------------------------------------------- mounts: logged, never stacked

def test_mounting_bpffs_is_logged_once(scratch_mount, monkeypatch, caplog):
    monkeypatch.setattr(fs, "BPFFS", str(scratch_mount))
    with caplog.at_level(logging.INFO, logger="pybpf"):
        fs.ensure_bpffs(str(scratch_mount / "x"))
        assert fs.fs_magic(str(scratch_mount)) == fs.BPF_FS_MAGIC
        said = [r.getMessage() for r in caplog.records if r.name == "pybpf"]
        assert said == [f"pybpf mounted bpf at {scratch_mount} (it was not mounted)"]
        fs.ensure_bpffs(str(scratch_mount / "y"))      # mounted now: nothing more to do or say
    assert len([r for r in caplog.records if r.name == "pybpf"]) == 1
    assert _mounts_at(scratch_mount) == ["bpf"]


def test_never_mounts_bpffs_over_another_file_system(scratch_mount, monkeypatch):
    scratch_mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(scratch_mount)], check=True)
    monkeypatch.setattr(fs, "BPFFS", str(scratch_mount))
    with pytest.raises(SyscallError, match="EBUSY") as info:
        fs.ensure_bpffs(str(scratch_mount / "x"))
    assert "mount -t bpf" in str(info.value)
    assert _mounts_at(scratch_mount) == ["tmpfs"]


def test_mounting_tracefs_is_logged(scratch_mount, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(fs, "TRACEFS", str(scratch_mount))
    monkeypatch.setattr(fs, "DEBUGFS_TRACING", str(tmp_path / "absent"))
    with caplog.at_level(logging.INFO, logger="pybpf"):
        assert fs.tracefs_root() == str(scratch_mount)
    assert os.path.isdir(scratch_mount / "events")
    assert [r.getMessage() for r in caplog.records if r.name == "pybpf"] == [
        f"pybpf mounted tracefs at {scratch_mount} (it was not mounted)"]
    assert _mounts_at(scratch_mount) == ["tracefs"]
