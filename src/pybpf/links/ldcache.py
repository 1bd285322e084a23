"""Find a shared library or an executable by name, the way the dynamic loader does.

``resolve_target("c")``, ``resolve_target("libc")`` and
``resolve_target("libc.so.6")`` all return the path of the C library;
a name with a ``/`` is taken as a path; a bare name that is no library is
looked up in ``$PATH`` (``"bash"`` → ``/usr/bin/bash``).

Order, as in ld.so(8): ``$LD_LIBRARY_PATH``, then ``/etc/ld.so.cache``, then
the standard directories (the multiarch ones first).  Only files whose ELF
class and machine match this interpreter's are accepted, so a 32-bit
``libc.so.6`` listed in the cache is skipped on x86_64.

The cache format is glibc's "new" one (``glibc-ld.so.cache1.1``, the only
one written since glibc 2.32); the "old" format (``ld.so-1.7.0``), which
may carry a new-format cache after its own entries, is read too.

Example::

    >>> resolve_target("c")                       # doctest: +SKIP
    '/usr/lib/x86_64-linux-gnu/libc.so.6'
"""

from __future__ import annotations

import functools
import os
import re
import struct

from pybpf.errors import NotFoundError

__all__ = ["resolve_target", "find_library", "read_ld_cache", "library_candidates"]

LD_CACHE = "/etc/ld.so.cache"
_NEW_MAGIC = b"glibc-ld.so.cache1.1"
_OLD_MAGIC = b"ld.so-1.7.0"
_NEW_HEADER = struct.Struct("<20sIIB3xI12x")     # magic+version, nlibs, len_strings, flags, ext offset
_NEW_ENTRY = struct.Struct("<iIIIQ")              # flags, key, value, osversion, hwcap
_OLD_ENTRY = struct.Struct("<iII")                # flags, key, value


