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
import sys
from array import array
from typing import TYPE_CHECKING, Iterable

from pybpf.btf.types import BTFKind, Datasec, VarLinkage
from pybpf.errors import ObjectError
from pybpf.object.elffile import STB_GLOBAL, STB_LOCAL, STB_WEAK, STT_OBJECT, ElfFile
from pybpf.object.spec import ExternSpec

if TYPE_CHECKING:
    from pybpf.btf.reader import Spec

__all__ = ["fix_datasecs", "kernel_blob", "kinds_present", "sanitize_for_kernel", "DUMMY_KSYM"]

DUMMY_KSYM = "dummy_ksym"
_U32 = "I" if array("I").itemsize == 4 else "L"
_INT, _FUNC, _VAR, _DATASEC = int(BTFKind.INT), int(BTFKind.FUNC), int(BTFKind.VAR), int(BTFKind.DATASEC)
_EXTERN, _GLOBAL = int(VarLinkage.EXTERN), int(VarLinkage.GLOBAL)
_HDR = struct.Struct("<HBBIIIII")
# Extra 32-bit words after the 12-byte common header: fixed, then per vlen item.
_FIXED = {1: 1, 2: 0, 3: 3, 4: 0, 5: 0, 6: 0, 7: 0, 8: 0, 9: 0, 10: 0, 11: 0, 12: 0, 13: 0, 14: 1, 15: 0,
          16: 0, 17: 1, 18: 0, 19: 0}
_PER = {1: 0, 2: 0, 3: 0, 4: 3, 5: 3, 6: 2, 7: 0, 8: 0, 9: 0, 10: 0, 11: 0, 12: 0, 13: 2, 14: 0, 15: 3,
        16: 0, 17: 0, 18: 0, 19: 3}


def datasecs_by_name(btf: "Spec") -> dict[str, Datasec]:
    """The object's DATASECs by name (the first of each name, as ``btf.find`` gives it)."""
    out: dict[str, Datasec] = {}
    for tid in btf.ids_by_kind(BTFKind.DATASEC):
        t = btf.type_by_id(tid)
        if isinstance(t, Datasec) and t.name not in out:
            out[t.name] = t
    return out


