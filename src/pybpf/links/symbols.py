"""ELF symbol resolution for uprobes: function name → file offset.

A uprobe is placed at a *file offset* of an executable or shared library.
This module reads just enough of an ELF file (headers, ``.symtab``,
``.dynsym``, the GNU version sections, notes) to turn a function name into
that offset, for PIE and non-PIE executables and shared libraries alike:
the symbol's virtual address is translated through the section that holds
it (or, failing that, the ``PT_LOAD`` segment), ``offset = vaddr - sh_addr
+ sh_offset``.

Names may carry a symbol version as ``readelf`` prints them:
``"memcpy@GLIBC_2.14"`` (that version, default or not) or
``"memcpy@@GLIBC_2.14"`` (only the default version).  A bare name picks the
default version when several exist.  An unknown name raises
:class:`SymbolNotFoundError` listing the closest names (difflib).

It is pure Python and fast enough to resolve every symbol of libc in a few
milliseconds: files are read with ``pread`` (only the sections needed), the
symbol tables are decoded with ``struct.iter_unpack``, and parsed files are
cached by (device, inode, size, mtime).

Note: an ``STT_GNU_IFUNC`` symbol (glibc's ``memcpy``, ``strlen``...) is the
*resolver*, which runs once while the library is relocated; the attach
functions probe the implementation the loader picks instead
(:mod:`pybpf.links.ifunc`), this module reports the symbol as it is.

Example::

    >>> elf = ElfFile.open("/usr/lib/x86_64-linux-gnu/libc.so.6")   # doctest: +SKIP
    >>> elf.resolve("getpid").offset                                # doctest: +SKIP
    1004976
"""

from __future__ import annotations

import fnmatch
import os
import re
import struct
from _thread import allocate_lock   # threading.Lock itself, without importing threading
from collections import OrderedDict, namedtuple

from pybpf._record import FrozenRecord
from pybpf.errors import LinkError, file_error

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable

__all__ = [
    "ElfFile", "Symbol", "Section", "Segment", "SymbolNotFoundError", "AmbiguousSymbolError",
    "resolve_symbol", "resolve_symbols", "parse_symbol_name",
]

# ELF constants (elf(5)).
ET_EXEC, ET_DYN = 2, 3
SHT_SYMTAB, SHT_NOTE, SHT_NOBITS, SHT_DYNSYM = 2, 7, 8, 11
SHT_GNU_VERDEF, SHT_GNU_VERSYM = 0x6FFFFFFD, 0x6FFFFFFF
PT_LOAD = 1
PF_X = 1
STT_FUNC, STT_GNU_IFUNC = 2, 10
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
SHN_UNDEF, SHN_LORESERVE, SHN_XINDEX = 0, 0xFF00, 0xFFFF
VERSYM_HIDDEN = 0x8000
_FUNC_TYPES = (STT_FUNC, STT_GNU_IFUNC)


