"""Parity with libbpf on real objects: every BPF object Debian's libxdp1 ships.

For each ``/usr/lib/x86_64-linux-gnu/bpf/*.o`` (xdp-dispatcher, xdpdump, the
xdp-filter variants, the AF_XDP default program, ...) in the same test run:

* ``tests/c/libbpf_load.c`` (built here against libbpf-dev 1.1) opens and loads
  the object with libbpf, pins into its own directory, runs every XDP program
  once on a fixed packet and prints a JSON line;
* pybpf parses and loads the same object with its own pin directory and runs
  the same programs on the same packet.

Both must load, or both fail; when both fail pybpf's error must say why.  The
program names, user map names, kinds of global-data maps, pinned files and
test_run return values must be the same.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

import pybpf
from buildprogs import BUILD
from pybpf._sys import ProgType

pytestmark = pytest.mark.root  # against the kernel: needs root

REPO = Path(__file__).resolve().parent.parent
LIBXDP_DIR = Path("/usr/lib/x86_64-linux-gnu/bpf")
HARNESS_SRC = REPO / "tests" / "c" / "libbpf_load.c"
HARNESS = BUILD / "libbpf_load"

OBJECTS = sorted(LIBXDP_DIR.glob("*.o"))


def packet() -> bytes:
    """Ethernet + IPv4 + UDP 1234 -> 53, padded to 60 bytes."""
    udp = struct.pack("!HHHH", 1234, 53, 13, 0) + b"pybpf"
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                     socket.inet_aton("10.0.0.1"), socket.inet_aton("10.0.0.2")) + udp
    frame = bytes.fromhex("020000000002020000000001") + b"\x08\x00" + ip
    return frame + bytes(60 - len(frame))


PACKET = packet()


@pytest.fixture(scope="session")
def harness() -> Path:
    """Compile the libbpf harness (rebuilt when the source is newer)."""
    BUILD.mkdir(parents=True, exist_ok=True)
    if not HARNESS.exists() or HARNESS.stat().st_mtime < HARNESS_SRC.stat().st_mtime:
        res = subprocess.run(["cc", "-O2", "-Wall", str(HARNESS_SRC), "-lbpf", "-lelf", "-lz", "-o", str(HARNESS)],
                             capture_output=True, text=True)
        assert res.returncode == 0, f"building the libbpf harness failed (libbpf-dev installed?):\n{res.stderr}"
    return HARNESS


@pytest.fixture
def pin_dirs() -> Any:
    base = Path(f"/sys/fs/bpf/pybpf_libxdp_{os.getpid()}")
    shutil.rmtree(base, ignore_errors=True)
    dirs = base / "libbpf", base / "pybpf"
    for d in dirs:
        d.mkdir(parents=True)
    yield dirs
    shutil.rmtree(base, ignore_errors=True)
    assert not base.exists()


def libbpf_outcome(harness: Path, obj: Path, pins: Path) -> dict[str, Any]:
    res = subprocess.run([str(harness), str(obj), str(pins), PACKET.hex()], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def pybpf_outcome(obj_path: Path, pins: Path) -> dict[str, Any]:
    """The same report as the C harness, from pybpf."""
    out: dict[str, Any] = {"ok": False, "error": "", "exc": None, "programs": [], "maps": [], "retvals": {}}
    spec = pybpf.ObjectSpec.from_file(obj_path)
    out["programs"] = list(spec.programs)
    out["sections"] = [spec.programs[p].section for p in spec.programs]
    out["maps"] = list(spec.maps)
    try:
        obj = spec.load(pin_path=str(pins))
    except pybpf.BPFError as exc:
        out["error"], out["exc"] = str(exc), exc
        return out
    with obj:
        out["ok"] = True
        out["loaded_maps"] = list(obj.maps)
        for name, prog in obj.programs.items():
            if prog.type in (ProgType.XDP, ProgType.SCHED_CLS, ProgType.SOCKET_FILTER):
                out["retvals"][name] = prog.test_run(data=PACKET).retval
    return out


def user_maps(names: list[str]) -> set[str]:
    return {n for n in names if "." not in n}


def data_map_kinds(names: list[str]) -> set[str]:
    """libbpf names global-data maps "<obj prefix>.rodata"; keep the section kind only."""
    return {n.rsplit(".", 1)[1] for n in names if "." in n}


def test_libxdp_objects_are_there():
    assert LIBXDP_DIR.is_dir(), f"{LIBXDP_DIR} is missing: apt-get install libxdp1"
    names = {p.name for p in OBJECTS}
    assert len(OBJECTS) >= 10, names
    assert {"xdp-dispatcher.o", "xdpdump_bpf.o", "xdpdump_xdp.o", "xsk_def_xdp_prog.o"} <= names


@pytest.mark.parametrize("obj_path", OBJECTS, ids=[p.name for p in OBJECTS])
def test_same_outcome_as_libbpf(obj_path: Path, harness: Path, pin_dirs: tuple[Path, Path]):
    lib_pins, py_pins = pin_dirs
    ref = libbpf_outcome(harness, obj_path, lib_pins)
    lib_pinned = sorted(os.listdir(lib_pins))
    got = pybpf_outcome(obj_path, py_pins)
    py_pinned = sorted(os.listdir(py_pins))

    detail = f"libbpf: ok={ref['ok']} {ref['error']} {ref['log'][-600:]!r}\npybpf: ok={got['ok']} {got['error']}"
    assert got["ok"] == ref["ok"], detail
    assert sorted(got["programs"]) == sorted(ref["programs"]), detail
    assert sorted(got["sections"]) == sorted(ref["sections"]), detail
    assert user_maps(got["maps"]) == user_maps(ref["maps"]), detail
    assert data_map_kinds(got["maps"]) == data_map_kinds(ref["maps"]), detail

    if ref["ok"]:
        assert py_pinned == lib_pinned, detail
        assert got["retvals"] == ref["retvals"], detail
        assert ref["retvals"], "the harness ran no program"
        return

    # Both failed: pybpf must name the program and the reason.
    msg = got["error"]
    assert isinstance(got["exc"], pybpf.BPFError)
    assert not isinstance(got["exc"], (IndexError, KeyError))
    assert any(p in msg for p in got["programs"]), f"error names no program: {msg}"
    if obj_path.name == "xdpdump_bpf.o":
        # SEC("fentry/func"): xdpdump sets the real target at run time.
        assert re.search(r"no attach target|target not set|'func'|\bfunc\b", msg), msg
        assert re.search(r"fentry|fexit|attach target|BTF", msg, re.I), msg


def test_dispatcher_rodata_config_is_visible():
    """xdp-dispatcher keeps its configuration in .rodata: a struct variable 'conf'."""
    spec = pybpf.ObjectSpec.from_file(LIBXDP_DIR / "xdp-dispatcher.o")
    conf = spec.variables["conf"].value
    fields = conf._asdict() if hasattr(conf, "_asdict") else dict(conf)
    assert fields["num_progs_enabled"] == 0
    assert "chain_call_actions" in fields and "run_prios" in fields


@pytest.mark.parametrize("enabled, chain, retval", [
    (0, 0, 2),          # no program slot enabled: XDP_PASS
    (1, 0, 31),         # prog0 (a stub returning XDP_DISPATCHER_RETVAL = 31) and no chaining on 31
    (1, 1 << 31, 2),    # chain on 31: falls through to XDP_PASS
    (10, 1 << 31, 2),   # all ten global stubs called in turn
])
def test_dispatcher_config_set_before_load(enabled: int, chain: int, retval: int):
    """libxdp writes the dispatcher's .rodata config before loading; so can we, and it takes effect."""
    spec = pybpf.ObjectSpec.from_file(LIBXDP_DIR / "xdp-dispatcher.o")
    conf = spec.variables["conf"].value
    spec.variables["conf"].value = {**conf._asdict(), "num_progs_enabled": enabled,
                                    "chain_call_actions": [chain] * 10}
    with spec.load() as obj:
        assert obj.programs["xdp_dispatcher"].test_run(data=PACKET).retval == retval
        assert obj.variables["conf"].value.num_progs_enabled == enabled


def test_xdpfilt_pins_are_shared_between_objects(pin_dirs: tuple[Path, Path]):
    """Two xdp-filter objects with the same pinned maps reuse them, as libbpf does."""
    _, pins = pin_dirs
    first = pybpf.ObjectSpec.from_file(LIBXDP_DIR / "xdpfilt_dny_udp.o").load(pin_path=str(pins))
    with first:
        first_id = first.maps["xdp_stats_map"].info().id
        second = pybpf.ObjectSpec.from_file(LIBXDP_DIR / "xdpfilt_alw_udp.o").load(pin_path=str(pins))
        with second:
            assert second.maps["xdp_stats_map"].info().id == first_id
            assert second.maps["filter_ports"].info().id == first.maps["filter_ports"].info().id
    assert sorted(os.listdir(pins)) == ["filter_ports", "xdp_stats_map"]
