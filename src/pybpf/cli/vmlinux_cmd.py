"""``pybpf vmlinux-h``: the kernel's types as a C header, from its BTF.

Writes what ``bpftool btf dump file /sys/kernel/btf/vmlinux format c`` writes
(:mod:`pybpf.btf.cdump`): every struct, union, enum and typedef of the
running kernel, for BPF programs in C that ``#include "vmlinux.h"``.  Kernel
BTF needs Linux 5.4 (``CONFIG_DEBUG_INFO_BTF``).  ``FILE`` dumps another BTF
instead: a raw BTF blob (``/sys/kernel/btf/<module>`` with ``--base``) or the
``.BTF`` of a BPF ELF object.

Example::

    $ pybpf vmlinux-h > vmlinux.h
    $ pybpf vmlinux-h prog.bpf.o -o prog_types.h
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pybpf.errors import ObjectError, file_error

_ELF_MAGIC = b"\x7fELF"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pybpf vmlinux-h`` to the command's subparsers."""
    parser = subparsers.add_parser(
        "vmlinux-h", help="write the kernel's types as C (vmlinux.h) from its BTF",
        description="Write the types of the running kernel's BTF (or of FILE) as a C header.",
    )
    parser.add_argument("file", nargs="?", type=Path,
                        help="a BTF file or a BPF ELF object (default: /sys/kernel/btf/vmlinux)")
    parser.add_argument("--base", type=Path, help="base BTF of a split BTF FILE (a module's: vmlinux)")
    parser.add_argument("-o", "--output", type=Path, help="write here instead of to stdout")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``pybpf vmlinux-h [FILE] [--base B] [-o OUT]``: the exit status."""
    from pybpf.btf.cdump import dump_c

    text = dump_c(_spec(args.file, args.base))
    if args.output is None:
        sys.stdout.write(text)
        return 0
    tmp = args.output.with_name(f".{args.output.name}.{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, args.output)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise file_error(err, f"vmlinux-h: cannot write {args.output}") from None
    return 0


def _spec(path: Path | None, base_path: Path | None):
    from pybpf.btf.kernel import kernel_spec
    from pybpf.btf.reader import Spec

    if path is None:
        return kernel_spec()
    data = _read(path)
    if data.startswith(_ELF_MAGIC):
        from pybpf.object.spec import ObjectSpec

        btf = ObjectSpec.from_file(str(path)).btf
        if btf is None:
            raise ObjectError(f"{path}: the object has no .BTF section (build it with clang -g)")
        return btf
    base = Spec.parse(_read(base_path), lazy=True) if base_path is not None else None
    try:
        return Spec.parse(data, base, lazy=True)
    except ObjectError as err:
        raise err.add_context(str(path))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise file_error(err, f"vmlinux-h: cannot read {path}") from None
