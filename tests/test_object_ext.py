"""The loader's freplace and struct_ops support, against the running kernel.

freplace (BPF_PROG_TYPE_EXT, Linux 5.6): the target is a real XDP program
(tests/progs/obj_freplace_target.bpf.c, loaded with pybpf) with global
functions.  Everything before BPF_PROG_LOAD is checked for real: the target's
BTF read back from the kernel, the FUNC id found (and compared with the
kernel's func_info of the target and with bpftool), the errors for a missing
target or function.  Under lockdown=integrity this kernel refuses EXT loads
with EPERM, so the load itself is checked for its clean error.

struct_ops (Linux 5.6; links 6.4): a TCP congestion control made of three
BPF programs calling the kernel's Reno kfuncs.  It loads and registers on
this kernel: tcp_available_congestion_control lists it while it is attached,
a TCP connection over loopback runs its programs, and it is gone once the
link closes.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

import pybpf
from buildprogs import build
from pybpf import links
from pybpf._sys import AttachType, LinkType, MapFlag, MapType, ProgType
from pybpf._sys import commands as _cmd
from pybpf._sys.attrs import ProgInfo
from pybpf.btf import BTFKind, kernel_spec
from pybpf.errors import LinkError, ObjectError, SyscallError
from pybpf.links.struct_ops import StructOpsLink, attach_struct_ops
from pybpf.object.struct_ops import plan
from pybpf.object.struct_ops_map import StructOpsMap
from pybpf.object.targets import TargetResolver

pytestmark = pytest.mark.root  # against the kernel: needs root

XDP_DROP, XDP_PASS = 1, 2
AVAILABLE_CC = Path("/proc/sys/net/ipv4/tcp_available_congestion_control")


def spec_of(name: str) -> pybpf.ObjectSpec:
    return pybpf.ObjectSpec.from_file(build(name))


def lockdown() -> str:
    try:
        text = Path("/sys/kernel/security/lockdown").read_text()
    except OSError:
        return "none"
    found = re.search(r"\[(\w+)\]", text)
    return found.group(1) if found else "none"


@pytest.fixture
def target():
    """The freplace target: an XDP program whose verdict comes from global pybpf_verdict()."""
    with pybpf.load(build("obj_freplace_target")) as obj:
        yield obj.programs["freplace_target"]


def func_info_ids(prog) -> list[int]:
    """The BTF type ids of the program's functions, as the kernel reports them (func_info)."""
    first = _cmd.prog_info(prog.fd)
    count = first.nr_func_info
    buf = (ctypes.c_uint32 * (2 * count))()
    _cmd.obj_info(prog.fd, ProgInfo(nr_func_info=count, func_info_rec_size=8, func_info=ctypes.addressof(buf)))
    return [buf[2 * i + 1] for i in range(count)]


# ----------------------------------------------------------------------------- freplace


def test_freplace_spec():
    spec = spec_of("obj_freplace")
    ps = spec.programs["new_verdict"]
    assert ps.type == ProgType.EXT and ps.section == "freplace/pybpf_verdict"
    assert ps.attach_target == "pybpf_verdict" and ps.attach_program is None
    assert spec == spec_of("obj_freplace")


def test_freplace_without_target_says_how_to_give_one():
    with pytest.raises(ObjectError) as info:
        spec_of("obj_freplace").load()
    msg = str(info.value)
    assert msg.startswith("object 'obj_freplace.bpf.o': program 'new_verdict': "), msg
    assert "freplace program 'new_verdict' needs set_attach_target(" in msg and "before load" in msg, msg


