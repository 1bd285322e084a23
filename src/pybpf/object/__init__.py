"""BPF objects: ELF files → :class:`ObjectSpec` (pure parsing) → :class:`Object` (kernel fds).

Example::

    import pybpf

    spec = pybpf.ObjectSpec.from_file("minimal.bpf.o")     # no system calls
    spec.variables["target_pid"].value = 1234              # const volatile in .rodata
    with spec.load() as obj:                               # maps, BTF, programs
        obj.programs["handle"].test_run(b"\\0" * 64)
        print(dict(obj.maps["counts"].items()))

Modules: :mod:`.spec` (the dataclasses), :mod:`.elf` (ELF → spec),
:mod:`.elffile` (ELF reading), :mod:`.sections` (SEC() names),
:mod:`.maps_def` (map definitions), :mod:`.linker` (relocations and
subprograms), :mod:`.externs` (__kconfig/__ksym), :mod:`.btf_fixup`
(BTF the kernel accepts), :mod:`.struct_ops` and :mod:`.struct_ops_map`
(struct_ops maps), :mod:`.targets` (freplace targets in other programs),
:mod:`.loader` (spec → kernel), :mod:`.object`.
"""

from __future__ import annotations

import os

from pybpf._lazy import lazy_exports

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable, Mapping
    from pybpf.object.object import Object, ObjectVariable
    from pybpf.object.sections import SectionInfo, parse_section
    from pybpf.object.spec import ExternSpec, MapSpec, ObjectSpec, ProgramSpec, StructOpsSpec, VariableSpec

# Imported on first use (importing pybpf.object.hooks must not import the loader).
__getattr__, __dir__ = lazy_exports(globals(), {
    "object": "Object ObjectVariable",
    "sections": "SectionInfo parse_section",
    "spec": "ObjectSpec ProgramSpec MapSpec StructOpsSpec VariableSpec ExternSpec",
})

__all__ = [
    "ObjectSpec", "ProgramSpec", "MapSpec", "StructOpsSpec", "VariableSpec", "ExternSpec", "Object",
    "ObjectVariable",
    "SectionInfo", "parse_section", "load",
]


def load(path: str | os.PathLike[str] | bytes, *, programs: Iterable[str] | None = None,
         pin_path: str | None = "/sys/fs/bpf", log_level: int = 0,
         variables: Mapping[str, Any] | None = None, attach_targets: Mapping[str, Any] | None = None) -> Object:
    """Parse and load a BPF object file (or its bytes) in one step.

    >>> obj = pybpf.load("x.bpf.o", variables={"target_tgid": 1234})   # doctest: +SKIP
    """
    from pybpf.object.spec import ObjectSpec

    if isinstance(path, (bytes, bytearray, memoryview)):
        spec = ObjectSpec.from_bytes(path)
    else:
        spec = ObjectSpec.from_file(path)
    return spec.load(programs, pin_path=pin_path, log_level=log_level, variables=variables,
                     attach_targets=attach_targets)