def read_ld_cache(path: str = LD_CACHE) -> list[tuple[str, str]]:
    """The ``(soname, path)`` entries of an ld.so.cache, in the file's order (best first).

    Returns ``[]`` when the file is missing or not a cache this code knows.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    return _parse_cache(data)


def _cstr(data: bytes, off: int) -> str:
    end = data.find(b"\0", off)
    if off < 0 or end < 0:
        return ""
    return data[off:end].decode("utf-8", "surrogateescape")


def _parse_cache(data: bytes) -> list[tuple[str, str]]:
    start = 0
    if data.startswith(_OLD_MAGIC):
        # Old format: 12-byte magic, nlibs, then 12-byte entries; a new-format
        # cache may follow, 8-byte aligned.  Offsets of the old entries are
        # relative to the string table after the entries.
        (nlibs,) = struct.unpack_from("<I", data, 12)
        entries_end = 16 + nlibs * _OLD_ENTRY.size
        new_at = (entries_end + 7) & ~7
        if data[new_at:new_at + len(_NEW_MAGIC)] == _NEW_MAGIC:
            start = new_at
        else:
            out = []
            for i in range(nlibs):
                _flags, key, value = _OLD_ENTRY.unpack_from(data, 16 + i * _OLD_ENTRY.size)
                out.append((_cstr(data, entries_end + key), _cstr(data, entries_end + value)))
            return out
    if data[start:start + len(_NEW_MAGIC)] != _NEW_MAGIC or len(data) < start + _NEW_HEADER.size:
        return []
    _magic, nlibs, _len_strings, _flags, _ext = _NEW_HEADER.unpack_from(data, start)
    out = []
    base = start + _NEW_HEADER.size
    if base + nlibs * _NEW_ENTRY.size > len(data):
        return []
    for i in range(nlibs):
        _flags, key, value, _osv, _hwcap = _NEW_ENTRY.unpack_from(data, base + i * _NEW_ENTRY.size)
        # New-format offsets count from the new header: the start of the
        # file, or of the new cache embedded after an old one.
        out.append((_cstr(data, start + key), _cstr(data, start + value)))
    return out


@functools.lru_cache(maxsize=1)
def _own_elf_ident() -> tuple[int, int, int] | None:
    """(EI_CLASS, EI_DATA, e_machine) of the running interpreter."""
    return _elf_ident("/proc/self/exe")


def _elf_ident(path: str) -> tuple[int, int, int] | None:
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    order = "<" if head[5] == 1 else ">"
    (machine,) = struct.unpack_from(order + "H", head, 18)
    return head[4], head[5], machine


def _compatible(path: str) -> bool:
    own = _own_elf_ident()
    ident = _elf_ident(path)
    if ident is None:
        return False
    return own is None or ident == own


def _standard_dirs() -> list[str]:
    import sysconfig   # here: the hooks import this module, few processes resolve libraries

    triple = sysconfig.get_config_var("MULTIARCH") or ""
    dirs = []
    if triple:
        dirs += [f"/lib/{triple}", f"/usr/lib/{triple}"]
    dirs += ["/lib64", "/usr/lib64", "/lib", "/usr/lib", "/usr/local/lib"]
    return dirs


def _library_path_dirs() -> list[str]:
    return [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]


_SO_RE = re.compile(r"^lib.+\.so(\.\d+)*$")


def library_candidates(name: str) -> tuple[str | None, str]:
    """``(exact soname or None, prefix)`` for a library name.

    "libc.so.6" → ("libc.so.6", ...); "c" and "libc" → (None, "libc.so"):
    any "libc.so" or "libc.so.N..." matches the prefix.
    """
    if _SO_RE.match(name):
        return name, name
    stem = name if name.startswith("lib") else "lib" + name
    if stem.endswith(".so"):
        stem = stem[:-3]
    return None, stem + ".so"


def _version_key(soname: str, prefix: str) -> tuple:
    rest = soname[len(prefix):].lstrip(".")
    nums = tuple(int(p) for p in rest.split(".") if p.isdigit())
    # Prefer a versioned soname ("libc.so.6") over the development symlink
    # ("libc.so", often a linker script), and the highest version among them.
    return (1 if nums else 0, nums)


def find_library(name: str) -> str | None:
    """The path of library ``name`` ("c", "libc", "libc.so.6"), or None."""
    exact, prefix = library_candidates(name)

    def matches(soname: str) -> bool:
        if exact is not None:
            return soname == exact
        return soname == prefix or (soname.startswith(prefix + ".") and soname[len(prefix) + 1:][:1].isdigit())

    # 1. LD_LIBRARY_PATH
    found = _search_dirs(_library_path_dirs(), matches, prefix)
    if found:
        return found
    # 2. ld.so.cache
    best: tuple[tuple, str] | None = None
    for soname, path in read_ld_cache():
        if matches(soname) and os.path.exists(path) and _compatible(path):
            key = _version_key(soname, prefix)
            if exact is not None:
                return path
            if best is None or key > best[0]:
                best = (key, path)
    if best is not None:
        return best[1]
    # 3. standard directories
    return _search_dirs(_standard_dirs(), matches, prefix)


def _search_dirs(dirs: list[str], matches, prefix: str) -> str | None:
    for d in dirs:
        try:
            names = os.listdir(d)
        except OSError:
            continue
        hits = sorted((n for n in names if matches(n)), key=lambda n: _version_key(n, prefix), reverse=True)
        for n in hits:
            path = os.path.join(d, n)
            if _compatible(path):
                return path
    return None


def resolve_target(target: str | os.PathLike) -> str:
    """The absolute path of a probe target: a path, a library name or a command in $PATH.

    Raises NotFoundError (a FileNotFoundError) naming what was tried.
    """
    text = os.fspath(target)
    if not isinstance(text, str):
        text = os.fsdecode(text)
    if not text:
        raise ValueError("empty probe target")
    if "/" in text:
        if not os.path.exists(text):
            raise NotFoundError(f"uprobe target {text!r} does not exist", filename=text)
        return os.path.realpath(text)
    lib = find_library(text)
    if lib:
        return os.path.realpath(lib)
    import shutil   # here: shutil imports bz2, lzma and fnmatch

    exe = shutil.which(text)
    if exe:
        return os.path.realpath(exe)
    exact, prefix = library_candidates(text)
    raise NotFoundError(
        f"uprobe target {text!r} not found: no library {exact or prefix + '*'} in "
        f"LD_LIBRARY_PATH, {LD_CACHE} or the standard directories, and no command of that name in $PATH",
        filename=text)
