"""IFUNC symbols: probe the implementation the dynamic loader picks, not its resolver.

glibc exports ``strlen``, ``memcpy``, ``strcmp``... as ``STT_GNU_IFUNC``
symbols: the symbol's address is a *resolver* that the dynamic loader calls
once, while it relocates the library, to choose the implementation for this
CPU (``__strlen_avx2``, ``__memmove_evex_unaligned_erms``...).  A uprobe on
the resolver fires once per process start, never for the calls (BCC and
bpftrace have the same trap).

pybpf asks the loader of its own process instead: when the library is
already loaded here (``dlopen(RTLD_NOLOAD)``; libc always is), ``dlsym`` (or
``dlvsym`` for a versioned name) returns the implementation the loader
selected, and ``/proc/self/maps`` turns that address back into a file offset
of the same file.  Processes on the same machine make the same choice (the
CPU is the same), unless ``GLIBC_TUNABLES`` differ.  The implementation's
name comes from the file's ``.symtab`` when it has one (distribution
libraries are usually stripped: then only the offset is known).

When the choice cannot be made (the library is not loaded in this process,
the symbol is local, the address lies in another file) a RuntimeWarning says
so and the resolver is probed, as before.

Example::

    link = prog.attach_uprobe("c", "strlen")
    link.info().ifunc        # {'strlen': IfuncChoice(strlen -> file offset 0xbe3c0)}
"""

from __future__ import annotations

import ctypes
import os
import warnings

from pybpf._record import FrozenRecord
from pybpf.links.symbols import STT_FUNC, STT_GNU_IFUNC, ElfFile, Symbol

__all__ = ["IfuncChoice", "select_implementations"]

_RTLD_LAZY, _RTLD_NOLOAD = 0x1, 0x4
_libc = ctypes.CDLL(None, use_errno=True)
_dlopen = _libc.dlopen
_dlopen.restype, _dlopen.argtypes = ctypes.c_void_p, (ctypes.c_char_p, ctypes.c_int)
_dlsym = _libc.dlsym
_dlsym.restype, _dlsym.argtypes = ctypes.c_void_p, (ctypes.c_void_p, ctypes.c_char_p)
_dlvsym = _libc.dlvsym
_dlvsym.restype, _dlvsym.argtypes = ctypes.c_void_p, (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p)
_dlclose = _libc.dlclose
_dlclose.restype, _dlclose.argtypes = ctypes.c_int, (ctypes.c_void_p,)


class IfuncChoice(FrozenRecord):
    """The implementation probed for an IFUNC symbol.

    ``symbol`` as given, ``implementation`` its name (None when the file has
    no ``.symtab``), ``offset`` the file offset probed, ``resolver_offset``
    where the resolver is.
    """

    __slots__ = ("symbol", "implementation", "offset", "resolver_offset")

    def __init__(self, symbol: str, implementation: str | None, offset: int, resolver_offset: int) -> None:
        super().__init__(symbol=symbol, implementation=implementation, offset=offset,
                         resolver_offset=resolver_offset)

    def __str__(self) -> str:
        name = self.implementation or f"file offset {self.offset:#x}"
        return f"{self.symbol} -> {name} (IFUNC resolver at {self.resolver_offset:#x})"


def _address_in_process(path: str, sym: Symbol) -> tuple[int | None, str]:
    """The address the loader of this process bound ``sym`` of ``path`` to, or (None, why not)."""
    handle = _dlopen(os.fsencode(path), _RTLD_LAZY | _RTLD_NOLOAD)
    if not handle:
        return None, "the library is not loaded in this process (pybpf does not load it to ask its loader)"
    try:
        name = sym.name.encode()
        if sym.version is not None and not sym.default:
            addr = _dlvsym(handle, name, sym.version.encode())
        else:
            addr = _dlsym(handle, name)
    finally:
        _dlclose(handle)
    if not addr:
        return None, "the dynamic loader does not export it (a local symbol?)"
    return addr, ""


def _file_offset(addr: int, path: str) -> int | None:
    """The offset in ``path`` of address ``addr`` of this process (None if ``path`` is not mapped there)."""
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split(maxsplit=5)
            if len(fields) < 6:
                continue
            start, _, end = fields[0].partition("-")
            if not int(start, 16) <= addr < int(end, 16):
                continue
            mapped = fields[5].strip()
            try:
                same = os.path.samefile(mapped, path)
            except OSError:
                same = False
            return addr - int(start, 16) + int(fields[2], 16) if same else None
    return None


def _name_at(elf: ElfFile, offset: int) -> str | None:
    names = sorted({s.name for s in elf.symbols if s.offset == offset and s.type == STT_FUNC})
    return names[0] if names else None


def select_implementations(elf: ElfFile, syms: list[Symbol], *, warn: bool = True
                           ) -> tuple[list[Symbol], dict[str, IfuncChoice]]:
    """``syms`` with each IFUNC replaced by the implementation this machine's loader selects.

    Returns the symbols to probe and, per IFUNC symbol name, the
    :class:`IfuncChoice` made.  An IFUNC that cannot be resolved stays as is,
    with a RuntimeWarning.
    """
    out: list[Symbol] = []
    chosen: dict[str, IfuncChoice] = {}
    for sym in syms:
        if sym.type != STT_GNU_IFUNC:
            out.append(sym)
            continue
        addr, why = _address_in_process(elf.path, sym)
        offset = _file_offset(addr, elf.path) if addr else None
        if addr and offset is None:
            why = "the loader bound it to code outside the file"
        if offset is None:
            if warn:
                warnings.warn(f"{elf.path}: {sym.versioned_name} is an IFUNC and {why}: probing its resolver, "
                              "which runs once when the library is loaded, not on each call", RuntimeWarning,
                              stacklevel=4)
            out.append(sym)
            continue
        impl = _name_at(elf, offset)
        chosen[sym.name] = IfuncChoice(sym.versioned_name, impl, offset, sym.offset)
        out.append(sym._replace(name=impl or sym.name, offset=offset, address=elf.offset_to_vaddr(offset),
                                type=STT_FUNC))
    return out, chosen
