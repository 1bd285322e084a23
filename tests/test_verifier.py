"""pybpf.verifier and VerifierError: log analysis, hints and source lines.

The first tests read canned logs (copied from Linux 6.18); the rest make the
running kernel reject real programs and check what the user is told.
"""

from __future__ import annotations

import errno
import re
import struct
import subprocess

import pytest
from elftools.elf.elffile import ELFFile

import buildprogs
import pybpf
from pybpf import verifier
from pybpf._sys import FD, AttachType, Cmd, HelperID, MapCreateAttr, MapFlag, MapType, ProgType, bpf
from pybpf._sys.commands import btf_load
from pybpf.asm import builder as b, opcodes as op
from pybpf.program import Program

SOCKET = ProgType.SOCKET_FILTER


def ret(value: int = 0) -> list:
    return [b.mov64_imm(op.R0, value), b.exit_()]


def rejected(insns, *, prog_type=SOCKET, name="bad", **kw) -> pybpf.VerifierError:
    with pytest.raises(pybpf.VerifierError) as info:
        prog = Program.load(b.assemble(insns), prog_type=prog_type, name=name, **kw)
        prog.close()
    return info.value


def map_create(map_type: MapType, key_size: int, value_size: int, max_entries: int, flags: int = 0) -> FD:
    attr = MapCreateAttr(map_type=map_type, key_size=key_size, value_size=value_size,
                         max_entries=max_entries, map_flags=flags)
    return FD(bpf(Cmd.MAP_CREATE, attr), "map")


# -- analysis of canned logs ------------------------------------------------------------

NULL_LOG = """\
0: R1=ctx() R10=fp0
0: (62) *(u32 *)(r10 -4) = 0          ; R10=fp0 fp-8=0000????
1: (bf) r2 = r10                      ; R2=fp0 R10=fp0
2: (07) r2 += -4                      ; R2=fp-4
3: (18) r1 = 0xffff8881047d6800       ; R1=map_ptr(ks=4,vs=8)
; value = *p; @ counter.bpf.c:21
5: (85) call bpf_map_lookup_elem#1    ; R0=map_value_or_null(id=1,ks=4,vs=8)
6: (61) r0 = *(u32 *)(r0 +0)
R0 invalid mem access 'map_value_or_null'
processed 6 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
"""


def test_analyze_summary_source_hint_index():
    res = verifier.analyze(NULL_LOG)
    assert res.summary == "6: (61) r0 = *(u32 *)(r0 +0): R0 invalid mem access 'map_value_or_null'"
    assert res.insn_index == 6
    assert res.source_line == "counter.bpf.c:21: value = *p;"
    assert "NULL" in res.hint
    assert res == (res.summary, res.source_line, res.hint, res.insn_index)  # a plain tuple too


def test_analyze_old_style_annotation_and_state_after_message():
    log = """\
; for (;;) {
1: (15) if r0 == 0x0 goto pc-1        ; R0=0
infinite loop detected at insn 1
cur state: R0=0 R1=ctx() R10=fp0
old state: R0=P0 R1=ctx() R10=fp0
processed 9 insns (limit 1000000) max_states_per_insn 0 total_states 1 peak_states 1 mark_read 0
"""
    res = verifier.analyze(log)
    assert res.summary == "1: (15) if r0 == 0x0 goto pc-1: infinite loop detected at insn 1"
    assert res.source_line == "for (;;) {"
    assert "loop" in res.hint


def test_analyze_log_without_instructions_names_insn_from_message():
    log = "jump out of range from insn 1 to 7\nprocessed 0 insns (limit 1000000) max_states_per_insn 0\n"
    insns = b.assemble([b.mov64_imm(op.R0, 0), b.ja(5), b.exit_()])
    res = verifier.analyze(log, insns, {1: "prog.py:3: goto out"})
    assert res.insn_index == 1
    assert res.summary == "1: (05) goto pc+5: jump out of range from insn 1 to 7"
    assert res.source_line == "prog.py:3: goto out"
    assert "jump" in res.hint


