"""The ``pybpf`` command, run as a separate process against the running kernel."""

from __future__ import annotations

import ctypes
import json
import os
import struct
import subprocess
import sys

import pytest

import pybpf
from pybpf import features
from pybpf._sys import FD, Cmd, MapCreateAttr, MapType, ProgLoadAttr, ProgType, bpf, object_name
from pybpf.cli import main

pytestmark = pytest.mark.root  # against the kernel: needs root

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


def pybpf_cmd(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pybpf.cli", *args], capture_output=True, text=True,
                          timeout=60, **kwargs)


def test_features_json_matches_library() -> None:
    res = pybpf_cmd("features", "--json")
    assert res.returncode == 0, res.stderr
    table = json.loads(res.stdout)  # exactly one JSON document
    assert isinstance(table, dict)
    assert table == features.all_features()
    assert list(table) == list(features.FEATURES)
    assert table["bpf_cookie"] is True and table["kprobes"] is False


def test_features_table() -> None:
    res = pybpf_cmd("features")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split()[:2] == ["FEATURE", "SUPPORTED"]
    rows = {line.split()[0]: line.split() for line in lines[1:] if line.strip()}
    for name, feature in features.FEATURES.items():
        assert name in rows
        assert rows[name][1] == ("yes" if features.has(name) else "no")
        assert rows[name][2] == feature.min_kernel


def test_features_verbose_says_why() -> None:
    res = pybpf_cmd("features", "-v")
    assert res.returncode == 0, res.stderr
    assert "EPERM" in next(line for line in res.stdout.splitlines() if line.startswith("fentry"))
    assert "probed in" in res.stdout


def test_version() -> None:
    res = pybpf_cmd("--version")
    assert res.returncode == 0
    assert res.stdout.strip() == f"pybpf {pybpf.__version__}"


def test_usage_errors() -> None:
    assert pybpf_cmd().returncode == 2
    assert pybpf_cmd("no-such-command").returncode == 2
    assert pybpf_cmd("prog").returncode == 2


def test_map_list_shows_a_new_map() -> None:
    attr = MapCreateAttr(map_type=MapType.HASH, key_size=4, value_size=16, max_entries=7,
                         map_name=object_name("cli_test_map"))
    with FD(bpf(Cmd.MAP_CREATE, attr), "map") as fd:
        from pybpf._sys.commands import map_info
        map_id = map_info(fd.fileno()).id
        listed = json.loads(pybpf_cmd("map", "list", "--json").stdout)
        table = pybpf_cmd("map", "list").stdout
    mine = [m for m in listed if m["id"] == map_id]
    assert mine == [{"id": map_id, "type": "hash", "name": "cli_test_map", "key_size": 4, "value_size": 16,
                     "max_entries": 7, "flags": 0}]
    assert any(line.split()[:3] == [str(map_id), "hash", "cli_test_map"] for line in table.splitlines())


def test_prog_list_shows_a_new_program() -> None:
    insns = struct.pack("<BBhi", 0xB7, 0, 0, 0) + struct.pack("<BBhi", 0x95, 0, 0, 0)
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(b"GPL")
    attr = ProgLoadAttr(prog_type=ProgType.SOCKET_FILTER, insn_cnt=2, insns=ctypes.addressof(code),
                        license=ctypes.addressof(lic), prog_name=object_name("cli_test_prog"))
    with FD(bpf(Cmd.PROG_LOAD, attr), "prog") as fd:
        from pybpf._sys.commands import prog_info
        prog_id = prog_info(fd.fileno()).id
        listed = json.loads(pybpf_cmd("prog", "list", "--json").stdout)
        table = pybpf_cmd("prog", "list").stdout
    mine = [p for p in listed if p["id"] == prog_id]
    assert len(mine) == 1
    assert mine[0]["type"] == "socket_filter" and mine[0]["name"] == "cli_test_prog"
    assert len(mine[0]["tag"]) == 16
    assert any(line.split()[:3] == [str(prog_id), "socket_filter", "cli_test_prog"] for line in table.splitlines())


def _unprivileged_python() -> str:
    # The test interpreter may live under /root (mode 0700); Debian's python3 is reachable by anyone.
    return "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


@pytest.mark.parametrize("args", [["features"], ["features", "--json"], ["prog", "list"], ["map", "list"]])
def test_not_root_gets_a_clear_error(args: list[str]) -> None:
    env = dict(os.environ, PYTHONPATH=SRC)
    res = subprocess.run([_unprivileged_python(), "-m", "pybpf.cli", *args], capture_output=True, text=True,
                         env=env, user=65534, group=65534, extra_groups=[], cwd="/", timeout=60)
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert res.stdout == ""
    assert res.stderr.startswith("pybpf: error: ")
    assert "run as root" in res.stderr
    assert "Traceback" not in res.stderr


def test_bpf_error_exit_status(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    def refuse() -> dict:
        raise pybpf.NotSupportedError("bpf_syscall", "3.18")

    monkeypatch.setattr(features, "all_features", refuse)
    assert main(["features"]) == 1
    err = capsys.readouterr().err
    assert err == "pybpf: error: bpf_syscall is not supported by this kernel (needs Linux 3.18)\n"


def test_main_in_process(capsys: pytest.CaptureFixture) -> None:
    assert main(["features", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == features.all_features()


_NON_ROOT_SCRIPT = """
import pybpf
from pybpf.maps import HashMap
from pybpf.asm import builder as b
from pybpf._sys import ProgType
for what, make in (("map", lambda: HashMap(key="u32", value="u64", max_entries=4)),
                   ("program", lambda: pybpf.Program.load(b.assemble([b.mov64_imm(0, 0), b.exit_()]),
                                                          prog_type=ProgType.XDP, name="x"))):
    try:
        make().close()
        print(what, "created")
    except pybpf.BPFError as exc:
        print(what, isinstance(exc, pybpf.SyscallError), exc.errno, exc)
"""


def test_library_as_non_root_raises_clear_errors() -> None:
    """Creating a map or loading a program without privileges: a SyscallError that says what to do."""
    env = dict(os.environ, PYTHONPATH=SRC)
    res = subprocess.run([_unprivileged_python(), "-c", _NON_ROOT_SCRIPT], capture_output=True, text=True,
                         env=env, user=65534, group=65534, extra_groups=[], cwd="/", timeout=60)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    lines = res.stdout.splitlines()
    assert [line.split()[:3] for line in lines] == [["map", "True", "1"], ["program", "True", "1"]]
    assert "create: EPERM" in lines[0] and "program 'x': load: EPERM" in lines[1]
    assert all("run as root" in line for line in lines)
