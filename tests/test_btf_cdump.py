"""Tests of pybpf.btf.cdump (BTF -> C) and ``pybpf vmlinux-h``.

A small hand-built BTF covers each C construct (forward declarations through
pointer cycles, anonymous nested types, bitfields and padding, packed
structs, flexible arrays, function pointers, enum64, 1-byte enums, names used
twice); clang-19 compiles the output and checks every struct's size against
BTF.  The kernel's vmlinux BTF is dumped and compared with bpftool's dump (the
same struct/union/enum/typedef names), and a CO-RE program including it is
built and loaded.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
import subprocess
from pathlib import Path

import pytest

from pybpf.btf.cdump import dump_c
from pybpf.btf.reader import Spec
from pybpf.btf.types import (
    VOID, Array, Composite, Const, Enum, Enum64, FuncProto, Fwd, Int, IntEncoding, Member,
    Pointer, Struct, Typedef, Union,
)
from pybpf.btf.writer import encode

VMLINUX = Path("/sys/kernel/btf/vmlinux")
CLANG = shutil.which("clang-19")
BPFTOOL = shutil.which("bpftool")


@pytest.fixture
def clang() -> str:
    """clang-19, which the test set-up installs: a missing one is a failure, not a skip."""
    assert CLANG, "clang-19 is not installed: run scripts/install-test-deps.sh"
    return CLANG


needs_clang = pytest.mark.usefixtures("clang")


def compile_c(tmp_path: Path, header: str, body: str, *, syntax_only: bool = True) -> Path:
    """Compile ``body`` including ``header`` as vmlinux.h for BPF with libbpf's headers; the object."""
    (tmp_path / "vmlinux.h").write_text(header)
    src = tmp_path / "prog.bpf.c"
    src.write_text(body)
    out = tmp_path / "prog.bpf.o"
    cmd = [CLANG, "-g", "-O2", "-target", "bpf", "-D__TARGET_ARCH_x86", "-Werror", "-I", str(tmp_path),
           "-I", "/usr/include/x86_64-linux-gnu", "-c", str(src), "-o", str(out)]
    if syntax_only:
        cmd.insert(1, "-fsyntax-only")
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-4000:]
    return out


def defined_names(c: str) -> set[str]:
    """The struct/union/enum tags and typedef names a C header defines (top-level statements)."""
    names = set()
    for stmt in c.split(";\n\n"):
        stmt = stmt.strip()
        m = re.match(r"(?:#[^\n]*\n|\s)*(struct|union|enum) (\w+) \{", stmt)
        if m:
            names.add(f"{m[1]} {m[2]}")
        elif stmt.startswith("typedef"):
            while "{" in stmt:      # drop the bodies of inline definitions
                stmt = re.sub(r"\{[^{}]*\}", "", stmt)
            stmt = re.sub(r"__attribute__\(\((?:[^()]|\([^()]*\))*\)\)", "", stmt)
            # the declared name: "x", "x[4]", "(*x)(...)", "x(...)" (a function type)
            names.add("typedef " + re.search(r"(\w+)(?=[)(\[]|$)", stmt.rstrip())[1])
    return names


def size_asserts(spec: Spec, c: str) -> str:
    """_Static_asserts of sizeof() of every struct/union/enum with a name of its own defined in ``c``."""
    defined = defined_names(c)
    tagged = [t for t in spec.types[1:] if isinstance(t, (Composite, Enum)) and t.name]
    uses = Counter(t.name for t in tagged)      # a name used twice is numbered: name___2
    lines = []
    for t in tagged:
        if uses[t.name] == 1:
            kw = "struct" if isinstance(t, Struct) else "union" if isinstance(t, Union) else "enum"
            if f"{kw} {t.name}" in defined and not _holds_va_list(t):
                lines.append(f'_Static_assert(sizeof({kw} {t.name}) == {t.size}, "{t.name}");')
    return "\n".join(lines)