class SymbolNotFoundError(LinkError, LookupError):
    """A function name is not in the file; ``close`` holds the closest names."""

    def __init__(self, message: str, *, name: str = "", path: str = "", close: list[str] | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.path = path
        self.close = close or []

    def __str__(self) -> str:
        return LinkError.__str__(self)


class AmbiguousSymbolError(LinkError, LookupError):
    """A name matches functions at several addresses (local symbols of different files, versions)."""

    def __str__(self) -> str:
        return LinkError.__str__(self)


class Section(FrozenRecord):
    __slots__ = ("index", "name", "type", "flags", "addr", "offset", "size", "link", "info", "entsize")

    def __init__(self, index: int, name: str, type: int, flags: int, addr: int, offset: int, size: int,
                 link: int, info: int, entsize: int) -> None:
        super().__init__(index=index, name=name, type=type, flags=flags, addr=addr, offset=offset, size=size,
                         link=link, info=info, entsize=entsize)


class Segment(FrozenRecord):
    __slots__ = ("type", "flags", "offset", "vaddr", "filesz", "memsz")

    def __init__(self, type: int, flags: int, offset: int, vaddr: int, filesz: int, memsz: int) -> None:
        super().__init__(type=type, flags=flags, offset=offset, vaddr=vaddr, filesz=filesz, memsz=memsz)


class Symbol(namedtuple("Symbol", ("name", "address", "offset", "size", "type", "bind", "version", "default", "dynamic"), defaults=(None, True, False))):
    """A function symbol and where a uprobe on it goes.

    ``name`` is the bare name, ``version`` its GNU symbol version (or None)
    and ``default`` whether that version is the default (``@@``).
    ``address`` is the virtual address (``st_value``), ``offset`` the file
    offset a uprobe takes.  (A NamedTuple: files hold tens of thousands.)
    """

    __slots__ = ()
    name: str
    address: int
    offset: int
    size: int
    type: int
    bind: int
    version: str | None
    default: bool
    dynamic: bool

    @property
    def versioned_name(self) -> str:
        if self.version is None:
            return self.name
        return f"{self.name}{'@@' if self.default else '@'}{self.version}"


def parse_symbol_name(text: str) -> tuple[str, str | None, bool]:
    """``"memcpy@@GLIBC_2.14"`` → ("memcpy", "GLIBC_2.14", True); default_only is True for ``@@``."""
    if "@@" in text:
        name, _, version = text.partition("@@")
        return name, version or None, True
    if "@" in text:
        name, _, version = text.partition("@")
        return name, version or None, False
    return text, None, False


class ElfFile:
    """The parts of an ELF file that symbol resolution and USDT need.

    Use :meth:`ElfFile.open` (cached); the constructor always reads the file.
    No file descriptor stays open.
    """

    __slots__ = ("path", "is64", "order", "type", "machine", "sections", "segments",
                 "_symbols", "_by_name", "_stat", "_lock")

    _cache: "OrderedDict[tuple, ElfFile]" = OrderedDict()
    _cache_lock = allocate_lock()
    _CACHE_SIZE = 16

    def __init__(self, path: str) -> None:
        self.path = path
        self._symbols: list[Symbol] | None = None
        self._by_name: dict[str, list[Symbol]] | None = None
        self._lock = allocate_lock()
        with self._open() as f:
            st = os.fstat(f.fileno())
            self._stat = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            self._read_headers(f.fileno(), st.st_size)

    @classmethod
    def open(cls, path: str | os.PathLike) -> "ElfFile":
        """A parsed file, from the cache when the file has not changed.

        Raises :class:`LinkError` for a file that is not a usable ELF file and a
        :class:`pybpf.FileError` (also FileNotFoundError, IsADirectoryError,
        PermissionError...) for one that cannot be read.
        """
        path = os.fspath(path)
        try:
            st = os.stat(path)
        except OSError as exc:
            raise file_error(exc, f"probe target {path}") from None
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        with cls._cache_lock:
            elf = cls._cache.get(key)
            if elf is not None:
                cls._cache.move_to_end(key)
                return elf
        elf = cls(path)
        with cls._cache_lock:
            cls._cache[key] = elf
            while len(cls._cache) > cls._CACHE_SIZE:
                cls._cache.popitem(last=False)
        return elf

    @property
    def file_size(self) -> int:
        """The size of the file, in bytes, when it was read."""
        return self._stat[2]

    # -- headers -------------------------------------------------------------------------

    def _bad(self, why: str) -> LinkError:
        return LinkError(f"{self.path}: not a usable ELF file: {why}")

    def _open(self):  # noqa: ANN202 - a file object
        try:
            return open(self.path, "rb")
        except OSError as exc:
            raise file_error(exc, f"probe target {self.path}") from None

    def _pread(self, fd: int, size: int, offset: int, what: str) -> bytes:
        """``size`` bytes at ``offset``, checked against the file's size first (damaged headers
        would otherwise ask for 2**63 bytes or an offset ``pread`` cannot take)."""
        file_size = self._stat[2]
        if offset < 0 or size < 0 or offset + size > file_size:
            raise self._bad(f"{what} ({size} bytes at offset {offset:#x}) lies past the end of the file "
                            f"({file_size} bytes)")
        try:
            data = os.pread(fd, size, offset)
        except OSError as exc:
            raise file_error(exc, f"probe target {self.path}: reading {what}") from None
        if len(data) != size:
            raise self._bad(f"{what} is cut short")
        return data

    def _read_headers(self, fd: int, size: int) -> None:
        ident = self._pread(fd, min(64, size), 0, "the ELF header")
        if len(ident) < 52 or ident[:4] != b"\x7fELF":
            raise self._bad("no ELF magic")
        self.is64 = ident[4] == 2
        if ident[4] not in (1, 2) or ident[5] not in (1, 2):
            raise self._bad("unknown ELF class or byte order")
        o = self.order = "<" if ident[5] == 1 else ">"
        if len(ident) < (64 if self.is64 else 52):
            raise self._bad("the ELF header is cut short")
        if self.is64:
            (self.type, self.machine, _v, _entry, phoff, shoff, _fl, _ehs, phentsize, phnum,
             shentsize, shnum, shstrndx) = struct.unpack_from(o + "HHIQQQIHHHHHH", ident, 16)
        else:
            (self.type, self.machine, _v, _entry, phoff, shoff, _fl, _ehs, phentsize, phnum,
             shentsize, shnum, shstrndx) = struct.unpack_from(o + "HHIIIIIHHHHHH", ident, 16)
        # Section headers (with extended numbering: the real count in sh[0].sh_size).
        shfmt = struct.Struct(o + ("IIQQQQIIQQ" if self.is64 else "IIIIIIIIII"))
        raw_sections: list[tuple] = []
        if shoff and shentsize >= shfmt.size:
            first = self._pread(fd, shentsize, shoff, "the section headers")
            sh0 = shfmt.unpack_from(first)
            if shnum == 0:
                shnum = sh0[5]
            if shstrndx == SHN_XINDEX:
                shstrndx = sh0[6]
            if shnum > 65536 * 16 or shoff + shnum * shentsize > size:
                raise self._bad("section headers past the end of the file")
            table = self._pread(fd, shnum * shentsize, shoff, "the section headers")
            for i in range(shnum):
                raw_sections.append(shfmt.unpack_from(table, i * shentsize))
        names = b""
        if 0 < shstrndx < len(raw_sections):
            s = raw_sections[shstrndx]
            names = self._pread(fd, s[5], s[4], "the section names") if s[1] != SHT_NOBITS else b""
        sections = []
        for i, s in enumerate(raw_sections):
            if self.is64:
                name, typ, flags, addr, off, sz, link, info, _align, ent = s
            else:
                name, typ, flags, addr, off, sz, link, info, _align, ent = s
            end = names.find(b"\0", name)
            nm = names[name:end].decode("utf-8", "replace") if end >= 0 else ""
            sections.append(Section(i, nm, typ, flags, addr, off, sz, link, info, ent))
        self.sections = sections
        # Program headers.
        segs = []
        if phoff and phnum:
            if self.is64:
                phfmt, fields = struct.Struct(o + "IIQQQQQQ"), (0, 1, 2, 3, 5, 6)
            else:
                phfmt, fields = struct.Struct(o + "IIIIIIII"), (0, 6, 1, 2, 4, 5)
            if phentsize < phfmt.size:
                raise self._bad(f"program header entries of {phentsize} bytes (want {phfmt.size})")
            table = self._pread(fd, min(phnum * phentsize, max(size - phoff, 0)), phoff, "the program headers")
            for i in range(phnum):
                if (i + 1) * phentsize > len(table):
                    break
                p = phfmt.unpack_from(table, i * phentsize)
                segs.append(Segment(*(p[k] for k in fields)))
        self.segments = segs

    def section(self, name: str) -> Section | None:
        for s in self.sections:
            if s.name == name:
                return s
        return None

    def read_section(self, sec: Section) -> bytes:
        if sec.type == SHT_NOBITS or sec.size == 0:
            return b""
        with self._open() as f:
            self._check_unchanged(f.fileno())
            return self._pread(f.fileno(), sec.size, sec.offset, f"section {sec.name or sec.index}")

    def _check_unchanged(self, fd: int) -> None:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != self._stat:
            raise LinkError(f"{self.path} changed while it was being read")

    # -- addresses -------------------------------------------------------------------------

    def vaddr_to_offset(self, vaddr: int, section_index: int | None = None) -> int:
        """File offset of virtual address ``vaddr`` (through its section, else its PT_LOAD)."""
        if section_index is not None and 0 < section_index < len(self.sections):
            s = self.sections[section_index]
            if s.type != SHT_NOBITS and s.addr <= vaddr < s.addr + max(s.size, 1):
                return vaddr - s.addr + s.offset
        for seg in self.segments:
            if seg.type == PT_LOAD and seg.vaddr <= vaddr < seg.vaddr + seg.filesz:
                return vaddr - seg.vaddr + seg.offset
        for s in self.sections:
            if s.addr and s.type != SHT_NOBITS and s.addr <= vaddr < s.addr + s.size:
                return vaddr - s.addr + s.offset
        raise LinkError(f"{self.path}: address {vaddr:#x} is in no loaded segment")

    def offset_to_vaddr(self, offset: int) -> int:
        for seg in self.segments:
            if seg.type == PT_LOAD and seg.offset <= offset < seg.offset + seg.filesz:
                return offset - seg.offset + seg.vaddr
        raise LinkError(f"{self.path}: file offset {offset:#x} is in no loaded segment")

    # -- symbols ---------------------------------------------------------------------------

    @property
    def symbols(self) -> list[Symbol]:
        """Every defined function symbol of ``.symtab`` and ``.dynsym``."""
        if self._symbols is None:
            with self._lock:
                if self._symbols is None:
                    self._load_symbols()
        return self._symbols  # type: ignore[return-value]

    @property
    def by_name(self) -> dict[str, list[Symbol]]:
        if self._by_name is None:
            self.symbols
        return self._by_name  # type: ignore[return-value]

    def _load_symbols(self) -> None:
        wanted = [s for s in self.sections if s.type in (SHT_SYMTAB, SHT_DYNSYM)]
        blobs: dict[int, bytes] = {}
        with self._open() as f:
            fd = f.fileno()
            self._check_unchanged(fd)

            def read(idx: int) -> bytes:
                if idx not in blobs:
                    sec = self.sections[idx]
                    blobs[idx] = b"" if sec.type == SHT_NOBITS else \
                        self._pread(fd, sec.size, sec.offset, f"section {sec.name or sec.index}")
                return blobs[idx]

            symbols: list[Symbol] = []
            versym_sec = next((s for s in self.sections if s.type == SHT_GNU_VERSYM), None)
            verdef_sec = next((s for s in self.sections if s.type == SHT_GNU_VERDEF), None)
            for sec in wanted:
                if not 0 < sec.link < len(self.sections):
                    continue
                data = read(sec.index)
                strtab = read(sec.link)
                versions: dict[int, str] = {}
                versym = None
                if sec.type == SHT_DYNSYM and versym_sec is not None:
                    versym = read(versym_sec.index)
                    if verdef_sec is not None and 0 < verdef_sec.link < len(self.sections):
                        versions = self._verdefs(read(verdef_sec.index), read(verdef_sec.link), verdef_sec.info)
                symbols.extend(self._decode_symtab(data, strtab, sec.type == SHT_DYNSYM, versym, versions))
        by_name: dict[str, list[Symbol]] = {}
        for sym in symbols:
            lst = by_name.get(sym.name)
            if lst is None:
                by_name[sym.name] = [sym]
            else:
                lst.append(sym)
        self._symbols = symbols
        self._by_name = by_name

    def _verdefs(self, data: bytes, strtab: bytes, count: int) -> dict[int, str]:
        out: dict[int, str] = {}
        o = self.order
        off = 0
        for _ in range(count or 0xFFFF):
            if off + 20 > len(data):
                break
            _ver, _flags, ndx, cnt, _hash, aux, nxt = struct.unpack_from(o + "HHHHIII", data, off)
            if cnt and off + aux + 8 <= len(data):
                (name_off, _n) = struct.unpack_from(o + "II", data, off + aux)
                end = strtab.find(b"\0", name_off)
                if end >= 0:
                    out[ndx] = strtab[name_off:end].decode("utf-8", "replace")
            if not nxt:
                break
            off += nxt
        return out

    def _decode_symtab(self, data: bytes, strtab: bytes, dynamic: bool, versym: bytes | None,
                       versions: dict[int, str]) -> list[Symbol]:
        o = self.order
        if self.is64:
            fmt, size = o + "IBBHQQ", 24
        else:
            fmt, size = o + "IIIBBH", 16
        n = len(data) // size
        if n == 0:
            return []
        rows = struct.iter_unpack(fmt, memoryview(data)[: n * size])
        vs = None
        if versym is not None and len(versym) >= 2 * n:
            vs = struct.unpack_from(f"{o}{n}H", versym)
        find = strtab.find
        sections = self.sections
        nsec = len(sections)
        out: list[Symbol] = []
        append = out.append
        to_offset = self.vaddr_to_offset
        is64 = self.is64
        for i, row in enumerate(rows):
            if is64:
                name_off, info, _other, shndx, value, sz = row
            else:
                name_off, value, sz, info, _other, shndx = row
            typ = info & 0xF
            if typ != STT_FUNC and typ != STT_GNU_IFUNC:
                continue
            if shndx == SHN_UNDEF or shndx >= SHN_LORESERVE or value == 0 or name_off == 0:
                continue
            end = find(b"\0", name_off)
            if end <= name_off:
                continue
            name = strtab[name_off:end].decode("utf-8", "replace")
            version = None
            default = True
            if vs is not None:
                v = vs[i]
                ndx = v & 0x7FFF
                if ndx > 1:
                    version = versions.get(ndx)
                    default = not (v & VERSYM_HIDDEN)
            elif "@" in name:
                # .symtab spells versioned definitions "name@VER" / "name@@VER".
                name, version, default = parse_symbol_name(name)
            # Translate through the symbol's own section when it holds the address.
            s = sections[shndx] if shndx < nsec else None
            if s is not None and s.type != SHT_NOBITS and s.addr <= value < s.addr + s.size:
                offset = value - s.addr + s.offset
            else:
                offset = _try_offset(to_offset, value)
                if offset < 0:
                    continue
            append(Symbol(name, value, offset, sz, typ, info >> 4, version, default, dynamic))
        return out

    # -- lookups ---------------------------------------------------------------------------

    def function_names(self) -> list[str]:
        return sorted(self.by_name)

    def resolve(self, name: str) -> Symbol:
        """The function ``name`` (optionally ``name@VER`` / ``name@@VER``).

        Raises :class:`SymbolNotFoundError` (with close matches) or
        :class:`AmbiguousSymbolError`.
        """
        base, version, default_only = parse_symbol_name(name)
        cands = self.by_name.get(base, [])
        if version is not None:
            cands = [s for s in cands if s.version == version and (s.default or not default_only)]
        if not cands:
            raise self._not_found(name, base, version)
        return self._pick(name, cands)

    def _pick(self, name: str, cands: list[Symbol]) -> Symbol:
        by_off: dict[int, Symbol] = {}
        for s in cands:
            prev = by_off.get(s.offset)
            # The .dynsym entry carries the version; prefer it for the same address.
            if prev is None or (s.dynamic and not prev.dynamic):
                by_off[s.offset] = s
        if len(by_off) == 1:
            return next(iter(by_off.values()))
        uniq = list(by_off.values())
        # Several addresses: the default version, then global over local.
        narrowed = [s for s in uniq if s.default and s.version is not None] or uniq
        if len(narrowed) > 1:
            narrowed = [s for s in narrowed if s.bind != STB_LOCAL] or narrowed
        if len(narrowed) > 1:
            narrowed = [s for s in narrowed if s.bind == STB_GLOBAL] or narrowed
        if len(narrowed) == 1:
            return narrowed[0]
        listing = ", ".join(f"{s.versioned_name} at {s.address:#x}" for s in narrowed[:8])
        raise AmbiguousSymbolError(
            f"{self.path}: {name!r} names {len(narrowed)} functions ({listing}); "
            "give a version (name@VERSION) or a file offset")

    def _not_found(self, name: str, base: str, version: str | None) -> SymbolNotFoundError:
        if version is not None and base in self.by_name:
            have = sorted({s.versioned_name for s in self.by_name[base]})
            return SymbolNotFoundError(
                f"{self.path}: no function {name!r}; versions present: {', '.join(have)}",
                name=name, path=self.path, close=have)
        import difflib   # only for this message

        close = difflib.get_close_matches(base, self.by_name.keys(), n=5, cutoff=0.6)
        msg = f"{self.path}: no function {name!r}"
        if close:
            msg += f"; did you mean {', '.join(close)}?"
        elif not self.by_name:
            msg += " (the file has no function symbols: stripped?)"
        return SymbolNotFoundError(msg, name=name, path=self.path, close=close)

    def match(self, pattern: str) -> list[Symbol]:
        """Every function whose name matches the shell glob ``pattern``, one per address, by name."""
        base, version, default_only = parse_symbol_name(pattern)
        if not any(c in base for c in "*?["):
            return [self.resolve(pattern)]
        m = re.compile(fnmatch.translate(base)).match
        out: dict[int, Symbol] = {}
        for name in sorted(self.by_name):
            if not m(name):
                continue
            cands = self.by_name[name]
            if version is not None:
                cands = [s for s in cands if s.version == version and (s.default or not default_only)]
                if not cands:
                    continue
            try:
                sym = self._pick(name, cands)
            except AmbiguousSymbolError:
                # Same-named local functions of different files: probe each.
                for s in cands:
                    out.setdefault(s.offset, s)
                continue
            out.setdefault(sym.offset, sym)
        return sorted(out.values(), key=lambda s: (s.name, s.offset))


def _try_offset(to_offset, value: int) -> int:
    try:
        return to_offset(value)
    except LinkError:
        return -1


def resolve_symbol(path: str, name: str) -> Symbol:
    """Resolve one function of the ELF file at ``path``."""
    return ElfFile.open(path).resolve(name)


def resolve_symbols(path: str, names: str | Iterable[str]) -> list[Symbol]:
    """Resolve a glob (``"str*"``) or a list of names (each may itself be a glob).

    A list keeps its order; a glob is sorted by name.  An empty result raises
    :class:`SymbolNotFoundError`.
    """
    elf = ElfFile.open(path)
    if isinstance(names, str):
        syms = elf.match(names)
        if not syms:
            raise SymbolNotFoundError(f"{path}: no function matches {names!r}", name=names, path=path)
        return syms
    out: list[Symbol] = []
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"symbol names must be str, not {type(name).__name__}")
        got = elf.match(name)
        if not got:
            raise SymbolNotFoundError(f"{path}: no function matches {name!r}", name=name, path=path)
        out.extend(got)
    return out