def test_target_function_id_from_the_kernel(target):
    # The target really runs its global function: 64 bytes pass, 14 bytes drop.
    assert target.test_run(b"\0" * 64).retval == XDP_PASS
    assert target.test_run(b"\0" * 14).retval == XDP_DROP
    resolver = TargetResolver()
    btf = resolver.btf(target)
    func_id = resolver.func_id(target, "pybpf_verdict")
    assert btf.type_by_id(func_id).name == "pybpf_verdict" and btf.type_by_id(func_id).kind == BTFKind.FUNC
    # The kernel's func_info of the target names the same FUNC: an id the kernel accepts for freplace.
    assert func_id in func_info_ids(target)
    # The loader keeps the object's BTF ids: the same id as in the ELF file's .BTF.
    local = spec_of("obj_freplace_target").btf.find("pybpf_verdict", BTFKind.FUNC)
    assert local is not None and local.id == func_id
    if shutil.which("bpftool"):
        out = subprocess.run(["bpftool", "btf", "dump", "id", str(target.info().btf_id)], check=True,
                             capture_output=True, text=True).stdout
        assert f"[{func_id}] FUNC 'pybpf_verdict'" in out


def _spy_attrs(monkeypatch) -> list:
    """Record the BPF_PROG_LOAD attrs the loader makes (the syscalls still run)."""
    from pybpf import program_load

    seen: list = []
    original = program_load.prog_load_attr

    def spy(*args):
        attr, keep = original(*args)
        seen.append(attr)
        return attr, keep
    monkeypatch.setattr(program_load, "prog_load_attr", spy)
    return seen


@pytest.mark.parametrize("how", ["set_attach_target", "set_attach_target_section_name", "load_argument"])
def test_freplace_load(target, monkeypatch, how):
    spec = spec_of("obj_freplace")
    load_kw = {}
    if how == "set_attach_target":
        spec.programs["new_verdict"].set_attach_target(target, "pybpf_verdict")
        assert spec.programs["new_verdict"].attach_program is target
    elif how == "set_attach_target_section_name":
        spec.programs["new_verdict"].set_attach_target(target)     # the function from SEC("freplace/...")
    else:
        load_kw = {"attach_targets": {"new_verdict": (target, "pybpf_verdict")}}
    func_id = TargetResolver().func_id(target, "pybpf_verdict")
    seen = _spy_attrs(monkeypatch)
    mode = lockdown()
    if mode != "none":
        with pytest.raises(SyscallError) as info:
            spec.load(**load_kw)
        err = info.value
        msg = str(err)
        assert err.errno == errno.EPERM, msg
        assert msg.startswith("object 'obj_freplace.bpf.o': program 'new_verdict': load: EPERM"), msg
        assert f"freplace is refused under lockdown={mode}" in msg, msg
    else:  # pragma: no cover - this machine runs with lockdown=integrity
        with spec.load(**load_kw) as ext, ext.programs["new_verdict"].attach_tracing():
            assert target.test_run(b"\0" * 64).retval == XDP_DROP
            assert ext.variables["replaced_calls"].value == 1
        assert target.test_run(b"\0" * 64).retval == XDP_PASS
    # What was handed to BPF_PROG_LOAD: the target's fd and the FUNC's id in the target's BTF.
    attr = [a for a in seen if a.prog_name == b"new_verdict"][0]   # (loaded again with a log when refused)
    assert attr.prog_type == ProgType.EXT
    assert attr.attach_prog_fd == target.fd and attr.attach_btf_id == func_id


def test_freplace_missing_function_lists_close_names(target):
    with pytest.raises(ObjectError) as info:
        spec_of("obj_freplace").load(attach_targets={"new_verdict": (target, "pybpf_verdic")})
    msg = str(info.value)
    assert msg.startswith("object 'obj_freplace.bpf.o': program 'new_verdict': attach target: "), msg
    assert "function 'pybpf_verdic' is not in the BTF of target program 'freplace_target'" in msg, msg
    assert "did you mean 'pybpf_verdict'" in msg, msg
    spec = spec_of("obj_freplace")
    spec.programs["new_verdict"].set_attach_target(target, "zzz")
    with pytest.raises(ObjectError) as info:
        spec.load()
    msg = str(info.value)
    assert "its functions: freplace_target, pybpf_count, pybpf_verdict" in msg, msg


