"""Loading a program's instructions: map fds and extern ids filled in, source lines for errors.

A program parsed from ELF is linked bytecode plus *fixups* ``(slot, kind,
name)`` (see :mod:`.linker`): :func:`patch_linked` writes each map's fd into
``imm`` (``ld_imm64`` of PSEUDO_MAP_FD / PSEUDO_MAP_VALUE) and each extern's
BTF id or address (ksyms, kfunc calls) into its instruction, in place.  A
program given or edited as a list of :class:`~pybpf.asm.Instruction` is
patched by :func:`patch_listed`, which follows each instruction's
``reference`` instead.  The line tables turn an instruction index back into
its C line for :class:`~pybpf.VerifierError`, only if an error needs it.

Example::

    code = bytearray(ps._code)
    fd_array = patch_linked(code, ps._fixups, {"counts": 5}, spec.externs, resolver.resolve)
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from pybpf.asm.opcodes import PSEUDO_BTF_ID, PSEUDO_KFUNC_CALL, PSEUDO_MAP_FD, PSEUDO_MAP_VALUE
from pybpf.errors import ObjectError
from pybpf.object import btf_fixup
from pybpf.object.externs import POISON_KFUNC_BASE, KsymResolver
from pybpf.object.linker import FIX_EXTERN, FIX_MAP
from pybpf.object.parts import ExternSpec, ProgramSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable
    from pybpf.asm.instruction import Instruction
    from pybpf.object.spec import ObjectSpec

__all__ = ["patch_linked", "patch_listed", "LazyResolver", "RawLineTable", "LineTable", "line_strings"]

_IMM = struct.Struct("<i")
_OFF = struct.Struct("<h")


def patch_linked(code: bytearray, fixups: tuple[tuple[int, int, str], ...], map_fds: Mapping[str, int],
                 externs: Mapping[str, ExternSpec], extern: Callable[[ExternSpec], Any]) -> list[Any] | None:
    """Fill map fds and extern ids into ``code`` at the ``fixups`` of a linked program.

    ``extern(ext)`` resolves an extern: (id or address, module BTF fd or
    None, typed) or None for a missing weak one.  Returns the fd_array
    for kfuncs in modules, or None.
    """
    pack = _IMM.pack_into
    fds = None   # made for the first kfunc call: most programs have none
    for slot, kind, ref in fixups:
        if kind == FIX_MAP:
            try:
                pack(code, 8 * slot + 4, map_fds[ref])
            except KeyError:
                raise ObjectError(f"instruction {slot} refers to map '{ref}', which does not exist") from None
            continue
        ext = externs.get(ref)
        if kind == FIX_EXTERN:
            if ext is not None:
                _patch_ksym_load(code, 8 * slot, extern(ext))
            continue
        if ext is None:
            raise ObjectError(f"instruction {slot} calls kfunc '{ref}', which is not an extern")
        if fds is None:
            fds = _FdArray()
        _patch_kfunc_call(code, 8 * slot, extern(ext), POISON_KFUNC_BASE + list(externs).index(ref), fds)
    return fds.result() if fds is not None else None


def patch_listed(insns: list[Instruction], code: bytearray, maps: Mapping[str, Any],
                 externs: Mapping[str, ExternSpec], extern: Callable[[ExternSpec], Any]) -> list[Any] | None:
    """Patch map fds and extern ids into ``code`` (the encoded ``insns``, which stay untouched),
    following the instructions' ``reference``: programs given or edited as instruction lists."""
    fds = _FdArray()
    ext_names = list(externs)
    for i, insn in enumerate(insns):
        ref = insn.reference
        if ref is None:
            continue
        at = 8 * i
        op = insn.code
        if op == 0x18:
            if insn.src in (PSEUDO_MAP_FD, PSEUDO_MAP_VALUE):
                m = maps.get(ref)
                if m is None:
                    raise ObjectError(f"instruction {i} refers to map '{ref}', which does not exist")
                _IMM.pack_into(code, at + 4, m.fd)
                continue
            ext = externs.get(ref)
            if ext is None:
                continue
            if i + 1 >= len(insns):
                raise ObjectError(f"instruction {i}: 64-bit load of '{ref}' has no second slot")
            _patch_ksym_load(code, at, extern(ext))
        elif op == 0x85 and insn.src == PSEUDO_KFUNC_CALL:
            ext = externs.get(ref)
            if ext is None:
                raise ObjectError(f"instruction {i} calls kfunc '{ref}', which is not an extern")
            _patch_kfunc_call(code, at, extern(ext), POISON_KFUNC_BASE + ext_names.index(ref), fds)
    return fds.result()


