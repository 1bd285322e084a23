"""Tests of pybpf.btf.core: CO-RE relocation.

The C programs tests/progs/core_*.bpf.c are built with clang; their
.BTF/.BTF.ext and instructions are read here with pyelftools (the ELF
loader is a separate layer).  Relocated values are checked against:

- the kernel's BTF as bpftool prints it (an independent parser),
- libbpf 1.1 itself, through ``bpftool -d prog loadall`` (its debug log says
  what it patched where),
- the kernel: core_run is loaded as a syscall program and run in this very
  thread, so what it reads from ``current`` is compared with /proc, and the
  poisoned programs must be refused at the poisoned instruction,
- hand-computed layouts of target BTF built here (core_local.bpf.c).
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from hypothesis import HealthCheck, given, settings, strategies as st

from buildprogs import build
from pybpf import Program
from pybpf._sys import ProgType
from pybpf._sys.flags import ProgFlag
from pybpf.asm import Instruction, decode_all, encode_all, imm64
from pybpf.btf import kernel
from pybpf.btf.core import POISON_HELPER_ID, CoreResult, apply_relocations, explain_poison, is_poison
from pybpf.btf.core_match import clear_candidate_cache
from pybpf.btf.reader import CoreRelo, CoreRelocKind as K, ExtInfo, Spec
from pybpf.btf.types import (
    Array, Enum, Enum64, Int, IntEncoding, Member, Pointer, Struct, Typedef, Union,
)
from pybpf.btf.writer import Builder
from pybpf.errors import ObjectError, VerifierError

SIGNED = IntEncoding.SIGNED
M32 = 0xFFFFFFFF


# ---------------------------------------------------------------------- helpers


@dataclass
class Obj:
    """What the tests need of a compiled object: sections, BTF, CO-RE records, functions."""

    path: Path
    sections: dict[str, bytes]
    btf: Spec
    ext: ExtInfo
    funcs: dict[str, tuple[str, int, int]]      # name -> (section, first slot, slots)

    def insns(self, section: str) -> list[Instruction]:
        return decode_all(self.sections[section])

    def relocate(self, section: str, target: Spec | None = None) -> tuple[list[Instruction], list[CoreResult]]:
        insns = self.insns(section)
        return insns, apply_relocations(insns, self.ext.core_relos[section], self.btf, target,
                                        section=section)

    def by_insn(self, results: list[CoreResult]) -> dict[int, list[CoreResult]]:
        out: dict[int, list[CoreResult]] = {}
        for r in results:
            out.setdefault(r.insn, []).append(r)
        return out


def load_obj(name: str) -> Obj:
    path = build(name)
    with open(path, "rb") as f:
        elf = ELFFile(f)
        sections = {s.name: s.data() for s in elf.iter_sections() if s.header.sh_type != "SHT_NOBITS"}
        names = [s.name for s in elf.iter_sections()]
        funcs = {}
        for sym in elf.get_section_by_name(".symtab").iter_symbols():
            if sym["st_info"]["type"] == "STT_FUNC":
                funcs[sym.name] = (names[sym["st_shndx"]], sym["st_value"] // 8, sym["st_size"] // 8)
    btf = Spec.parse(sections[".BTF"])
    return Obj(path, sections, btf, ExtInfo.parse(sections[".BTF.ext"], btf), funcs)


@pytest.fixture(scope="module")
def reloc_obj() -> Obj:
    return load_obj("core_reloc")


@pytest.fixture(scope="module")
def local_obj() -> Obj:
    return load_obj("core_local")


@dataclass
class DumpType:
    id: int
    kind: str
    name: str
    size: int
    members: list[tuple[str, int, int, int]]    # name, type id, bit offset, bitfield size
    values: dict[str, int]


@pytest.fixture(scope="module")
def bpftool_btf() -> dict:
    """vmlinux BTF as bpftool (libbpf's parser) prints it: {id: DumpType} plus {name: [ids]}."""
    text = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux"],
                          check=True, capture_output=True, text=True).stdout
    by_id: dict[int, DumpType] = {}
    by_name: dict[str, list[int]] = {}
    head = re.compile(r"^\[(\d+)\] (\w+) '([^']*)'(?:.*? size=(\d+))?")
    member = re.compile(r"^\t'([^']*)' type_id=(\d+) bits_offset=(\d+)(?: bitfield_size=(\d+))?")
    value = re.compile(r"^\t'([^']*)' val=(-?\d+)")
    cur = None
    for line in text.splitlines():
        if line.startswith("["):
            m = head.match(line)
            cur = DumpType(int(m[1]), m[2], m[3], int(m[4] or 0), [], {})
            by_id[cur.id] = cur
            by_name.setdefault(cur.name, []).append(cur.id)
        elif cur is not None and cur.kind in ("STRUCT", "UNION"):
            m = member.match(line)
            if m:
                cur.members.append((m[1], int(m[2]), int(m[3]), int(m[4] or 0)))
        elif cur is not None and cur.kind in ("ENUM", "ENUM64"):
            m = value.match(line)
            if m:
                cur.values[m[1]] = int(m[2])
    return {"id": by_id, "name": by_name}


