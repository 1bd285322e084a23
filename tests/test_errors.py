"""One error family (issue 10): what a new user meets is a pybpf.BPFError that says what to do.

Not-found errors are also the Python exception a user would catch (FileNotFoundError,
LookupError); a feature missing from a kernel that is new enough names the cause, not a version;
raw bytes of the right size are a key; an object built with -O0 says to build with -O2.
"""

from __future__ import annotations

import errno

import pytest

import pybpf
from pybpf import features
from pybpf._sys import ProgType
from pybpf.asm import builder as b
from pybpf.errors import NameNotFoundError, NotFoundError, NotSupportedError
from pybpf.maps import HashMap

import kernel_facts
from buildprogs import build_file


def test_not_found_is_both_families():
    err = NotFoundError("no tracepoint x:y", filename="/sys/kernel/tracing/events/x/y/id")
    assert isinstance(err, pybpf.BPFError) and isinstance(err, FileNotFoundError)
    assert err.errno == errno.ENOENT and err.filename.endswith("/id")
    assert str(err.add_context("program 'p'")) == "program 'p': no tracepoint x:y"
    assert isinstance(NameNotFoundError("no interface"), LookupError)
    assert pybpf.NotFoundError is NotFoundError and pybpf.NameNotFoundError is NameNotFoundError


def test_not_supported_names_the_cause_on_a_new_enough_kernel():
    old = NotSupportedError("bpf_cookie", "5.15", "no helper")
    assert str(old) == "bpf_cookie is not supported by this kernel (needs Linux 5.15): no helper"
    new = NotSupportedError("kprobes", "4.1", "CONFIG_KPROBES is off", new_enough=True)
    assert str(new) == "kprobes is not supported by this kernel: CONFIG_KPROBES is off"
    assert new.min_kernel == "4.1"


@pytest.mark.root
def test_require_on_this_kernel_gives_the_cause_or_the_version():
    checked = 0
    for name, feature in features.FEATURES.items():
        if features.has(name):
            continue
        with pytest.raises(NotSupportedError) as info:
            features.require(name)
        text = str(info.value)
        if kernel_facts.version_at_least(feature.min_kernel):
            assert "needs Linux" not in text, text
            assert text == f"{name} is not supported by this kernel: {features.reason(name)}"
        else:
            assert f"(needs Linux {feature.min_kernel})" in text
        checked += 1
    if kernel_facts.config_enabled("CONFIG_KPROBES") is False:
        with pytest.raises(NotSupportedError, match="CONFIG_KPROBES"):
            features.require("kprobes")
    if kernel_facts.config_enabled("CONFIG_FPROBE") is False and not features.has("kprobe_multi_link"):
        with pytest.raises(NotSupportedError, match="CONFIG_FPROBE"):
            features.require("kprobe_multi_link")
    # An override plays an older kernel: the version is the explanation again.
    with features.override(bpf_cookie=False):
        with pytest.raises(NotSupportedError, match=r"bpf_cookie is not supported by this kernel \(needs Linux 5\.15\)"):
            features.require("bpf_cookie")


@pytest.mark.root
def test_tracepoint_typo_is_not_found_and_names_the_program():
    insns = b.assemble([b.mov64_imm(0, 0), b.exit_()])
    with pybpf.Program.load(insns, prog_type=ProgType.TRACEPOINT, name="typo_tp") as prog:
        with pytest.raises(NotFoundError) as info:
            prog.attach_tracepoint("syscalls", "sys_enter_opnat")
    err = info.value
    assert isinstance(err, FileNotFoundError) and isinstance(err, pybpf.BPFError)
    assert str(err).startswith("program 'typo_tp': ")
    assert "did you mean sys_enter_openat" in str(err)


@pytest.mark.root
def test_missing_uprobe_target_is_not_found():
    insns = b.assemble([b.mov64_imm(0, 0), b.exit_()])
    with pybpf.Program.load(insns, prog_type=ProgType.KPROBE, name="missing_up") as prog:
        with pytest.raises(NotFoundError, match="uprobe target '/no/such/binary' does not exist"):
            prog.attach_uprobe("/no/such/binary", "main")
        with pytest.raises(NotFoundError, match="libpybpf_no_such_library"):
            prog.attach_uprobe("libpybpf_no_such_library", "main")


@pytest.mark.root
def test_raw_bytes_of_the_right_size_are_a_key():
    with HashMap(key="u64", value="u32", max_entries=4, name="rawkey") as m:
        raw = (7).to_bytes(8, "little")
        m[raw] = 1
        assert m[7] == 1 and m[raw] == 1 and m[memoryview(raw)] == 1
        m[8] = (2).to_bytes(4, "little")             # values too
        assert dict(m.items()) == {7: 1, 8: 2}
        with pytest.raises(TypeError, match=r"key must be 8 bytes \(u64\), got 4 bytes"):
            m[b"abcd"] = 1


O0_PROGRAM = """
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u64); } hits SEC(".maps");
SEC("tracepoint/syscalls/sys_enter_getpid")
int count(void *ctx)
{
	__u32 key = 0;
	__u64 *v = bpf_map_lookup_elem(&hits, &key);
	if (v)
		__sync_fetch_and_add(v, 1);
	return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.mark.root
def test_object_built_with_O0_says_build_with_O2(tmp_path):
    src = tmp_path / "o0.bpf.c"
    src.write_text(O0_PROGRAM)
    obj = build_file(src, tmp_path, extra_flags=("-O0",))     # the last -O wins
    spec = pybpf.ObjectSpec.from_file(obj)                   # parsing still works
    assert any(i.code == 0x8D for i in spec.programs["count"].instructions)
    with pytest.raises(pybpf.ObjectError) as info:
        spec.load()
    assert str(info.value) == (
        "object 'o0.bpf.o': program 'count': instruction "
        f"{next(n for n, i in enumerate(spec.programs['count'].instructions) if i.code == 0x8D)} "
        "is an indirect call (callx r"
        f"{next(i.dst for i in spec.programs['count'].instructions if i.code == 0x8D)}): "
        "build BPF objects with -O2 (clang -O0 emits code the kernel cannot load)")
