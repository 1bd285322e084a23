"""IFUNC symbols (glibc's strlen, memcpy): the probe goes on the implementation the loader selects.

A uprobe on the IFUNC symbol itself sits on the resolver, which runs once
while libc is relocated: it would count 0 calls of a running process.  The
workload (tests/bin/ifunc_calls.c) makes exactly N strlen and M memcpy calls
after it was told to go (the probes are attached by then) and counts are
filtered by its pid.
"""

from __future__ import annotations

import contextlib
import subprocess
import warnings

import pytest

from pybpf._sys import AttachType
from pybpf.links import attach_uprobe, attach_uprobe_multi
from pybpf.links.ifunc import IfuncChoice
from pybpf.links.ldcache import resolve_target
from pybpf.links.symbols import STT_GNU_IFUNC, ElfFile

from conftest import require_feature
from test_links_support import build_c, cookie_counter, counts_map, snapshot

pytestmark = pytest.mark.root  # against the kernel: needs root

N, M = 1234, 567
LIBC = resolve_target("libc.so.6")


@contextlib.contextmanager
def _workload():
    """The started workload, waiting for its go; killed on the way out if still there."""
    proc = subprocess.Popen([str(build_c("ifunc_calls")), str(N), str(M)], stdin=subprocess.PIPE)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _finish(proc) -> None:
    proc.communicate(b"g", timeout=30)
    assert proc.returncode == 0


def test_libc_strlen_and_memcpy_are_ifuncs():
    elf = ElfFile.open(LIBC)
    assert elf.resolve("strlen").type == STT_GNU_IFUNC and elf.resolve("memcpy").type == STT_GNU_IFUNC


def test_uprobe_counts_every_call_of_an_ifunc():
    with _workload() as proc, counts_map() as counts, cookie_counter(counts, tgid=proc.pid) as prog:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # libc is loaded here: no fallback to the resolver
            la = attach_uprobe(prog, "libc.so.6", "strlen", cookie=1)
            lb = attach_uprobe(prog, LIBC, "memcpy", cookie=2)
        with la, lb:
            choice = la.info().ifunc["strlen"]
            assert isinstance(choice, IfuncChoice)
            assert choice.offset == la.info().offset != choice.resolver_offset
            assert "memcpy" in lb.info().ifunc
            _finish(proc)
            assert snapshot(counts) == {1: N, 2: M}


def test_uprobe_multi_counts_every_call_of_an_ifunc():
    require_feature("uprobe_multi_link")
    with _workload() as proc, counts_map() as counts, \
            cookie_counter(counts, tgid=proc.pid, expected_attach_type=AttachType.TRACE_UPROBE_MULTI) as prog:
        with attach_uprobe_multi(prog, "libc.so.6", ["strlen", "memcpy"], cookies=[1, 2]) as link:
            assert set(link.info().ifunc) == {"strlen", "memcpy"}
            _finish(proc)
            assert snapshot(counts) == {1: N, 2: M}


def test_an_ifunc_that_cannot_be_resolved_warns(tmp_path):
    """A library that is not loaded in this process: pybpf does not load it, warns and probes the resolver."""
    import shutil

    copy = tmp_path / "libc_copy.so.6"
    shutil.copy(LIBC, copy)  # another inode: not what this process has mapped
    with counts_map() as counts, cookie_counter(counts) as prog:
        with pytest.warns(RuntimeWarning, match=r"strlen.* IFUNC .*not loaded in this process.*resolver"):
            link = attach_uprobe(prog, copy, "strlen")
        with link:
            assert link.info().offset == ElfFile.open(str(copy)).resolve("strlen").offset
