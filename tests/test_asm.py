"""Tests of pybpf.asm: encoding, decoding, the builder/assembler and the disassembler.

The round-trip tests compile C programs (tests/progs/asm_*.bpf.c) with clang,
decode every executable section, re-encode it byte for byte and compare the
decoded fields and the disassembly with ``llvm-objdump-19 -d``.
"""

from __future__ import annotations

import doctest
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from elftools.elf.constants import SH_FLAGS  # noqa: E402
from elftools.elf.elffile import ELFFile  # noqa: E402

import pybpf.asm  # noqa: E402
from pybpf.asm import builder as b  # noqa: E402
from pybpf.asm import disasm, instruction, opcodes as op  # noqa: E402
from pybpf.asm import (  # noqa: E402
    Instruction, assemble, decode_all, disassemble, encode_all, format_instruction, imm64,
    set_imm64,
)
from pybpf.errors import ObjectError  # noqa: E402

NO_NAMES = lambda helper_id: None  # noqa: E731  (keep text independent of _sys.consts)

# name -> extra clang flags.  minimal.bpf.c is shared with other tests: build it as is.
PROGRAMS = {
    "asm_alu": ("-mcpu=v3",),
    "asm_calls": ("-mcpu=v3",),
    "asm_v4": ("-mcpu=v4",),
    "minimal": (),
}


# -- helpers ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def objects() -> dict[str, Path]:
    from buildprogs import build

    return {name: build(name, extra_flags=flags) for name, flags in PROGRAMS.items()}


def exec_sections(path: Path) -> dict[str, bytes]:
    with open(path, "rb") as f:
        elf = ELFFile(f)
        return {s.name: s.data() for s in elf.iter_sections()
                if s["sh_flags"] & SH_FLAGS.SHF_EXECINSTR and s["sh_size"] > 0}


def objdump(path: Path) -> dict[str, dict[int, tuple[bytes, str]]]:
    """section -> slot index -> (raw bytes, text) from llvm-objdump-19 -d."""
    tool = shutil.which("llvm-objdump-19") or shutil.which("llvm-objdump")
    if tool is None:
        pytest.fail("llvm-objdump-19 is needed (apt-get install llvm-19)")
    out = subprocess.run([tool, "-d", str(path)], check=True, capture_output=True,
                         text=True).stdout
    sections: dict[str, dict[int, tuple[bytes, str]]] = {}
    current: dict[int, tuple[bytes, str]] = {}
    for line in out.splitlines():
        m = re.match(r"Disassembly of section (.*):$", line)
        if m:
            current = sections.setdefault(m.group(1), {})
            continue
        m = re.match(r"\s*(\d+):\t([0-9a-f ]+)\t(.*)$", line)
        if m:
            current[int(m.group(1))] = (bytes.fromhex(m.group(2)), m.group(3).strip())
    return sections


def norm(text: str) -> str:
    """Spelling-independent form: hex to decimal, no spaces, no objdump decorations."""
    text = re.sub(r"<[^>]*>", "", text).replace(" ll", "").replace("pc", "")
    text = re.sub(r"-?0x[0-9a-f]+", lambda m: str(int(m.group(0), 16)), text)
    return re.sub(r"\s+", "", text)


def s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


# -- round trip against clang's output -----------------------------------------------------

