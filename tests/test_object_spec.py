"""ObjectSpec: parsing C objects into programs, maps, variables and externs (no kernel needed).

Also the malformed-input contract: truncated files, garbage, a relocation against a missing
symbol, code in an unknown section all raise ObjectError with the section, offset or symbol.
"""

from __future__ import annotations

import struct

import pytest

import pybpf
from buildprogs import build
from pybpf._sys import MapFlag, MapType, ProgType
from pybpf.asm import opcodes as op
from pybpf.btf.types import Datasec, Struct


def spec_of(name: str) -> pybpf.ObjectSpec:
    return pybpf.ObjectSpec.from_file(build(name))


# -- purity --------------------------------------------------------------------------------


def test_parsing_makes_no_syscalls(monkeypatch):
    import pybpf._sys.syscall as sc

    paths = [build(n) for n in ("obj_globals", "obj_calls", "obj_externs", "obj_tracepoint")]

    def refuse(*args):
        raise AssertionError("ObjectSpec.from_file made a bpf(2) call")

    monkeypatch.setattr(sc, "_syscall4", refuse)
    monkeypatch.setattr(sc, "sys_bpf", refuse)
    for path in paths:
        spec = pybpf.ObjectSpec.from_file(path)
        assert spec.programs


def test_parsing_is_deterministic():
    for name in ("obj_globals", "obj_calls", "obj_externs"):
        a, b = spec_of(name), spec_of(name)
        assert a == b
        assert list(a.programs) == list(b.programs) and list(a.maps) == list(b.maps)
        for p in a.programs:
            assert a.programs[p].instructions == b.programs[p].instructions
            assert a.programs[p].func_info == b.programs[p].func_info
        assert a._kernel_btf == b._kernel_btf
    # a changed variable makes them differ
    a, b = spec_of("obj_globals"), spec_of("obj_globals")
    a.variables["min_len"].value = 3
    assert a != b


# -- programs --------------------------------------------------------------------------------


def test_programs_split_by_function_with_section_types():
    spec = spec_of("obj_calls")
    progs = spec.programs
    assert set(progs) == {"calls_main", "calls_loop", "map_in_map", "not_autoloaded", "tail_entry",
                          "tail_target", "tail_other"}
    assert progs["calls_main"].section == "xdp" and progs["calls_main"].type == ProgType.XDP
    assert progs["tail_entry"].type == ProgType.SCHED_CLS
    assert progs["not_autoloaded"].autoload is False and progs["calls_main"].autoload is True
    assert all(p.license == "GPL" for p in progs.values())

    tp = spec_of("obj_tracepoint").programs
    assert tp["count_getpid"].type == ProgType.TRACEPOINT
    assert tp["count_getpid"].attach_target == "syscalls/sys_enter_getpid"
    assert tp["raw_enter"].type == ProgType.RAW_TRACEPOINT and tp["raw_enter"].attach_target == "sys_enter"
    sysc = spec_of("obj_externs").programs["read_kconfig"]
    assert sysc.type == ProgType.SYSCALL and sysc.sleepable


def test_subprograms_appended_once_with_func_info():
    spec = spec_of("obj_calls")
    main = spec.programs["calls_main"]
    symbols = [i.symbol for i in main.instructions if i.symbol]
    # add_twice (global, .text) then square (static, .text) appended after the program
    assert symbols == ["calls_main", "add_twice", "square"]
    # func_info: one record per function, insn_off in bytes from the program start
    starts = [8 * i for i, insn in enumerate(main.instructions) if insn.symbol]
    assert [fi.insn_off for fi in main.func_info] == starts
    names = [spec.btf.type_by_id(fi.type_id).name for fi in main.func_info]
    assert names == symbols
    # every call points at the start of its callee
    for i, insn in enumerate(main.instructions):
        if insn.is_pseudo_call:
            target = insn.jump_target(i)
            assert main.instructions[target].symbol == insn.reference
    # line info moved along, with the C source on the instructions
    assert main.line_info and main.line_info[0].insn_off == 0
    assert any("obj_calls.bpf.c" in str(i.source) for i in main.instructions if i.source)


def test_callback_address_is_relocated():
    loop = spec_of("obj_calls").programs["calls_loop"]
    funcs = [(i, insn) for i, insn in enumerate(loop.instructions) if insn.is_pseudo_func]
    assert len(funcs) == 1
    i, insn = funcs[0]
    assert loop.instructions[insn.jump_target(i)].symbol == "loop_body"
    # square is reached from the program and only appended once
    assert [x.symbol for x in loop.instructions if x.symbol].count("square") == 1


