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

from __future__ import annotations

import importlib

from pybpf.errors import (
    ArgumentError, BPFError, CompileError, FileError, KeyNotFoundError, LinkError, MapError, MapFullError,
    NameNotFoundError, NotFoundError, NotSupportedError, ObjectError, RecordError, SyscallError, VerifierError,
)
from pybpf.object.hooks import install as _install_hooks
from pybpf.program_attach import install_hooks_with as _install_attach_methods_with

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

# ``import pybpf`` imports only the errors and two small registries: every other public name is
# imported the first time it is used (PEP 562 ``__getattr__``), so a tool that loads one object
# does not pay for the hooks, the readers or the feature probes it never touches.
_LAZY: dict[str, str] = {
    "features": "pybpf.features",
    "ObjectSpec": "pybpf.object", "Object": "pybpf.object", "load": "pybpf.object",
    "Program": "pybpf.program", "ProgramInfo": "pybpf.program", "TestRunResult": "pybpf.program",
    "Link": "pybpf.links", "LinkGroup": "pybpf.links", "LinkInfo": "pybpf.links",
    "RingBufReader": "pybpf.readers", "PerfBufReader": "pybpf.readers",
    "UserRingBufWriter": "pybpf.readers", "RecordBatch": "pybpf.readers",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pybpf' has no attribute {name!r}")
    if name == "Program":
        _install_attach_methods()     # pybpf.Program.attach_uprobe is there as a class attribute too
    value = importlib.import_module(module)
    if name != "features":
        value = getattr(value, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


# The object and program layers lie below the hooks and cannot import them: hand them functions
# that import the hooks layer when first called.
def _attach_object(obj: Any, **kwargs: Any) -> Any:
    from pybpf.links.auto import attach_object

    return attach_object(obj, **kwargs)


def _attach_struct_ops(map_: Any, **kwargs: Any) -> Any:
    from pybpf.links.struct_ops import attach_struct_ops

    return attach_struct_ops(map_, **kwargs)


def _install_attach_methods() -> None:
    import pybpf.links  # noqa: F401 - importing it installs Program.attach_* from the hook descriptors


_install_hooks(attach_object=_attach_object, attach_struct_ops=_attach_struct_ops)
_install_attach_methods_with(_install_attach_methods)


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
