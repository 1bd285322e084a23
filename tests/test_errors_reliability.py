"""Errors a user can trigger are BPFErrors with context, keeping the builtin base Python users catch.

Damaged or unusable uprobe targets (directories, /proc/self/mem, offsets
past the end), bad fds given to Map.from_fd, an LPM trie declared with a
4-byte key in a C object.
"""

from __future__ import annotations

import errno
import os

import pytest

import pybpf
from pybpf.links import attach_uprobe
from pybpf.maps import Map

from buildprogs import build_file
from test_links_support import cookie_counter, counts_map, target


@pytest.fixture
def prog():
    with counts_map() as counts, cookie_counter(counts) as p:
        yield p


def test_uprobe_on_a_directory(prog, tmp_path):
    with pytest.raises(IsADirectoryError) as info:
        attach_uprobe(prog, tmp_path, "main")
    err = info.value
    assert isinstance(err, pybpf.BPFError) and err.errno == errno.EISDIR
    assert "count_cookie" in str(err) and str(tmp_path) in str(err), str(err)


def test_uprobe_on_proc_self_mem(prog):
    with pytest.raises(pybpf.BPFError) as info:
        attach_uprobe(prog, "/proc/self/mem", "main")
    assert "/mem" in str(info.value) and "count_cookie" in str(info.value), str(info.value)


def test_uprobe_on_a_missing_file_is_both(prog, tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        attach_uprobe(prog, tmp_path / "nope", "main")
    assert isinstance(info.value, pybpf.NotFoundError)
    with pytest.raises(pybpf.NotFoundError):
        attach_uprobe(prog, "pybpf_no_such_library_xyz", "main")


def test_uprobe_offset_past_the_end_of_the_file(prog):
    binary = target()
    size = os.path.getsize(binary)
    with pytest.raises(pybpf.LinkError, match=r"past the end of .*cookie_target \(\d+ bytes\)"):
        attach_uprobe(prog, binary, None, offset=size + 0x1000)
    with pytest.raises(pybpf.LinkError, match=r"func_a\+0x.* past the end"):
        attach_uprobe(prog, binary, "func_a", offset=size)


@pytest.mark.parametrize("fd, kind", [(-1, OSError), (2**40, ValueError), (2**31, ValueError)])
def test_map_from_bad_fd(fd, kind):
    with pytest.raises(kind) as info:
        Map.from_fd(fd)
    assert isinstance(info.value, pybpf.BPFError), repr(info.value)
    if kind is OSError:
        assert info.value.errno == errno.EBADF


LPM_4_BYTE_KEY_C = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(key_size, 4);
	__uint(value_size, 4);
	__uint(max_entries, 16);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} short_trie SEC(".maps");
SEC("xdp")
int use_trie(struct xdp_md *ctx)
{
	__u32 key = 0;
	return bpf_map_lookup_elem(&short_trie, &key) ? 1 : 2;
}
char LICENSE[] SEC("license") = "GPL";
"""


def test_lpm_trie_with_a_4_byte_key_names_object_and_map(tmp_path):
    src = tmp_path / "lpm_short_key.bpf.c"
    src.write_text(LPM_4_BYTE_KEY_C)
    spec = pybpf.ObjectSpec.from_file(build_file(src, tmp_path))
    with pytest.raises(pybpf.BPFError) as info:
        spec.load().close()
    text = str(info.value)
    assert "lpm_short_key" in text and "short_trie" in text and "key_size=4" in text, text