def test_freplace_target_without_btf():
    from pybpf.asm import builder as b, opcodes as op

    insns = b.assemble([b.mov64_imm(op.R0, XDP_PASS), b.exit_()])
    with pybpf.Program.load(insns, prog_type=ProgType.XDP, name="no_btf") as bare:
        with pytest.raises(ObjectError, match=r"target program 'no_btf' has no BTF"):
            spec_of("obj_freplace").load(attach_targets={"new_verdict": bare})


def test_attach_target_argument_errors(target):
    spec = spec_of("obj_freplace")
    with pytest.raises(ObjectError, match=r"attach_targets: no program 'nope' \(programs: new_verdict\)"):
        spec.load(attach_targets={"nope": (target, "pybpf_verdict")})
    with pytest.raises(ObjectError, match=r"expected \(program, 'function'\)"):
        spec.load(attach_targets={"new_verdict": (target, "pybpf_verdict", 1)})
    xdp = spec_of("obj_freplace_target")
    with pytest.raises(ObjectError, match=r"set_attach_target\(\) is for freplace.*not XDP programs"):
        xdp.programs["freplace_target"].set_attach_target(target, "pybpf_verdict")
    with pytest.raises(ObjectError, match=r"not a freplace or fentry/fexit program"):
        xdp.load(attach_targets={"freplace_target": target})
    with pytest.raises(ObjectError, match="needs a target program, a function name, or both"):
        spec.programs["new_verdict"].set_attach_target(None)


# ----------------------------------------------------------------------------- struct_ops: parsing


def available_cc() -> list[str]:
    return AVAILABLE_CC.read_text().split()


def test_struct_ops_spec():
    spec = spec_of("obj_struct_ops")
    assert not spec.notes, spec.notes
    ms = spec.maps["pybpf_cc"]
    assert ms.type == MapType.STRUCT_OPS and ms.section == ".struct_ops.link"
    assert ms.flags == MapFlag.LINK and ms.key_size == 4 and ms.max_entries == 1
    ops = ms.struct_ops
    assert ops.type_name == "tcp_congestion_ops" and ops.link
    assert ops.programs == {"ssthresh": "pybpf_ssthresh", "cong_avoid": "pybpf_cong_avoid",
                            "undo_cwnd": "pybpf_undo_cwnd"}
    assert ops.get("name") == b"pybpf_cc" and ops.get("flags") == 0 and ops.get("init") is None
    assert ops.get("cong_avoid") == "pybpf_cong_avoid"
    assert {p.type for p in spec.programs.values()} == {ProgType.STRUCT_OPS}
    assert spec == spec_of("obj_struct_ops")
    plain = spec_of("obj_struct_ops_plain").maps["pybpf_cc_plain"]
    assert plain.section == ".struct_ops" and plain.flags == 0 and not plain.struct_ops.link
    assert plain.struct_ops.type_name == "tcp_congestion_ops___pybpf"


def test_struct_ops_kernel_layout():
    """The object's layout translated to the kernel's, member by member."""
    kernel = kernel_spec()
    kstruct = kernel.find("tcp_congestion_ops", BTFKind.STRUCT)
    wrapper = kernel.find("bpf_struct_ops_tcp_congestion_ops", BTFKind.STRUCT)
    base = wrapper.member("data").offset
    index = {m.name: i for i, m in enumerate(kstruct.members)}
    for name, map_name, cc in (("obj_struct_ops", "pybpf_cc", b"pybpf_cc"),
                               ("obj_struct_ops_plain", "pybpf_cc_plain", b"pybpf_cc_plain")):
        ms = spec_of(name).maps[map_name]
        kv = plan(ms)
        assert (kv.struct_name, kv.struct_id, kv.wrapper_id) == ("tcp_congestion_ops", kstruct.id, wrapper.id)
        assert kv.value_size == wrapper.size == len(kv.template)
        name_at = base + kstruct.member("name").offset
        assert kv.template[name_at:name_at + 16] == cc.ljust(16, b"\0")
        # only the name is set: everything else (the common header, function pointers) is zero
        assert kv.template[:name_at].count(0) == name_at and not any(kv.template[name_at + 16:])
        for off, member, prog in kv.slots:
            assert off == base + kstruct.member(member).offset
            assert kv.members[prog] == index[member]
        assert sorted(m for _o, m, _p in kv.slots) == ["cong_avoid", "ssthresh", "undo_cwnd"]


