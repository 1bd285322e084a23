"""A small, strict reader for 64-bit little-endian BPF ELF relocatable objects.

Only what a BPF loader needs: section headers, the symbol table and REL
relocation entries, read straight with :mod:`struct` (pyelftools builds an
object per symbol and is an order of magnitude slower on large objects).
Every malformed input raises :class:`~pybpf.errors.ObjectError` naming the
section and byte offset; nothing here raises IndexError or struct.error.

Example::

    elf = ElfFile(open("x.bpf.o", "rb").read())
    text = elf.section_by_name(".text")
    for off, sym, rtype in elf.relocations_for(text.index):
        print(off, elf.symbols[sym].name, rtype)
"""

from __future__ import annotations

import struct
from collections import namedtuple
from operator import itemgetter

from pybpf.errors import ObjectError

__all__ = [
    "ElfFile", "Section", "Symbol", "Relocation",
    "SHT_PROGBITS", "SHT_SYMTAB", "SHT_STRTAB", "SHT_NOBITS", "SHT_REL", "SHF_EXECINSTR",
    "STT_NOTYPE", "STT_OBJECT", "STT_FUNC", "STT_SECTION", "STB_LOCAL", "STB_GLOBAL", "STB_WEAK",
    "SHN_UNDEF", "R_BPF_NONE", "R_BPF_64_64", "R_BPF_64_ABS64", "R_BPF_64_ABS32", "R_BPF_64_32",
]

EM_BPF = 247
ET_REL = 1
SHT_NULL = 0
SHT_PROGBITS = 1
SHT_SYMTAB = 2
SHT_STRTAB = 3
SHT_NOBITS = 8
SHT_REL = 9
SHF_WRITE = 0x1
SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4
STT_NOTYPE = 0
STT_OBJECT = 1
STT_FUNC = 2
STT_SECTION = 3
STT_FILE = 4
STB_LOCAL = 0
STB_GLOBAL = 1
STB_WEAK = 2
STV_HIDDEN = 2
STV_INTERNAL = 1
SHN_UNDEF = 0
SHN_LORESERVE = 0xFF00
SHN_ABS = 0xFFF1
SHN_COMMON = 0xFFF2

# Relocation types of the BPF target (llvm/BinaryFormat/ELFRelocs/BPF.def).
R_BPF_NONE = 0
R_BPF_64_64 = 1         # ld_imm64
R_BPF_64_ABS64 = 2      # data (.maps initial values)
R_BPF_64_ABS32 = 3      # data (.BTF)
R_BPF_64_NODYLD32 = 4   # .BTF.ext
R_BPF_64_32 = 10        # call

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
_REL = struct.Struct("<QQ")
_R_INFO = itemgetter(1)   # r_info of a REL entry: symbol << 32 | type
_FIRST = itemgetter(0)    # a section header's name offset
_SHNDX_OF_RAW = itemgetter(3)   # st_shndx of an unpacked symbol table entry


class Section(tuple):
    """One section header; ``data`` is its bytes (zeros are not materialised for NOBITS).

    A tuple underneath (``index, name, type, flags, offset, size, link, info,
    entsize``, and the file's bytes): an object has dozens of sections, most of
    them debug info a loader never looks at, so making one must cost next to
    nothing.  (The bytes, not the :class:`ElfFile`, which holds the sections:
    no reference cycle, so a parsed file is freed as soon as it is dropped.)
    """

    __slots__ = ()

    index = property(itemgetter(0))
    name = property(itemgetter(1))
    type = property(itemgetter(2))
    flags = property(itemgetter(3))
    offset = property(itemgetter(4))
    size = property(itemgetter(5))
    link = property(itemgetter(6))
    info = property(itemgetter(7))
    entsize = property(itemgetter(8))

    def __new__(cls, index: int, name: str, type: int, flags: int, offset: int, size: int,
                link: int, info: int, entsize: int, data: bytes) -> "Section":
        return tuple.__new__(cls, (index, name, type, flags, offset, size, link, info, entsize, data))

    @property
    def data(self) -> bytes:
        if self[2] == SHT_NOBITS:
            return bytes(self[5])
        off = self[4]
        return self[9][off:off + self[5]]

    @property
    def is_code(self) -> bool:
        return self[2] == SHT_PROGBITS and bool(self[3] & SHF_EXECINSTR)

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return f"<Section [{self.index}] {self.name!r} type={self.type} size={self.size}>"


class Symbol(namedtuple("Symbol", ("index", "name", "value", "size", "type", "bind", "visibility", "shndx"))):
    __slots__ = ()
    index: int
    name: str
    value: int
    size: int
    type: int
    bind: int
    visibility: int
    shndx: int

    @property
    def is_undefined(self) -> bool:
        return self.shndx == SHN_UNDEF


class Relocation(namedtuple("Relocation", ("offset", "symbol", "type"))):
    __slots__ = ()
    offset: int      # byte offset in the target section
    symbol: int      # index into ElfFile.symbols
    type: int


