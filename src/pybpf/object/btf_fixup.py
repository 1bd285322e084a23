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
:func:`kernel_blob` patches a copy of the raw records (through
:class:`pybpf.btf.layout.Records`, the one statement of the word layout),
keeping every type id and string offset, which is much cheaper than
re-encoding; the few types it appends are encoded by the writer.
"""

from __future__ import annotations

import sys
from array import array
from operator import itemgetter

from pybpf.btf.layout import (
    COMMON_WORDS, HEADER_LEN, LAYOUTS, U32, Header, Records, read_header, scan, type_words,
)
from pybpf.btf.types import BTFKind, Datasec, FuncLinkage, Int, IntEncoding, Var, VarLinkage
from pybpf.errors import ObjectError
from pybpf.object.elffile import STB_GLOBAL, STB_LOCAL, STB_WEAK, STT_OBJECT, ElfFile
from pybpf.object.parts import ExternSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable
    from pybpf.btf.reader import Spec

__all__ = ["fix_datasecs", "kernel_blob", "kinds_present", "sanitize_for_kernel", "DUMMY_KSYM"]

DUMMY_KSYM = "dummy_ksym"


def datasecs_by_name(btf: "Spec") -> dict[str, Datasec]:
    """The object's DATASECs by name (the first of each name, as ``btf.find`` gives it)."""
    out: dict[str, Datasec] = {}
    for tid in btf.ids_by_kind(BTFKind.DATASEC):
        t = btf.type_by_id(tid)
        if isinstance(t, Datasec) and t.name not in out:
            out[t.name] = t
    return out


# Word positions in a record, from pybpf.btf.layout's statement of the layout: every record
# starts with struct btf_type (name_off, info, size/type); then a VAR's linkage, a DATASEC's
# entries (type, offset, size).  The hot loops below index the words with these directly.
_NAME, _INFO, _SIZE_TYPE = 0, 1, 2
_VAR_LINKAGE = COMMON_WORDS + LAYOUTS[BTFKind.VAR].fixed.index("linkage")
_DATASEC_ITEMS = COMMON_WORDS + len(LAYOUTS[BTFKind.DATASEC].fixed)
_DATASEC_ITEM = len(LAYOUTS[BTFKind.DATASEC].item)
_KINDS = {int(k): k for k in BTFKind}


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
    names = {sec[1] for sec in elf.sections}
    names.discard("")
    names.add(".kconfig")
    datasecs = []
    for tid in btf.ids_by_kind(BTFKind.DATASEC):
        name = strings[words[offs[tid - first] + _NAME]]
        if name in names:
            datasecs.append((name, tid))
    if not datasecs:
        return
    datasecs.sort(key=itemgetter(0))  # stable: same-named ones stay in id order
    globals_: dict[str, int] = {}
    locals_: dict[tuple[int, str], list[int]] = {}
    # symbols as tuples: [1] name, [4] type, [7] section index
    for _i, sname, value, _size, _type, bind, _vis, shndx in [sym for sym in elf.symbols
                                                              if sym[4] == STT_OBJECT and sym[1] and sym[7]]:
        if bind == STB_GLOBAL or bind == STB_WEAK:
            globals_.setdefault(sname, value)
        elif bind == STB_LOCAL:
            locals_.setdefault((shndx, sname), []).append(value)
    count = len(btf)
    kinds = btf.kinds()
    width = _DATASEC_ITEM
    for name, tid in datasecs:
        if name == ".ksyms":
            continue
        at = offs[tid - first]
        start = at + _DATASEC_ITEMS
        flat = words[start:start + width * (words[at + _INFO] & 0xFFFF)].tolist()
        entries = [flat[k:k + width] for k in range(0, len(flat), width)]   # [type, offset, size] each
        # each entry's variable: (name, linkage), checked to be a VAR
        variables = []
        for var_id, _off, _size in entries:
            if not first <= var_id < count:
                btf.type_by_id(var_id)  # raises: out of range
                raise ObjectError(f"BTF: DATASEC {name!r} refers to type {var_id}, which is not a VAR")
            kind = kinds[var_id - first]
            if kind != BTFKind.VAR:
                raise ObjectError(f"BTF: DATASEC {name!r} holds a {_KINDS[kind].name}, not a VAR")
            var_at = offs[var_id - first]
            variables.append((strings[words[var_at + _NAME]], words[var_at + _VAR_LINKAGE]))
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
            size = words[at + _SIZE_TYPE] or sec.size
        for entry, (vname, _linkage) in zip(entries, variables):
            off = offsets.get(vname)
            if off is not None:
                entry[1] = off
        order = sorted(range(len(entries)), key=lambda j: entries[j][1]) if len(entries) > 1 else [0] * len(entries)
        for k in order:
            entry = entries[k]
            if entry[1] + entry[2] > size:
                raise ObjectError(f"BTF: DATASEC {name!r}: variable '{variables[k][0]}' at offset {entry[1]} "
                                  f"(+{entry[2]}) is past the end of the section ({size} bytes)")
        for k in order:   # written back sorted, in place
            for value in entries[k]:
                words[start] = value
                start += 1
        words[at + _SIZE_TYPE] = size
        btf.forget(tid)