def test_analyze_line_table_uses_closest_earlier_line_and_insn_source():
    log = "3: (7b) *(u64 *)(r1 +0) = r2\nwrite into map forbidden, value_size=8 off=0 size=8\n"
    assert verifier.analyze(log, None, {0: "a.py:1: x = 0", 2: "a.py:2: counter += 1"}).source_line == \
        "a.py:2: counter += 1"
    insns = b.assemble([b.mov64_imm(op.R0, 0)] * 4)
    insns[2].source = "a.py:9: total = total + 1"
    assert verifier.analyze(log, insns).source_line == "a.py:9: total = total + 1"
    assert verifier.analyze(log).source_line is None


def test_analyze_whole_program_message_has_no_instruction():
    log = ("0: (7a) *(u64 *)(r10 -400) = 0\n1: (95) exit\n"
           "combined stack size of 2 calls is 800. Too large\nprocessed 7 insns (limit 1000000)\n")
    res = verifier.analyze(log)
    assert res.summary == "combined stack size of 2 calls is 800. Too large"
    assert res.insn_index is None
    assert "512" in res.hint


def test_hint_for_unknown_message_is_none():
    assert verifier.hint_for("something the kernel has never said") is None
    assert verifier.analyze("").summary == "(the kernel gave no reason)"


def test_verifier_error_text():
    err = verifier.verifier_error(NULL_LOG, errno=errno.EACCES)
    err.add_context("program 'count'")
    text = str(err)
    assert text.startswith("program 'count': load: verifier rejected the program: "
                           "6: (61) r0 = *(u32 *)(r0 +0): R0 invalid mem access 'map_value_or_null'")
    assert text.endswith("\n  at counter.bpf.c:21: value = *p;")
    assert err.errno == errno.EACCES and err.log == NULL_LOG


# -- the kernel's own messages ----------------------------------------------------------

@pytest.mark.root
def test_scalar_dereference():
    err = rejected([b.mov64_imm(op.R1, 0), b.ldx_mem(op.W, op.R0, op.R1, 0), b.exit_()])
    assert err.summary == "1: (61) r0 = *(u32 *)(r1 +0): R1 invalid mem access 'scalar'"
    assert err.insn_index == 1
    assert err.errno == errno.EACCES
    assert "plain number" in err.hint
    assert str(err).startswith("program 'bad': load: verifier rejected the program: 1: (61)")
    assert err.log.startswith("0: R1=ctx() R10=fp0\n") and "processed 2 insns" in err.log


@pytest.mark.root
def test_missing_null_check_after_lookup():
    with map_create(MapType.HASH, 4, 8, 4) as m:
        err = rejected([
            b.st_mem(op.W, op.R10, -4, 0),
            b.mov64_reg(op.R2, op.R10), b.alu64_imm(op.ADD, op.R2, -4),
            b.ld_map_fd(op.R1, m.fileno()),
            b.call_helper(HelperID.map_lookup_elem),
            b.ldx_mem(op.W, op.R0, op.R0, 0),
            b.exit_(),
        ], line_table={5: "counter.py:7: return counts[key]"})
    assert err.summary.endswith("R0 invalid mem access 'map_value_or_null'")
    assert err.insn_index == 6
    assert "NULL" in err.hint
    # No BTF line info was loaded, so the line comes from line_table (closest line at or before 6).
    assert err.source_line == "counter.py:7: return counts[key]"
    assert str(err).endswith("\n  at counter.py:7: return counts[key]")


@pytest.mark.root
def test_packet_access_without_bounds_check():
    err = rejected([b.ldx_mem(op.W, op.R2, op.R1, 0), b.ldx_mem(op.B, op.R0, op.R2, 0), b.exit_()],
                   prog_type=ProgType.XDP)
    assert "invalid access to packet" in err.summary
    assert "data_end" in err.hint