class _FdArray:
    """The fd_array of a program calling kfuncs of kernel modules: one slot per module BTF
    (slot 0 stands for vmlinux), referred to by the call's ``off``."""

    __slots__ = ("fds", "index")

    def __init__(self) -> None:
        self.fds: list[Any] = [0]
        self.index: dict[int, int] = {}

    def slot(self, btf_fd: Any) -> int:
        fd = btf_fd.fileno()
        if fd not in self.index:
            self.index[fd] = len(self.fds)
            self.fds.append(fd)
        return self.index[fd]

    def result(self) -> list[Any] | None:
        return self.fds if len(self.fds) > 1 else None


def _patch_ksym_load(code: bytearray, at: int, found: Any) -> None:
    """The ld_imm64 at byte ``at`` loads a ksym: its address (typeless), its BTF id (typed),
    or 0 for a missing weak one."""
    if found is None:
        src, lo, hi = 0, 0, 0
    elif not found[2]:
        src, lo, hi = 0, _s32(found[0] & 0xFFFFFFFF), _s32(found[0] >> 32)
    else:
        src, lo, hi = PSEUDO_BTF_ID, found[0], int(found[1].fileno()) if found[1] else 0
    code[at + 1] = (src << 4) | (code[at + 1] & 0xF)
    _IMM.pack_into(code, at + 4, lo)
    _IMM.pack_into(code, at + 12, hi)


def _patch_kfunc_call(code: bytearray, at: int, found: Any, poison_id: int, fds: _FdArray) -> None:
    """The call at byte ``at`` targets a kfunc: its BTF id and module slot, or for an
    unresolved weak kfunc a call the verifier refuses only if it is reachable."""
    if found is None:
        code[at + 1] = code[at + 1] & 0xF
        _OFF.pack_into(code, at + 2, 0)
        _IMM.pack_into(code, at + 4, poison_id)
        return
    _OFF.pack_into(code, at + 2, fds.slot(found[1]) if found[1] else 0)
    _IMM.pack_into(code, at + 4, found[0])


class LazyResolver:
    """A :class:`~pybpf.object.externs.KsymResolver` made on first use (most objects have no externs)."""

    __slots__ = ("_r",)

    def __init__(self) -> None:
        self._r: Any = None

    def _get(self) -> Any:
        if self._r is None:
            self._r = KsymResolver()
        return self._r

    def resolve(self, ext: Any) -> Any:
        return self._get().resolve(ext)

    def _module_fd(self, module: str) -> Any:
        return self._get()._module_fd(module)

    def close(self) -> None:
        if self._r is not None:
            self._r.close()


def line_strings(spec: ObjectSpec, line_info: list[Any]) -> dict[str, int] | None:
    """Offsets in the kernel BTF blob of the strings ``line_info`` names (None if one is missing)."""
    strings: dict[str, int] = getattr(spec, "_btf_strings", None) or {}
    missing = {s for li in line_info for s in (li.file_name, li.line_text) if s not in strings}
    if missing and spec._kernel_btf is not None:
        found = btf_fixup.string_offsets(spec._kernel_btf, missing)
        if found:
            strings = {**strings, **found}
            spec._btf_strings = strings
            missing -= found.keys()
    return None if missing else strings


class RawLineTable(Mapping[int, str]):
    """Instruction index -> C source line of a linked ProgramSpec, decoded only if a verifier error needs it."""

    def __init__(self, ps: ProgramSpec) -> None:
        self._ps = ps
        self._table: dict[int, str] | None = None

    def _get(self) -> dict[int, str]:
        if self._table is None:
            self._table = self._ps._sources()
        return self._table

    def __getitem__(self, key: int) -> str:
        return self._get()[key]

    def __iter__(self):
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


class LineTable(Mapping[int, str]):
    """Instruction index -> C source line, built only if a verifier error needs it."""

    def __init__(self, insns: list[Instruction]) -> None:
        self._insns = insns
        self._table: dict[int, str] | None = None

    def _get(self) -> dict[int, str]:
        if self._table is None:
            self._table = {i: str(x.source) for i, x in enumerate(self._insns) if x.source is not None}
        return self._table

    def __getitem__(self, key: int) -> str:
        return self._get()[key]

    def __iter__(self):
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


def _s32(v: int) -> int:
    return v - (1 << 32) if v & 0x80000000 else v