def dump_struct(dump: dict, name: str) -> DumpType:
    ids = [i for i in dump["name"][name] if dump["id"][i].kind == "STRUCT"]
    assert len(ids) == 1, ids
    return dump["id"][ids[0]]


def dump_member(dump: dict, t: DumpType, name: str) -> tuple[int, int, int] | None:
    """(bit offset, type id, bitfield size) of member ``name``, looking into anonymous members."""
    for mname, tid, off, bits in t.members:
        if mname == name:
            return off, tid, bits
        if mname == "(anon)":
            inner = dump["id"][tid]
            if inner.kind in ("STRUCT", "UNION"):
                found = dump_member(dump, inner, name)
                if found:
                    return off + found[0], found[1], found[2]
    return None


def one(results: list[CoreResult], insn: int, kind: K | None = None) -> CoreResult:
    found = [r for r in results if r.insn == insn and (kind is None or r.kind == kind)]
    assert len(found) == 1, (insn, kind, found)
    return found[0]


def value_at(insns: list[Instruction], i: int) -> int:
    """The relocatable value of instruction ``i``: imm, off or the ld_imm64 constant."""
    insn = insns[i]
    if insn.code & 7 in (1, 2, 3):
        return insn.off
    if insn.code == 0x18:
        return imm64(insns, i)
    return insn.imm & M32


def access_size(insn: Instruction) -> int:
    return {0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}[insn.code & 0x18]


def syscall_prog(obj: Obj, insns: list[Instruction], name: str) -> Program:
    section, start, count = obj.funcs[name]
    return Program.load(insns[start:start + count], prog_type=ProgType.SYSCALL,
                        flags=ProgFlag.SLEEPABLE, name=name)


# ---------------------------------------------------------------------- the running kernel


