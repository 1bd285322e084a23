"""Build the C test programs under tests/progs with clang (Debian's clang-19).

``build("name")`` compiles ``tests/progs/name.bpf.c`` into
``tests/progs/build/name.bpf.o`` (cached by modification time) and returns
the path.  ``vmlinux.h`` is generated once from the running kernel's BTF with
bpftool.  Headers: libbpf-dev's ``<bpf/bpf_helpers.h>`` and friends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

PROGS = Path(__file__).resolve().parent / "progs"
BUILD = PROGS / "build"
INCLUDE = PROGS / "include"


def clang() -> str:
    for name in ("clang-19", "clang"):
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError("clang-19 is needed to build the C test programs (apt-get install clang-19)")


def vmlinux_h() -> Path:
    out = BUILD / "vmlinux.h"
    if not out.exists():
        BUILD.mkdir(parents=True, exist_ok=True)
        text = subprocess.run(
            # bpftool is in /usr/sbin, which is not on a user's PATH
            [shutil.which("bpftool") or "/usr/sbin/bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux",
             "format", "c"],
            check=True, capture_output=True, text=True,
        ).stdout
        tmp = out.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, out)
    return out


def build(name: str, *, extra_flags: tuple[str, ...] = ()) -> Path:
    """Compile tests/progs/NAME.bpf.c into tests/progs/build/NAME.bpf.o (cached unless flags are given)."""
    return build_file(PROGS / f"{name}.bpf.c", BUILD, extra_flags=extra_flags)


def build_file(src: Path, out_dir: Path, *, extra_flags: tuple[str, ...] = ()) -> Path:
    """Compile the BPF C file ``src`` into ``out_dir`` (the benchmarks build theirs this way too)."""
    out = out_dir / (src.name[: -len(".c")] + ".o")
    if out.exists() and out.stat().st_mtime >= src.stat().st_mtime and not extra_flags:
        return out
    vmlinux_h()
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        clang(), "-O2", "-g", "-target", "bpf", "-D__TARGET_ARCH_x86",
        "-I", str(BUILD), "-I", str(INCLUDE), "-I", "/usr/include/x86_64-linux-gnu",
        "-c", str(src), "-o", str(out), *extra_flags,
    ]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"clang failed for {src.name}:\n{res.stderr}")
    return out


def build_all() -> list[Path]:
    return [build(p.name[: -len(".bpf.c")]) for p in sorted(PROGS.glob("*.bpf.c"))]


if __name__ == "__main__":
    for path in build_all():
        print(path)
