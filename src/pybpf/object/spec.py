"""What a BPF object describes, before anything exists in the kernel.

:class:`ObjectSpec` is built from an ELF file by :meth:`ObjectSpec.from_file`
(or by :mod:`pybpf.lang`); building it makes no system call and gives the
same result every time for the same bytes.  It holds :class:`ProgramSpec`
(linked instructions, ready but for kernel file descriptors and ids),
:class:`MapSpec` (map definitions and initial contents) and
:class:`VariableSpec` (global variables, whose values live in the ``data``
of their section's map and may be changed before loading: the
``const volatile`` configuration pattern).  :meth:`ObjectSpec.load` turns it
into an :class:`~pybpf.object.object.Object`.

Relocations are kept in the instructions themselves:

- ``ld_imm64`` with ``src`` PSEUDO_MAP_FD / PSEUDO_MAP_VALUE and
  ``reference`` = a key of :attr:`ObjectSpec.maps` gets that map's fd in
  ``imm`` at load time (the value offset stays in the second slot);
- ``call`` with ``src`` PSEUDO_KFUNC_CALL and ``ld_imm64`` with ``src``
  PSEUDO_BTF_ID (or 0) whose ``reference`` names an extern of
  :attr:`ObjectSpec.externs` get the kernel's BTF id (or address);
- bpf-to-bpf calls and callback addresses are resolved when the spec is
  built (``reference`` names the callee for display).

Example::

    spec = ObjectSpec.from_file("filter.bpf.o")
    spec.variables["target_pid"].value = 1234      # const volatile in .rodata
    with spec.load() as obj:
        obj.programs["handle"].test_run(ctx=b"...")
"""

from __future__ import annotations

import os

from pybpf.errors import ObjectError
from pybpf.object.parts import (
    ExternSpec, MapSpec, NameTable, ProgramSpec, StructOpsSpec, VariableSpec, encode_variable,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable, Mapping
    from pybpf.btf.reader import Spec
    from pybpf.object.object import Object

__all__ = ["ObjectSpec", "ProgramSpec", "MapSpec", "StructOpsSpec", "VariableSpec", "ExternSpec", "encode_variable"]


class ObjectSpec:
    """A parsed BPF object: programs, maps, variables, externs and BTF (no kernel objects yet).

    Build with :meth:`from_file` / :meth:`from_bytes`; load with :meth:`load`.
    """

    def __init__(self, name: str = "object", *, programs: Mapping[str, ProgramSpec] | None = None,
                 maps: Mapping[str, MapSpec] | None = None,
                 variables: Mapping[str, VariableSpec] | None = None, btf: "Spec | None" = None,
                 license: str = "", kern_version: int = 0, externs: Mapping[str, ExternSpec] | None = None,
                 path: str | None = None, kernel_btf: bytes | None = None,
                 notes: Iterable[str] = ()) -> None:
        self.name = name
        self.path = path
        owner = f"object '{name}'"
        self.programs: dict[str, ProgramSpec] = NameTable(programs, kind="program", owner=owner)
        self.maps: dict[str, MapSpec] = NameTable(maps, kind="map", owner=owner)
        self.variables: dict[str, VariableSpec] = NameTable(variables, kind="variable", owner=owner)
        self.externs: dict[str, ExternSpec] = NameTable(externs, kind="extern", owner=owner)
        self.btf = btf
        self.license = license
        self.kern_version = kern_version
        self.notes: list[str] = list(notes)
        """What the parser skipped or adjusted (unknown data sections, ...)."""
        self._kernel_btf = kernel_btf   # the object's BTF fixed for BPF_BTF_LOAD (None: encode btf)
        self._btf_strings: dict[str, int] = {}  # line info strings -> offsets in _kernel_btf

    # -- construction -----------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> "ObjectSpec":
        """Parse the BPF ELF object at ``path`` (no system calls besides reading the file)."""
        path = os.fspath(path)
        label = os.path.basename(path)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)   # (no buffered file object: ~9 us less)
            try:
                chunks = []
                while True:
                    chunk = os.read(fd, 1 << 20)
                    if not chunk:
                        break
                    chunks.append(chunk)
            finally:
                os.close(fd)
            data = b"".join(chunks)
        except OSError as exc:
            raise ObjectError(f"cannot read {path}: {exc.strerror}").add_context(f"object '{label}'") from None
        return cls.from_bytes(data, name=label, path=path)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, *, name: str = "object",
                   path: str | None = None) -> "ObjectSpec":
        """Parse a BPF ELF object held in memory; ``name`` is used in messages and map names."""
        from pybpf.object.elf import parse

        return parse(bytes(data), cls, name=name, path=path)

    # -- loading ----------------------------------------------------------------------

    def load(self, programs: Iterable[str] | None = None, *, pin_path: str | None = "/sys/fs/bpf",
             log_level: int = 0, variables: Mapping[str, Any] | None = None,
             attach_targets: Mapping[str, Any] | None = None) -> "Object":
        """Create the maps and load the programs (all with autoload, or those named).

        ``variables`` sets global variables for this load only (the spec is
        not changed).  Maps with ``pinning`` are reused from (or pinned to)
        ``pin_path``.  ``attach_targets`` gives freplace (and fentry/fexit on
        BPF) programs their target for this load only: ``{"new_fn":
        (target_program, "func_name")}`` (or just the program, the function
        then coming from the section name), as
        :meth:`ProgramSpec.set_attach_target` does.  Everything made is closed
        again if a step fails.
        """
        from pybpf.object.loader import load

        return load(self, programs=programs, pin_path=pin_path, log_level=log_level, variables=variables,
                    attach_targets=attach_targets)

    # -- comparison -------------------------------------------------------------------

    @property
    def object_name(self) -> str:
        """libbpf's object name: the file name up to its first dot ("minimal" for minimal.bpf.o)."""
        return self.name.split(".", 1)[0] or self.name

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ObjectSpec):
            return NotImplemented
        return (self.name == other.name and self.programs == other.programs and self.maps == other.maps
                and self.variables == other.variables and self.externs == other.externs
                and self.license == other.license and self.kern_version == other.kern_version
                and self._kernel_btf == other._kernel_btf)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"<ObjectSpec {self.name!r} programs={list(self.programs)} maps={list(self.maps)} "
                f"variables={len(self.variables)}>")
