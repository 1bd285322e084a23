"""ELF symbol resolution (pybpf.links.symbols), library lookup (ldcache) and USDT note parsing.

Offsets are checked against pyelftools (an independent reader) and the
library lookup against ``ldconfig -p``.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess

import pytest
from elftools.elf.elffile import ELFFile

from pybpf.errors import LinkError
from pybpf.links import ldcache
from pybpf.links.symbols import AmbiguousSymbolError, ElfFile, SymbolNotFoundError, parse_symbol_name, resolve_symbols
from pybpf.links.usdt import encode_spec, find_probes, parse_arg, parse_args

from test_links_support import BIN, build_c, gcc, target


def _elftools_functions(path) -> dict[str, set[int]]:
    """name (without version) → file offsets of its defined FUNC/IFUNC symbols, via pyelftools."""
    out: dict[str, set[int]] = {}
    with open(path, "rb") as f:
        elf = ELFFile(f)
        loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        for secname in (".symtab", ".dynsym"):
            sec = elf.get_section_by_name(secname)
            if sec is None:
                continue
            for sym in sec.iter_symbols():
                if sym["st_info"]["type"] not in ("STT_FUNC", "STT_LOOS") or sym["st_shndx"] == "SHN_UNDEF":
                    continue
                value = sym["st_value"]
                if not value or not sym.name:
                    continue
                seg = next((s for s in loads if s["p_vaddr"] <= value < s["p_vaddr"] + s["p_filesz"]), None)
                if seg is None:
                    continue
                name = sym.name.split("@")[0]
                out.setdefault(name, set()).add(value - seg["p_vaddr"] + seg["p_offset"])
    return out


# ------------------------------------------------------------------------ ld.so.cache

def test_ld_cache_matches_ldconfig():
    entries = ldcache.read_ld_cache()
    assert entries, "the cache parsed to nothing"
    text = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    expected = []
    for line in text.splitlines()[1:]:
        if "=>" in line:
            left, _, path = line.partition("=>")
            expected.append((left.split()[0], path.strip()))
    assert entries == expected


@pytest.mark.parametrize("name", ["c", "libc", "libc.so.6"])
def test_library_names_resolve_like_the_loader(name):
    path = ldcache.resolve_target(name)
    assert os.path.basename(path) == "libc.so.6"
    assert os.path.realpath(path) == os.path.realpath(ldcache.find_library("libc.so.6"))


def test_target_path_and_command():
    assert ldcache.resolve_target("/bin/true") == os.path.realpath("/bin/true")
    assert ldcache.resolve_target("true") == os.path.realpath(shutil.which("true"))
    with pytest.raises(FileNotFoundError):
        ldcache.resolve_target("/no/such/file")
    with pytest.raises(FileNotFoundError, match="libpybpf_nothing"):
        ldcache.resolve_target("pybpf_nothing")


def test_ld_library_path_comes_first(monkeypatch, tmp_path):
    fake = tmp_path / "libc.so.6"
    shutil.copy(ldcache.find_library("c"), fake)
    monkeypatch.setenv("LD_LIBRARY_PATH", str(tmp_path))
    assert ldcache.find_library("c") == str(fake)


def test_library_candidates():
    assert ldcache.library_candidates("c") == (None, "libc.so")
    assert ldcache.library_candidates("libssl") == (None, "libssl.so")
    assert ldcache.library_candidates("libc.so.6") == ("libc.so.6", "libc.so.6")


# ------------------------------------------------------------------------ symbols

@pytest.mark.parametrize("pie", [True, False], ids=["pie", "nopie"])
def test_executable_offsets_match_pyelftools(pie):
    path = target(pie=pie)
    elf = ElfFile.open(path)
    ref = _elftools_functions(path)
    for name in ("func_a", "func_b", "func_c", "main"):
        assert {elf.resolve(name).offset} == ref[name]
    sym = elf.resolve("func_a")
    if not pie:
        assert elf.type == 2 and sym.address != sym.offset  # ET_EXEC: vaddr 0x40xxxx, offset 0x1xxx
        assert sym.address - sym.offset == 0x400000
    else:
        assert elf.type == 3


def test_libc_every_function_matches_pyelftools():
    path = ldcache.resolve_target("c")
    elf = ElfFile.open(path)
    ref = _elftools_functions(path)
    ours: dict[str, set[int]] = {}
    for s in elf.symbols:
        ours.setdefault(s.name, set()).add(s.offset)
    assert ours == ref
    assert len(ours) > 1000


def test_versioned_symbols():
    lib = build_c("versioned_lib", shared=True, extra=("-Wl,--version-script=versioned_lib.map",))
    elf = ElfFile(str(lib))
    old, new = elf.resolve("vfunc@PYBPF_1"), elf.resolve("vfunc@@PYBPF_2")
    assert old.offset != new.offset
    assert not old.default and new.default
    assert elf.resolve("vfunc").offset == new.offset  # the default version
    assert elf.resolve("vfunc@PYBPF_2").offset == new.offset
    with pytest.raises(SymbolNotFoundError, match="versions present: vfunc@@PYBPF_2, vfunc@PYBPF_1"):
        elf.resolve("vfunc@@PYBPF_1")  # PYBPF_1 exists but is not the default
    with pytest.raises(SymbolNotFoundError):
        elf.resolve("vfunc@PYBPF_9")
    ref = _elftools_functions(lib)
    assert {old.offset, new.offset} == ref["vfunc"]


def test_libc_versioned_memcpy():
    elf = ElfFile.open(ldcache.resolve_target("c"))
    default = elf.resolve("memcpy")
    assert default.version and default.default
    legacy = elf.resolve("memcpy@GLIBC_2.2.5")
    assert legacy.offset != default.offset


def test_ambiguous_static_functions(tmp_path):
    out = tmp_path / "ambiguous"
    subprocess.run([gcc(), "-O2", "-o", str(out), str(BIN / "ambiguous_a.c"), str(BIN / "ambiguous_b.c")],
                   check=True, capture_output=True)
    elf = ElfFile(str(out))
    with pytest.raises(AmbiguousSymbolError, match="'helper' names 2 functions"):
        elf.resolve("helper")
    # a glob probes both
    assert len([s for s in elf.match("help*") if s.name == "helper"]) == 2


def test_glob_and_lists():
    path = str(target())
    assert [s.name for s in resolve_symbols(path, "func_*")] == ["func_a", "func_b", "func_c"]
    assert [s.name for s in resolve_symbols(path, ["func_b", "func_a"])] == ["func_b", "func_a"]
    with pytest.raises(SymbolNotFoundError):
        resolve_symbols(path, "nothing_matches_*")


def test_unknown_symbol_suggests():
    elf = ElfFile.open(ldcache.resolve_target("c"))
    with pytest.raises(SymbolNotFoundError) as err:
        elf.resolve("mallocc")
    assert "malloc" in err.value.close
    assert "did you mean" in str(err.value)


def test_stripped_binary(tmp_path):
    out = tmp_path / "stripped"
    shutil.copy(target(), out)
    subprocess.run(["strip", "--strip-all", str(out)], check=True)
    with pytest.raises(SymbolNotFoundError, match="stripped"):
        ElfFile(str(out)).resolve("func_a")


def test_not_an_elf(tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(b"#!/bin/sh\necho hi\n" * 10)
    with pytest.raises(LinkError, match="not a usable ELF file"):
        ElfFile(str(junk))


def test_cache_sees_a_rebuilt_file(tmp_path):
    out = tmp_path / "t"
    shutil.copy(target(), out)
    first = ElfFile.open(out)
    assert ElfFile.open(out) is first
    shutil.copy(target(pie=False), out)
    os.utime(out, ns=(1, 1))
    assert ElfFile.open(out) is not first


def test_parse_symbol_name():
    assert parse_symbol_name("memcpy@@GLIBC_2.14") == ("memcpy", "GLIBC_2.14", True)
    assert parse_symbol_name("memcpy@GLIBC_2.2.5") == ("memcpy", "GLIBC_2.2.5", False)
    assert parse_symbol_name("memcpy") == ("memcpy", None, False)


# ------------------------------------------------------------------------ USDT notes

def test_usdt_notes_match_readelf():
    path = str(target())
    probes = find_probes(path)
    text = subprocess.run(["readelf", "-n", "--wide", path], capture_output=True, text=True, check=True).stdout
    locations = [int(line.split("Location:")[1].split(",")[0], 16) for line in text.splitlines() if "Location:" in line]
    assert sorted(p.address for p in probes) == sorted(locations)
    elf = ElfFile.open(path)
    for p in probes:
        assert p.offset == elf.vaddr_to_offset(p.address)
        assert p.semaphore and p.semaphore_offset == p.semaphore - elf.section(".probes").addr + elf.section(".probes").offset
    assert {(p.provider, p.name) for p in probes} == {("pybpf_test", "tick"), ("pybpf_test", "guarded")}
    assert find_probes(path, "pybpf_test", "nope") == []


@pytest.mark.parametrize("text, kind, size, signed, extra", [
    ("-4@%eax", "reg", 4, True, dict(reg="ax", reg_offset=80)),
    ("8@%rdi", "reg", 8, False, dict(reg="di", reg_offset=112)),
    ("4@%r8d", "reg", 4, False, dict(reg="r8", reg_offset=72)),
    ("8@-8(%rbp)", "deref", 8, False, dict(reg="bp", reg_offset=32, offset=-8)),
    ("-2@(%rax)", "deref", 2, True, dict(reg="ax", offset=0)),
    ("1@0x10(%rsp)", "deref", 1, False, dict(reg="sp", reg_offset=152, offset=16)),
    ("4@$5", "const", 4, False, dict(value=5)),
    ("-8@$-9", "const", 8, True, dict(value=-9)),
    ("8@sym(%rip)", "unsupported", 8, False, {}),
    ("8@8(%rbp,%rax,8)", "unsupported", 8, False, {}),
])
def test_usdt_arg_x86(text, kind, size, signed, extra):
    arg = parse_arg(text, "x86_64")
    assert (arg.kind, arg.size, arg.signed) == (kind, size, signed)
    for k, v in extra.items():
        assert getattr(arg, k) == v


def test_usdt_arg_arm64():
    args = parse_args("8@x0 -4@[sp, 12] 4@[x1] -4@5", "aarch64")
    assert [(a.kind, a.reg, a.offset, a.value) for a in args] == [
        ("reg", "x0", 0, 0), ("deref", "sp", 12, 0), ("deref", "x1", 0, 0), ("const", None, 0, 5)]
    assert args[1].reg_offset == 248 and args[2].reg_offset == 8


def test_usdt_spec_encoding_is_libbpf_layout():
    args = parse_args("-4@$1 8@%rax 4@-8(%rbp)", "x86_64")
    blob = encode_spec(args, cookie=0x1122)
    assert len(blob) == 208
    val, typ, reg_off, signed, shift = struct.unpack_from("<QIh?b", blob, 0)
    assert (val, typ, signed, shift) == (1, 0, True, 32)
    val, typ, reg_off, signed, shift = struct.unpack_from("<QIh?b", blob, 16)
    assert (typ, reg_off, shift) == (1, 80, 0)
    val, typ, reg_off, signed, shift = struct.unpack_from("<QIh?b", blob, 32)
    assert (val, typ, reg_off, shift) == ((1 << 64) - 8, 2, 32, 32)
    cookie, count = struct.unpack_from("<Qh", blob, 192)
    assert (cookie, count) == (0x1122, 3)


def test_old_format_ld_cache():
    """The pre-2.32 format (``ld.so-1.7.0``), alone and followed by a new-format cache."""
    strings = b"libfoo.so.1\0/lib/libfoo.so.1\0"
    old = b"ld.so-1.7.0\0" + struct.pack("<I", 1) + struct.pack("<iII", 0x303, 0, 12)
    assert ldcache._parse_cache(old + strings) == [("libfoo.so.1", "/lib/libfoo.so.1")]
    # old part with no entries, then an 8-byte aligned new cache whose offsets count from its own start
    head = b"ld.so-1.7.0\0" + struct.pack("<I", 0)
    head += b"\0" * ((-len(head)) % 8)
    new_hdr_size, entry_size = 48, 24
    key = new_hdr_size + entry_size
    new = (b"glibc-ld.so.cache1.1" + struct.pack("<IIB3xI12x", 1, len(strings), 2, 0)
           + struct.pack("<iIIIQ", 0x303, key, key + 12, 0, 0) + strings)
    assert ldcache._parse_cache(head + new) == [("libfoo.so.1", "/lib/libfoo.so.1")]
    assert ldcache._parse_cache(b"garbage") == []
