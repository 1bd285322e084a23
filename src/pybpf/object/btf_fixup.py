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

import struct
import sys
from array import array
from itertools import chain
from operator import itemgetter

from pybpf.btf.layout import (
    BTF_MAGIC, COMMON_WORDS, HEADER_LEN, LAYOUTS, U32, Records, kinds_of, read_header, scan, type_words,
)
from pybpf.btf.types import BTFKind, Datasec, FuncLinkage, Int, IntEncoding, Var, VarLinkage
from pybpf.errors import ObjectError
from pybpf.object.elffile import STB_GLOBAL, STB_LOCAL, STB_WEAK, STT_OBJECT, ElfFile, Section
from pybpf.object.parts import ExternSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable
    from pybpf.btf.reader import Spec

__all__ = ["fix_datasecs", "kernel_blob", "kinds_present", "sanitize_for_kernel", "DUMMY_KSYM"]

DUMMY_KSYM = "dummy_ksym"


class DatasecsByName:
    """The object's DATASECs by name (the first of each name, as ``btf.find`` gives it), each
    decoded when asked for: ``.get(name)`` gives the :class:`Datasec` or None."""

    __slots__ = ("_btf", "_ids")

    def __init__(self, btf: "Spec | None", ids: dict[str, int]) -> None:
        self._btf = btf
        self._ids = ids

    def get(self, name: str, default: Datasec | None = None) -> Datasec | None:
        tid = self._ids.get(name)
        return default if tid is None else self._btf.type_by_id(tid)   # type: ignore[return-value]

    def id_of(self, name: str) -> int | None:
        """The id of the DATASEC ``name``, without decoding it (None if there is none)."""
        return self._ids.get(name)


# Word positions in a record, from pybpf.btf.layout's statement of the layout: every record
# starts with struct btf_type (name_off, info, size/type); then a VAR's linkage, a DATASEC's
# entries (type, offset, size).  The hot loops below index the words with these directly.
_NAME, _INFO, _SIZE_TYPE = 0, 1, 2
_VAR_LINKAGE = COMMON_WORDS + LAYOUTS[BTFKind.VAR].fixed.index("linkage")
_DATASEC_ITEMS = COMMON_WORDS + len(LAYOUTS[BTFKind.DATASEC].fixed)
_DATASEC_ITEM = len(LAYOUTS[BTFKind.DATASEC].item)
_KINDS = {int(k): k for k in BTFKind}
_VAR = int(BTFKind.VAR)
_STATIC, _GLOBAL = int(VarLinkage.STATIC), int(VarLinkage.GLOBAL)   # (FuncLinkage's are the same)
_EXTERN = int(VarLinkage.EXTERN)   # VAR and FUNC linkage (FuncLinkage.EXTERN is the same 2)
_OFFSET = itemgetter(0)
_HEADER = struct.Struct("<HBBIIIII")   # struct btf_header, little-endian (pybpf.btf.layout.Header)
_ENTRY_WORDS = itemgetter(1, 0, 2)   # (type, offset, size) of a sorted (offset, type, size, name) entry


def fix_datasecs(btf: "Spec", elf: ElfFile, externs: dict[str, ExternSpec], kconfig_size: int
                 ) -> DatasecsByName:
    """Set DATASEC sizes and variable offsets from the ELF sections and symbols (in place);
    return the DATASECs by name.

    The records are fixed in the parsed spec's words, before the DATASECs are
    decoded (cheaper than decoding them and their variables, and what the
    kernel blob is then made of); a DATASEC decoded already is decoded again.
    Every DATASEC's variable ids are checked, as decoding it would check them.
    """
    words, offs = btf.raw_words()
    first, count = btf.first_id, len(btf)
    strings = btf.strings
    by_name: dict[str, int] = {}
    datasecs = []   # (name, id, ELF section) of those of an ELF section or .kconfig (section None)
    others = []     # the ids of the rest
    for tid in btf.ids_by_kind(BTFKind.DATASEC):
        name = strings[words[offs[tid - first] + _NAME]]
        by_name.setdefault(name, tid)
        sec = elf.section_by_name(name)
        if name != ".ksyms" and (sec is not None or name == ".kconfig"):
            datasecs.append((name, tid, sec))
        else:
            others.append(tid)
    if datasecs:
        _fix(btf, elf, externs, kconfig_size, datasecs)
    for tid in others:
        at = offs[tid - first]
        start = at + _DATASEC_ITEMS
        var_ids = words[start:start + _DATASEC_ITEM * (words[at + _INFO] & 0xFFFF):_DATASEC_ITEM]
        if var_ids and max(var_ids) >= count:
            btf.type_by_id(tid)   # raises: a variable type id out of range
    return DatasecsByName(btf, by_name)


