"""Make an object's BTF acceptable to BPF_BTF_LOAD.

clang leaves work for the loader in ``.BTF``:

- DATASEC sizes and variable offsets are 0 (the ELF symbol table has them);
  the kernel wants real ones, sorted and non-overlapping;
- ``extern`` variables (``.kconfig``, ``.ksyms``) have extern linkage and
  ``.ksyms`` lists kfuncs (FUNCs, size 0) in a DATASEC; the kernel takes
  neither.  As libbpf does, kconfig variables become allocated globals,
  each ksym a 4-byte int variable, each kfunc entry a dummy int variable
  (``dummy_ksym``), extern FUNCs get global linkage and unnamed parameters
  of their prototypes get a name;
- kinds the running kernel lacks (FLOAT before 5.13, DECL_TAG before 5.16,
  TYPE_TAG before 5.17, ENUM64 before 6.0, ...) are rewritten by
  :func:`pybpf.btf.writer.sanitize` (:func:`sanitize_for_kernel`).

:func:`fix_datasecs` corrects the parsed :class:`~pybpf.btf.reader.Spec`
in place (so the codecs and ``spec.btf`` see the real layout);
:func:`kernel_blob` patches a copy of the raw blob word by word, keeping
every type id and string offset, which is much cheaper than re-encoding.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Iterable

from pybpf.btf.types import BTFKind, Datasec, Var, VarLinkage
from pybpf.errors import ObjectError
from pybpf.object.elffile import STB_GLOBAL, STB_LOCAL, STB_WEAK, STT_OBJECT, ElfFile
from pybpf.object.spec import ExternSpec

if TYPE_CHECKING:
    from pybpf.btf.reader import Spec

__all__ = ["fix_datasecs", "kernel_blob", "kinds_present", "sanitize_for_kernel", "DUMMY_KSYM"]

DUMMY_KSYM = "dummy_ksym"
_HDR = struct.Struct("<HBBIIIII")
# Extra 32-bit words after the 12-byte common header: fixed, then per vlen item.
_FIXED = {1: 1, 2: 0, 3: 3, 4: 0, 5: 0, 6: 0, 7: 0, 8: 0, 9: 0, 10: 0, 11: 0, 12: 0, 13: 0, 14: 1, 15: 0,
          16: 0, 17: 1, 18: 0, 19: 0}
_PER = {1: 0, 2: 0, 3: 0, 4: 3, 5: 3, 6: 2, 7: 0, 8: 0, 9: 0, 10: 0, 11: 0, 12: 0, 13: 2, 14: 0, 15: 3,
        16: 0, 17: 0, 18: 0, 19: 3}


def fix_datasecs(btf: "Spec", elf: ElfFile, externs: dict[str, ExternSpec], kconfig_size: int,
                 notes: list[str]) -> None:
    """Set DATASEC sizes and variable offsets from the ELF sections and symbols (in place)."""
    globals_: dict[str, int] = {}
    locals_: dict[tuple[int, str], list[int]] = {}
    for s in elf.symbols:
        if s.type != STT_OBJECT or not s.name or s.is_undefined:
            continue
        if s.bind in (STB_GLOBAL, STB_WEAK):
            globals_.setdefault(s.name, s.value)
        elif s.bind == STB_LOCAL:
            locals_.setdefault((s.shndx, s.name), []).append(s.value)
    names = {sec.name for sec in elf.sections if sec.name} | {".kconfig"}
    datasecs = [t for name in sorted(names) for t in btf.types_by_name(name, include_base=False)
                if isinstance(t, Datasec)]
    for t in datasecs:
        if t.name == ".ksyms":
            continue
        if t.name == ".kconfig":
            offsets = {e.name: e.offset for e in externs.values() if e.kind == "kconfig"}
            t.fixup(kconfig_size, offsets)
            continue
        sec = elf.section_by_name(t.name)
        if sec is None:
            notes.append(f"BTF DATASEC {t.name!r} has no ELF section: left as is")
            continue
        offsets = {}
        for vs in t.vars:
            var = vs.var
            if not isinstance(var, Var):
                raise ObjectError(f"BTF: DATASEC {t.name!r} holds a {var.kind.name}, not a VAR")
            if var.linkage == VarLinkage.STATIC:
                found = locals_.get((sec.index, var.name))
                if found and len(found) == 1:
                    offsets[var.name] = found[0]
            elif var.linkage == VarLinkage.GLOBAL:
                off = globals_.get(var.name)
                if off is None:
                    raise ObjectError(f"BTF: DATASEC {t.name!r}: variable '{var.name}' has no ELF symbol")
                offsets[var.name] = off
        t.fixup(t.size or sec.size, offsets)
        for vs in t.vars:
            if vs.offset + vs.size > t.size:
                raise ObjectError(f"BTF: DATASEC {t.name!r}: variable '{vs.var.name}' at offset {vs.offset} "
                                  f"(+{vs.size}) is past the end of the section ({t.size} bytes)")


def _scan(words: tuple[int, ...] | list[int], start_id: int = 1) -> list[int]:
    """Word index of each type record (index 0 is type id ``start_id``)."""
    offs = []
    i, n = 0, len(words)
    fixed, per = _FIXED, _PER
    while i < n:
        offs.append(i)
        info = words[i + 1]
        kind = info >> 24 & 0x1F
        try:
            i += 3 + fixed[kind] + per[kind] * (info & 0xFFFF)
        except KeyError:
            raise ObjectError(f"BTF: type [{start_id + len(offs) - 1}] has unknown kind {kind}") from None
    if i != n:
        raise ObjectError("BTF: the type section ends inside a type")
    return offs


def kinds_present(blob: bytes) -> set[BTFKind]:
    magic, _v, _f, hdr_len, type_off, type_len, _so, _sl = _HDR.unpack_from(blob, 0)
    start = hdr_len + type_off
    words = struct.unpack_from(f"<{type_len // 4}I", blob, start)
    return {BTFKind(words[o + 1] >> 24 & 0x1F) for o in _scan(words)}


def kernel_blob(raw: bytes, btf: "Spec", externs: dict[str, ExternSpec],
                extra_strings: Iterable[str] = (), hidden_funcs: Iterable[str] = ()) -> tuple[bytes, dict[str, int]]:
    """A copy of ``raw`` (the object's .BTF) the kernel accepts, and the offsets of ``extra_strings``.

    Every type id and string offset of ``raw`` stays valid: new types
    (the dummy ksym variable, an int if there is none) and strings are
    appended at the end.  FUNCs named in ``hidden_funcs`` (global symbols
    with hidden visibility, ``__hidden``) get static linkage, as libbpf
    gives them: the verifier then checks them in their caller's context
    instead of as global functions with unknown (maybe NULL) arguments.
    """
    if len(raw) < _HDR.size:
        raise ObjectError("BTF: truncated header")
    magic, version, flags, hdr_len, type_off, type_len, str_off, str_len = _HDR.unpack_from(raw, 0)
    if magic != 0xEB9F:
        raise ObjectError("BTF: only little-endian BTF can be loaded")
    tstart, sstart = hdr_len + type_off, hdr_len + str_off
    words = list(struct.unpack_from(f"<{type_len // 4}I", raw, tstart))
    strings = bytearray(raw[sstart:sstart + str_len]) or bytearray(b"\0")
    offs = _scan(words)
    found: dict[str, int] = {}

    def string(s: str) -> int:
        off = found.get(s)
        if off is not None:
            return off
        if not s:
            return 0
        needle = b"\0" + s.encode("utf-8", "surrogateescape") + b"\0"
        pos = strings.find(needle)
        if pos < 0:
            pos = len(strings) - 1
            strings.extend(needle[1:])
        found[s] = pos + 1
        return pos + 1

    appended: list[int] = []
    next_id = len(offs) + 1

    def word(tid: int) -> int:
        return offs[tid - 1]

    # DATASECs (sizes, offsets, order) from the fixed-up parsed spec; extern VARs become globals.
    ksyms: Datasec | None = None
    int_id: int | None = None
    for index, o in enumerate(offs):
        info = words[o + 1]
        kind = info >> 24 & 0x1F
        if kind == BTFKind.DATASEC:
            t = btf.type_by_id(index + 1)
            if not isinstance(t, Datasec):  # pragma: no cover - same blob
                continue
            if t.name == ".ksyms":
                ksyms = t
                continue
            words[o + 2] = t.size
            for j, vs in enumerate(t.vars):
                words[o + 3 + 3 * j: o + 6 + 3 * j] = [vs.var_id, vs.offset, vs.size]
        elif kind == BTFKind.VAR and words[o + 3] == VarLinkage.EXTERN:
            words[o + 3] = int(VarLinkage.GLOBAL)
        elif kind == BTFKind.INT and int_id is None and words[o + 2] == 4 and words[o + 3] & 0xFFFFFF == 32:
            int_id = index + 1
    if ksyms is not None and ksyms.vars:
        if int_id is None:
            int_id = next_id
            next_id += 1
            appended += [string("int"), BTFKind.INT << 24, 4, (1 << 24) | 32]
        dummy_id = next_id
        next_id += 1
        dummy_name = string(DUMMY_KSYM)
        appended += [dummy_name, BTFKind.VAR << 24, int_id, int(VarLinkage.GLOBAL)]
        w = word(ksyms.id)
        words[w + 2] = 4 * len(ksyms.vars)
        for j, vs in enumerate(ksyms.vars):
            var_id = vs.var_id
            v = word(var_id)
            kind = words[v + 1] >> 24 & 0x1F
            if kind == BTFKind.FUNC:
                words[v + 1] = (words[v + 1] & ~0xFFFF) | 1      # linkage: global
                p = word(words[v + 2])
                if words[p + 1] >> 24 & 0x1F == BTFKind.FUNC_PROTO:
                    for k in range(words[p + 1] & 0xFFFF):
                        if words[p + 3 + 2 * k + 1] and not words[p + 3 + 2 * k]:
                            words[p + 3 + 2 * k] = dummy_name
                entry = [dummy_id, 4 * j, 4]
            else:
                words[v + 2] = int_id
                words[v + 3] = int(VarLinkage.GLOBAL)
                entry = [var_id, 4 * j, 4]
            words[w + 3 + 3 * j: w + 6 + 3 * j] = entry
    # Other extern FUNCs (declarations of functions defined elsewhere): the kernel takes no extern linkage.
    hidden = {n.encode("utf-8", "surrogateescape") for n in hidden_funcs}
    for o in offs:
        info = words[o + 1]
        if info >> 24 & 0x1F != BTFKind.FUNC:
            continue
        if info & 0xFFFF == 2:
            words[o + 1] = (info & ~0xFFFF) | 1
        elif hidden and info & 0xFFFF == 1:
            start = words[o]
            end = strings.find(b"\0", start)
            if bytes(strings[start:end]) in hidden:
                words[o + 1] = info & ~0xFFFF
    extra = {s: string(s) for s in extra_strings}
    type_bytes = struct.pack(f"<{len(words) + len(appended)}I", *words, *appended)
    header = _HDR.pack(0xEB9F, 1, 0, 24, 0, len(type_bytes), len(type_bytes), len(strings))
    return header + type_bytes + bytes(strings), extra


def sanitize_for_kernel(blob: bytes, supported: set[BTFKind], func_global: bool) -> bytes:
    """Rewrite the kinds the kernel lacks (type ids and string offsets are kept)."""
    from pybpf.btf.reader import Spec
    from pybpf.btf.writer import encode, sanitize

    spec = Spec.parse(blob, lazy=True)
    types = sanitize(spec, supported, func_global=func_global)
    return encode(types, strings=spec.strings.copy())