def test_map_and_global_data_references():
    spec = spec_of("obj_globals")
    insns = spec.programs["filter"].instructions
    refs = {(i.reference, i.src) for i in insns if i.is_ld_imm64 and i.reference}
    assert ("counters", op.PSEUDO_MAP_FD) in refs and ("events", op.PSEUDO_MAP_FD) in refs
    assert ("legacy_counts", op.PSEUDO_MAP_FD) in refs
    assert (".bss", op.PSEUDO_MAP_VALUE) in refs and (".rodata", op.PSEUDO_MAP_VALUE) in refs
    # the second slot of a PSEUDO_MAP_VALUE load holds the variable's offset
    offsets = {insns[k + 1].imm for k, i in enumerate(insns)
               if i.is_ld_imm64 and i.reference == ".bss"}
    bss_vars = {v.offset for v in spec.variables.values() if v.section == ".bss"}
    assert offsets <= bss_vars | {0}


# -- maps ------------------------------------------------------------------------------------


def test_btf_legacy_and_global_data_maps():
    spec = spec_of("obj_globals")
    m = spec.maps
    assert set(m) == {"legacy_counts", "events", "counters", ".rodata", ".data", ".bss", ".data.custom"}
    assert (m["events"].type, m["events"].key_size, m["events"].value_size, m["events"].max_entries) == \
        (MapType.HASH, 4, 24, 16)
    assert isinstance(m["events"].value_type, Struct) and m["events"].value_type.name == "event"
    assert (m["legacy_counts"].type, m["legacy_counts"].value_size, m["legacy_counts"].max_entries) == \
        (MapType.ARRAY, 8, 4)
    ro = m[".rodata"]
    assert ro.kernel_name == "obj_glob.rodata" and ro.freeze
    assert ro.flags == MapFlag.MMAPABLE | MapFlag.RDONLY_PROG and ro.max_entries == 1
    assert m[".bss"].flags == MapFlag.MMAPABLE and not m[".bss"].freeze
    assert m[".data.custom"].kernel_name == ".data.custom"
    assert isinstance(ro.value_type, Datasec) and ro.value_type.size == ro.value_size == len(ro.data)


def test_internal_map_names_follow_libbpf():
    from pybpf.object.maps_def import internal_map_name

    assert internal_map_name("minimal", ".rodata") == "minimal.rodata"
    assert internal_map_name("minimal", ".bss") == "minimal.bss"
    assert internal_map_name("a_long_object_name", ".rodata") == "a_long_o.rodata"
    assert internal_map_name("a_long_object_name", ".kconfig") == "a_long_.kconfig"
    assert internal_map_name("x", ".rodata.very_long_name") == ".rodata.very_lo"
    assert internal_map_name("my-obj", ".data") == "my_obj.data"


def test_map_in_map_and_prog_array_values():
    m = spec_of("obj_calls").maps
    outer = m["outer"]
    assert outer.type == MapType.ARRAY_OF_MAPS and outer.value_size == 4
    assert outer.inner is not None and outer.inner.type == MapType.ARRAY and outer.inner.max_entries == 1
    assert outer.contents == [(0, "inner_a"), (3, "inner_b")]
    assert m["jumps"].type == MapType.PROG_ARRAY
    assert m["jumps"].contents == [(1, "tail_target"), (2, "tail_other")]


def test_pinning_and_values_before_load():
    m = spec_of("obj_pinned").maps["pybpf_test_pinned"]
    assert m.pinning == 1 and m.max_entries == 16


# -- variables and externs -----------------------------------------------------------------


def test_variables_typed_through_btf():
    spec = spec_of("obj_globals")
    v = spec.variables
    assert (v["min_len"].section, v["seen"].section, v["increment"].section) == (".rodata", ".bss", ".data")
    assert v["increment"].value == 1 and v["label"].value == b"pybpf" and v["custom_hits"].value == 100
    assert v["static_calls"].section == ".bss"
    v["min_len"].value = 1234
    assert v["min_len"].value == 1234
    ro = spec.maps[".rodata"].data
    assert struct.unpack_from("<I", ro, v["min_len"].offset)[0] == 1234
    with pytest.raises(pybpf.BPFError, match="min_len"):
        v["min_len"].value = 1 << 40


