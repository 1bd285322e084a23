"""Attach targets inside other BPF programs: freplace, and fentry/fexit on BPF code.

A freplace program (``SEC("freplace/func")``, BPF_PROG_TYPE_EXT, Linux 5.6)
replaces a global function of a program that is already loaded; an
fentry/fexit program may trace such a function the same way.  The kernel
wants the target's fd (``attach_prog_fd``) and the BTF id of the function's
FUNC in the *target program's* BTF (``attach_btf_id``).  This module finds
that id: the target's ``btf_id`` from its program info, a BTF fd from that
id, the raw BTF through ``BPF_OBJ_GET_INFO_BY_FD`` with a buffer, parsed
with :mod:`pybpf.btf.reader`.  Program BTF ids and ``BPF_BTF_GET_FD_BY_ID``
appeared in Linux 5.0; fetching the BTF of a program needs CAP_SYS_ADMIN.

Example::

    resolver = TargetResolver()
    btf_id = resolver.func_id(target_prog, "verdict")     # FUNC 'verdict' in its BTF
    resolver.close()
"""

from __future__ import annotations

import ctypes

from pybpf.program import program_fd
from pybpf._sys.uapi import ProgType
from pybpf.btf.types import BTFKind
from pybpf.errors import BPFError, ObjectError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Mapping
    from pybpf.object.spec import ObjectSpec

__all__ = ["TargetResolver", "check_attach_targets", "program_label"]


def program_label(program: Any) -> str:
    if isinstance(program, int):
        return f"target program fd {program}"
    name = getattr(program, "name", "")
    return f"target program '{name}'" if name else "target program"


def check_attach_targets(spec: "ObjectSpec", attach_targets: Mapping[str, Any] | None
                         ) -> dict[str, tuple[Any, str | None]]:
    """``load(attach_targets=...)``: program name -> (target program, function or None), checked."""
    out: dict[str, tuple[Any, str | None]] = {}
    for name, target in (attach_targets or {}).items():
        ps = spec.programs.get(name)
        if ps is None:
            known = ", ".join(spec.programs) or "none"
            raise ObjectError(f"attach_targets: no program '{name}' (programs: {known})")
        if isinstance(target, tuple):
            if len(target) != 2:
                raise ObjectError(f"attach_targets['{name}']: expected (program, 'function'), got {len(target)} items")
            program, function = target
        else:
            program, function = target, None
        if ps.type not in (ProgType.EXT, ProgType.TRACING):
            raise ObjectError(f"attach_targets['{name}']: program '{name}' is not a freplace or fentry/fexit "
                              f"program (section '{ps.section}')")
        if program is None:
            raise ObjectError(f"attach_targets['{name}']: no target program given")
        if function is not None and not isinstance(function, str):
            raise ObjectError(f"attach_targets['{name}']: the function must be a str, not {type(function).__name__}")
        out[name] = (program, function)
    return out


class TargetResolver:
    """Parses each target program's BTF once per load (keyed by the BTF's id)."""

    def __init__(self) -> None:
        self._specs: dict[int, Any] = {}

    def close(self) -> None:
        self._specs.clear()

    def btf(self, program: Any) -> Any:
        """The parsed BTF of a loaded program (:class:`pybpf.btf.reader.Spec`)."""
        from pybpf._sys import commands as _cmd

        label = program_label(program)
        try:
            fd = program_fd(program)
        except (TypeError, ValueError) as exc:
            raise ObjectError(f"{label}: {exc}") from None
        try:
            info = _cmd.prog_info(fd)
        except BPFError as exc:
            raise exc.add_context(f"{label}: program info")
        if not info.btf_id:
            raise ObjectError(f"{label} has no BTF: the kernel needs the target's BTF (and func_info) to "
                              "find the function; load it from an object built with clang -g")
        spec = self._specs.get(info.btf_id)
        if spec is None:
            spec = self._specs[info.btf_id] = _read_btf(info.btf_id, label)
        return spec

    def func_id(self, program: Any, function: str) -> int:
        """The id of FUNC ``function`` in ``program``'s BTF (ObjectError naming close names)."""
        spec = self.btf(program)
        for t in spec.types_by_name(function):
            if t.kind == BTFKind.FUNC:
                return int(t.id)
        import difflib

        names = sorted({spec.type_by_id(i).name for i in spec.ids_by_kind(BTFKind.FUNC)})
        close = difflib.get_close_matches(function, names, n=5, cutoff=0.5)
        if close:
            also = f"did you mean {', '.join(repr(n) for n in close)}?"
        elif names:
            shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            also = f"its functions: {shown}"
        else:
            also = "its BTF has no functions"
        raise ObjectError(f"function '{function}' is not in the BTF of {program_label(program)} ({also})")


def _read_btf(btf_id: int, label: str) -> Any:
    """BTF by id → fd → BPF_OBJ_GET_INFO_BY_FD with a buffer → parsed spec; the fd is closed."""
    from pybpf._sys import commands as _cmd
    from pybpf._sys.attrs import BtfInfo
    from pybpf.btf.reader import Spec

    try:
        fd = _cmd.btf_fd_by_id(btf_id)
    except BPFError as exc:
        raise exc.add_context(f"{label}: BTF id {btf_id}")
    try:
        size = _cmd.btf_info(fd.fileno()).btf_size
        buf = ctypes.create_string_buffer(max(size, 1))
        info = _cmd.obj_info(fd.fileno(), BtfInfo(btf=ctypes.addressof(buf), btf_size=size))
        if info.btf_size > size:  # pragma: no cover - BTF does not change once loaded
            raise ObjectError(f"{label}: BTF id {btf_id} grew from {size} to {info.btf_size} bytes while read")
    except BPFError as exc:
        raise exc.add_context(f"{label}: BTF id {btf_id}")
    finally:
        fd.close()
    try:
        return Spec.parse(buf.raw[:size], lazy=True)
    except ObjectError as exc:
        raise exc.add_context(f"{label}: BTF id {btf_id}")