@pytest.mark.root
def test_write_to_map_pointer_only_read_from_bpf_array():
    # A `static mut` that was not relocated as global data: the store goes to the map object.
    with map_create(MapType.ARRAY, 4, 8, 1) as m:
        err = rejected([
            b.ld_map_fd(op.R1, m.fileno()),
            b.ldx_mem(op.DW, op.R2, op.R1, 0),
            b.alu64_imm(op.ADD, op.R2, 1),
            b.stx_mem(op.DW, op.R1, op.R2, 0),
            *ret(0),
        ])
    assert err.summary == "4: (7b) *(u64 *)(r1 +0) = r2: only read from bpf_array is supported"
    assert "static mut" in err.hint and ".data" in err.hint and "map" in err.hint


@pytest.mark.root
def test_write_to_read_only_global_data():
    # .rodata: an array map with BPF_F_RDONLY_PROG, addressed as a map value.
    with map_create(MapType.ARRAY, 4, 8, 1, MapFlag.RDONLY_PROG) as m:
        err = rejected([
            b.ld_map_value(op.R1, m.fileno(), 0),
            b.st_mem(op.DW, op.R1, 0, 1),
            *ret(0),
        ])
    assert err.summary == "2: (7a) *(u64 *)(r1 +0) = 1: write into map forbidden, value_size=8 off=0 size=8"
    assert "read-only" in err.hint and ".bss" in err.hint


@pytest.mark.root
def test_infinite_loop():
    err = rejected([b.mov64_imm(op.R0, 0), b.label("l"), b.jmp_imm(op.JEQ, op.R0, 0, "l"), b.exit_()])
    assert err.summary == "1: (15) if r0 == 0x0 goto pc-1: infinite loop detected at insn 1"
    assert "bpf_loop" in err.hint


@pytest.mark.root
def test_program_too_large():
    err = rejected([b.mov64_imm(op.R0, 0), b.label("l"), b.alu64_imm(op.ADD, op.R0, 1),
                    b.jmp_imm(op.JNE, op.R0, 0, "l"), b.exit_()])
    assert "BPF program is too large" in err.summary
    assert "1,000,000" in err.hint
    # The log (tens of MB) was fetched whole: it starts at the beginning and ends with the stats.
    assert err.log.startswith("0: R1=ctx() R10=fp0\n")
    assert err.log.rstrip().splitlines()[-1].startswith("processed 1000001 insns")


@pytest.mark.root
def test_stack_beyond_512_bytes():
    err = rejected([b.st_mem(op.DW, op.R10, -520, 0), *ret(0)])
    assert err.summary == "0: (7a) *(u64 *)(r10 -520) = 0: invalid write to stack R10 off=-520 size=8"
    assert "512" in err.hint


@pytest.mark.root
def test_combined_stack_size():
    err = rejected([
        b.st_mem(op.DW, op.R10, -400, 0), b.call_local("sub"), *ret(0),
        b.label("sub"), b.st_mem(op.DW, op.R10, -400, 0), *ret(0),
    ])
    assert "combined stack size of 2 calls is 800" in err.summary
    assert "512" in err.hint


@pytest.mark.root
def test_unknown_helper_id():
    err = rejected([b.call_helper(99999), b.exit_()])
    assert err.summary == "0: (85) call unknown#99999: invalid func unknown#99999"
    assert "no helper with this id" in err.hint


@pytest.mark.root
def test_helper_not_allowed_for_program_type():
    # Socket filters may not modify the packet.
    err = rejected([b.call_helper(HelperID.skb_store_bytes), b.exit_()])
    assert err.summary == ("0: (85) call bpf_skb_store_bytes#9: "
                           "program of this type cannot use helper bpf_skb_store_bytes#9")
    assert err.hint.startswith("bpf_skb_store_bytes#9 is not available to this program type")


@pytest.mark.root
def test_get_attach_cookie_in_program_type_without_cookie():
    err = rejected([b.call_helper(HelperID.get_attach_cookie), b.exit_()], prog_type=ProgType.XDP)
    assert "cannot use helper bpf_get_attach_cookie" in err.summary
    assert "has no attach cookie" in err.hint