def test_externs_and_kconfig_layout():
    spec = spec_of("obj_externs")
    e = spec.externs
    assert e["LINUX_KERNEL_VERSION"].kind == "kconfig" and e["LINUX_KERNEL_VERSION"].kcfg_type == "int"
    assert e["CONFIG_BPF_SYSCALL"].kcfg_type == "bool"
    assert e["CONFIG_PYBPF_DOES_NOT_EXIST"].weak
    assert e["bpf_task_from_pid"].kind == "kfunc" and not e["bpf_task_from_pid"].weak
    assert e["bpf_pybpf_no_such_kfunc"].weak and e["pybpf_no_such_ksym"].kind == "ksym"
    kcfg = spec.maps[".kconfig"]
    assert kcfg.freeze and kcfg.flags & MapFlag.RDONLY_PROG
    # alignment descending, then size: the 4-byte ints first, the bools after
    layout = sorted((x.offset, x.name) for x in e.values() if x.kind == "kconfig")
    assert [n for _, n in layout][:2] == sorted(["CONFIG_PYBPF_DOES_NOT_EXIST", "LINUX_KERNEL_VERSION"])
    assert kcfg.value_size == 10
    calls = [i for i in spec.programs["task_kfunc"].instructions if i.is_kfunc_call]
    assert {i.reference for i in calls} >= {"bpf_task_from_pid", "bpf_task_release"}


def test_kconfig_version_code():
    from pybpf._sys.kernel import kernel_version_code

    assert kernel_version_code("6.18.44-fc") == (6 << 16) + (18 << 8) + 44
    assert kernel_version_code("5.4.300") == (5 << 16) + (4 << 8) + 255
    assert kernel_version_code("6.1") == (6 << 16) + (1 << 8)


# -- malformed input -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def good() -> bytes:
    return build("obj_calls").read_bytes()


def test_truncated_files_are_object_errors(good):
    for size in (0, 3, 16, 63, 64, 200, len(good) // 2, len(good) - 1):
        with pytest.raises(pybpf.ObjectError, match="object 'cut.o'"):
            pybpf.ObjectSpec.from_bytes(good[:size], name="cut.o")


def test_garbage_and_wrong_headers(good):
    with pytest.raises(pybpf.ObjectError, match="not an ELF"):
        pybpf.ObjectSpec.from_bytes(b"\x00garbage" * 100)
    be = bytearray(good)
    be[5] = 2
    with pytest.raises(pybpf.ObjectError, match="big-endian"):
        pybpf.ObjectSpec.from_bytes(bytes(be))
    x86 = bytearray(good)
    struct.pack_into("<H", x86, 18, 62)
    with pytest.raises(pybpf.ObjectError, match="machine 62"):
        pybpf.ObjectSpec.from_bytes(bytes(x86))
    with pytest.raises(pybpf.ObjectError, match="cannot read"):
        pybpf.ObjectSpec.from_file("/nonexistent/pybpf.o")


def test_random_corruption_never_escapes_as_internal_error(good):
    import random

    rng = random.Random(1234)
    for _ in range(300):
        data = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            pybpf.ObjectSpec.from_bytes(bytes(data))
        except pybpf.ObjectError:
            pass


def _elf_sections(data: bytes):
    shoff, = struct.unpack_from("<Q", data, 40)
    shnum, shstrndx = struct.unpack_from("<HH", data, 60)
    heads = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + 64 * i) for i in range(shnum)]
    names = heads[shstrndx]
    strtab = data[names[4]:names[4] + names[5]]
    return shoff, [(strtab[h[0]:strtab.index(b"\0", h[0])].decode(), h) for h in heads]


def test_relocation_symbol_out_of_range(good):
    data = bytearray(good)
    _, secs = _elf_sections(data)
    name, h = next((n, h) for n, h in secs if n == ".relxdp")
    struct.pack_into("<Q", data, h[4] + 8, (99999 << 32) | 1)   # first relocation: symbol 99999
    with pytest.raises(pybpf.ObjectError, match=r"\.relxdp.*symbol 99999"):
        pybpf.ObjectSpec.from_bytes(bytes(data))


def test_relocation_against_missing_symbol_names_section_offset_symbol():
    with pytest.raises(pybpf.ObjectError) as info:
        spec_of("obj_bad_extern")
    text = str(info.value)
    assert "object 'obj_bad_extern.bpf.o'" in text and "section 'xdp'" in text
    assert "offset 0" in text and "pybpf_undefined_counter" in text


def test_code_in_unknown_section_is_named():
    with pytest.raises(pybpf.ObjectError, match="pybpf_not_a_hook"):
        spec_of("obj_bad_section")


def test_section_past_end_of_file(good):
    data = bytearray(good)
    shoff, secs = _elf_sections(data)
    index = next(i for i, (n, _) in enumerate(secs) if n == "xdp")
    struct.pack_into("<Q", data, shoff + 64 * index + 24, len(good) + 100)  # sh_offset
    with pytest.raises(pybpf.ObjectError, match="section .* 'xdp'.*past the end"):
        pybpf.ObjectSpec.from_bytes(bytes(data))
