"""``pybpf build prog.bpf.c [-o prog.bpf.o]``: compile a libbpf-style BPF C program with clang.

It runs clang (``clang-19``, else ``clang``) with the flags such programs need::

    clang -g -O2 -target bpf -D__TARGET_ARCH_x86 -I<dir of vmlinux.h> -I/usr/include/x86_64-linux-gnu \\
          -c prog.bpf.c -o prog.bpf.o

``-g`` keeps BTF and line info (pybpf's verifier errors show the C line; CO-RE needs the BTF),
``-O2`` because clang -O0 emits code the kernel cannot load, ``__TARGET_ARCH_*`` (from
``uname -m``) for libbpf's ``bpf_tracing.h`` macros. A program that includes ``vmlinux.h`` finds
it beside the source, in a ``-I`` directory, or else in a copy generated from the running
kernel's BTF as ``pybpf vmlinux-h`` writes it (cached per kernel release in ~/.cache/pybpf). libbpf's headers
(``<bpf/bpf_helpers.h>``, Debian's libbpf-dev) are in /usr/include.

What is missing (clang, libbpf's headers, vmlinux.h) is said plainly: ``pybpf: error: ...`` and
exit status 2. A program clang rejects prints clang's messages and exits 1.

Example::

    pybpf build counter.bpf.c                 # writes counter.bpf.o beside it
    pybpf build counter.bpf.c -o /tmp/c.o -I include -DDEBUG=1
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from pybpf.errors import BPFError, CompileError

__all__ = ["BuildToolMissing", "build", "clang_command", "find_clang", "register"]

CLANGS = ("clang-19", "clang")

# uname -m → the __TARGET_ARCH_* name libbpf's bpf_tracing.h knows.
_ARCHES = {"x86_64": "x86", "i686": "x86", "aarch64": "arm64", "armv7l": "arm", "s390x": "s390",
           "ppc64le": "powerpc", "ppc64": "powerpc", "riscv64": "riscv", "loongarch64": "loongarch",
           "mips64": "mips", "sparc64": "sparc"}

# A header clang could not find → what provides it.
_PROVIDERS = [
    (re.compile(r"^bpf/"), "libbpf's headers are missing: install libbpf-dev (apt-get install libbpf-dev)"),
    (re.compile(r"^vmlinux\.h$"), "no vmlinux.h: put one beside the source or in a -I directory "
                                  "(`pybpf vmlinux-h > vmlinux.h`, or "
                                  "`bpftool btf dump file /sys/kernel/btf/vmlinux format c > vmlinux.h`)"),
    (re.compile(r"^(asm|linux|sys|bits|gnu)/"), "kernel UAPI or C library headers are missing: install "
                                               "linux-libc-dev and libc6-dev"),
]


class BuildToolMissing(BPFError):
    """A tool or header the build needs is not installed (``pybpf build`` exits 2)."""


def find_clang(clang: str | None = None) -> str:
    """The clang to use: ``clang`` if given, else clang-19, else clang on PATH."""
    for name in ([clang] if clang else CLANGS):
        path = shutil.which(name)
        if path:
            return path
    tried = clang or " or ".join(CLANGS)
    raise BuildToolMissing(f"{tried} not found on PATH: install clang (apt-get install clang-19)")


def target_arch(machine: str | None = None) -> str:
    """``__TARGET_ARCH_`` suffix for ``machine`` (default: ``uname -m``)."""
    machine = machine or os.uname().machine
    return _ARCHES.get(machine, machine)


def clang_command(source: Path, output: Path, *, clang: str, include_dirs: Sequence[Path] = (),
                  defines: Sequence[str] = ()) -> list[str]:
    """The clang command line that compiles ``source`` into ``output``."""
    machine = os.uname().machine
    cmd = [clang, "-g", "-O2", "-target", "bpf", f"-D__TARGET_ARCH_{target_arch(machine)}"]
    cmd += [f"-D{d}" for d in defines]
    for directory in include_dirs:
        cmd += ["-I", str(directory)]
    multiarch = Path(f"/usr/include/{machine}-linux-gnu")  # asm/types.h on Debian
    if multiarch.is_dir():
        cmd += ["-idirafter", str(multiarch)]
    cmd += ["-c", str(source), "-o", str(output)]
    return cmd


def build(source: str | os.PathLike[str], output: str | os.PathLike[str] | None = None, *,
          include_dirs: Sequence[str | os.PathLike[str]] = (), defines: Sequence[str] = (),
          clang: str | None = None) -> Path:
    """Compile ``source`` into a BPF object and return its path (default: ``x.bpf.c`` → ``x.bpf.o``).

    Raises :class:`BuildToolMissing` when clang or a header's package is missing and
    :class:`pybpf.CompileError` (with clang's messages) when clang rejects the program.

    >>> build("counter.bpf.c")                       # doctest: +SKIP
    PosixPath('counter.bpf.o')
    """
    src = Path(source)
    if not src.is_file():
        raise BuildToolMissing(f"{src}: no such file")
    out = Path(output) if output is not None else src.with_suffix(".o")
    includes = [Path(d) for d in include_dirs]
    if _includes_vmlinux_h(src):
        includes += _vmlinux_h_dirs(src, includes)
    cmd = clang_command(src, out, clang=find_clang(clang), include_dirs=includes, defines=defines)
    out.parent.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        missing = re.search(r"fatal error: '([^']+)' file not found", res.stderr)
        if missing:
            header = missing.group(1)
            for pattern, what in _PROVIDERS:
                if pattern.search(header):
                    raise BuildToolMissing(f"{src}: '{header}' not found: {what}")
        raise CompileError(f"{src}: clang failed:\n{res.stderr.rstrip()}")
    return out


def _includes_vmlinux_h(src: Path) -> bool:
    return re.search(r'^\s*#\s*include\s*[<"]vmlinux\.h[>"]', src.read_text(errors="replace"), re.M) is not None


def _vmlinux_h_dirs(src: Path, includes: list[Path]) -> list[Path]:
    """Where vmlinux.h is: beside the source, a -I directory, or a generated copy (cached)."""
    for directory in [src.resolve().parent, *includes]:
        if (directory / "vmlinux.h").is_file():
            return [directory]  # also for #include <vmlinux.h>
    generated = _generated_vmlinux_h()
    return [generated.parent] if generated else []


def _generated_vmlinux_h() -> Path | None:
    """vmlinux.h of the running kernel (``pybpf vmlinux-h``), cached per release; None without kernel BTF."""
    from pybpf.btf.cdump import dump_c
    from pybpf.btf.kernel import kernel_spec

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pybpf" / os.uname().release
    header = cache / "vmlinux.h"
    if header.is_file():
        return header
    try:
        text = dump_c(kernel_spec())
    except BPFError:
        return None  # no kernel BTF (Linux 5.4, CONFIG_DEBUG_INFO_BTF): clang's error then explains
    cache.mkdir(parents=True, exist_ok=True)
    tmp = header.with_name(f".vmlinux.h.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, header)
    return header


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("build", help="compile a BPF C program with clang (-g -O2 -target bpf)",
                              description="Compile a libbpf-style BPF C program into an object pybpf loads.")
    p.add_argument("source", help="the BPF C source, e.g. prog.bpf.c")
    p.add_argument("-o", "--output", help="the object to write (default: the source with .o)")
    p.add_argument("-I", dest="include_dirs", action="append", default=[], metavar="DIR",
                   help="another include directory (repeatable)")
    p.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME[=VALUE]",
                   help="a preprocessor definition (repeatable)")
    p.add_argument("--clang", help="the clang to run (default: clang-19, else clang)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        out = build(args.source, args.output, include_dirs=args.include_dirs, defines=args.defines,
                    clang=args.clang)
    except BuildToolMissing as err:
        print(f"pybpf: error: {err}", file=sys.stderr)
        return 2
    print(out)
    return 0