@pytest.mark.root
def test_get_attach_cookie_invalid_argument():
    err = rejected([b.mov64_imm(op.R1, 0), b.call_helper(HelperID.get_attach_cookie), b.exit_()],
                   prog_type=ProgType.TRACEPOINT)
    assert err.summary == "1: (85) call bpf_get_attach_cookie#174: R1 type=scalar expected=ctx"
    assert "invalid argument for bpf_get_attach_cookie()" in err.hint


@pytest.mark.root
def test_gpl_only_helper_with_other_license():
    err = rejected([b.mov64_reg(op.R1, op.R10), b.alu64_imm(op.ADD, op.R1, -8), b.mov64_imm(op.R2, 8),
                    b.mov64_imm(op.R3, 0), b.call_helper(HelperID.probe_read_kernel), *ret(0)],
                   prog_type=ProgType.TRACEPOINT, license="Proprietary")
    assert "cannot call GPL-restricted function from non-GPL compatible program" in err.summary
    assert "license='GPL'" in err.hint
    assert err.errno == errno.EINVAL


@pytest.mark.root
def test_missing_return_value():
    err = rejected([b.exit_()])
    assert err.summary == "0: (95) exit: R0 !read_ok"
    assert "r0" in err.hint


@pytest.mark.root
def test_structural_errors():
    err = rejected([b.mov64_imm(op.R0, 0), b.exit_(), b.exit_()])
    assert err.summary == "2: (95) exit: unreachable insn 2"
    assert err.insn_index == 2
    assert "dead code" in err.hint


# -- source lines from BTF line info ------------------------------------------------------