@pytest.mark.parametrize("drop, message", [
    ((), "struct_ops map 'typo_cc': member 'cong_avoid_typo': not in the kernel's struct tcp_congestion_ops "
         "(did you mean 'cong_avoid'?)"),
    (("typo_cc",), "struct_ops map 'wide_cc': member 'flags': 8 bytes in the object, 4 bytes in the kernel's "
                   "struct tcp_congestion_ops"),
    (("typo_cc", "wide_cc"), "struct_ops map 'nope': struct pybpf_no_such_ops is not in the kernel's BTF"),
])
def test_struct_ops_errors_name_map_and_member(drop, message):
    spec = spec_of("obj_struct_ops_bad")
    for name in drop:
        del spec.maps[name]
    with pytest.raises(ObjectError) as info:
        spec.load()
    msg = str(info.value)
    assert msg.startswith(f"object 'obj_struct_ops_bad.bpf.o': {message}"), msg


def test_struct_ops_program_used_by_no_map():
    spec = spec_of("obj_struct_ops_plain")
    with spec.load() as obj:
        assert "pybpf_unused" not in obj.programs
        assert any("'pybpf_unused' not loaded: struct_ops program not used by any struct_ops map" in n
                   for n in obj.notes), obj.notes
    with pytest.raises(ObjectError) as info:
        spec.load(["pybpf_unused"])
    assert str(info.value).startswith("object 'obj_struct_ops_plain.bpf.o': program 'pybpf_unused': struct_ops "
                                      "program not used by any struct_ops map")


# ----------------------------------------------------------------------------- struct_ops: the kernel


def test_struct_ops_loaded_for_their_members():
    kernel = kernel_spec()
    kstruct = kernel.find("tcp_congestion_ops", BTFKind.STRUCT)
    wrapper = kernel.find("bpf_struct_ops_tcp_congestion_ops", BTFKind.STRUCT)
    index = {m.name: i for i, m in enumerate(kstruct.members)}
    with spec_of("obj_struct_ops").load() as obj:
        m = obj.maps["pybpf_cc"]
        assert isinstance(m, StructOpsMap) and m.struct_name == "tcp_congestion_ops" and m.is_link
        info = m.info()
        assert info.type == MapType.STRUCT_OPS and info.btf_vmlinux_value_type_id == wrapper.id
        assert (info.key_size, info.value_size, info.max_entries) == (4, wrapper.size, 1)
        assert info.flags & MapFlag.LINK
        for member, prog in m.programs.items():
            assert prog is obj.programs[f"pybpf_{member}"]
            assert prog.type == ProgType.STRUCT_OPS
            assert prog.expected_attach_type == index[member]
            assert prog.info().attach_btf_id == kstruct.id       # what the kernel recorded
        assert not m.written


@contextlib.contextmanager
def tcp_server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    received: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            total = 0
            with conn:
                while chunk := conn.recv(1 << 16):
                    total += len(chunk)
            received.append(total)
    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        yield srv.getsockname(), received
    finally:
        srv.shutdown(socket.SHUT_RDWR)     # wakes the accept() of the thread
        srv.close()
        th.join(5)


def send_with(cc: bytes, server, size: int = 4 << 20) -> bytes:
    """Send ``size`` bytes over a new connection using congestion control ``cc``; wait until
    the server has read them all (so no ACK of this connection is still on its way)."""
    address, received = server
    done = len(received)
    with socket.socket() as cl:
        cl.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc)
        cl.connect(address)
        used = cl.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).rstrip(b"\0")
        cl.sendall(b"x" * size)
        cl.shutdown(socket.SHUT_WR)
        cl.recv(1)          # the server's FIN: it has read everything
    deadline = time.monotonic() + 5
    while len(received) == done and time.monotonic() < deadline:
        time.sleep(0.01)
    assert received[done:] == [size]
    return used


