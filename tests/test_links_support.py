"""Shared helpers of the pybpf.links tests (no tests here).

* ``build_c(name, pie=True)`` compiles ``tests/bin/<name>.c`` with gcc into
  ``tests/progs/build/`` (cached by modification time);
* ``cookie_counter(counts, prog_type)`` hand-assembles the program of the
  acceptance tests: ``key = bpf_get_attach_cookie(); counts[key] += 1``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from pybpf._sys import AttachType, HelperID, ProgType
from pybpf.asm import builder as b
from pybpf.asm import opcodes as op

TESTS = Path(__file__).resolve().parent
BIN = TESTS / "bin"
BUILD = TESTS / "progs" / "build"


def gcc() -> str:
    path = shutil.which("gcc") or shutil.which("cc")
    if not path:
        raise RuntimeError("gcc is needed to build the uprobe test targets (apt-get install gcc)")
    return path


def build_c(name: str, *, pie: bool = True, shared: bool = False, extra: tuple[str, ...] = (),
            suffix: str = "") -> Path:
    """Compile tests/bin/<name>.c; returns the binary (or .so) path."""
    src = BIN / f"{name}.c"
    BUILD.mkdir(parents=True, exist_ok=True)
    if shared:
        out = BUILD / f"lib{name}{suffix}.so"
    else:
        out = BUILD / f"{name}{suffix}{'' if pie else '_nopie'}"
    deps = [src, *(BIN / e.split("=", 1)[1] for e in extra if e.startswith("-Wl,--version-script="))]
    if out.exists() and all(out.stat().st_mtime >= d.stat().st_mtime for d in deps if d.exists()):
        return out
    flags = ["-O2", "-g"]
    if shared:
        flags += ["-shared", "-fPIC"]
    elif pie:
        flags += ["-fPIE", "-pie"]
    else:
        flags += ["-fno-pie", "-no-pie"]
    cmd = [gcc(), *flags, *extra, "-o", str(out) + ".tmp", str(src)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=BIN)
    if res.returncode != 0:
        raise RuntimeError(f"gcc failed for {src.name}:\n{res.stderr}")
    os.replace(str(out) + ".tmp", out)
    return out


def target(pie: bool = True) -> Path:
    return build_c("cookie_target", pie=pie)


def run_target(path: Path | str, n: int, m: int) -> str:
    return subprocess.run([str(path), str(n), str(m)], check=True, capture_output=True, text=True).stdout


def counter_insns(map_fd: int, *, key_from_cookie: bool = True, tgid: int | None = None,
                  ctx_equals: tuple[int, int] | None = None) -> list:
    """``key = cookie (or 0); counts[key] += 1; return 0``.

    ``tgid``: count only events of that process; ``ctx_equals=(off, value)``:
    only when the u64 at ``ctx + off`` equals ``value`` (raw tracepoint args).
    """
    pre = [b.mov64_reg(op.R6, op.R1)]
    if ctx_equals is not None:
        off, value = ctx_equals
        pre += [b.ldx_mem(op.DW, op.R2, op.R6, off), b.jmp_imm(op.JNE, op.R2, value, "out")]
    if tgid is not None:
        pre += [b.call_helper(HelperID.get_current_pid_tgid), b.alu64_imm(op.RSH, op.R0, 32),
                b.jmp_imm(op.JNE, op.R0, tgid, "out")]
    key = [b.mov64_reg(op.R1, op.R6), b.call_helper(HelperID.get_attach_cookie)] if key_from_cookie \
        else [b.mov64_imm(op.R0, 0)]
    return b.assemble([
        *pre,
        *key,
        b.stx_mem(op.DW, op.R10, op.R0, -8),
        b.ld_map_fd(op.R1, map_fd),
        b.mov64_reg(op.R2, op.R10),
        b.alu64_imm(op.ADD, op.R2, -8),
        b.call_helper(HelperID.map_lookup_elem),
        b.jmp_imm(op.JEQ, op.R0, 0, "init"),
        b.mov64_imm(op.R1, 1),
        b.atomic_op(op.DW, op.ADD, op.R0, op.R1, 0),
        b.ja("out"),
        b.label("init"),
        b.st_mem(op.DW, op.R10, -16, 1),
        b.ld_map_fd(op.R1, map_fd),
        b.mov64_reg(op.R2, op.R10),
        b.alu64_imm(op.ADD, op.R2, -8),
        b.mov64_reg(op.R3, op.R10),
        b.alu64_imm(op.ADD, op.R3, -16),
        b.mov64_imm(op.R4, 0),
        b.call_helper(HelperID.map_update_elem),
        b.label("out"),
        b.mov64_imm(op.R0, 0),
        b.exit_(),
    ])


def cookie_counter(counts, prog_type: ProgType = ProgType.KPROBE, *, expected_attach_type: AttachType | None = None,
                   name: str = "count_cookie", tgid: int | None = None, ctx_equals: tuple[int, int] | None = None,
                   key_from_cookie: bool = True, **load):
    """Load the counting program for ``counts`` (a u64 → u64 hash map)."""
    from pybpf.program import Program

    insns = counter_insns(counts.fd, tgid=tgid, ctx_equals=ctx_equals, key_from_cookie=key_from_cookie)
    return Program.load(insns, prog_type=prog_type, expected_attach_type=expected_attach_type, name=name, **load)


def counts_map(max_entries: int = 4096):
    from pybpf.maps import HashMap

    return HashMap(key="u64", value="u64", max_entries=max_entries, name="counts")


def snapshot(counts) -> dict[int, int]:
    return dict(counts.items())
