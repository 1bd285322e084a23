"""Helpers for the pybpf.lang tests: programs from source text, run in the kernel and in CPython."""

from __future__ import annotations

import importlib.util
import itertools
import os
import struct
import sys
import tempfile

import pybpf

_counter = itertools.count()
_DIR = tempfile.mkdtemp(prefix="pybpf_lang_")


def module_from_source(source: str, name: str | None = None):
    """Import ``source`` as a module from a real file (so its functions' source can be read)."""
    name = name or f"pybpf_lang_case_{os.getpid()}_{next(_counter)}"
    path = os.path.join(_DIR, name + ".py")
    with open(path, "w") as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


SYSCALL_TEMPLATE = """\
from pybpf.lang import *

OUT = u64(0)


@syscall
def prog(ctx) -> int:
    global OUT
    a = {ta}(ctx.arg(0))
    b = {tb}(ctx.arg(1))
{body}
    return 0
"""


def expression_module(expr: str, ta: str, tb: str, body: str | None = None):
    """A syscall program storing ``u64(expr)`` of typed inputs a, b in the global OUT."""
    body = body if body is not None else f"    OUT = u64({expr})"
    return module_from_source(SYSCALL_TEMPLATE.format(ta=ta, tb=tb, body=body))


def run_kernel(mod, a: int, b: int, obj=None) -> int:
    """Load (or reuse ``obj``), test_run with ctx = (a, b), return OUT."""
    own = obj is None
    if own:
        obj = pybpf.compile(mod.prog).load()
    try:
        obj.programs["prog"].test_run(ctx=struct.pack("<QQ", a & (2**64 - 1), b & (2**64 - 1)))
        return int(obj.variables["OUT"].value)
    finally:
        if own:
            obj.close()


def run_python(mod, a: int, b: int) -> int:
    from pybpf.lang import FakeCtx, u64

    mod.OUT = u64(0)
    mod.prog(FakeCtx(args=[a & (2**64 - 1), b & (2**64 - 1)]))
    return int(mod.OUT)