def counts(obj) -> dict[str, int]:
    return {k: obj.variables[k].value for k in ("ssthresh_calls", "cong_avoid_calls", "undo_cwnd_calls")}


def test_struct_ops_link_registers_a_congestion_control():
    assert "pybpf_cc" not in available_cc()
    with spec_of("obj_struct_ops").load() as obj:
        m = obj.maps["pybpf_cc"]
        with attach_struct_ops(m) as link:
            assert isinstance(link, StructOpsLink) and link.is_bpf_link and link.map is m and m.written
            assert "pybpf_cc" in available_cc()
            info = link.info()
            assert info.type == LinkType.STRUCT_OPS
            with tcp_server() as server:
                assert send_with(b"pybpf_cc", server) == b"pybpf_cc"
            assert counts(obj)["cong_avoid_calls"] > 0      # the kernel ran our program on ACKs
            with pytest.raises(SyscallError) as again:       # one registration per name
                attach_struct_ops(m)
            assert again.value.errno == errno.EEXIST
            assert "a tcp_congestion_ops of this name is registered already" in str(again.value)
        assert "pybpf_cc" not in available_cc()
        with m.attach():                                     # a link map can register again
            assert "pybpf_cc" in available_cc()
    assert "pybpf_cc" not in available_cc()


def _link_map_id(link) -> int:
    raw = _cmd.link_info(link.fd)
    return ctypes.c_uint32.from_buffer_copy(ctypes.string_at(ctypes.addressof(raw.u), 4)).value  # struct_ops.map_id


def test_struct_ops_link_update_swaps_the_map():
    first, second = spec_of("obj_struct_ops").load(), spec_of("obj_struct_ops").load()
    renamed_spec = spec_of("obj_struct_ops")
    renamed_spec.maps["pybpf_cc"].struct_ops.set("name", b"pybpf_cc2")
    renamed = renamed_spec.load()
    try:
        a, b2 = first.maps["pybpf_cc"], second.maps["pybpf_cc"]
        with attach_struct_ops(a) as link, tcp_server() as server:
            assert _link_map_id(link) == a.id
            send_with(b"pybpf_cc", server)
            before = counts(first)
            assert before["cong_avoid_calls"] > 0 and counts(second)["cong_avoid_calls"] == 0
            link.update(b2)
            assert _link_map_id(link) == b2.id and link.map is b2 and "pybpf_cc" in available_cc()
            send_with(b"pybpf_cc", server)
            assert counts(second)["cong_avoid_calls"] > 0 and counts(first) == before
            with pytest.raises(SyscallError) as info:        # not the registered map any more
                link.update(a, old_map=a)
            assert info.value.errno == errno.EPERM and "old_map is not the registered map" in str(info.value)
            link.update(a, old_map=b2)
            assert _link_map_id(link) == a.id
            with pytest.raises(SyscallError) as info:        # tcp: an update keeps the name
                link.update(renamed.maps["pybpf_cc"])
            assert info.value.errno == errno.EINVAL
            assert "keeps its name" in str(info.value) and "struct_ops map 'pybpf_cc'" in str(info.value)
            with pytest.raises(LinkError, match="must be a .struct_ops.link map"):
                plain = spec_of("obj_struct_ops_plain").load()
                try:
                    link.update(plain.maps["pybpf_cc_plain"])
                finally:
                    plain.close()
        assert "pybpf_cc" not in available_cc()
    finally:
        for o in (first, second, renamed):
            o.close()