def _fix(btf: "Spec", elf: ElfFile, externs: dict[str, ExternSpec], kconfig_size: int,
         datasecs: list[tuple[str, int, Section | None]]) -> None:
    words, offs = btf.raw_words()
    first, count = btf.first_id, len(btf)
    strings = btf.strings
    datasecs.sort(key=itemgetter(0))  # stable: same-named ones stay in id order
    globals_: dict[str, int] = {}
    locals_: dict[tuple[int, str], list[int]] = {}
    # symbols as tuples: (index, name, value, size, type, bind, visibility, section index)
    for _i, sname, value, _size, stype, bind, _vis, shndx in elf.symbols:
        if stype != STT_OBJECT or not sname or not shndx:
            continue
        if bind == STB_GLOBAL or bind == STB_WEAK:
            globals_.setdefault(sname, value)
        elif bind == STB_LOCAL:
            locals_.setdefault((shndx, sname), []).append(value)
    kinds = btf.kinds()
    for name, tid, sec in datasecs:
        at = offs[tid - first]
        start = at + _DATASEC_ITEMS
        end = start + _DATASEC_ITEM * (words[at + _INFO] & 0xFFFF)
        # Each entry (type, offset, size) names a variable, checked to be a VAR; its ELF symbol gives
        # the offset of the variables of its name (a missing one is reported after the VAR checks).
        names = []
        offsets = {e.name: e.offset for e in externs.values() if e.kind == "kconfig"} if sec is None else {}
        missing = None
        for var_id in words[start:end:_DATASEC_ITEM]:
            if not first <= var_id < count:
                btf.type_by_id(var_id)  # raises: out of range
                raise ObjectError(f"BTF: DATASEC {name!r} refers to type {var_id}, which is not a VAR")
            kind = kinds[var_id - first]
            if kind != _VAR:
                raise ObjectError(f"BTF: DATASEC {name!r} holds a {_KINDS[kind].name}, not a VAR")
            var_at = offs[var_id - first]
            vname = strings[words[var_at + _NAME]]
            names.append(vname)
            if sec is None:   # .kconfig: the externs' layout
                continue
            linkage = words[var_at + _VAR_LINKAGE]
            if linkage == _STATIC:
                found = locals_.get((sec.index, vname))
                if found and len(found) == 1:
                    offsets[vname] = found[0]
            elif linkage == _GLOBAL:
                off = globals_.get(vname)
                if off is not None:
                    offsets[vname] = off
                elif missing is None:
                    missing = vname
        if missing is not None:
            raise ObjectError(f"BTF: DATASEC {name!r}: variable '{missing}' has no ELF symbol")
        size = kconfig_size if sec is None else words[at + _SIZE_TYPE] or sec.size
        if len(names) == 1:   # one variable (most sections): nothing to sort
            off = offsets.get(names[0], words[start + 1])
            if off + words[start + 2] > size:
                _outside(name, names[0], off, words[start + 2], size)
            words[start + 1] = off
        else:   # (offset, type, size, variable name) of each entry, by offset (stable), written back
            entries = sorted(zip(map(offsets.get, names, words[start + 1:end:_DATASEC_ITEM]),
                                 words[start:end:_DATASEC_ITEM], words[start + 2:end:_DATASEC_ITEM], names),
                             key=_OFFSET)
            for off, _var_id, vsize, vname in entries:
                if off + vsize > size:
                    _outside(name, vname, off, vsize, size)
            words[start:end] = array(words.typecode, chain.from_iterable(map(_ENTRY_WORDS, entries)))
        words[at + _SIZE_TYPE] = size
        btf.forget(tid)


def _outside(section: str, var: str, off: int, size: int, section_size: int) -> None:
    raise ObjectError(f"BTF: DATASEC {section!r}: variable '{var}' at offset {off} "
                      f"(+{size}) is past the end of the section ({section_size} bytes)")


def kinds_present(blob: bytes) -> set[BTFKind]:
    """The kinds of the types in the BTF ``blob``."""
    words = type_words(blob, read_header(blob))
    return set(map(_KINDS.__getitem__, set(kinds_of(words, scan(words)))))


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
    hdr = btf._header   # raw's, read when btf was parsed from it
    if hdr.order != "<":
        raise ObjectError("BTF: only little-endian BTF can be loaded")
    # The parsed spec's words: the same blob, with the DATASECs fixed (fix_datasecs).
    spec_words, offs = btf.raw_words()
    recs = Records(array(U32, spec_words), offs)
    words = recs.words
    str_start = hdr.str_start
    strings = bytearray(raw[str_start:str_start + hdr.str_len]) or bytearray(b"\0")
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
    present = set(map(_KINDS.__getitem__, set(btf.kinds())))   # (scan() refused unknown kinds)
    for tid in btf.ids_by_kind(BTFKind.VAR):
        at = offs[tid - 1] + _VAR_LINKAGE
        if words[at] == _EXTERN:
            words[at] = _GLOBAL
    ksyms: Datasec | None = None
    if b".ksyms\0" in strings:   # (a name may be the tail of a longer string)
        for tid in btf.ids_by_kind(BTFKind.DATASEC):
            if btf.strings[words[offs[tid - 1] + _NAME]] == ".ksyms":
                t = btf.type_by_id(tid)
                if isinstance(t, Datasec):
                    ksyms = t
                break
    appended: list[int] = []
    if ksyms is not None and ksyms.vars:
        from pybpf.btf.writer import record_words

        int_id = next((tid for tid in btf.ids_by_kind(BTFKind.INT) if recs.size_type(tid) == 4
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
    hidden = {n.encode("utf-8", "surrogateescape") for n in hidden_funcs} if hidden_funcs else ()
    for tid in btf.ids_by_kind(BTFKind.FUNC):
        at = offs[tid - 1]
        linkage = words[at + _INFO] & 0xFFFF   # a FUNC's vlen is its linkage
        if linkage == _EXTERN:
            recs.set_vlen(tid, FuncLinkage.GLOBAL)
        elif hidden and linkage == _GLOBAL:
            start = words[at + _NAME]
            if bytes(strings[start:strings.find(b"\0", start)]) in hidden:
                recs.set_vlen(tid, FuncLinkage.STATIC)
    extra = {s: string(s) for s in extra_strings} if extra_strings else {}
    if kinds is not None:  # what kinds_present() of the result says
        kinds.update(present)
    if appended:
        words.extend(array(words.typecode, appended))
    if sys.byteorder != "little":  # pragma: no cover
        words.byteswap()
    type_bytes = words.tobytes()
    header = _HEADER.pack(BTF_MAGIC, 1, 0, HEADER_LEN, 0, len(type_bytes), len(type_bytes), len(strings))
    return b"".join((header, type_bytes, strings)), extra


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
