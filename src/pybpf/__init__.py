"""pybpf: a pure-Python eBPF toolkit.

Load BPF programs (clang-built objects or instructions assembled in Python),
attach one program to many hooks with a BPF cookie on each, and read maps and
event streams — with the standard library only.

Example::

    import pybpf

    with pybpf.load("counter.bpf.o", variables={"target_tgid": 1234}) as obj:
        prog = obj.programs["on_call"]
        with prog.attach_uprobe("/usr/bin/myapp", "func_a", cookie=1):
            ...
        print(dict(obj.maps["counts"].items()))

The layers, from the kernel up (each imports only from those before it;
``tests/test_layers.py`` checks it): :mod:`pybpf.errors`, :mod:`pybpf._sys`
(system calls and kernel facts), :mod:`pybpf.asm`, :mod:`pybpf.btf`,
:mod:`pybpf.features`, :mod:`pybpf.maps` / :mod:`pybpf.program` (kernel
objects), :mod:`pybpf.object` (ELF loader), :mod:`pybpf.links` (hooks),
:mod:`pybpf.readers` (event streams), :mod:`pybpf.lang` (Python → BPF), this
package (the public names), then the command line (:mod:`pybpf.cli`,
:mod:`pybpf.tools`, :mod:`pybpf.exporter`).
"""

from pybpf import features
from pybpf.errors import (
    ArgumentError, BPFError, CompileError, FileError, KeyNotFoundError, LinkError, MapError, MapFullError,
    NameNotFoundError, NotFoundError, NotSupportedError, ObjectError, RecordError, SyscallError, VerifierError,
)
from pybpf.links.auto import attach_object as _attach_object
from pybpf.links.info import LinkInfo
from pybpf.links.link import Link, LinkGroup
from pybpf.links.struct_ops import attach_struct_ops as _attach_struct_ops
from pybpf.object import Object, ObjectSpec, load
from pybpf.object.hooks import install as _install_hooks
from pybpf.program import Program, ProgramInfo, TestRunResult
from pybpf.readers import PerfBufReader, RecordBatch, RingBufReader, UserRingBufWriter

__version__ = "0.1.0"

# The object layer lies above the hooks and cannot import them: hand it what it calls.
_install_hooks(attach_object=_attach_object, attach_struct_ops=_attach_struct_ops)


def compile(*programs, name=None, license="GPL"):  # noqa: A001 - pybpf.compile is the public name
    """Compile pybpf.lang programs (decorated functions or modules) into an ObjectSpec."""
    from pybpf.lang import compile as _compile

    return _compile(*programs, name=name, license=license)


__all__ = [
    "BPFError", "SyscallError", "ObjectError", "VerifierError", "NotSupportedError", "CompileError",
    "MapError", "MapFullError", "KeyNotFoundError", "LinkError", "RecordError", "ArgumentError",
    "NotFoundError", "NameNotFoundError", "FileError",
    "ObjectSpec", "Object", "load", "Program", "ProgramInfo", "TestRunResult",
    "Link", "LinkGroup", "LinkInfo",
    "RingBufReader", "PerfBufReader", "UserRingBufWriter", "RecordBatch",
    "features", "compile", "__version__",
]