def test_struct_ops_plain_map_registers_by_update():
    with spec_of("obj_struct_ops_plain").load() as obj:
        m = obj.maps["pybpf_cc_plain"]
        assert not m.is_link and m.flags == 0
        with m.attach() as link:
            assert not link.is_bpf_link and m.written
            assert "pybpf_cc_plain" in available_cc()
            assert link.info().type == LinkType.STRUCT_OPS and link.info().map_id == m.id
            with tcp_server() as server:
                assert send_with(b"pybpf_cc_plain", server) == b"pybpf_cc_plain"
            with pytest.raises(LinkError, match="registered already"):
                m.attach()
            with pytest.raises(LinkError, match=r"use SEC\(\".struct_ops.link\"\)"):
                link.update(m)
        assert "pybpf_cc_plain" not in available_cc()


def test_struct_ops_plain_registration_outlives_the_object():
    obj = spec_of("obj_struct_ops_plain").load()
    link = obj.maps["pybpf_cc_plain"].attach()
    obj.close()
    assert "pybpf_cc_plain" in available_cc()
    link.close()
    assert "pybpf_cc_plain" not in available_cc()


def test_struct_ops_value_refused_by_the_kernel():
    spec = spec_of("obj_struct_ops_plain")
    spec.maps["pybpf_cc_plain"].struct_ops.set("undo_cwnd", None)    # a required operation
    assert spec.maps["pybpf_cc_plain"].struct_ops.get("undo_cwnd") is None
    with spec.load() as obj:
        assert "plain_undo_cwnd" not in obj.programs                 # used by no map now
        with pytest.raises(SyscallError) as info:
            obj.maps["pybpf_cc_plain"].attach()
        msg = str(info.value)
        assert info.value.errno == errno.EINVAL
        assert msg.startswith("struct_ops map 'pybpf_cc_plain': attach: map 'pybpf_cc_plain': update: EINVAL"), msg
        assert "a required operation is missing" in msg
    assert "pybpf_cc_plain" not in available_cc()


def test_struct_ops_program_not_loaded():
    with spec_of("obj_struct_ops_plain").load(["plain_ssthresh", "plain_cong_avoid"]) as obj:
        m = obj.maps["pybpf_cc_plain"]
        assert m.programs["undo_cwnd"] is None
        with pytest.raises(ObjectError) as info:
            m.attach()
        assert str(info.value) == ("struct_ops map 'pybpf_cc_plain': attach: member 'undo_cwnd': program "
                                   "'plain_undo_cwnd' was not loaded (load the object with it)")


def test_struct_ops_set_member_errors():
    ops = spec_of("obj_struct_ops").maps["pybpf_cc"].struct_ops
    with pytest.raises(ObjectError, match="no member 'nope'"):
        ops.set("nope", 1)
    with pytest.raises(ObjectError, match="is a function pointer"):
        ops.set("ssthresh", 5)
    with pytest.raises(ObjectError, match="member 'name'"):
        ops.set("name", b"x" * 17)


def test_attach_struct_ops_wants_a_struct_ops_map():
    assert links.attach_struct_ops is attach_struct_ops and links.StructOpsLink is StructOpsLink
    with spec_of("obj_struct_ops").load() as obj:
        with pytest.raises(TypeError, match=r"map 'obj_stru.bss' is not a STRUCT_OPS map but ARRAY"):
            attach_struct_ops(obj.maps[".bss"])
        with pytest.raises(TypeError):
            attach_struct_ops(obj.programs["pybpf_ssthresh"])
    assert AttachType.STRUCT_OPS == 44


def test_attach_all_registers_struct_ops_link_maps():
    """Object.attach_all() registers .struct_ops.link maps, as libbpf's auto-attach does."""
    assert "pybpf_cc" not in available_cc()
    with spec_of("obj_struct_ops").load() as obj:
        links = obj.attach_all()
        try:
            assert isinstance(links["pybpf_cc"], StructOpsLink)
            assert "pybpf_cc" in available_cc()
        finally:
            for link in links.values():
                link.close()
        assert "pybpf_cc" not in available_cc()
