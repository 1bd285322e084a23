"""``pybpf prog|map|link|btf``: introspection of what a tool loaded, checked against the tool's own objects."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys

import pytest

from pybpf.tools.funccount import FuncCount


def pybpf(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pybpf.cli", *args], capture_output=True, text=True, timeout=120)


def pybpf_json(*args: str):
    res = pybpf(*args, "--json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def traced():
    """funccount's pybpf.lang program attached to getpid in this process, called 123 times."""
    with FuncCount(["c:getpid"], os.getpid()) as tool:
        libc = ctypes.CDLL("libc.so.6")
        for _ in range(123):
            libc.getpid()
        yield tool


@pytest.mark.root
@pytest.mark.allow_fd_leak
def test_prog_show_and_list(traced) -> None:
    prog = traced.kernel.programs["count_call"]
    shown = pybpf_json("prog", "show", str(prog.id))
    assert shown["name"] == "count_call" and shown["type"] == "kprobe" and shown["id"] == prog.id
    assert traced.kernel.maps["counts"].id in shown["map_ids"]
    assert shown["line_info"] > 0 and shown["btf_id"] > 0 and shown["link_ids"]
    listed = [p for p in pybpf_json("prog", "list") if p["id"] == prog.id]
    assert listed == [{k: shown[k] for k in ("id", "type", "name", "tag", "run_cnt", "run_time_ns")}]
    table = pybpf("prog", "show", str(prog.id)).stdout
    assert "name:" in table and "count_call" in table


@pytest.mark.root
@pytest.mark.allow_fd_leak
def test_prog_dump_has_python_source_lines(traced) -> None:
    prog = traced.kernel.programs["count_call"]
    text = pybpf("prog", "dump", str(prog.id)).stdout
    assert "; count_call" in text
    assert "counts[ctx.cookie] += 1" in text and "funccount.py:" in text
    assert "exit" in text.splitlines()[-1]
    rows = pybpf_json("prog", "dump", str(prog.id))
    assert rows[0]["index"] == 0 and rows[-1]["text"] == "exit"
    assert any("counts[ctx.cookie] += 1" in s for r in rows for s in r["source"])


@pytest.mark.root
@pytest.mark.allow_fd_leak
def test_map_show_and_dump_typed_through_btf(traced) -> None:
    counts = traced.kernel.maps["counts"]
    shown = pybpf_json("map", "show", str(counts.id))
    assert (shown["type"], shown["name"], shown["key_type"], shown["value_type"]) == \
        ("percpu_array", "counts", "u32", "u64")
    entries = pybpf_json("map", "dump", str(counts.id))
    assert [e["key"] for e in entries] == [0]
    assert sum(entries[0]["value"]) == 123 == sum(counts[0])
    assert pybpf("map", "dump", str(counts.id)).stdout.splitlines()[0].split() == ["KEY", "VALUE"]


@pytest.mark.root
@pytest.mark.allow_fd_leak
def test_link_list_shows_the_uprobe_multi_link(traced) -> None:
    prog_id = traced.kernel.programs["count_call"].id
    mine = [link for link in pybpf_json("link", "list") if link["prog_id"] == prog_id]
    assert len(mine) == 1
    link = mine[0]
    if link["type"] == "uprobe_multi":
        assert link["path"] == traced.probes[0].target and link["cookies"] == [0] and link["pid"] == os.getpid()
    assert traced.probes[0].target in link["target"]


@pytest.mark.root
@pytest.mark.allow_fd_leak
def test_btf_dump_of_a_program(traced) -> None:
    btf_id = pybpf_json("prog", "show", str(traced.kernel.programs["count_call"].id))["btf_id"]
    types = pybpf_json("btf", "dump", str(btf_id))
    assert any(t["kind"] == "func" and t["name"] == "count_call" for t in types)
    text = pybpf("btf", "dump", str(btf_id)).stdout
    assert "FUNC 'count_call'" in text
    assert btf_id in [b["id"] for b in pybpf_json("btf", "list")]


def test_btf_dump_of_an_object_file() -> None:
    from buildprogs import build

    obj = build("corpus_maps")
    res = pybpf("btf", "dump", str(obj))
    assert res.returncode == 0, res.stderr
    assert "DATASEC '.maps'" in res.stdout and res.stdout.startswith("[1] ")
    c = pybpf("btf", "dump", str(obj), "--format", "c")
    assert c.returncode == 0, c.stderr
    assert "struct pair {" in c.stdout


@pytest.mark.root
@pytest.mark.parametrize("args", [["prog", "show"], ["prog", "dump"], ["map", "show"], ["map", "dump"],
                                  ["btf", "dump"]], ids=" ".join)
def test_unknown_id_is_bad_input(args: list[str]) -> None:
    res = pybpf(*args, "4194304")
    assert res.returncode == 2 and "no " in res.stderr and "4194304" in res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