@pytest.mark.parametrize("name", list(PROGRAMS))
def test_roundtrip_compiled(objects, name):
    sections = exec_sections(objects[name])
    assert sections, f"{name}: no executable sections"
    for sec, data in sections.items():
        insns = decode_all(data)
        assert len(insns) == len(data) // 8
        assert encode_all(insns) == data, f"{name}:{sec}"
        assert b"".join(i.encode() for i in insns) == data
        for k in range(0, len(data), 8):
            assert Instruction.decode(data, k) == insns[k // 8]
        # every slot disassembles without raising, one line per instruction
        text = disassemble(insns, helper_name=NO_NAMES)
        slots = sum(2 if i.is_ld_imm64 else 1 for i in _line_insns(insns))
        assert slots == len(insns)
        assert len(text.splitlines()) == len(_line_insns(insns))


def _line_insns(insns):
    out, k = [], 0
    while k < len(insns):
        out.append(insns[k])
        k += 2 if insns[k].is_ld_imm64 else 1
    return out


def test_programs_cover_instruction_kinds(objects):
    """The C programs really contain the instruction kinds this file claims to test."""
    seen: set[tuple[int, int, int]] = set()
    for name in PROGRAMS:
        for data in exec_sections(objects[name]).values():
            for i in decode_all(data):
                key_off = i.off if i.cls in (op.ALU, op.ALU64) else 0
                key_imm = i.imm if i.mode == op.ATOMIC and i.cls == op.STX else 0
                seen.add((i.code, key_off, key_imm))
    codes = {c for c, _, _ in seen}
    wanted = {
        0x07, 0x0f, 0x1f, 0x2f, 0x3f, 0x37, 0x97, 0x47, 0x4f, 0x57, 0x5f, 0x67, 0x6f, 0x77, 0x7f,
        0xa7, 0xaf, 0xb7, 0xbf, 0xc7, 0xcf, 0x87,                         # ALU64
        0x04, 0x0c, 0x1c, 0x24, 0x2c, 0x34, 0x3c, 0x54, 0x64, 0x6c, 0x7c, 0xa4, 0xac, 0xb4,
        0xbc, 0xcc, 0x84,                                                 # ALU32
        0xdc, 0xd7,                                                       # be16/32/64, bswap
        0x18, 0x61, 0x79, 0x63, 0x7b, 0x7a, 0x81, 0x89, 0x91,            # ld/st, ldsx
        0xdb, 0xc3,                                                       # atomics
        0x05, 0x15, 0x65, 0x6d, 0x7d, 0xad, 0xc5, 0x16, 0x56, 0x66, 0x3e, 0xae, 0xc6,  # jumps
        0x85, 0x95,
    }
    assert wanted <= codes, sorted(hex(c) for c in wanted - codes)
    for extra in [(0x3f, 1, 0), (0x37, 1, 0), (0x34, 1, 0), (0x9c, 1, 0),  # sdiv/smod
                  (0xbf, 8, 0), (0xbf, 16, 0), (0xbf, 32, 0),              # movsx
                  (0xdb, 0, 0x00), (0xdb, 0, 0x40), (0xdb, 0, 0x50), (0xdb, 0, 0xa0),
                  (0xdb, 0, 0x01), (0xdb, 0, 0x41), (0xdb, 0, 0x51), (0xdb, 0, 0xa1),
                  (0xdb, 0, 0xe1), (0xdb, 0, 0xf1), (0xc3, 0, 0x00), (0xc3, 0, 0x01)]:
        assert extra in seen, extra


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_matches_llvm_objdump(objects, name):
    dumped = objdump(objects[name])
    counts = {"text": 0, "jump": 0, "call": 0, "ld_imm64": 0, "atomic": 0}
    for sec, data in exec_sections(objects[name]).items():
        insns = decode_all(data)
        ref = dumped[sec]
        for index, insn in enumerate(insns):
            if index not in ref:  # second slot of an ld_imm64
                assert insns[index - 1].is_ld_imm64
                continue
            raw, theirs = ref[index]
            assert raw == encode_all(insns[index:index + len(raw) // 8]), (sec, index)
            nxt = insns[index + 1] if insn.is_ld_imm64 else None
            mine = disasm.instruction_text(insn, nxt, NO_NAMES)
            where = f"{name}:{sec}:{index}: ours {mine!r}, llvm {theirs!r}"
            if theirs == "<unknown>":  # llvm 19: no text for 32-bit atomic or/and/xor
                assert insn.cls == op.STX and insn.mode == op.ATOMIC, where
                continue
            if insn.cls in (op.ALU, op.ALU64, op.LDX, op.ST) or (
                    insn.cls == op.STX and insn.mode == op.MEM):
                assert norm(mine) == norm(theirs), where
                counts["text"] += 1
            elif insn.is_jump:
                m = re.search(r"goto ([+-]0x[0-9a-f]+)", theirs)
                assert m and int(m.group(1), 16) == insn.off, where
                assert mine.endswith(f"goto pc{insn.off:+d}"), where
                assert mine.split()[:3] == theirs.split()[:3] or insn.code == 0x05, where
                if insn.source_bit == op.K and insn.code != 0x05:
                    assert s32(int(mine.split()[3], 16)) == int(theirs.split()[3], 16), where
                counts["jump"] += 1
            elif insn.is_call:
                assert int(theirs.split()[1], 16) == insn.imm, where
                if insn.is_pseudo_call:
                    assert mine == f"call pc{insn.imm:+d}", where
                else:
                    assert mine == f"call helper#{insn.imm}", where
                counts["call"] += 1
            elif insn.is_ld_imm64:
                dst, value = theirs.split(" = ")
                assert int(value.split()[0], 16) % (1 << 64) == imm64(insns, index), where
                assert mine.startswith(f"{dst} = "), where
                counts["ld_imm64"] += 1
            elif insn.cls == op.STX and insn.mode == op.ATOMIC:
                # llvm-objdump 19 prints a 32-bit fetch-add as "lock ... +=" and has no
                # text for 32-bit or/and/xor: for W, only the memory operand is compared.
                if insn.size == op.W:
                    assert f"*(u32 *)(r{insn.dst} + 0x{insn.off:x})" in theirs, where
                    assert f"(u32 *)(r{insn.dst} {insn.off:+d})" in mine, where
                    counts["atomic"] += 1
                    continue
                for word in ("lock", "fetch_add", "fetch_or", "fetch_and", "fetch_xor",
                             "cmpxchg", "xchg"):
                    assert (word in mine) == (word in theirs), (word, where)
                counts["atomic"] += 1
            else:
                assert norm(mine) == norm(theirs), where
    assert counts["text"] > 5 and counts["ld_imm64"] > 0, counts
    if name != "minimal":
        assert counts["jump"] > 0, counts


def test_compiled_jump_targets(objects):
    """Every jump of compiled code lands inside its section, on an instruction start."""
    for name in PROGRAMS:
        for sec, data in exec_sections(objects[name]).items():
            insns = decode_all(data)
            starts = {k for k, i in enumerate(insns)
                      if not (k > 0 and insns[k - 1].is_ld_imm64)}
            for k, insn in enumerate(insns):
                if insn.is_jump:
                    assert insn.jump_target(k) in starts, (name, sec, k)


# -- decode / encode ----------------------------------------------------------------------

def test_decode_fields():
    insn = Instruction.decode(bytes.fromhex("7b1af8ff00000000"))
    assert (insn.code, insn.dst, insn.src, insn.off, insn.imm) == (0x7b, 10, 1, -8, 0)
    insn = Instruction.decode(b"\0" * 8 + bytes.fromhex("b7030000ffffffff"), 8)
    assert (insn.code, insn.dst, insn.imm) == (0xb7, 3, -1)
    assert insn.encode() == bytes.fromhex("b7030000ffffffff")


@pytest.mark.parametrize("size", [1, 7, 9, 15, 17])
def test_decode_all_truncated(size):
    with pytest.raises(ObjectError, match=rf"byte offset {size - size % 8}"):
        decode_all(b"\x95" * size)


def test_decode_truncated_single():
    with pytest.raises(ObjectError):
        Instruction.decode(b"\x95\0\0\0", 0)
    with pytest.raises(ObjectError):
        Instruction.decode(b"\0" * 16, 12)


def test_decode_empty_and_buffers():
    assert decode_all(b"") == []
    data = encode_all([b.mov64_imm(1, 5), b.exit_()])
    assert decode_all(bytearray(data)) == decode_all(memoryview(data)) == decode_all(data)


def test_encode_rejects_bad_fields():
    with pytest.raises(ValueError, match="off=40000"):
        Instruction(0x05, off=40000).encode()
    with pytest.raises(ValueError, match="imm"):
        Instruction(0xb7, imm=1 << 31).encode()
    with pytest.raises(ValueError, match="registers"):
        Instruction(0xb7, dst=16).encode()
    with pytest.raises(ValueError, match="instruction 1"):
        encode_all([b.exit_(), Instruction(0xb7, src=-1)])
    with pytest.raises(ValueError, match="instruction 2: .*code"):
        encode_all([b.exit_(), b.exit_(), Instruction(256)])
    with pytest.raises(ValueError, match="dst must be an int, not str"):
        Instruction(0xb7, dst="r1").encode()  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"instruction 1: .*src=16 does not fit \(registers are 0\.\.15\)"):
        encode_all([b.exit_(), Instruction(0xbf, src=16)])
    with pytest.raises(TypeError, match="instruction 1 is a list, not an Instruction.*assemble"):
        encode_all([b.exit_(), b.ld_imm64(1, 5)])  # type: ignore[list-item]


def test_equality_ignores_metadata():
    a = Instruction(0x95, symbol="f", reference="x", source=("f.c", 3))
    assert a == Instruction(0x95)
    assert a != Instruction(0x95, imm=1)
    assert a != "exit"
    with pytest.raises(TypeError):
        hash(a)
    assert "symbol='f'" in repr(a) and "0x95" in repr(a)
    assert str(b.mov64_imm(1, 2)) == "(b7) r1 = 2"


def test_large_stream_roundtrip():
    insns = assemble([b.mov64_imm(op.R0, 0), [b.alu64_imm(op.ADD, op.R0, k) for k in
                                              range(100_000)], b.exit_()])
    data = encode_all(insns)
    assert len(data) == 8 * 100_002
    assert decode_all(data) == insns


def test_imm64_helpers():
    insns = b.ld_imm64(op.R1, 0x1122334455667788)
    assert imm64(insns, 0) == 0x1122334455667788
    set_imm64(insns, 0, -1)
    assert (insns[0].imm, insns[1].imm) == (-1, -1)
    assert imm64(insns, 0) == (1 << 64) - 1
    set_imm64(insns, 0, 0x80000000_7fffffff)
    assert (insns[0].imm, insns[1].imm) == (0x7fffffff, -(1 << 31))
    with pytest.raises(ValueError):
        set_imm64(insns, 0, 1 << 64)
    with pytest.raises(ObjectError, match="not a 64-bit"):
        imm64([b.exit_()], 0)
    with pytest.raises(ObjectError, match="second slot"):
        imm64(insns[:1], 0)


def test_predicates_and_targets():
    call = b.call_helper(1)
    assert call.is_call and call.is_helper_call and not call.is_pseudo_call
    assert not call.is_jump and not b.exit_().is_jump and b.exit_().is_exit
    local = b.call_local(5)
    assert local.is_pseudo_call and local.jump_target(10) == 16
    kf = b.call_kfunc(1234)
    assert kf.is_kfunc_call and not kf.is_helper_call
    assert b.ja(-3).jump_target(10) == 8
    assert b.jmp32_imm(op.JLT, 1, 5, 2).is_jump
    assert b.gotol(100000).jump_target(0) == 100001
    assert b.may_goto(4).jump_target(1) == 6
    assert b.ld_func(2, 7)[0].is_pseudo_func and b.ld_func(2, 7)[0].jump_target(3) == 11
    assert not Instruction(0x0d, dst=1).is_jump  # gotox: indirect
    assert b.ld_imm64(1, 0)[0].is_ld_imm64
    ins = b.mov64_imm(1, 0)
    assert (ins.cls, ins.op, ins.source_bit) == (op.ALU64, op.MOV, op.K)
    ld = b.ldx_mem(op.H, 1, 2, 4)
    assert (ld.cls, ld.size, ld.mode) == (op.LDX, op.H, op.MEM)
    with pytest.raises(ValueError, match="no jump target"):
        call.jump_target(0)


# -- builder and assembler ----------------------------------------------------------------

def test_builder_encodings():
    cases = [
        (b.mov64_imm(1, -1), "b7010000ffffffff"),
        (b.mov64_reg(6, 1), "bf16000000000000"),
        (b.mov32_imm(0, 0xffffffff), "b4000000ffffffff"),
        (b.mov32_reg(1, 7), "bc71000000000000"),
        (b.alu64_imm(op.ADD, 2, -4), "07020000fcffffff"),
        (b.alu64_reg(op.DIV, 5, 3, signed=True), "3f35010000000000"),
        (b.alu32_imm(op.MOD, 4, 7, signed=True), "94040100" "07000000"),
        (b.alu32_reg(op.XOR, 5, 2), "ac25000000000000"),
        (b.movsx64_reg(3, 2, 32), "bf23200000000000"),
        (b.movsx32_reg(3, 2, 8), "bc23080000000000"),
        (b.neg64(0), "8700000000000000"),
        (b.neg32(0), "8400000000000000"),
        (b.endian(3, 64), "dc03000040000000"),
        (b.endian(3, 16, big=False), "d403000010000000"),
        (b.bswap(0, 32), "d700000020000000"),
        (b.ldx_mem(op.DW, 0, 10, -8), "79a0f8ff00000000"),
        (b.ldx_memsx(op.B, 0, 0, 0), "9100000000000000"),
        (b.stx_mem(op.W, 10, 1, -4), "631afcff00000000"),
        (b.st_mem(op.DW, 1, 128, 1), "7a01800001000000"),
        (b.atomic_op(op.DW, op.ADD, 0, 1), "db10000000000000"),
        (b.atomic_op(op.DW, op.OR, 0, 6, 8, fetch=True), "db60080041000000"),
        (b.atomic_op(op.DW, op.CMPXCHG, 8, 6, 32), "db682000f1000000"),
        (b.atomic_op(op.W, op.XCHG, 1, 2), "c3210000e1000000"),
        (b.atomic_op(op.B, op.LOAD_ACQ, 1, 2), "d321000000010000"),
        (b.jmp_imm(op.JSGT, 6, -6, 3), "65060300faffffff"),
        (b.jmp_reg(op.JLT, 5, 2, -7), "ad25f9ff00000000"),
        (b.jmp32_imm(op.JNE, 5, 0x42, 4), "5605040042000000"),
        (b.jmp32_reg(op.JGE, 3, 4, 2), "3e43020000000000"),
        (b.ja(3), "0500030000000000"),
        (b.gotol(-70000), "0600000090eefeff"),
        (b.may_goto(2), "e500020000000000"),
        (b.call_helper(1), "8500000001000000"),
        (b.call_kfunc(77, module=2), "852002004d000000"),
        (b.call_local(-1), "85100000ffffffff"),
        (b.exit_(), "9500000000000000"),
    ]
    for insn, hexbytes in cases:
        assert insn.encode().hex() == hexbytes, insn
    assert encode_all(b.ld_imm64(3, 0x123456789abcdef0)).hex() == \
        "18030000f0debc9a0000000078563412"
    assert encode_all(b.ld_map_fd(1, 5)).hex() == "1811000005000000" + "00" * 8
    assert encode_all(b.ld_map_value(2, 5, 16)).hex() == \
        "1822000005000000" "0000000010000000"


def test_builder_references():
    lo, hi = b.ld_map_fd(1, "counts")
    assert lo.reference == "counts" and lo.src == op.PSEUDO_MAP_FD and lo.imm == 0
    lo, hi = b.ld_map_value(1, ".bss", 8)
    assert lo.reference == ".bss" and hi.imm == 8
    assert b.jmp_imm(op.JEQ, 0, 0, "out").reference == "out"
    assert b.call_local("sub").imm == -1


@pytest.mark.parametrize("call", [
    lambda: b.mov64_imm(11, 0),
    lambda: b.mov64_imm(1, 1 << 32),
    lambda: b.alu64_imm(0xe0, 1, 0),
    lambda: b.alu64_imm(op.ADD, 1, 0, signed=True),
    lambda: b.movsx32_reg(1, 2, 32),
    lambda: b.jmp_imm(op.CALL, 1, 0, 1),
    lambda: b.jmp_imm(op.JEQ, 1, 0, 1 << 15),
    lambda: b.ldx_mem(3, 1, 2, 0),
    lambda: b.ldx_memsx(op.DW, 1, 2, 0),
    lambda: b.stx_mem(op.W, 1, 2, -(1 << 15) - 1),
    lambda: b.atomic_op(op.B, op.ADD, 1, 2),
    lambda: b.atomic_op(op.DW, 0x30, 1, 2),
    lambda: b.ld_imm64(1, 1 << 64),
    lambda: b.endian(1, 8),
    lambda: b.label(""),
])
def test_builder_rejects(call):
    with pytest.raises(ValueError):
        call()


def test_assemble_labels():
    prog = assemble([
        b.label("entry"),
        b.mov64_imm(op.R0, 0),
        b.jmp_imm(op.JEQ, op.R1, 0, "out"),          # 1 -> 6
        [b.ld_imm64(op.R2, 1 << 40), b.alu64_reg(op.ADD, op.R0, op.R2)],
        b.ja("out"),                                  # 5 -> 6
        b.label("out"), b.label("also_out"),
        b.call_local("sub"),                          # 6 -> 8
        b.exit_(),
        b.label("sub"),
        b.ld_func(op.R2, "entry"),                    # 8 -> 0
        b.jmp_reg(op.JNE, 1, 2, "entry"),             # 10 -> 0
        b.gotol("also_out"),                          # 11 -> 6
        b.exit_(),
    ])
    assert len(prog) == 13
    assert prog[0].symbol == "entry" and prog[6].symbol == "out" and prog[8].symbol == "sub"
    assert prog[1].off == 4 and prog[1].jump_target(1) == 6
    assert prog[5].off == 0
    assert prog[6].imm == 1 and prog[6].jump_target(6) == 8
    assert prog[8].imm == -9 and prog[8].jump_target(8) == 0
    assert prog[10].off == -11
    assert prog[11].imm == -6 and prog[11].jump_target(11) == 6
    assert prog[1].reference == "out"  # kept for a later linker


def test_assemble_does_not_modify_input():
    jump = b.ja("x")
    items = [jump, b.label("x"), b.exit_()]
    first = assemble(items)
    assert jump.off == 0 and jump.symbol is None
    assert assemble(items) == first
    # re-assembling resolved output is stable: symbols act as labels
    assert assemble(first) == first


def test_assemble_keeps_other_references():
    prog = assemble([b.ld_map_fd(1, "counts"), b.exit_()])
    assert prog[0].reference == "counts" and prog[0].imm == 0


def test_assemble_errors():
    with pytest.raises(ValueError, match="unknown label 'nowhere'"):
        assemble([b.ja("nowhere"), b.exit_()])
    with pytest.raises(ValueError, match="unknown label 'f'"):
        assemble([b.call_local("f"), b.exit_()])
    with pytest.raises(ValueError, match="duplicate label 'a'"):
        assemble([b.label("a"), b.exit_(), b.label("a"), b.exit_()])
    with pytest.raises(ValueError, match="duplicate label 'a'"):
        assemble([Instruction(0x95, symbol="a"), b.label("a"), b.exit_()])
    with pytest.raises(ValueError, match="'end' is not followed"):
        assemble([b.exit_(), b.label("end")])
    with pytest.raises(ValueError, match="does not fit 16 bits"):
        assemble([b.ja("far"), [b.mov64_imm(0, 0)] * 40000, b.label("far"), b.exit_()])
    far = assemble([b.gotol("far"), [b.mov64_imm(0, 0)] * 40000, b.label("far"), b.exit_()])
    assert far[0].imm == 40000
    with pytest.raises(TypeError, match="label"):
        assemble([b.exit_(), "oops"])
    with pytest.raises(TypeError):
        assemble([b.exit_(), 5])


def test_assemble_same_symbol_and_label():
    prog = assemble([b.label("f"), Instruction(0x95, symbol="f")])
    assert prog[0].symbol == "f"


# -- disassembler -------------------------------------------------------------------------

@pytest.mark.parametrize("insn, text", [
    (b.mov64_imm(1, 0), "r1 = 0"),
    (b.mov32_imm(1, -5), "w1 = -5"),
    (b.mov64_reg(6, 1), "r6 = r1"),
    (b.alu64_imm(op.ADD, 2, -4), "r2 += -4"),
    (b.alu32_reg(op.ARSH, 7, 0), "w7 s>>= w0"),
    (b.alu64_reg(op.DIV, 5, 3, signed=True), "r5 s/= r3"),
    (b.alu32_imm(op.MOD, 4, 7, signed=True), "w4 s%= 7"),
    (b.movsx64_reg(3, 2, 16), "r3 = (s16)r2"),
    (b.movsx32_reg(3, 2, 8), "w3 = (s8)w2"),
    (b.neg64(0), "r0 = -r0"),
    (b.neg32(0), "w0 = -w0"),
    (b.endian(3, 64), "r3 = be64 r3"),
    (b.endian(3, 16, big=False), "r3 = le16 r3"),
    (b.bswap(0, 32), "r0 = bswap32 r0"),
    (Instruction(0xbf, 1, 2, 1, (1 << 16) | 0), "r1 = addr_space_cast(r2, 1, 0)"),
    (b.stx_mem(op.W, 10, 1, -4), "*(u32 *)(r10 -4) = r1"),
    (b.st_mem(op.H, 1, 2, 7), "*(u16 *)(r1 +2) = 7"),
    (b.ldx_mem(op.DW, 0, 10, -8), "r0 = *(u64 *)(r10 -8)"),
    (b.ldx_memsx(op.H, 0, 1, 6), "r0 = *(s16 *)(r1 +6)"),
    (b.atomic_op(op.DW, op.ADD, 0, 1), "lock *(u64 *)(r0 +0) += r1"),
    (b.atomic_op(op.W, op.XOR, 0, 1, 4), "lock *(u32 *)(r0 +4) ^= r1"),
    (b.atomic_op(op.DW, op.ADD, 0, 1, fetch=True),
     "r1 = atomic64_fetch_add((u64 *)(r0 +0), r1)"),
    (b.atomic_op(op.W, op.AND, 0, 1, 8, fetch=True),
     "r1 = atomic_fetch_and((u32 *)(r0 +8), r1)"),
    (b.atomic_op(op.DW, op.CMPXCHG, 8, 6, 32), "r0 = atomic64_cmpxchg((u64 *)(r8 +32), r0, r6)"),
    (b.atomic_op(op.DW, op.XCHG, 8, 7, 24), "r7 = atomic64_xchg((u64 *)(r8 +24), r7)"),
    (b.atomic_op(op.W, op.LOAD_ACQ, 1, 2, 4), "r1 = load_acquire((u32 *)(r2 +4))"),
    (b.atomic_op(op.B, op.STORE_REL, 1, 2), "store_release((u8 *)(r1 +0), r2)"),
    (Instruction(0xdb, 0, 1, 0, 0x30), "invalid stx instruction (atomic op 0x30)"),
    (Instruction(0x20, imm=12), "r0 = *(u32 *)skb[12]"),
    (Instruction(0x50, src=6, imm=4), "r0 = *(u8 *)skb[r6 + 4]"),
    (b.jmp_imm(op.JEQ, 0, 0, 2), "if r0 == 0x0 goto pc+2"),
    (b.jmp_imm(op.JSGT, 6, -6, 3), "if r6 s> 0xfffffffa goto pc+3"),
    (b.jmp_reg(op.JLT, 5, 2, -7), "if r5 < r2 goto pc-7"),
    (b.jmp32_imm(op.JSLE, 1, 100, 1), "if w1 s<= 0x64 goto pc+1"),
    (b.jmp32_reg(op.JSET, 3, 4, 2), "if w3 & w4 goto pc+2"),
    (b.ja(-1), "goto pc-1"),
    (b.gotol(70000), "gotol pc+70000"),
    (b.may_goto(3), "may_goto pc+3"),
    (Instruction(0x0d, dst=3), "gotox r3"),
    (b.call_local(5), "call pc+5"),
    (b.call_kfunc(4242), "call kernel-function#4242"),
    (b.call_helper(12345), "call helper#12345"),
    (b.exit_(), "exit"),
    (Instruction(0xf5), "invalid jmp instruction (op 0xf0)"),
    (Instruction(0xe4), "invalid alu instruction (op 0xe0)"),
])
def test_format_instruction(insn, text):
    assert format_instruction(insn, 3, helper_name=NO_NAMES) == f"3: ({insn.code:02x}) {text}"


@pytest.mark.parametrize("pair, text", [
    (b.ld_imm64(1, 0), "r1 = 0x0"),
    (b.ld_imm64(1, -1), "r1 = 0xffffffffffffffff"),
    (b.ld_imm64(3, 0x123456789abcdef0), "r3 = 0x123456789abcdef0"),
    (b.ld_map_fd(1, 5), "r1 = map[fd:5]"),
    (b.ld_map_value(2, 5, 16), "r2 = map_value[fd:5]+16"),
    (b.ld_imm64(1, 3, src=op.PSEUDO_MAP_IDX), "r1 = map[idx:3]"),
    (b.ld_imm64(1, (8 << 32) | 3, src=op.PSEUDO_MAP_IDX_VALUE), "r1 = map_value[idx:3]+8"),
    (b.ld_imm64(1, 99, src=op.PSEUDO_BTF_ID), "r1 = ksym[btf_id:99]"),
    (b.ld_func(2, 5), "r2 = func[pc+5]"),
])
def test_format_ld_imm64(pair, text):
    assert format_instruction(pair[0], 4, pair[1]) == f"4: (18) {text}"


def test_disassemble_program():
    prog = assemble([
        b.mov64_imm(1, 0),
        b.stx_mem(op.W, 10, 1, -4),
        b.mov64_reg(2, 10),
        b.alu64_imm(op.ADD, 2, -4),
        b.ld_map_fd(1, 3),
        b.call_helper(1),
        b.jmp_imm(op.JEQ, 0, 0, "out"),
        b.mov64_imm(1, 1),
        b.atomic_op(op.DW, op.ADD, 0, 1),
        b.label("out"),
        b.mov64_imm(0, 0),
        b.exit_(),
    ])
    names = {1: "bpf_map_lookup_elem"}.get
    assert disassemble(prog, helper_name=names) == "\n".join([
        "0: (b7) r1 = 0",
        "1: (63) *(u32 *)(r10 -4) = r1",
        "2: (bf) r2 = r10",
        "3: (07) r2 += -4",
        "4: (18) r1 = map[fd:3]",
        "6: (85) call bpf_map_lookup_elem#1",
        "7: (15) if r0 == 0x0 goto pc+2",
        "8: (b7) r1 = 1",
        "9: (db) lock *(u64 *)(r0 +0) += r1",
        "10: (b7) r0 = 0",
        "11: (95) exit",
    ])


def test_default_helper_names():
    """Without helper_name, names come from the kernel ABI layer's HelperID."""
    assert format_instruction(b.call_helper(1), 0) == "0: (85) call bpf_map_lookup_elem#1"
    assert format_instruction(b.call_helper(99999), 0) == "0: (85) call helper#99999"


def test_disassemble_truncated_ld_imm64():
    text = disassemble([b.exit_(), b.ld_imm64(1, 5)[0]])
    assert text.splitlines()[1].startswith("1: (18) r1 = 0x5")


def test_disassemble_arbitrary_bytes():
    """Any 8-byte pattern disassembles to some text; nothing raises."""
    import random

    rng = random.Random(1234)
    data = bytes(rng.randrange(256) for _ in range(8 * 20000))
    data += bytes(b2 for code in range(256) for b2 in (code, 0x21, 1, 0, 0xff, 0xff, 0, 0))
    insns = decode_all(data)
    assert encode_all(insns) == data
    text = disassemble(insns, helper_name=NO_NAMES)
    assert text.count("\n") + 1 == len(_line_insns(insns))
    for k, insn in enumerate(insns):
        line = format_instruction(insn, k, insns[k + 1] if k + 1 < len(insns) else None)
        assert line.startswith(f"{k}: ({insn.code:02x}) ")


# -- module hygiene -----------------------------------------------------------------------

@pytest.mark.parametrize("module", [pybpf.asm, op, instruction, disasm, b])
def test_docstring_examples(module):
    assert module.__doc__ and "Example" in module.__doc__ or ">>>" in module.__doc__
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_public_names():
    for name in pybpf.asm.__all__:
        assert hasattr(pybpf.asm, name), name
    for name in op.__all__:
        assert hasattr(op, name), name
    assert op.PSEUDO_MAP_FD == 1 and op.PSEUDO_MAP_VALUE == 2 and op.PSEUDO_BTF_ID == 3
    assert op.PSEUDO_FUNC == 4 and op.PSEUDO_MAP_IDX == 5 and op.PSEUDO_MAP_IDX_VALUE == 6
    assert op.PSEUDO_CALL == 1 and op.PSEUDO_KFUNC_CALL == 2
    assert op.R10 == op.FP == 10
    assert op.LD_IMM64 == 0x18 and op.CALL_OPCODE == 0x85 and op.EXIT_OPCODE == 0x95


def test_the_cookie_helper_number_is_the_kernels():
    """asm.cookie names bpf_get_attach_cookie by number (so a load need not create HelperID)."""
    from pybpf._sys.uapi import HelperID
    from pybpf.asm.cookie import COOKIE_CALL, COOKIE_HELPER

    assert COOKIE_HELPER == HelperID.get_attach_cookie == 174
    assert Instruction.decode(COOKIE_CALL).imm == COOKIE_HELPER
