"""The tools' pieces that need no kernel: patterns, syscall names, output, and their BPF logic run by CPython."""

from __future__ import annotations

import re

import pytest

from pybpf.lang import FakeCtx
from pybpf.tools import BadInputError, syscalls
from pybpf.tools.output import bucket_range, log2_hist_lines, plain
from pybpf.tools.patterns import split
from pybpf.tools.runner import parse_assignments


def test_split_patterns() -> None:
    assert split("c:malloc") == ("c", "malloc")
    assert split("/usr/bin/python3:PyObject_*") == ("/usr/bin/python3", "PyObject_*")
    for bad in ("malloc", "c:", ":malloc", ""):
        with pytest.raises(BadInputError, match="needs a library or file and a function glob"):
            split(bad)


def test_syscall_names_come_from_the_kernel_header_or_libseccomp() -> None:
    assert syscalls.source() != "none"
    table = syscalls.table()
    assert len(table) > 300
    # Every name the header gives is what name() answers, and number() inverts it.
    for nr, name in list(table.items())[:50]:
        assert syscalls.name(nr) == name
        assert syscalls.number(name) == nr
    assert syscalls.name(10**6) == f"syscall_{10**6}"


def test_log2_histogram_text() -> None:
    lines = log2_hist_lines({3: 4, 5: 2}, "nsecs")
    assert lines[0].split() == ["nsecs", ":", "count", "distribution"]
    assert [re.split(r"\s+", line.strip())[:5] for line in lines[1:]] == [
        ["8", "->", "15", ":", "4"], ["16", "->", "31", ":", "0"], ["32", "->", "63", ":", "2"]]
    assert lines[1].count("*") == 40 and lines[3].count("*") == 20
    assert bucket_range(0) == (0, 1) and bucket_range(10) == (1024, 2047)


def test_plain_values_for_json() -> None:
    assert plain(b"bash\0\0\0") == "bash" and plain(b"\x00\x01") == "0001" and plain((1, [2])) == [1, [2]]


def test_var_assignments() -> None:
    assert parse_assignments(["a=1", "b=0x10", "c=-3", "d=text"]) == {"a": 1, "b": 16, "c": -3, "d": "text"}
    with pytest.raises(BadInputError):
        parse_assignments(["novalue"])


def test_funccount_program_in_cpython() -> None:
    from pybpf.tools import funccount

    funccount.counts.clear()
    for cookie, calls in ((0, 3), (2, 5)):
        for _ in range(calls):
            assert funccount.count_call(FakeCtx(cookie=cookie)) == 0
    # The declaration has one slot (the tool sizes it before load): index 2 is dropped, as in the kernel.
    assert {int(k): int(v) for k, v in funccount.counts.items() if v} == {0: 3}


def test_syscount_program_in_cpython() -> None:
    from pybpf.tools import syscount

    syscount.counts.clear()
    for _ in range(4):
        syscount.sys_enter(FakeCtx(id=110))
    assert dict(syscount.counts.items()) == {110: 4}


def test_funclatency_log2_bucket_in_cpython() -> None:
    from pybpf.tools import funclatency

    for m in (funclatency.start, funclatency.hist, funclatency.total_ns):
        m.clear()
    funclatency.on_entry(FakeCtx(cookie=7))
    funclatency.on_return(FakeCtx(cookie=7))
    ((cookie, ns),) = [(int(k), int(v)) for k, v in funclatency.total_ns.items()]
    assert cookie == 7
    ((key, count),) = [(int(k), int(v)) for k, v in funclatency.hist.items()]
    assert key >> 8 == 7 and count == 1
    assert key & 0xFF == max(ns.bit_length() - 1, 0)        # floor(log2(ns)), 0 for 0 and 1
