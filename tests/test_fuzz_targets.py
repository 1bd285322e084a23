"""Fuzzing the reader of uprobe/USDT targets: damaged executables give BPFErrors, nothing else.

The seeds are real executables and libraries built for the link tests
(tests/bin/cookie_target.c, PIE and not, with USDT notes and semaphores;
tests/bin/versioned_lib.c, a shared library with GNU symbol versions).  Each
example damages one (ELF header fields, section headers of the symbol,
version and note sections, symbol entries, note contents, bit flips,
truncation), writes it to a file and does what an attach does with a
target: ``ElfFile.open``, every symbol, ``resolve``/``match`` of a plain and
a versioned name, ``find_probes``.  The outcome must be a result or a
:class:`pybpf.BPFError`; anything else (OverflowError, MemoryError,
struct.error, IndexError...) fails the test.

Unlike the object fuzzer, each test runs a fixed number of examples
(``PYBPF_FUZZ_TARGET_EXAMPLES``, default 150) whatever the time; the counts
are checked at the end and printed in the test summary.
"""

from __future__ import annotations

import os
import signal
import struct
from functools import lru_cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pybpf
from pybpf.links.symbols import ElfFile
from pybpf.links.usdt import find_probes

from test_links_support import build_c, target

EXAMPLES = int(os.environ.get("PYBPF_FUZZ_TARGET_EXAMPLES", "150"))
TIMEOUT = 5  # seconds per example
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])

RAN: dict[str, int] = {}
OUTCOMES = {"parsed": 0, "BPFError": 0}


def seed(data, among: int = 3) -> bytes:
    """A seed file, drawn by index (hypothesis prints draws: an index, not 20 KB of bytes)."""
    return seeds()[data.draw(st.integers(0, among - 1), label="seed")]


@lru_cache(maxsize=None)
def seeds() -> tuple[bytes, ...]:
    lib = build_c("versioned_lib", shared=True, extra=("-Wl,--version-script=versioned_lib.map",))
    return tuple(p.read_bytes() for p in (target(pie=True), target(pie=False), lib))


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang(f"reading a damaged target ran longer than {TIMEOUT} s")


def exercise(path: str, test: str) -> None:
    """What attaching to ``path`` reads; a BPFError is a clean answer, other exceptions escape."""
    RAN[test] = RAN.get(test, 0) + 1
    ElfFile._cache.clear()  # the same path holds a new file each time
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, TIMEOUT)
    try:
        elf = ElfFile.open(path)
        for sym in elf.symbols:
            assert isinstance(sym.name, str) and sym.offset >= 0
        for name in ("func_a", "vfunc@VERS_1", "vfunc", "main"):
            try:
                elf.resolve(name)
            except pybpf.BPFError:
                pass
        elf.match("func_*")
        for probe in find_probes(path):
            assert probe.offset >= 0
        OUTCOMES["parsed"] += 1
    except pybpf.BPFError as exc:
        assert str(exc)
        OUTCOMES["BPFError"] += 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module", autouse=True)
def report(request):
    yield
    line = (f"target fuzzing: {sum(RAN.values())} damaged executables/libraries "
            f"({', '.join(f'{k} {v}' for k, v in sorted(RAN.items()))}); "
            f"{OUTCOMES['parsed']} parsed, {OUTCOMES['BPFError']} BPFError, none escaped")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is not None and reporter is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("\n" + line)


# ----------------------------------------------------------------------------- ELF layout (64-bit LE)

SHDR = struct.Struct("<IIQQQQIIQQ")
SH_FIELDS = {"name": (0, "<I"), "type": (4, "<I"), "flags": (8, "<Q"), "addr": (16, "<Q"), "offset": (24, "<Q"),
             "size": (32, "<Q"), "link": (40, "<I"), "info": (44, "<I"), "align": (48, "<Q"), "entsize": (56, "<Q")}