def _holds_va_list(t, depth: int = 0) -> bool:
    """va_list is a struct on x86-64 but a pointer for BPF: structs embedding it differ (bpftool's too)."""
    if depth > 50:
        return False
    if isinstance(t, Typedef):
        return t.name == "__builtin_va_list" or _holds_va_list(t.type, depth + 1)
    if isinstance(t, Array):
        return _holds_va_list(t.elem, depth + 1)
    if isinstance(t, Composite):
        return any(_holds_va_list(m.type, depth + 1) for m in t.members)
    return False


# ---------------------------------------------------------------------- a small BTF, no root


def small_spec() -> Spec:
    char = Int("char", 1, IntEncoding.SIGNED)
    i32 = Int("int", 4, IntEncoding.SIGNED)
    u8 = Int("unsigned char", 1)
    u32 = Int("unsigned int", 4)
    u64 = Int("long long unsigned int", 8)
    # a <-> b only through pointers: needs a forward declaration
    a = Struct("a", 16, [])
    b = Struct("b", 16, [Member("a", Pointer(a), 0), Member("n", i32, 64)])
    a.members = [Member("b", Pointer(b), 0), Member("n", i32, 64)]
    a_t = Typedef("a_t", a)
    # anonymous nested union and struct, bitfields with a gap, a flexible array
    inner = Struct("", 8, [Member("lo", u32, 0), Member("hi", u32, 32)])
    anon = Union("", 8, [Member("whole", u64, 0), Member("parts", inner, 0)])
    bits = Struct("bits", 16, [
        Member("x", u32, 0, 3), Member("y", u32, 3, 5),
        Member("u", anon, 64),
        Member("data", Array(u8, None, 0), 128),
    ])
    # packed, and a member C would not place where BTF says (explicit padding)
    packed = Struct("packed", 5, [Member("c", char, 0), Member("v", u32, 8)])
    padded = Struct("padded", 64, [Member("c", char, 0), Member("v", u64, 256)])
    # function pointers: a member, and a typedef of one returning a pointer
    fn = FuncProto(i32, [("", Pointer(a)), ("", i32)])
    ops = Struct("ops", 8, [Member("run", Pointer(fn), 0)])
    getter_t = Typedef("getter_t", Pointer(FuncProto(Pointer(b), [("", Pointer(Const(char)))])))
    varargs_t = Typedef("printf_t", Pointer(FuncProto(i32, [("", Pointer(Const(char))), ("", VOID)])))
    # enums: 64-bit values, 1 byte, anonymous, a name used twice (one a fwd)
    big = Enum64("big", 8, [("BIG_ZERO", 0), ("BIG_MAX", (1 << 64) - 1)], signed=False)
    small = Enum("small", 1, [("S_ONE", 1), ("S_TWO", 2)])
    anon_enum = Enum("", 4, [("ANON_A", 7)])
    dup1 = Struct("dup", 4, [Member("x", i32, 0)])
    dup2 = Struct("dup", 8, [Member("y", u64, 0)])
    holder = Struct("holder", 40, [Member("p", Pointer(Fwd("opaque")), 0), Member("s", small, 64),
                                   Member("d1", dup1, 96), Member("d2", dup2, 128),
                                   Member("k", Const(Pointer(char)), 192), Member("e", big, 256)])
    return Spec.parse(encode([a_t, b, bits, packed, padded, ops, getter_t, varargs_t, anon_enum, holder]))


def test_small_btf_to_c():
    c = dump_c(small_spec(), vmlinux_h=False)
    assert "struct b;\n\nstruct a {\n\tstruct b *b;\n\tint n;\n};" in c
    assert "typedef struct a a_t;" in c
    assert "\tunsigned int x: 3;\n\tunsigned int y: 5;\n\tunion {" in c
    assert "\t\tstruct {\n\t\t\tunsigned int lo;\n\t\t\tunsigned int hi;\n\t\t} parts;\n\t} u;" in c
    assert "\tunsigned char data[0];" in c
    assert "struct packed {\n\tchar c;\n\tunsigned int v;\n} __attribute__((packed));" in c
    assert "struct padded {\n\tchar c;\n\tlong: 64;\n\tlong: 64;\n\tlong: 64;\n\tlong long unsigned int v;\n" \
           "\tlong: 64;\n\tlong: 64;\n\tlong: 64;\n};" in c
    assert "\tint (*run)(struct a *, int);" in c
    assert "typedef struct b * (*getter_t)(const char *);" in c
    assert "typedef int (*printf_t)(const char *, ...);" in c
    assert "\tBIG_MAX = 18446744073709551615ULL," in c
    assert "} __attribute__((mode(byte)));" in c
    assert "enum {\n\tANON_A = 7,\n};" in c
    assert "struct dup {\n\tint x;\n};" in c and "struct dup___2 {\n\tlong long unsigned int y;\n};" in c
    assert "struct opaque;" in c and "\tchar * const k;" in c
    # every type comes after what it embeds
    assert c.index("struct dup___2 {") < c.index("struct holder {")
    assert c.index("enum small {") < c.index("struct holder {")


