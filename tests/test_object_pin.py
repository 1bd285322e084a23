"""Maps pinned by name (LIBBPF_PIN_BY_NAME): pinned on first load, reused, refused if incompatible."""

from __future__ import annotations

import os
import shutil

import pytest

import pybpf
from buildprogs import build

pytestmark = pytest.mark.root  # against the kernel: needs root


@pytest.fixture
def pin_dir():
    path = f"/sys/fs/bpf/pybpf_test_{os.getpid()}"
    os.makedirs(path, exist_ok=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_pinned_map_is_created_then_reused(pin_dir):
    pinned = os.path.join(pin_dir, "pybpf_test_pinned")
    with pybpf.load(build("obj_pinned"), pin_path=pin_dir) as first:
        assert os.path.exists(pinned)
        first.programs["bump"].test_run(b"\0" * 64)
        first.programs["bump"].test_run(b"\0" * 64)
        first_id = first.maps["pybpf_test_pinned"].id
    # the pin keeps the map alive; the second load reuses it, contents included
    with pybpf.load(build("obj_pinned"), pin_path=pin_dir) as second:
        m = second.maps["pybpf_test_pinned"]
        assert m.id == first_id
        assert m[1] == 2                                   # typed through BTF: u32 -> u64
        second.programs["bump"].test_run(b"\0" * 64)
        assert m[1] == 3


def test_incompatible_pinned_map_is_refused(pin_dir):
    with pybpf.load(build("obj_pinned"), pin_path=pin_dir):
        pass
    with pytest.raises(pybpf.ObjectError) as info:
        pybpf.load(build("obj_pinned_other"), pin_path=pin_dir)
    text = str(info.value)
    assert "map 'pybpf_test_pinned'" in text and "max_entries" in text
    assert "16" in text and "32" in text


def test_no_pin_path_means_no_pinning(pin_dir):
    with pybpf.load(build("obj_pinned"), pin_path=None) as obj:
        obj.programs["bump"].test_run(b"\0" * 64)
    assert not os.listdir(pin_dir)