def fix_datasecs(btf: "Spec", elf: ElfFile, externs: dict[str, ExternSpec], kconfig_size: int,
                 notes: list[str]) -> None:
    """Set DATASEC sizes and variable offsets from the ELF sections and symbols (in place).

    The records are fixed in the parsed spec's words, before the DATASECs are
    decoded (cheaper than decoding them and their variables, and what the
    kernel blob is then made of); a DATASEC decoded already is decoded again.
    """
    words, offs = btf.raw_words()
    first = btf.first_id
    strings = btf.strings
    names = {sec.name for sec in elf.sections if sec.name} | {".kconfig"}
    datasecs = []
    for tid in btf.ids_by_kind(BTFKind.DATASEC):
        name = strings[words[offs[tid - first]]]
        if name in names:
            datasecs.append((name, tid))
    if not datasecs:
        return
    datasecs.sort(key=lambda nt: nt[0])  # stable: same-named ones stay in id order
    globals_: dict[str, int] = {}
    locals_: dict[tuple[int, str], list[int]] = {}
    for s in elf.symbols:
        if s.type != STT_OBJECT or not s.name or s.shndx == 0:
            continue
        if s.bind in (STB_GLOBAL, STB_WEAK):
            globals_.setdefault(s.name, s.value)
        elif s.bind == STB_LOCAL:
            locals_.setdefault((s.shndx, s.name), []).append(s.value)
    count = len(btf)
    for name, tid in datasecs:
        if name == ".ksyms":
            continue
        o = offs[tid - first]
        vlen = words[o + 1] & 0xFFFF
        entries = [[words[k], words[k + 1], words[k + 2]] for k in range(o + 3, o + 3 + 3 * vlen, 3)]
        # each entry's variable: (name, linkage), checked to be a VAR
        variables = []
        for var_id, _off, _size in entries:
            if not first <= var_id < count:
                btf.type_by_id(var_id)  # raises: out of range
                raise ObjectError(f"BTF: DATASEC {name!r} refers to type {var_id}, which is not a VAR")
            vo = offs[var_id - first]
            kind = words[vo + 1] >> 24 & 0x1F
            if kind != _VAR:
                raise ObjectError(f"BTF: DATASEC {name!r} holds a {BTFKind(kind).name}, not a VAR")
            variables.append((strings[words[vo]], words[vo + 3]))
        if name == ".kconfig":
            offsets = {e.name: e.offset for e in externs.values() if e.kind == "kconfig"}
            size = kconfig_size
        else:
            sec = elf.section_by_name(name)
            if sec is None:  # pragma: no cover - names come from the sections
                notes.append(f"BTF DATASEC {name!r} has no ELF section: left as is")
                continue
            offsets = {}
            for vname, linkage in variables:
                if linkage == VarLinkage.STATIC:
                    found = locals_.get((sec.index, vname))
                    if found and len(found) == 1:
                        offsets[vname] = found[0]
                elif linkage == VarLinkage.GLOBAL:
                    off = globals_.get(vname)
                    if off is None:
                        raise ObjectError(f"BTF: DATASEC {name!r}: variable '{vname}' has no ELF symbol")
                    offsets[vname] = off
            size = words[o + 2] or sec.size
        for entry, (vname, _linkage) in zip(entries, variables):
            off = offsets.get(vname)
            if off is not None:
                entry[1] = off
        order = sorted(range(len(entries)), key=lambda j: entries[j][1])
        for j, k in enumerate(order):
            entry = entries[k]
            if entry[1] + entry[2] > size:
                raise ObjectError(f"BTF: DATASEC {name!r}: variable '{variables[k][0]}' at offset {entry[1]} "
                                  f"(+{entry[2]}) is past the end of the section ({size} bytes)")
            words[o + 3 + 3 * j:o + 6 + 3 * j] = array(words.typecode, entry)
        words[o + 2] = size
        btf.forget(tid)


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
                extra_strings: Iterable[str] = (), hidden_funcs: Iterable[str] = (),
                kinds: set[BTFKind] | None = None) -> tuple[bytes, dict[str, int]]:
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
    if type_len % 4 or tstart + type_len > len(raw):
        raise ObjectError("BTF: type section is not whole 32-bit words inside the blob")
    # The parsed spec's words: the same blob, with the DATASECs fixed (fix_datasecs).
    spec_words, offs = btf.raw_words()
    words = array(spec_words.typecode, spec_words)
    strings = bytearray(raw[sstart:sstart + str_len]) or bytearray(b"\0")
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

    # Extern VARs become globals; find an int and the .ksyms DATASEC.
    kinds_of = [words[o + 1] >> 24 & 0x1F for o in offs]
    ksyms: Datasec | None = None
    int_id: int | None = None
    funcs = [offs[i] for i, k in enumerate(kinds_of) if k == _FUNC]
    for i, k in enumerate(kinds_of):
        if k == _VAR:
            o = offs[i]
            if words[o + 3] == _EXTERN:
                words[o + 3] = _GLOBAL
        elif k == _DATASEC and ksyms is None and btf.strings[words[offs[i]]] == ".ksyms":
            t = btf.type_by_id(i + 1)
            if isinstance(t, Datasec):
                ksyms = t
        elif k == _INT and int_id is None:
            o = offs[i]
            if words[o + 2] == 4 and words[o + 3] & 0xFFFFFF == 32:
                int_id = i + 1
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
            words[w + 3 + 3 * j: w + 6 + 3 * j] = array(words.typecode, entry)
    # Other extern FUNCs (declarations of functions defined elsewhere): the kernel takes no extern linkage.
    hidden = {n.encode("utf-8", "surrogateescape") for n in hidden_funcs}
    for o in funcs:
        info = words[o + 1]
        if info & 0xFFFF == 2:
            words[o + 1] = (info & ~0xFFFF) | 1
        elif hidden and info & 0xFFFF == 1:
            start = words[o]
            end = strings.find(b"\0", start)
            if bytes(strings[start:end]) in hidden:
                words[o + 1] = info & ~0xFFFF
    extra = {s: string(s) for s in extra_strings}
    if kinds is not None:  # what kinds_present() of the result says
        kinds.update(BTFKind(k) for k in set(kinds_of))
        if appended:
            kinds.add(BTFKind.VAR)
            if int_id is not None and int_id > len(offs):
                kinds.add(BTFKind.INT)
    if appended:
        words.extend(array(words.typecode, appended))
    if sys.byteorder != "little":  # pragma: no cover
        words.byteswap()
    type_bytes = words.tobytes()
    header = _HDR.pack(0xEB9F, 1, 0, 24, 0, len(type_bytes), len(type_bytes), len(strings))
    return header + type_bytes + bytes(strings), extra


def string_offsets(blob: bytes, strings: Iterable[str]) -> dict[str, int]:
    """Offsets of ``strings`` in the string section of the BTF ``blob`` (those found)."""
    if len(blob) < _HDR.size:
        return {}
    _m, _v, _f, hdr_len, _to, _tl, str_off, str_len = _HDR.unpack_from(blob, 0)
    start = hdr_len + str_off
    section = blob[start:start + str_len]
    out: dict[str, int] = {}
    for s in strings:
        if not s:
            out[s] = 0
            continue
        pos = section.find(b"\0" + s.encode("utf-8", "surrogateescape") + b"\0")
        if pos >= 0:
            out[s] = pos + 1
    return out


def sanitize_for_kernel(blob: bytes, supported: set[BTFKind], func_global: bool) -> bytes:
    """Rewrite the kinds the kernel lacks (type ids and string offsets are kept)."""
    from pybpf.btf.reader import Spec
    from pybpf.btf.writer import encode, sanitize

    spec = Spec.parse(blob, lazy=True)
    types = sanitize(spec, supported, func_global=func_global)
    return encode(types, strings=spec.strings.copy())