def kinds_present(blob: bytes) -> set[BTFKind]:
    """The kinds of the types in the BTF ``blob``."""
    words = type_words(blob, read_header(blob))
    recs = Records(words, scan(words)[0])
    return {recs.kind(tid) for tid in recs.ids()}


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
    hdr = read_header(raw)
    if hdr.order != "<":
        raise ObjectError("BTF: only little-endian BTF can be loaded")
    # The parsed spec's words: the same blob, with the DATASECs fixed (fix_datasecs).
    spec_words, offs = btf.raw_words()
    recs = Records(array(U32, spec_words), offs)
    strings = bytearray(raw[hdr.str_start:hdr.str_start + hdr.str_len]) or bytearray(b"\0")
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

    # Extern VARs become globals; find the .ksyms DATASEC (and an int, if it has entries).
    kind_of = btf.kinds()   # the kind of each type (fix_datasecs changes no info word)
    present = {_KINDS[k] for k in set(kind_of)}   # (scan() refused unknown kinds)
    funcs = _ids_of(kind_of, BTFKind.FUNC)
    words = recs.words
    for tid in _ids_of(kind_of, BTFKind.VAR):
        at = offs[tid - 1] + _VAR_LINKAGE
        if words[at] == VarLinkage.EXTERN:
            words[at] = VarLinkage.GLOBAL
    ksyms: Datasec | None = None
    for tid in _ids_of(kind_of, BTFKind.DATASEC):
        if btf.strings[words[offs[tid - 1] + _NAME]] == ".ksyms":
            t = btf.type_by_id(tid)
            if isinstance(t, Datasec):
                ksyms = t
            break
    appended: list[int] = []
    if ksyms is not None and ksyms.vars:
        from pybpf.btf.writer import record_words

        int_id = next((tid for tid in _ids_of(kind_of, BTFKind.INT) if recs.size_type(tid) == 4
                       and recs.field(tid, "encoding") & 0xFFFFFF == 32), None)   # 32 bits at offset 0
        next_id = len(offs) + 1
        int_t = Int("int", 4, IntEncoding.SIGNED)
        if int_id is None:
            int_id = next_id
            next_id += 1
            appended += record_words(int_t, string, None)  # type: ignore[arg-type]
            present.add(BTFKind.INT)
        dummy_id = next_id
        dummy = Var(DUMMY_KSYM, int_t, VarLinkage.GLOBAL)
        appended += record_words(dummy, string, lambda t: int_id)  # its one reference: the int
        present.add(BTFKind.VAR)
        dummy_name = string(DUMMY_KSYM)
        recs.set_size_type(ksyms.id, 4 * len(ksyms.vars))
        for j, vs in enumerate(ksyms.vars):
            var_id = vs.var_id
            if recs.kind(var_id) == BTFKind.FUNC:
                recs.set_vlen(var_id, FuncLinkage.GLOBAL)
                proto = recs.size_type(var_id)
                if recs.kind(proto) == BTFKind.FUNC_PROTO:   # unnamed parameters get a name
                    for k in range(recs.vlen(proto)):
                        if recs.item_field(proto, k, "type") and not recs.item_field(proto, k, "name_off"):
                            recs.set_item_field(proto, k, "name_off", dummy_name)
                recs.set_item(ksyms.id, j, (dummy_id, 4 * j, 4))
            else:
                recs.set_size_type(var_id, int_id)
                recs.set_field(var_id, "linkage", VarLinkage.GLOBAL)
                recs.set_item(ksyms.id, j, (var_id, 4 * j, 4))
    # Other extern FUNCs (declarations of functions defined elsewhere): the kernel takes no extern linkage.
    hidden = {n.encode("utf-8", "surrogateescape") for n in hidden_funcs}
    for tid in funcs:
        at = offs[tid - 1]
        linkage = words[at + _INFO] & 0xFFFF   # a FUNC's vlen is its linkage
        if linkage == FuncLinkage.EXTERN:
            recs.set_vlen(tid, FuncLinkage.GLOBAL)
        elif hidden and linkage == FuncLinkage.GLOBAL:
            start = words[at + _NAME]
            if bytes(strings[start:strings.find(b"\0", start)]) in hidden:
                recs.set_vlen(tid, FuncLinkage.STATIC)
    extra = {s: string(s) for s in extra_strings}
    if kinds is not None:  # what kinds_present() of the result says
        kinds.update(present)
    if appended:
        words.extend(array(words.typecode, appended))
    if sys.byteorder != "little":  # pragma: no cover
        words.byteswap()
    type_bytes = words.tobytes()
    header = Header("<", HEADER_LEN, 0, len(type_bytes), len(type_bytes), len(strings)).pack()
    return header + type_bytes + bytes(strings), extra


def _ids_of(kinds: bytes, kind: int) -> list[int]:
    """The ids (from 1) of the types of ``kind`` in ``kinds`` (:meth:`Spec.kinds` of an object's BTF)."""
    out = []
    i = kinds.find(kind)
    while i >= 0:
        out.append(i + 1)
        i = kinds.find(kind, i + 1)
    return out


def string_offsets(blob: bytes, strings: Iterable[str]) -> dict[str, int]:
    """Offsets of ``strings`` in the string section of the BTF ``blob`` (those found)."""
    try:
        hdr = read_header(blob)
    except ObjectError:
        return {}
    section = blob[hdr.str_start:hdr.str_start + hdr.str_len]
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