def sections(data: bytes) -> dict[str, tuple[int, tuple]]:
    """name → (offset of its header, header values)."""
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    heads = [SHDR.unpack_from(data, shoff + i * shentsize) for i in range(shnum)]
    names = data[heads[shstrndx][4]:heads[shstrndx][4] + heads[shstrndx][5]]
    out = {}
    for i, h in enumerate(heads):
        out[names[h[0]:names.index(b"\0", h[0])].decode()] = (shoff + i * shentsize, h)
    return out


def put(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    buf = bytearray(data)
    value &= (1 << (8 * struct.calcsize(fmt))) - 1
    struct.pack_into(fmt, buf, offset, value)
    return bytes(buf)


def interesting(hint: int) -> st.SearchStrategy[int]:
    return st.one_of(
        st.sampled_from([0, 1, 3, 8, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 1 << 44, 1 << 63, (1 << 64) - 1,
                         hint, hint - 1, hint + 1, hint * 2]),
        st.integers(min_value=0, max_value=(1 << 64) - 1),
        st.integers(min_value=0, max_value=max(1, hint * 2)),
    )


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "target")


def run(path: str, raw: bytes, test: str) -> None:
    with open(path, "wb") as f:
        f.write(raw)
    exercise(path, test)


TARGET_SECTIONS = [".dynsym", ".dynstr", ".symtab", ".strtab", ".gnu.version", ".gnu.version_d",
                   ".note.stapsdt", ".stapsdt.base", ".text", ".probes", ".shstrtab"]


# ----------------------------------------------------------------------------- hypothesis

@FUZZ
@given(st.data())
def test_fuzz_target_elf_header(path, data):
    raw = seed(data)
    off, fmt = data.draw(st.sampled_from([(0x20, "<Q"), (0x28, "<Q"), (0x36, "<H"), (0x38, "<H"), (0x3A, "<H"),
                                          (0x3C, "<H"), (0x3E, "<H"), (0x10, "<H"), (4, "B"), (5, "B")]))
    run(path, put(raw, off, fmt, data.draw(interesting(len(raw)))), "elf header")


@FUZZ
@given(st.data())
def test_fuzz_target_section_headers(path, data):
    raw = seed(data)
    secs = sections(raw)
    for _ in range(data.draw(st.integers(1, 3))):
        name = data.draw(st.sampled_from([n for n in TARGET_SECTIONS if n in secs]))
        at, values = secs[name]
        field = data.draw(st.sampled_from(list(SH_FIELDS)))
        off, fmt = SH_FIELDS[field]
        hint = values[list(SH_FIELDS).index(field)] or len(raw)
        raw = put(raw, at + off, fmt, data.draw(interesting(hint)))
    run(path, raw, "section headers")