def _cstr(table: bytes, off: int, what: str) -> str:
    if off >= len(table) and off:
        raise ObjectError(f"{what}: name offset {off} is past the end of the string table ({len(table)} bytes)")
    end = table.find(b"\0", off)
    if end < 0:
        end = len(table)
    return table[off:end].decode("utf-8", "surrogateescape")


class ElfFile:
    """Sections, symbols and relocations of a BPF ELF object held in ``data``."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.sections: list[Section] = []
        self.symbols: list[Symbol] = []
        self._by_name: dict[str, Section] = {}
        self._rels: dict[int, list[Section]] = {}
        self._symtabs: list[Section] = []
        self.code_sections: set[int] = set()   # indexes of the sections of code (also empty ones)
        self._by_section: dict[int, list[Symbol]] = {}
        self._parse_header()
        self._parse_sections()
        self._parse_symbols()

    # -- headers ----------------------------------------------------------------------

    def _parse_header(self) -> None:
        data = self.data
        if len(data) < 4 or data[:4] != b"\x7fELF":
            raise ObjectError("not an ELF file (bad magic at byte 0)")
        if len(data) < _EHDR.size:
            raise ObjectError(f"ELF header truncated: {len(data)} bytes, need {_EHDR.size}")
        ident = data[:16]
        if ident[4] != 2:
            raise ObjectError(f"ELF class {ident[4]} at byte 4: only 64-bit objects are BPF objects")
        if ident[5] == 2:
            raise ObjectError("big-endian BPF object (-target bpfeb) at byte 5: only little-endian is supported")
        if ident[5] != 1:
            raise ObjectError(f"ELF data encoding {ident[5]} at byte 5 is invalid")
        (_, e_type, machine, _ver, _entry, _phoff, shoff, _flags, _ehsize, _phentsize, _phnum,
         shentsize, shnum, shstrndx) = _EHDR.unpack_from(data, 0)
        if machine != EM_BPF:
            raise ObjectError(f"ELF machine {machine} at byte 18 is not BPF ({EM_BPF})")
        if e_type != ET_REL:
            raise ObjectError(f"ELF type {e_type} at byte 16: a BPF object is a relocatable file (1)")
        if shnum == 0 or shstrndx >= SHN_LORESERVE:
            raise ObjectError("ELF uses extended section numbering (more than 65279 sections): not supported")
        if shentsize != _SHDR.size:
            raise ObjectError(f"ELF section header size {shentsize} at byte 58, expected {_SHDR.size}")
        if shoff + shnum * shentsize > len(data):
            raise ObjectError(f"ELF section headers at byte {shoff} ({shnum} of {shentsize} bytes) run past "
                              f"the end of the {len(data)}-byte file")
        if shstrndx >= shnum:
            raise ObjectError(f"ELF section name table index {shstrndx} out of range ({shnum} sections)")
        self._shoff, self._shnum, self._shstrndx = shoff, shnum, shstrndx

    def _parse_sections(self) -> None:
        data, size = self.data, len(self.data)
        shoff, shnum = self._shoff, self._shnum
        raw = list(_SHDR.iter_unpack(data[shoff:shoff + shnum * _SHDR.size]))
        st = raw[self._shstrndx]
        if st[1] != SHT_STRTAB or st[4] + st[5] > size:
            raise ObjectError(f"section name table [{self._shstrndx}] is not a string table inside the file")
        names = data[st[4]:st[4] + st[5]]
        nlen = len(names)
        if max(map(_FIRST, raw[1:]), default=0) >= max(nlen, 1):   # (section 0 has no name)
            i = next(i for i in range(1, len(raw)) if raw[i][0] >= max(nlen, 1))
            raise ObjectError(f"section [{i}]: name offset {raw[i][0]} is past the end of the string table "
                              f"({nlen} bytes)")
        if not names.endswith(b"\0"):
            names += b"\0"
        # One pass builds everything (a pass per column costs more: an object has dozens of sections).
        text = names.decode("ascii") if names.isascii() else None   # then byte offsets are str offsets
        find = text.find if text is not None else names.find
        self.sections = sections = []
        by_name = self._by_name
        rels = self._rels
        symtabs = self._symtabs
        code_sections = self.code_sections
        append = sections.append
        new = tuple.__new__
        i = 0
        for name_off, stype, flags, _addr, offset, ssize, link, info, _align, entsize in raw:
            if not i:
                name = ""
            elif text is not None:
                name = text[name_off:find("\0", name_off)]
            else:
                name = names[name_off:find(b"\0", name_off)].decode("utf-8", "surrogateescape")
            if offset + ssize > size and stype != SHT_NOBITS and stype != SHT_NULL:
                raise ObjectError(f"section [{i}] {name!r}: data at byte {offset} (+{ssize}) runs past the end "
                                  f"of the {size}-byte file")
            sec = new(Section, (i, name, stype, flags, offset, ssize, link, info, entsize, data))
            append(sec)
            if name and name not in by_name:   # the first section of each name
                by_name[name] = sec
            if stype == SHT_REL:   # the REL sections of each section
                rels.setdefault(info, []).append(sec)
            elif stype == SHT_SYMTAB:
                symtabs.append(sec)
            elif stype == SHT_PROGBITS and flags & SHF_EXECINSTR:
                code_sections.add(i)
            i += 1

    def _parse_symbols(self) -> None:
        symtabs = self._symtabs
        if not symtabs:
            return
        if len(symtabs) > 1:
            raise ObjectError(f"{len(symtabs)} symbol tables: a BPF object has one")
        symtab = symtabs[0]
        if symtab.entsize not in (0, _SYM.size) or symtab.size % _SYM.size:
            raise ObjectError(f"section {symtab.name!r}: symbol table of {symtab.size} bytes with entry size "
                              f"{symtab.entsize} (expected {_SYM.size})")
        if not 0 < symtab.link < len(self.sections) or self.sections[symtab.link].type != SHT_STRTAB:
            raise ObjectError(f"section {symtab.name!r}: string table index {symtab.link} is not a string table")
        strtab = self.sections[symtab.link].data
        slen = len(strtab)
        sections = self.sections
        nsec = len(sections)
        raw = list(_SYM.iter_unpack(symtab.data))
        if not raw:
            return
        if any(nsec <= shndx < SHN_LORESERVE for shndx in set(map(_SHNDX_OF_RAW, raw))):
            i = next(i for i, r in enumerate(raw) if nsec <= r[3] < SHN_LORESERVE)
            raise ObjectError(f"section {symtab.name!r}: symbol {i} at byte {symtab.offset + i * _SYM.size} "
                              f"refers to section {raw[i][3]}, out of range ({nsec} sections)")
        if not strtab.endswith(b"\0"):
            strtab += b"\0"
        text = strtab.decode("ascii") if strtab.isascii() else None   # then byte offsets are str offsets
        find = text.find if text is not None else strtab.find
        self.symbols = symbols = []
        by_section = self._by_section   # the symbols of each section, in table order
        append = symbols.append
        new = tuple.__new__
        i = 0
        for name_off, info, other, shndx, value, ssize in raw:
            if not name_off:
                # (Unnamed section symbols take their section's name.)
                name = sections[shndx][1] if info & 0xF == STT_SECTION and shndx < nsec else ""
            elif name_off >= slen:
                raise ObjectError(f"symbol {i}: name offset {name_off} is past the end of the string table "
                                  f"({slen} bytes)")
            elif text is not None:
                name = text[name_off:find("\0", name_off)]
            else:
                name = strtab[name_off:find(b"\0", name_off)].decode("utf-8", "surrogateescape")
            sym = new(Symbol, (i, name, value, ssize, info & 0xF, info >> 4, other & 3, shndx))
            append(sym)
            in_section = by_section.get(shndx)
            if in_section is None:
                by_section[shndx] = [sym]
            else:
                in_section.append(sym)
            i += 1

    # -- queries ----------------------------------------------------------------------

    def section_by_name(self, name: str) -> Section | None:
        return self._by_name.get(name)

    def symbols_in(self, index: int) -> list[Symbol]:
        """The symbols defined in section ``index``, in symbol table order."""
        return self._by_section.get(index, [])

    def relocations_for(self, index: int) -> list[Relocation]:
        """The REL entries that apply to section ``index`` (all its .rel sections)."""
        new = tuple.__new__
        return [new(Relocation, (offset, info >> 32, info & 0xFFFFFFFF))
                for offset, info in self.raw_relocations(index)]

    def raw_relocations(self, index: int) -> list[tuple[int, int]]:
        """``(offset, r_info)`` of each REL entry of section ``index``: what :meth:`relocations_for`
        gives, the symbol (``r_info >> 32``, checked to exist) and type not split apart yet."""
        out: list[tuple[int, int]] = []
        nsym = len(self.symbols)
        for rel in self._rels.get(index, ()):
            if rel.size % _REL.size or rel.entsize not in (0, _REL.size):
                raise ObjectError(f"section {rel.name!r}: {rel.size} bytes of relocations with entry size "
                                  f"{rel.entsize} (expected {_REL.size})")
            raw = list(_REL.iter_unpack(rel.data))
            if raw and max(raw, key=_R_INFO)[1] >> 32 >= nsym:
                j = next(j for j, (_offset, info) in enumerate(raw) if info >> 32 >= nsym)
                raise ObjectError(f"section {rel.name!r}: relocation {j} at byte {rel.offset + j * _REL.size} "
                                  f"refers to symbol {raw[j][1] >> 32}, out of range ({nsym} symbols)")
            out += raw
        return out