def _btf_ext_records(ext: bytes, strings: bytes, which: str) -> dict[str, tuple[int, bytes]]:
    """func_info or line_info records per ELF section, insn_off turned from bytes to instructions."""
    hdr_len, func_off, func_len, line_off, line_len = struct.unpack_from("<IIIII", ext, 4)
    off, length = (func_off, func_len) if which == "func_info" else (line_off, line_len)
    start = hdr_len + off
    rec_size = struct.unpack_from("<I", ext, start)[0]
    pos, out = start + 4, {}
    while pos < start + length:
        name_off, count = struct.unpack_from("<II", ext, pos)
        pos += 8
        records = []
        for _ in range(count):
            rec = bytearray(ext[pos:pos + rec_size])
            struct.pack_into("<I", rec, 0, struct.unpack_from("<I", rec)[0] // 8)
            records.append(bytes(rec))
            pos += rec_size
        name = strings[name_off:strings.index(b"\0", name_off)].decode()
        out[name] = (rec_size, b"".join(records))
    return out


@pytest.mark.root
def test_source_line_from_btf_line_info():
    path = buildprogs.build("verifier_lines")
    with open(path, "rb") as f:
        elf = ELFFile(f)
        btf = elf.get_section_by_name(".BTF").data()
        ext = elf.get_section_by_name(".BTF.ext").data()
        code = elf.get_section_by_name("xdp").data()
    hdr_len, _, _, str_off, str_len = struct.unpack_from("<IIIII", btf, 4)
    strings = btf[hdr_len + str_off:hdr_len + str_off + str_len]
    func_size, func_info = _btf_ext_records(ext, strings, "func_info")["xdp"]
    line_size, line_info = _btf_ext_records(ext, strings, "line_info")["xdp"]
    btf_fd, btf_log, btf_errno = btf_load(btf)
    assert btf_fd is not None, (btf_errno, btf_log)
    with btf_fd:
        with pytest.raises(pybpf.VerifierError) as info:
            Program.load(code, prog_type=ProgType.XDP, name="no_bounds_check", btf_fd=btf_fd,
                         func_info=func_info, func_info_rec_size=func_size,
                         line_info=line_info, line_info_rec_size=line_size,
                         line_table={1: "not used: the kernel's annotation wins"}).close()
    err = info.value
    assert err.source_line == "verifier_lines.bpf.c:11: return data[12]; /* no check against data_end */"
    assert "; return data[12];" in err.log
    assert "invalid access to packet" in err.summary
    assert str(err).endswith("\n  at verifier_lines.bpf.c:11: return data[12]; /* no check against data_end */")


# -- the log buffer -----------------------------------------------------------------------

def _branchy_program(n: int = 200, tail: list | None = None) -> list:
    items = [b.mov64_imm(op.R0, 0), b.ldx_mem(op.W, op.R2, op.R1, 0)]
    for i in range(n):
        items += [b.jmp_imm(op.JNE, op.R2, i, f"s{i}"), b.alu64_imm(op.ADD, op.R0, 1), b.label(f"s{i}")]
    items += tail or [b.exit_()]
    return b.assemble(items)


@pytest.mark.root
def test_log_grows_from_a_small_buffer():
    insns = _branchy_program()
    with Program.load(insns, prog_type=SOCKET, name="big_log", log_level=2, log_size=128) as small:
        with Program.load(insns, prog_type=SOCKET, name="big_log", log_level=2, log_size=64 << 20) as big:
            assert len(big.verifier_log) > 64 * 1024
            assert small.verifier_log == big.verifier_log
    assert small.verifier_log.startswith("func#0 @0\n")
    assert small.verifier_log.rstrip().splitlines()[-1].startswith("processed ")


@pytest.mark.root
def test_rejected_program_log_is_whole_with_small_buffer():
    insns = _branchy_program(tail=[b.ldx_mem(op.W, op.R0, op.R0, 0), b.exit_()])
    with pytest.raises(pybpf.VerifierError) as info:
        Program.load(insns, prog_type=SOCKET, log_size=128).close()
    err = info.value
    assert err.log.startswith("0: R1=ctx() R10=fp0\n")
    assert "R0 invalid mem access 'scalar'" in err.summary


@pytest.mark.root
def test_log_level_kept_on_success():
    with Program.load(b.assemble(ret(1)), prog_type=SOCKET, log_level=1) as prog:
        # At level 1 the kernel keeps only the statistics of a program it accepts.
        assert prog.verifier_log.startswith("processed 2 insns")
    with Program.load(b.assemble(ret(1)), prog_type=SOCKET) as prog:
        assert prog.verifier_log == ""


# -- EPERM under lockdown -----------------------------------------------------------------

def _vmlinux_func_id(name: str) -> int:
    out = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux"],
                         check=True, capture_output=True, text=True).stdout
    m = re.search(rf"^\[(\d+)\] FUNC '{re.escape(name)}' ", out, re.M)
    assert m, f"{name} not in vmlinux BTF"
    return int(m.group(1))


@pytest.mark.root
@pytest.mark.parametrize("attach_type, kind", [
    (AttachType.TRACE_FENTRY, "fentry"), (AttachType.TRACE_FEXIT, "fexit"),
    (AttachType.MODIFY_RETURN, "fmod_ret"),
])
def test_tracing_load_refused_under_lockdown(attach_type, kind):
    from pybpf._sys import lockdown_mode

    mode = lockdown_mode()
    btf_id = _vmlinux_func_id("bpf_fentry_test1")
    try:
        prog = Program.load(b.assemble(ret(0)), prog_type=ProgType.TRACING, expected_attach_type=attach_type,
                            attach_btf_id=btf_id, name="on_enter")
    except pybpf.SyscallError as exc:
        err = exc
    else:
        with prog:
            # Without lockdown the load is allowed: nothing to explain.
            assert mode in (None, "none"), f"{kind} loaded under lockdown={mode}"
            assert prog.type == ProgType.TRACING
        return
    assert not isinstance(err, pybpf.VerifierError)
    assert err.errno == errno.EPERM
    assert mode and mode != "none", f"EPERM without lockdown: {err}"
    assert str(err) == f"program 'on_enter': load: EPERM ({kind} is refused under lockdown={mode})"