@FUZZ
@given(st.data())
def test_fuzz_target_symbols_and_versions(path, data):
    raw = seed(data)
    secs = sections(raw)
    name = data.draw(st.sampled_from([n for n in (".dynsym", ".symtab", ".gnu.version", ".gnu.version_d")
                                      if n in secs]))
    _at, h = secs[name]
    start, size = h[4], h[5]
    for _ in range(data.draw(st.integers(1, 4))):
        if name in (".dynsym", ".symtab"):
            # Elf64_Sym: st_name u32, st_info u8, st_other u8, st_shndx u16, st_value u64, st_size u64
            base = start + 24 * data.draw(st.integers(0, max(0, size // 24 - 1)))
            off, fmt = data.draw(st.sampled_from([(0, "<I"), (4, "B"), (6, "<H"), (8, "<Q"), (16, "<Q")]))
        elif name == ".gnu.version":
            base, off, fmt = start + 2 * data.draw(st.integers(0, max(0, size // 2 - 1))), 0, "<H"
        else:
            # Elf64_Verdef: version, flags, ndx, cnt (u16), hash, aux, next (u32); then Verdaux name, next
            base = start + data.draw(st.integers(0, max(0, size - 8)))
            off, fmt = data.draw(st.sampled_from([(0, "<H"), (4, "<H"), (6, "<H"), (8, "<I"), (12, "<I"),
                                                  (16, "<I")]))
        raw = put(raw, min(base + off, len(raw) - 8), fmt, data.draw(interesting(size)))
    run(path, raw, "symbols and versions")


@FUZZ
@given(st.data())
def test_fuzz_target_usdt_notes(path, data):
    raw = seed(data, 2)
    _at, h = sections(raw)[".note.stapsdt"]
    start, size = h[4], h[5]
    buf = bytearray(raw)
    mode = data.draw(st.sampled_from(["word", "text", "flip"]))
    for _ in range(data.draw(st.integers(1, 6))):
        pos = start + data.draw(st.integers(0, size - 1))
        if mode == "word":   # namesz/descsz/type, pc/base/semaphore
            fmt = data.draw(st.sampled_from(["<I", "<Q"]))
            chunk = struct.pack(fmt, data.draw(interesting(size)) & ((1 << (8 * struct.calcsize(fmt))) - 1))
        elif mode == "text":  # the argument strings: "-4@%edi 8@-8(%rbp) ..."
            chunk = data.draw(st.binary(min_size=1, max_size=16) | st.sampled_from(
                [b"@", b"%", b"(", b")", b"-", b"9999999999999999999999@", b"8@%xyz", b"\0", b" "]))
        else:
            chunk = bytes([buf[pos] ^ (1 << data.draw(st.integers(0, 7)))])
        buf[pos:pos + len(chunk)] = chunk[: start + size - pos]
    run(path, bytes(buf), "usdt notes")


@FUZZ
@given(st.data())
def test_fuzz_target_flips_and_truncation(path, data):
    raw = bytearray(seed(data))
    if data.draw(st.booleans()):
        raw = raw[:data.draw(st.integers(0, len(raw)))]
    else:
        for _ in range(data.draw(st.integers(1, 16))):
            pos = data.draw(st.integers(0, len(raw) - 1))
            raw[pos] ^= 1 << data.draw(st.integers(0, 7))
    run(path, bytes(raw), "flips and truncation")


def test_zz_every_fuzz_test_ran_its_examples():
    """The counts are fixed: each strategy ran EXAMPLES damaged files (none skipped for time)."""
    assert set(RAN) == {"elf header", "section headers", "symbols and versions", "usdt notes",
                        "flips and truncation"}, RAN
    assert all(n >= EXAMPLES for n in RAN.values()), RAN


# ----------------------------------------------------------------------------- targeted cases

def _damaged(path: str, raw: bytes) -> ElfFile:
    with open(path, "wb") as f:
        f.write(raw)
    ElfFile._cache.clear()
    return ElfFile.open(path)


def test_section_header_offset_past_2_to_63(path):
    with pytest.raises(pybpf.LinkError, match=r"section headers .* past the end of the file"):
        _damaged(path, put(seeds()[0], 0x28, "<Q", 1 << 63))


def test_huge_gnu_version_section(path):
    raw = seeds()[2]
    at, _h = sections(raw)[".gnu.version"]
    with pytest.raises(pybpf.LinkError, match=r"\.gnu\.version .* past the end of the file"):
        _damaged(path, put(raw, at + 32, "<Q", 1 << 44)).symbols


def test_unreadable_targets_are_file_errors(tmp_path):
    with pytest.raises(IsADirectoryError) as info:
        ElfFile.open(str(tmp_path))
    assert isinstance(info.value, pybpf.FileError) and str(tmp_path) in str(info.value)
    with pytest.raises(FileNotFoundError) as info:
        ElfFile.open(str(tmp_path / "nope"))
    assert isinstance(info.value, pybpf.NotFoundError)
    with pytest.raises(pybpf.BPFError):
        ElfFile.open("/proc/self/mem")