@needs_clang
def test_small_btf_compiles_with_the_sizes_of_btf(tmp_path):
    spec = small_spec()
    header = dump_c(spec)
    body = '#include "vmlinux.h"\n' + size_asserts(spec, header) + \
        '\n_Static_assert(sizeof(struct dup___2) == 8, "dup___2");\n'
    compile_c(tmp_path, header, body)


# ---------------------------------------------------------------------- vmlinux


@pytest.fixture(scope="module")
def vmlinux_c() -> tuple[Spec, str]:
    if not VMLINUX.exists():
        pytest.skip("kernel BTF is not supported by this kernel (CONFIG_DEBUG_INFO_BTF)")
    spec = Spec.parse(VMLINUX.read_bytes(), lazy=True)
    return spec, dump_c(spec)


def test_vmlinux_defines_what_bpftool_defines(vmlinux_c):
    assert BPFTOOL, "bpftool is not installed: run scripts/install-test-deps.sh"
    _, ours = vmlinux_c
    theirs = subprocess.run([BPFTOOL, "btf", "dump", "file", str(VMLINUX), "format", "c"],
                            check=True, capture_output=True, text=True).stdout
    ours_names, theirs_names = defined_names(ours), defined_names(theirs)
    assert len(ours_names) > 10000
    assert ours_names == theirs_names
    # forward declarations too
    fwd = re.compile(r"^(?:struct|union) \w+;$", re.M)
    assert set(fwd.findall(ours)) == set(fwd.findall(theirs))


@needs_clang
def test_vmlinux_h_compiles_with_the_sizes_of_btf(vmlinux_c, tmp_path):
    spec, header = vmlinux_c
    compile_c(tmp_path, header, '#include "vmlinux.h"\n' + size_asserts(spec, header) + "\n")


@needs_clang
@pytest.mark.root
def test_core_program_built_on_our_vmlinux_h_loads(vmlinux_c, tmp_path):
    import pybpf

    spec, header = vmlinux_c
    task_size = spec.find("task_struct", Struct).size
    obj = compile_c(tmp_path, header, f"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";
int parent_tgid = 0;

_Static_assert(sizeof(struct task_struct) == {task_size}, "task_struct");

SEC("raw_tp/sys_enter")
int BPF_PROG(on_enter, struct pt_regs *regs, long id)
{{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	parent_tgid = BPF_CORE_READ(task, real_parent, tgid);
	return 0;
}}
""", syntax_only=False)
    with pybpf.load(obj) as loaded:
        assert loaded.programs["on_enter"].fd >= 0


def test_cli_vmlinux_h_of_a_btf_file(tmp_path, capsys):
    from pybpf.cli import main

    btf = tmp_path / "small.btf"
    spec = small_spec()
    btf.write_bytes(encode(spec.types))
    assert main(["vmlinux-h", str(btf)]) == 0
    assert capsys.readouterr().out == dump_c(spec)
    assert main(["vmlinux-h", str(btf), "-o", str(tmp_path / "out.h")]) == 0
    assert (tmp_path / "out.h").read_text() == dump_c(spec)
    with pytest.raises(SystemExit):
        main(["vmlinux-h", "--help"])


def test_cli_vmlinux_h_missing_file(tmp_path, capsys):
    from pybpf.cli import main

    assert main(["vmlinux-h", str(tmp_path / "nope.btf")]) == 1
    assert "vmlinux-h: cannot read" in capsys.readouterr().err
