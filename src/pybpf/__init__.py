"""pybpf: a pure-Python eBPF toolkit.

Load BPF programs (clang-built objects or instructions assembled in Python),
attach one program to many hooks with a BPF cookie on each, and read maps and
event streams — with the standard library and pyelftools only.

Example::

    import pybpf

    with pybpf.load("counter.bpf.o", variables={"target_tgid": 1234}) as obj:
        prog = obj.programs["on_call"]
        with prog.attach_uprobe("/usr/bin/myapp", "func_a", cookie=1):
            ...
        print(dict(obj.maps["counts"].items()))

The layers, from the kernel up: :mod:`pybpf._sys` (system calls),
:mod:`pybpf.asm`, :mod:`pybpf.btf`, :mod:`pybpf.object` (ELF loader),
:mod:`pybpf.maps` and :mod:`pybpf.program`, :mod:`pybpf.links` (hooks),
:mod:`pybpf.readers` (event streams), :mod:`pybpf.features`.
"""

from pybpf import features
from pybpf.errors import (
    BPFError, CompileError, KeyNotFoundError, LinkError, MapError, MapFullError, NotSupportedError,
    ObjectError, RecordError, SyscallError, VerifierError,
)
from pybpf.links.base import Link, LinkGroup, LinkInfo
from pybpf.object import Object, ObjectSpec, load
from pybpf.program import Program, ProgramInfo, TestRunResult
from pybpf.readers import PerfBufReader, RecordBatch, RingBufReader, UserRingBufWriter

__version__ = "0.1.0"

__all__ = [
    "BPFError", "SyscallError", "ObjectError", "VerifierError", "NotSupportedError", "CompileError",
    "MapError", "MapFullError", "KeyNotFoundError", "LinkError", "RecordError",
    "ObjectSpec", "Object", "load", "Program", "ProgramInfo", "TestRunResult",
    "Link", "LinkGroup", "LinkInfo",
    "RingBufReader", "PerfBufReader", "UserRingBufWriter", "RecordBatch",
    "features", "__version__",
]