def test_offsets_match_bpftool(reloc_obj, bpftool_btf):
    insns, results = reloc_obj.relocate("syscall")
    task = dump_struct(bpftool_btf, "task_struct")
    member = {name: dump_member(bpftool_btf, task, name) for name in
              ("pid", "tgid", "flags", "comm", "real_parent", "sched_reset_on_fork")}
    by_field: dict[tuple[str, K], set[int]] = {}
    for r in results:
        if not r.poisoned:
            by_field.setdefault((r.description, r.kind), set()).add(r.value)
    assert by_field[("task_struct___mine.tgid", K.FIELD_BYTE_OFFSET)] == {member["tgid"][0] // 8}
    assert by_field[("task_struct___mine.pid", K.FIELD_BYTE_OFFSET)] == {member["pid"][0] // 8}
    assert by_field[("task_struct___mine.flags", K.FIELD_BYTE_OFFSET)] == {member["flags"][0] // 8}
    assert by_field[("task_struct___mine.flags", K.FIELD_BYTE_SIZE)] == {4}
    assert by_field[("task_struct___mine.comm[1]", K.FIELD_BYTE_OFFSET)] == {member["comm"][0] // 8 + 1}
    assert by_field[("task_struct___mine.comm[0]", K.FIELD_BYTE_SIZE)] == {1}
    assert by_field[("task_struct___mine.real_parent", K.FIELD_BYTE_OFFSET)] == {member["real_parent"][0] // 8}
    assert by_field[("task_struct___bits.tgid", K.FIELD_BYTE_OFFSET)] == {member["tgid"][0] // 8}
    assert by_field[("task_struct___bits.tgid", K.FIELD_LSHIFT_U64)] == {32}
    assert by_field[("task_struct___bits.tgid", K.FIELD_RSHIFT_U64)] == {32}
    assert by_field[("task_struct___bits.tgid", K.FIELD_SIGNED)] == {1}
    assert by_field[("struct task_struct___mine", K.TYPE_SIZE)] == {task.size}
    assert by_field[("struct task_struct___mine", K.TYPE_ID_TARGET)] == {task.id}
    assert by_field[("struct task_struct___mine", K.TYPE_ID_LOCAL)] == {
        reloc_obj.btf.find("task_struct___mine").id}
    pid_type = bpftool_btf["id"][bpftool_btf["name"]["pid_type"][0]]
    assert by_field[("pid_type___mine::PIDTYPE_SID___mine", K.ENUMVAL_VALUE)] == {pid_type.values["PIDTYPE_SID"]}

    # members the kernel keeps inside anonymous unions and structs
    skb = dump_struct(bpftool_btf, "sk_buff")
    for field in ("len", "next", "protocol"):
        assert by_field[(f"sk_buff___mine.{field}", K.FIELD_BYTE_OFFSET)] == {
            dump_member(bpftool_btf, skb, field)[0] // 8}, field

    # the bitfield: offset/size of the smallest aligned load covering it, and the shifts
    bit_off, tid, bits = member["sched_reset_on_fork"]
    size = bpftool_btf["id"][tid].size
    byte_off = bit_off // 8 // size * size
    assert by_field[("task_struct___mine.sched_reset_on_fork", K.FIELD_BYTE_OFFSET)] == {byte_off}
    assert by_field[("task_struct___mine.sched_reset_on_fork", K.FIELD_BYTE_SIZE)] == {size}
    assert by_field[("task_struct___mine.sched_reset_on_fork", K.FIELD_LSHIFT_U64)] == {
        64 - (bit_off + bits - byte_off * 8)}
    assert by_field[("task_struct___mine.sched_reset_on_fork", K.FIELD_RSHIFT_U64)] == {64 - bits}
    assert by_field[("task_struct___mine.sched_reset_on_fork", K.FIELD_SIGNED)] == {0}

    # every relocated instruction holds what its result says
    for r in results:
        if not r.poisoned:
            assert value_at(insns, r.insn) == r.value, r


def test_missing_things(reloc_obj):
    insns, results = reloc_obj.relocate("syscall")
    by_desc = {(r.description, r.kind): r for r in results}
    exists = by_desc[("task_struct___mine.no_such_field", K.FIELD_EXISTS)]
    assert exists.value == 0 and not exists.poisoned and exists.target is None
    assert insns[exists.insn].imm == 0
    assert "task_struct___mine.no_such_field not found in kernel BTF" in exists.reason
    assert by_desc[("struct core_no_such_type", K.TYPE_EXISTS)].value == 0
    assert by_desc[("pid_type___mine::PIDTYPE_NONE___mine", K.ENUMVAL_EXISTS)].value == 0
    assert by_desc[("task_struct___mine.comm", K.FIELD_EXISTS)].value == 1
    assert by_desc[("sk_buff___mine.pkt_type", K.FIELD_EXISTS)].value == 1
    assert by_desc[("struct task_struct___mine", K.TYPE_EXISTS)].value == 1
    # TYPE_MATCHES is strict: 'flags' is 8 bytes locally and 4 in the kernel
    assert by_desc[("struct task_struct___mine", K.TYPE_MATCHES)].value == 0
    assert by_desc[("struct list_head___mine", K.TYPE_MATCHES)].value == 1

    poisoned = [r for r in results if r.poisoned]
    assert sorted(r.description for r in poisoned) == [
        "pid_type___mine::PIDTYPE_NONE___mine", "task_struct___mine.no_such_field",
        "task_struct___mine.no_such_field", "task_struct___wide.pid"]
    for r in poisoned:
        assert r.value is None and r.kind in (K.FIELD_BYTE_OFFSET, K.ENUMVAL_VALUE)
        for slot in range(r.insn, r.insn + r.slots):
            insn = insns[slot]
            assert (insn.code, insn.dst, insn.src, insn.off, insn.imm) == (0x85, 0, 0, 0, POISON_HELPER_ID)
            assert is_poison(insn)
            assert explain_poison(slot, results).startswith("CO-RE relocation failed: ")
    enum = next(r for r in poisoned if r.kind == K.ENUMVAL_VALUE)
    assert enum.slots == 2      # both halves of the ld_imm64
    wide = next(r for r in poisoned if "wide" in r.description)
    assert wide.target == "vmlinux" and "only unsigned integers and pointers can be resized" in wide.reason
    assert explain_poison(0, results) is None


@pytest.mark.root
def test_matches_libbpf(reloc_obj, tmp_path):
    """libbpf (bpftool -d) patches every instruction the way pybpf does."""
    pin = Path("/sys/fs/bpf") / f"pybpf_core_{os.getpid()}"
    try:
        log = subprocess.run(["bpftool", "-d", "prog", "loadall", str(reloc_obj.path), str(pin)],
                             capture_output=True, text=True, timeout=60).stderr
    finally:
        subprocess.run(["rm", "-rf", str(pin)], check=False)
    patched = re.compile(r"prog '(\w+)': relo #\d+: patched insn #(\d+) \(([A-Z0-9/]+)\) "
                         r"(imm64|imm|off|mem_sz) (\d+) -> (\d+)")
    poisoned = re.compile(r"prog '(\w+)': relo #\d+: substituting insn #(\d+) w/ invalid insn")
    insns, results = reloc_obj.relocate("syscall")
    seen_values = seen_poison = 0
    for line in log.splitlines():
        if m := patched.search(line):
            start = reloc_obj.funcs[m[1]][1]
            slot, what, new = start + int(m[2]), m[4], int(m[6])
            if what == "mem_sz":
                assert access_size(insns[slot]) == new, line
            elif what == "imm64":
                assert imm64(insns, slot) == new, line
            elif what == "off":
                assert insns[slot].off == new, line
            else:
                assert insns[slot].imm & M32 == new & M32, line
            seen_values += 1
        elif m := poisoned.search(line):
            assert is_poison(insns[reloc_obj.funcs[m[1]][1] + int(m[2])]), line
            seen_poison += 1
    assert seen_poison == sum(r.slots for r in results if r.poisoned) == 5
    assert seen_values >= len(results) - 4, log[-2000:]


@pytest.mark.root
def test_run_in_kernel(reloc_obj):
    """The relocated program runs in this thread and reads this thread's task_struct."""
    insns, results = reloc_obj.relocate("syscall")
    task = kernel.kernel_spec().find("task_struct", Struct)
    with open("/proc/thread-self/comm", "rb") as f:
        comm = f.read().rstrip(b"\n")
    param = os.sched_param(0)
    with syscall_prog(reloc_obj, insns, "core_run") as prog:
        try:
            os.sched_setscheduler(0, os.SCHED_OTHER | os.SCHED_RESET_ON_FORK, param)
            on = struct.unpack("32Q", prog.test_run(ctx=bytes(256)).ctx_out)
        finally:
            os.sched_setscheduler(0, os.SCHED_OTHER, param)
        res = prog.test_run(ctx=bytes(256))
    with open("/proc/thread-self/stat") as f:     # after the runs: PF_SUPERPRIV is set by then
        flags = int(f.read().rsplit(")", 1)[1].split()[6])
    v = struct.unpack("32Q", res.ctx_out)
    assert res.retval == 0
    assert v[0] == os.getpid()                          # t->tgid, direct load at the kernel offset
    assert v[1] == threading.get_native_id()            # t->pid
    assert v[2] == flags                                # 8-byte load shrunk to the 4-byte field
    assert v[3] == comm[1]                              # t->comm[1]
    assert v[4] == os.getppid()                         # BPF_CORE_READ(t, real_parent, tgid)
    assert v[5] == task.member("pid").offset
    assert v[6:9] == (4, 0, 1)
    assert v[9] == 42                                   # the poisoned load was dead code
    assert (v[10], v[11], on[10], on[11]) == (0, 0, 1, 1)   # sched_reset_on_fork, probed and direct
    assert v[12] == os.getpid()                         # a local bitfield over the kernel's plain int
    assert v[13:16] == (0, 1, task.size)
    assert v[16] == task.id
    assert v[17] == reloc_obj.btf.find("task_struct___mine").id
    assert v[18:23] == (0, 1, 1, 3, 0)
    skb = kernel.kernel_spec().find("sk_buff", Struct)
    assert v[23] == skb.member("len").offset
    assert v[26:28] == (1, 1)


@pytest.mark.parametrize("name, reason", [
    ("core_poisoned", "CO-RE relocation failed: field task_struct___mine.no_such_field not found in kernel BTF"),
    ("core_wide", "CO-RE relocation failed: field task_struct___wide.pid is 4 bytes in kernel BTF but "
                  "accessed as 8: only unsigned integers and pointers can be resized"),
    ("core_enum_missing", "CO-RE relocation failed: enum value pid_type___mine::PIDTYPE_NONE___mine "
                          "not found in kernel BTF"),
])
@pytest.mark.root
def test_reachable_poison_is_refused(reloc_obj, name, reason):
    insns, results = reloc_obj.relocate("syscall")
    with pytest.raises(VerifierError) as info:
        syscall_prog(reloc_obj, insns, name).close()
    err = info.value
    assert "invalid func unknown#195896080" in err.log
    base = reloc_obj.funcs[name][1]
    assert explain_poison(err.insn_index + base, results) == reason


def test_poison_inside_loaded_program_text(reloc_obj):
    """core_run keeps a poisoned instruction (dead code) and still loads: checked above; here
    the poisoned slot is identified."""
    insns, results = reloc_obj.relocate("syscall")
    start, count = reloc_obj.funcs["core_run"][1:]
    dead = [r for r in results if r.poisoned and start <= r.insn < start + count]
    assert len(dead) == 1 and dead[0].description == "task_struct___mine.no_such_field"


# ---------------------------------------------------------------------- synthetic targets


def target_spec(*extra_structs: str) -> Spec:
    """Target BTF for core_local.bpf.c: every field moved, resized or missing.

    struct core_s (80 bytes):  next@0  b:u32@8  a:s64@16
        anon struct @24 { anon union @0 { int d }; struct core_inner in @4 }
        c:short@64  bf1:3@bit528 bf2:9@bit531 (u32)  bf3:7@bit540 (s32)
        color@72  char tail[]@76
    struct core_inner (28): int arr[6]@0, int x@24
    enum core_color: CORE_BLUE=8, CORE_GREEN=16 (no CORE_RED)
    """
    i32 = Int("int", 4, SIGNED)
    u32 = Int("unsigned int", 4)
    i64 = Int("long long", 8, SIGNED)
    i16 = Int("short", 2, SIGNED)
    char = Int("char", 1, SIGNED)
    inner = Struct("core_inner", 28, [Member("arr", Array(i32, u32, 6), 0), Member("x", i32, 192)])
    color = Enum("core_color", 4, [("CORE_BLUE", 8), ("CORE_GREEN", 16)])
    b = Builder()

    def core_s(name: str, a_offset: int = 128) -> Struct:
        s = Struct(name, 80)
        anon = Struct("", 32, [Member("", Union("", 4, [Member("d", i32, 0)]), 0), Member("in", inner, 32)])
        s.members = [
            Member("next", Pointer(s), 0), Member("b", u32, 64), Member("a", i64, a_offset),
            Member("", anon, 192), Member("c", i16, 512),
            Member("bf1", u32, 528, 3), Member("bf2", u32, 531, 9), Member("bf3", i32, 540, 7),
            Member("color", Typedef("core_color_t", color), 576), Member("tail", Array(char, u32, 0), 608),
        ]
        return s

    b.add(core_s("core_s"))
    for name in extra_structs:
        b.add(core_s(name, a_offset=128 if name.endswith("same") else 320))
    return Spec.parse(b.encode())


def test_synthetic_target(local_obj):
    insns, results = local_obj.relocate("syscall", target_spec())
    by = {(r.description, r.kind): r for r in results}

    def field(name: str, kind: K = K.FIELD_BYTE_OFFSET) -> CoreResult:
        r = by[(name, kind)]
        assert r.target in (None, "target")
        return r

    a = field("core_s.a")
    assert a.poisoned and "is 8 bytes in target BTF but accessed as 4" in a.reason
    b_load, b_store = sorted((r for r in results if r.description == "core_s.b"), key=lambda r: r.insn)
    for r, cls in ((b_load, 1), (b_store, 3)):
        insn = insns[r.insn]
        assert (r.value, insn.off, insn.code & 7, access_size(insn)) == (8, 8, cls, 4)   # DW -> W
    assert (insns[field("core_s.c").insn].off, access_size(insns[field("core_s.c").insn])) == (64, 2)
    assert insns[field("core_s.d").insn].off == 24          # through an anonymous struct and union
    assert field("core_s.in").value == 28
    assert field("core_s.color").value == 72               # enum behind a typedef in the target
    assert field("core_s.next").value == 0
    assert field("core_s.tail[5]").value == 81             # flexible array element
    assert field("core_s.c_alias", K.FIELD_EXISTS).value == 0
    assert field("core_s.in.arr", K.FIELD_BYTE_SIZE).value == 24
    assert field("core_s.in.arr[3]").value == 28 + 12
    # bitfields: the smallest aligned load covering the bits, then shifts
    assert [field("core_s.bf2", k).value for k in
            (K.FIELD_BYTE_OFFSET, K.FIELD_BYTE_SIZE, K.FIELD_LSHIFT_U64, K.FIELD_SIGNED)] == [64, 4, 36, 0]
    assert {r.value for r in results if r.description == "core_s.bf2" and r.kind == K.FIELD_RSHIFT_U64} == {55}
    assert [field("core_s.bf3", k).value for k in
            (K.FIELD_BYTE_OFFSET, K.FIELD_BYTE_SIZE, K.FIELD_LSHIFT_U64, K.FIELD_SIGNED)] == [64, 8, 29, 1]
    assert {r.value for r in results if r.description == "core_s.bf3" and r.kind == K.FIELD_RSHIFT_U64} == {57}
    green = by[("core_color::CORE_GREEN", K.ENUMVAL_VALUE)]
    assert green.value == 16 and imm64(insns, green.insn) == 16
    assert by[("core_color::CORE_RED", K.ENUMVAL_EXISTS)].value == 0
    assert by[("struct core_inner", K.TYPE_SIZE)].value == 28
    assert by[("struct core_inner", K.TYPE_MATCHES)].value == 0     # arr[4] vs arr[6]
    for r in results:
        if not r.poisoned:
            assert value_at(insns, r.insn) == r.value, r


def test_candidates_must_agree(local_obj):
    # a flavor with the same layout is a second candidate that agrees
    same = target_spec("core_s___same")
    insns, results = local_obj.relocate("syscall", same)
    assert {r.target_type_id for r in results if r.description == "core_s.b"} == {same.find("core_s").id}
    # one whose 'a' sits elsewhere makes every relocation of 'a' ambiguous
    with pytest.raises(ObjectError, match=r"section 'syscall': CO-RE relocation #0 at byte offset 8 "
                                          r"\(FIELD_BYTE_OFFSET core_s\.a\): ambiguous"):
        local_obj.relocate("syscall", target_spec("core_s___v2"))


def test_type_relocations_without_target_types(local_obj):
    empty = Spec.parse(Builder().encode())
    insns, results = local_obj.relocate("syscall", empty)
    for r in results:
        if r.kind in (K.FIELD_EXISTS, K.TYPE_EXISTS, K.TYPE_SIZE, K.TYPE_MATCHES, K.ENUMVAL_EXISTS,
                      K.TYPE_ID_TARGET):
            assert r.value == 0 and not r.poisoned and "not found in target BTF" in r.reason
        elif r.kind != K.TYPE_ID_LOCAL:
            assert r.poisoned


# ---------------------------------------------------------------------- malformed relocations


def handmade(kind: K, access: str, *, off: int = 0, insns: list[Instruction] | None = None,
             type_id: int | None = None) -> tuple[list[Instruction], list[CoreRelo], Spec]:
    """A local BTF with struct loc { int x; int y; } and one relocation on r0 = 4."""
    i32 = Int("int", 4, SIGNED)
    b = Builder()
    sid = b.add(Struct("loc", 8, [Member("x", i32, 0), Member("y", i32, 32)]))
    b.add(Struct("", 4, [Member("z", i32, 0)]))
    local = Spec.parse(b.encode())
    insns = insns if insns is not None else [Instruction(0xB7, imm=4), Instruction(0x95)]
    return insns, [CoreRelo(off, sid if type_id is None else type_id, access, kind)], local


def loc_target() -> Spec:
    i32 = Int("int", 4, SIGNED)
    b = Builder()
    b.add(Struct("loc", 12, [Member("pad", i32, 0), Member("y", i32, 64), Member("x", i32, 32)]))
    return Spec.parse(b.encode())


@pytest.mark.parametrize("relo, message", [
    (dict(kind=K.FIELD_BYTE_OFFSET, access="0:x"), "malformed access string '0:x'"),
    (dict(kind=K.FIELD_BYTE_OFFSET, access=""), "malformed access string ''"),
    (dict(kind=K.FIELD_BYTE_OFFSET, access="0::1"), "malformed access string"),
    (dict(kind=K.FIELD_BYTE_OFFSET, access="0:7"), "selects member 7 of struct loc, which has 2"),
    (dict(kind=K.FIELD_BYTE_OFFSET, access="0:1:0"), "indexes into int"),
    (dict(kind=K.TYPE_SIZE, access="0:1"), "type-based relocation with access string '0:1'"),
    (dict(kind=K.ENUMVAL_VALUE, access="0"), "not an enum"),
    (dict(kind=K.FIELD_BYTE_OFFSET, access="0:1", type_id=99), "type id 99 out of range"),
    (dict(kind=K.FIELD_BYTE_OFFSET, access="0:1", off=4), "not a multiple of the 8-byte instruction size"),
    (dict(kind=K.FIELD_BYTE_OFFSET, access="0:1", off=16), "instruction 2 is past the end of the section"),
    (dict(kind=K.FIELD_BYTE_OFFSET, access="0:1", off=8), "opcode 0x95) cannot carry a CO-RE relocation"),
    (dict(kind=K.FIELD_BYTE_OFFSET, access="0:0"), "holds immediate 4, expected the local value 0"),
    (dict(kind=K.FIELD_BYTE_OFFSET, access="0:0", type_id=2), "anonymous type"),
    (dict(kind=99, access="0"), "unknown relocation kind 99"),
])
def test_malformed(relo, message):
    off = relo.get("off", 0)
    insns, relos, local = handmade(relo["kind"] if relo["kind"] != 99 else K.TYPE_SIZE, relo["access"],
                                   off=off, type_id=relo.get("type_id"))
    if relo["kind"] == 99:
        relos = [relos[0]._replace(kind=99)]
    before = encode_all(insns)
    with pytest.raises(ObjectError) as info:
        apply_relocations(insns, relos, local, loc_target(), section="kprobe/x")
    text = str(info.value)
    assert text.startswith(f"section 'kprobe/x': CO-RE relocation #0 at byte offset {off}"), text
    assert message in text, text
    assert encode_all(insns) == before


def test_error_leaves_instructions_untouched(local_obj):
    insns = local_obj.insns("syscall")
    relos = list(local_obj.ext.core_relos["syscall"])
    relos.append(relos[-1]._replace(access_str="0:1:5"))          # 'b' has no members
    with pytest.raises(ObjectError, match=r"byte offset 776 .*indexes into unsigned long long"):
        apply_relocations(insns, relos, local_obj.btf, target_spec(), section="syscall")
    assert encode_all(insns) == local_obj.sections["syscall"]


def test_handmade_kinds():
    # ALU immediate, LDX offset, ld_imm64 and ST, each relocated onto loc_target()
    insns = [Instruction(0xB7, imm=4), Instruction(0x61, dst=1, src=2, off=4),
             Instruction(0x18, imm=4), Instruction(0, imm=0), Instruction(0x62, dst=1, off=4, imm=9),
             Instruction(0x95)]
    _, relos, local = handmade(K.FIELD_BYTE_OFFSET, "0:1")
    relos = [relos[0]._replace(insn_off=8 * i) for i in (0, 1, 2, 4)]
    results = apply_relocations(insns, relos, local, loc_target())
    assert [r.value for r in results] == [8, 8, 8, 8]
    assert (insns[0].imm, insns[1].off, imm64(insns, 2), insns[4].off, insns[4].imm) == (8, 8, 8, 8, 9)
    assert [r.slots for r in results] == [1, 1, 2, 1]
    assert [r.local_value for r in results] == [4, 4, 4, 4]
    # an ALU instruction with a register source cannot be relocated
    with pytest.raises(ObjectError, match="takes a register"):
        apply_relocations([Instruction(0xBF, dst=1, src=2), Instruction(0x95)], relos[:1], local, loc_target())
    # a poisoned ld_imm64 loses both halves
    insns = [Instruction(0x18, imm=4), Instruction(0, imm=0), Instruction(0x95)]
    _, relos, local = handmade(K.FIELD_BYTE_OFFSET, "0:1")
    [r] = apply_relocations(insns, relos, local, Spec.parse(Builder().encode()))
    assert r.poisoned and r.slots == 2 and is_poison(insns[0]) and is_poison(insns[1])
    assert explain_poison(1, [r]) == ("CO-RE relocation failed: field loc.y not found in target BTF "
                                      "(no struct named loc)")


def test_enum64_and_signed_enum():
    b = Builder()
    eid = b.add(Enum64("big", 8, [("BIG_A", 1), ("BIG_B", 2)]))
    local = Spec.parse(b.encode())
    t = Builder()
    t.add(Enum64("big", 8, [("BIG_B", 1 << 40), ("BIG_A", -5)], signed=True))
    target = Spec.parse(t.encode())
    insns = [Instruction(0x18, imm=2), Instruction(0), Instruction(0x95)]
    [r] = apply_relocations(insns, [CoreRelo(0, eid, "1", K.ENUMVAL_VALUE)], local, target)
    assert r.value == 1 << 40 and imm64(insns, 0) == 1 << 40
    insns = [Instruction(0x18, imm=1), Instruction(0), Instruction(0x95)]
    [r] = apply_relocations(insns, [CoreRelo(0, eid, "0", K.ENUMVAL_VALUE)], local, target)
    assert r.value == -5 and imm64(insns, 0) == (1 << 64) - 5
    # an ENUM may match an ENUM64, but a 64-bit value does not fit a 32-bit immediate
    b = Builder()
    eid = b.add(Enum("big", 4, [("BIG_B", 2)]))
    local = Spec.parse(b.encode())
    insns = [Instruction(0xB7, imm=1), Instruction(0x95)]
    [r] = apply_relocations(insns, [CoreRelo(0, eid, "0", K.ENUMVAL_EXISTS)], local, target)
    assert (r.value, r.target, insns[0].imm) == (1, "target", 1)
    insns = [Instruction(0xB7, imm=2), Instruction(0x95)]
    with pytest.raises(ObjectError, match="value 1099511627776 does not fit the 32-bit immediate"):
        apply_relocations(insns, [CoreRelo(0, eid, "0", K.ENUMVAL_VALUE)], local, target)


_FUZZ = {}


def _fuzz_setup():
    if not _FUZZ:
        obj = load_obj("core_local")
        _FUZZ.update(obj=obj, target=target_spec())
    return _FUZZ["obj"], _FUZZ["target"]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.integers(-16, 900), st.integers(-2, 40),
                          st.one_of(st.sampled_from(["0", "0:1", "0:3:1:1:3", "0:9:5", "0:99", ":", "1",
                                                     "0:2:1", "0:-1", "00:1", "0:3:1:1:9"]),
                                    st.text(alphabet="0123456789:x ", max_size=12)),
                          st.integers(0, 14)), min_size=1, max_size=4))
def test_fuzz_only_object_errors(records):
    obj, target = _fuzz_setup()
    relos = [CoreRelo(o, t, a, k) for o, t, a, k in records]
    insns = obj.insns("syscall")
    try:
        apply_relocations(insns, relos, obj.btf, target, section="syscall")
    except ObjectError as err:
        assert str(err).startswith("section 'syscall': CO-RE relocation #")


# ---------------------------------------------------------------------- candidate search


def test_module_btf_is_searched_after_vmlinux(tmp_path, monkeypatch):
    """Types missing from vmlinux are looked up in module BTF (a fake module here)."""
    (tmp_path / "vmlinux").symlink_to("/sys/kernel/btf/vmlinux")
    monkeypatch.setattr(kernel, "BTF_DIR", tmp_path)
    kernel.clear_cache()
    try:
        vmlinux = kernel.kernel_spec()
        i32 = Int("int", 4, SIGNED)
        b = Builder(base=vmlinux)
        b.add(Struct("core_modonly", 16, [Member("pad", Int("long", 8, SIGNED), 0), Member("x", i32, 64)]))
        b.add(Struct("task_struct", 4, [Member("x", i32, 0)]))      # shadowed by vmlinux's
        (tmp_path / "core_fake_mod").write_bytes(b.encode())

        lb = Builder()
        mod_local = lb.add(Struct("core_modonly___mine", 8, [Member("y", i32, 0), Member("x", i32, 32)]))
        task_local = lb.add(Struct("task_struct", 8, [Member("y", i32, 0), Member("pid", i32, 32)]))
        local = Spec.parse(lb.encode())
        insns = [Instruction(0xB7, imm=4), Instruction(0x18, imm=mod_local), Instruction(0),
                 Instruction(0xB7, imm=4), Instruction(0x95)]
        relos = [CoreRelo(0, mod_local, "0:1", K.FIELD_BYTE_OFFSET),
                 CoreRelo(8, mod_local, "0", K.TYPE_ID_TARGET),
                 CoreRelo(24, task_local, "0:1", K.FIELD_BYTE_OFFSET)]
        res = apply_relocations(insns, relos, local, section="tp/x")
        mod = kernel.module_spec("core_fake_mod")
        assert (res[0].target, res[0].value, insns[0].imm) == ("core_fake_mod", 8, 8)
        assert res[1].value == mod.find("core_modonly").id >= len(vmlinux)
        assert (res[2].target, res[2].value) == ("vmlinux", vmlinux.find("task_struct", Struct).member("pid").offset)
    finally:
        monkeypatch.undo()
        kernel.clear_cache()
        clear_candidate_cache()


def test_name_index_not_full_scan(reloc_obj):
    """Relocating against a freshly parsed vmlinux decodes only the types it looks at."""
    with open("/sys/kernel/btf/vmlinux", "rb") as f:
        target = Spec.parse(f.read(), lazy=True)
    seen = []
    real = Spec.type_by_id

    def counting(self, tid):
        if self is target:
            seen.append(tid)
        return real(self, tid)

    import unittest.mock
    with unittest.mock.patch.object(Spec, "type_by_id", counting):
        reloc_obj.relocate("syscall", target)
    assert 0 < len(set(seen)) < 2000, len(set(seen))


def test_incompatible_field_and_wide_bitfield():
    i32, u64 = Int("int", 4, SIGNED), Int("unsigned long", 8)
    b = Builder()
    sid = b.add(Struct("loc", 16, [Member("x", i32, 0), Member("y", Pointer(i32), 64)]))
    bid = b.add(Struct("bits", 16, [Member("w", u64, 0, 10)]))
    local = Spec.parse(b.encode())
    t = Builder()
    t.add(Struct("loc", 8, [Member("x", i32, 0), Member("y", i32, 32)]))
    t.add(Struct("bits", 16, [Member("w", u64, 60, 10)]))      # bits 60..69 straddle two u64
    target = Spec.parse(t.encode())
    insns = [Instruction(0x79, dst=1, src=2, off=8), Instruction(0x95)]
    [r] = apply_relocations(insns, [CoreRelo(0, sid, "0:1", K.FIELD_BYTE_OFFSET)], local, target)
    assert r.poisoned and r.reason == (
        "field loc.y has an incompatible type in target BTF: field 'y' is int in struct loc, "
        "which does not fit the local int *")
    insns = [Instruction(0xB7, imm=0), Instruction(0x95)]
    with pytest.raises(ObjectError, match="bitfield 'w' \\(target\\) cannot be read with one 64-bit load"):
        apply_relocations(insns, [CoreRelo(0, bid, "0:0", K.FIELD_BYTE_OFFSET)], local, target)


def test_type_compat_and_match_rules():
    from pybpf.btf.core_match import types_are_compat, types_match
    from pybpf.btf.types import Const, FuncProto, Fwd

    i32, u32, i64 = Int("int", 4, SIGNED), Int("unsigned int", 4), Int("long", 8, SIGNED)
    a = Struct("s", 8, [Member("x", i32, 0), Member("y", i32, 32)])
    a_more = Struct("s", 12, [Member("y", i32, 0), Member("z", i64, 32), Member("x", Const(i32), 96)])
    a_unsigned = Struct("s", 8, [Member("x", u32, 0), Member("y", i32, 32)])
    # compat (TYPE_EXISTS/SIZE/ID_TARGET): names only for composites; pointers and arrays look inside
    assert types_are_compat(a, a_unsigned)
    assert types_are_compat(Pointer(a), Pointer(a_more))
    assert not types_are_compat(Pointer(a), Pointer(i32))
    assert types_are_compat(Array(i32, None, 2), Array(u32, None, 9))
    assert types_are_compat(FuncProto(i32, [("p", i32)]), FuncProto(u32, [("q", Typedef("t", i64))]))
    assert not types_are_compat(FuncProto(i32, [("p", i32)]), FuncProto(i32, []))
    assert not types_are_compat(Int("old_bits", 4, SIGNED, bits=3, offset=2), i32)
    # match (TYPE_MATCHES): members by name with matching types, sizes and signedness
    assert types_match(a, a_more)
    assert not types_match(a_more, a)                      # more local members than the target has
    assert not types_match(a, a_unsigned)                  # int vs unsigned int
    assert not types_match(Array(i32, None, 2), Array(i32, None, 3))
    assert types_match(Pointer(Struct("n", 0)), Pointer(Fwd("n")))       # behind a pointer only
    assert not types_match(Struct("n", 0), Fwd("n"))
    assert not types_match(Pointer(Union("n", 0)), Pointer(Fwd("n")))
    assert types_match(Enum("e", 4, [("A", 1)]), Enum64("e", 4, [("B", 2), ("A___x", 7)]))
    assert not types_match(Enum("e", 4, [("A", 1)]), Enum("e", 8, [("A", 1)]))
    assert not types_match(Enum("e", 4, [("C", 1)]), Enum("e", 4, [("A", 1)]))


@pytest.mark.parametrize("name, reason", [
    ("core_poisoned", "CO-RE relocation failed: field task_struct___mine.no_such_field not found in kernel BTF"),
    ("core_enum_missing", "CO-RE relocation failed: enum value pid_type___mine::PIDTYPE_NONE___mine "
                          "not found in kernel BTF"),
])
@pytest.mark.root
def test_loader_error_names_the_failed_relocation(name, reason):
    """Through ObjectSpec.load the verifier's "unknown func" becomes the relocation that failed."""
    import pybpf

    spec = pybpf.ObjectSpec.from_file(build("core_reloc"))
    with pytest.raises(VerifierError) as info:
        spec.load(programs=[name]).close()
    assert info.value.hint == reason
    assert reason in str(info.value)
