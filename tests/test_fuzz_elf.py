"""Fuzzing the ELF parser: damaged objects raise ObjectError, nothing else, and never hang.

Real objects (corpus programs and one libxdp object) are mutated with
hypothesis: bit flips, truncation, byte ranges overwritten, section header,
symbol, relocation and BTF header fields changed.  ``ObjectSpec.from_bytes``
must either return a spec or raise :class:`pybpf.ObjectError`; an internal
exception (IndexError, struct.error, KeyError, UnicodeDecodeError, ELFError,
RecursionError, ValueError, TypeError, ...) is a bug, and so is taking more
than a few seconds (each example runs under a SIGALRM timeout).

Each strategy runs a fixed number of examples (``PYBPF_FUZZ_EXAMPLES``,
default 300), whatever the time they take, so the count is the same on
every machine; the counts are checked at the end and printed in the test
summary.

Targeted cases follow: truncated files, garbage, empty input, a relocation
against a missing or out-of-range symbol, code in an unknown section and
malformed BTF, each with an error that names the section and the offset.
"""

from __future__ import annotations

import os
import re
import signal
import struct
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import pybpf
from buildprogs import build, build_file

EXAMPLES = int(os.environ.get("PYBPF_FUZZ_EXAMPLES", "300"))
TIMEOUT = 5  # seconds per example

SEED_OBJECTS = ["corpus_xdp", "corpus_maps", "corpus_globals", "corpus_tailcall", "corpus_map_in_map",
                "corpus_syscall_core", "corpus_legacy_maps", "corpus_usdt"]
LIBXDP_SEED = Path("/usr/lib/x86_64-linux-gnu/bpf/xdp-dispatcher.o")

FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])


class Hang(Exception):
    """Parsing did not finish within TIMEOUT seconds."""


def _alarm(signum, frame):
    raise Hang(f"ObjectSpec.from_bytes ran longer than {TIMEOUT} s")


@lru_cache(maxsize=None)
def seeds() -> tuple[bytes, ...]:
    data = [Path(build(name)).read_bytes() for name in SEED_OBJECTS]
    if LIBXDP_SEED.exists():
        data.append(LIBXDP_SEED.read_bytes())
    return tuple(data)


PARSED = {"spec": 0, "ObjectError": 0}
RAN: dict[str, int] = {}  # examples run per strategy


def ran(strategy: str) -> None:
    RAN[strategy] = RAN.get(strategy, 0) + 1


@pytest.fixture(scope="module", autouse=True)
def report(request):
    """Print how many damaged objects were parsed."""
    yield
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is not None and reporter is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\nobject fuzzing: {sum(RAN.values())} damaged objects from {len(RAN)} strategies, "
                                f"{sum(PARSED.values())} parses with the targeted cases ({PARSED['spec']} specs, "
                                f"{PARSED['ObjectError']} ObjectError), none escaped")


def parse(data: bytes):
    """from_bytes under a timeout; returns the spec or the ObjectError. Other exceptions escape."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, TIMEOUT)
    try:
        spec = pybpf.ObjectSpec.from_bytes(data)
        PARSED["spec"] += 1
        return spec
    except pybpf.ObjectError as exc:
        assert str(exc), "an ObjectError without a message"
        PARSED["ObjectError"] += 1
        return exc
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def touch(spec) -> None:
    """Walk what a parsed spec exposes (lazy parts must not blow up either)."""
    if isinstance(spec, pybpf.ObjectError):
        return
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, TIMEOUT)
    try:
        for name, prog in spec.programs.items():
            assert isinstance(name, str)
            prog.section, prog.type, prog.license
            len(prog.instructions)
        for name, m in spec.maps.items():
            assert isinstance(name, str)
        for name, v in spec.variables.items():
            v.value
    except pybpf.ObjectError:
        pass
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# ----------------------------------------------------------------------------- ELF layout

class Shdr:
    """One section header of a 64-bit little-endian ELF (offset of the header itself in ``at``)."""

    FMT = struct.Struct("<IIQQQQIIQQ")
    FIELDS = ("sh_name", "sh_type", "sh_flags", "sh_addr", "sh_offset", "sh_size", "sh_link", "sh_info",
              "sh_addralign", "sh_entsize")

    def __init__(self, data: bytes, at: int) -> None:
        self.at = at
        self.values = dict(zip(self.FIELDS, self.FMT.unpack_from(data, at)))
        self.name = ""

    def field_offset(self, field: str) -> tuple[int, str]:
        offs = {"sh_name": (0, "<I"), "sh_type": (4, "<I"), "sh_flags": (8, "<Q"), "sh_addr": (16, "<Q"),
                "sh_offset": (24, "<Q"), "sh_size": (32, "<Q"), "sh_link": (40, "<I"), "sh_info": (44, "<I"),
                "sh_addralign": (48, "<Q"), "sh_entsize": (56, "<Q")}
        off, fmt = offs[field]
        return self.at + off, fmt


def section_headers(data: bytes) -> list[Shdr]:
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = [Shdr(data, shoff + i * shentsize) for i in range(shnum)]
    strtab = headers[shstrndx].values
    names = data[strtab["sh_offset"]:strtab["sh_offset"] + strtab["sh_size"]]
    for h in headers:
        start = h.values["sh_name"]
        h.name = names[start:names.index(b"\0", start)].decode()
    return headers


def section(data: bytes, name: str) -> Shdr:
    return next(h for h in section_headers(data) if h.name == name)


def put(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    buf = bytearray(data)
    size = struct.calcsize(fmt)
    value &= (1 << (8 * size)) - 1
    struct.pack_into(fmt, buf, offset, value)
    return bytes(buf)


def interesting(size_hint: int) -> st.SearchStrategy[int]:
    return st.one_of(
        st.sampled_from([0, 1, 2, 3, 4, 7, 8, 16, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF,
                         0xFFFFFFFFFFFFFFFF, 1 << 40, size_hint, size_hint - 1, size_hint + 1, size_hint * 2]),
        st.integers(min_value=0, max_value=(1 << 64) - 1),
        st.integers(min_value=0, max_value=max(1, size_hint * 2)),
    )


# ----------------------------------------------------------------------------- sanity

def test_seeds_parse():
    for data in seeds():
        spec = parse(data)
        assert not isinstance(spec, pybpf.ObjectError), spec
        assert spec.programs


# ----------------------------------------------------------------------------- hypothesis

@FUZZ
@given(st.data())
def test_fuzz_bit_flips(data):
    ran("bit flips")
    raw = bytearray(data.draw(st.sampled_from(seeds())))
    for _ in range(data.draw(st.integers(1, 16))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] ^= 1 << data.draw(st.integers(0, 7))
    touch(parse(bytes(raw)))


@FUZZ
@given(st.data())
def test_fuzz_truncation(data):
    ran("truncation")
    raw = data.draw(st.sampled_from(seeds()))
    cut = data.draw(st.integers(0, len(raw)))
    touch(parse(raw[:cut]))


@FUZZ
@given(st.data())
def test_fuzz_overwrite_ranges(data):
    ran("overwrite ranges")
    raw = bytearray(data.draw(st.sampled_from(seeds())))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        chunk = data.draw(st.one_of(
            st.binary(min_size=1, max_size=64),
            st.builds(lambda b, n: bytes([b]) * n, st.sampled_from([0, 0xFF, 0x7F, 0x80]), st.integers(1, 256)),
        ))
        raw[pos:pos + len(chunk)] = chunk[: len(raw) - pos]
    touch(parse(bytes(raw)))


@FUZZ
@given(st.data())
def test_fuzz_elf_header_fields(data):
    ran("elf header fields")
    raw = data.draw(st.sampled_from(seeds()))
    # e_type, e_machine, e_version, e_entry, e_phoff, e_shoff, e_flags, e_ehsize, e_phentsize,
    # e_phnum, e_shentsize, e_shnum, e_shstrndx, and the e_ident class/data/version bytes
    off, fmt = data.draw(st.sampled_from([
        (0x10, "<H"), (0x12, "<H"), (0x14, "<I"), (0x18, "<Q"), (0x20, "<Q"), (0x28, "<Q"), (0x30, "<I"),
        (0x34, "<H"), (0x36, "<H"), (0x38, "<H"), (0x3A, "<H"), (0x3C, "<H"), (0x3E, "<H"),
        (4, "B"), (5, "B"), (6, "B"),
    ]))
    touch(parse(put(raw, off, fmt, data.draw(interesting(len(raw))))))


@FUZZ
@given(st.data())
def test_fuzz_section_header_fields(data):
    ran("section header fields")
    raw = data.draw(st.sampled_from(seeds()))
    headers = section_headers(raw)
    for _ in range(data.draw(st.integers(1, 3))):
        h = data.draw(st.sampled_from(headers[1:]))
        field = data.draw(st.sampled_from(Shdr.FIELDS))
        off, fmt = h.field_offset(field)
        raw = put(raw, off, fmt, data.draw(interesting(h.values[field] or len(raw))))
    touch(parse(raw))


@FUZZ
@given(st.data())
def test_fuzz_symbols_and_relocations(data):
    ran("symbols and relocations")
    raw = data.draw(st.sampled_from(seeds()))
    headers = section_headers(raw)
    symtab = next(h for h in headers if h.values["sh_type"] == 2)
    rels = [h for h in headers if h.values["sh_type"] == 9 and h.values["sh_size"]]
    if data.draw(st.booleans()) or not rels:
        # Elf64_Sym: st_name u32, st_info u8, st_other u8, st_shndx u16, st_value u64, st_size u64
        count = symtab.values["sh_size"] // 24
        base = symtab.values["sh_offset"] + 24 * data.draw(st.integers(0, max(0, count - 1)))
        off, fmt = data.draw(st.sampled_from([(0, "<I"), (4, "B"), (5, "B"), (6, "<H"), (8, "<Q"), (16, "<Q")]))
        raw = put(raw, base + off, fmt, data.draw(interesting(count)))
    else:
        # Elf64_Rel: r_offset u64, r_info u64 (symbol << 32 | type)
        rel = data.draw(st.sampled_from(rels))
        count = rel.values["sh_size"] // 16
        base = rel.values["sh_offset"] + 16 * data.draw(st.integers(0, max(0, count - 1)))
        what = data.draw(st.sampled_from(["offset", "symbol", "type"]))
        if what == "offset":
            raw = put(raw, base, "<Q", data.draw(interesting(count * 8)))
        elif what == "symbol":
            raw = put(raw, base + 12, "<I", data.draw(interesting(symtab.values["sh_size"] // 24)))
        else:
            raw = put(raw, base + 8, "<I", data.draw(st.integers(0, 20)))
    touch(parse(raw))


@FUZZ
@given(st.data())
def test_fuzz_btf(data):
    ran("btf")
    raw = data.draw(st.sampled_from(seeds()))
    name = data.draw(st.sampled_from([".BTF", ".BTF.ext"]))
    try:
        sec = section(raw, name)
    except StopIteration:
        assume(False)
    start, size = sec.values["sh_offset"], sec.values["sh_size"]
    buf = bytearray(raw)
    mode = data.draw(st.sampled_from(["header", "flip", "overwrite"]))
    if mode == "header":
        # btf_header: magic u16, version u8, flags u8, hdr_len u32, then u32 offsets/lengths
        off, fmt = data.draw(st.sampled_from([(0, "<H"), (2, "B"), (3, "B"), (4, "<I"), (8, "<I"), (12, "<I"),
                                              (16, "<I"), (20, "<I"), (24, "<I"), (28, "<I")]))
        return touch(parse(put(raw, start + off, fmt, data.draw(interesting(size)))))
    for _ in range(data.draw(st.integers(1, 8))):
        pos = start + data.draw(st.integers(0, size - 1))
        if mode == "flip":
            buf[pos] ^= 1 << data.draw(st.integers(0, 7))
        else:
            word = data.draw(interesting(size)) & 0xFFFFFFFF
            buf[pos:pos + 4] = struct.pack("<I", word)[: start + size - pos]
    touch(parse(bytes(buf)))


def test_zz_every_fuzz_test_ran_its_examples():
    """The counts are fixed: each strategy ran EXAMPLES damaged objects (none skipped for time)."""
    assert len(RAN) == 7 and all(n >= EXAMPLES for n in RAN.values()), RAN


# ----------------------------------------------------------------------------- targeted cases

def expect_object_error(data: bytes, *patterns: str) -> pybpf.ObjectError:
    result = parse(data)
    assert isinstance(result, pybpf.ObjectError), f"parsed without error: {result!r}"
    for pattern in patterns:
        assert re.search(pattern, str(result)), f"{pattern!r} not in {str(result)!r}"
    return result


@pytest.mark.parametrize("length", [0, 1, 4, 15, 16, 52, 63, 64, 100, 1000])
def test_truncated_header(length):
    raw = seeds()[0]
    expect_object_error(raw[:length])


def test_truncated_in_every_section():
    raw = seeds()[0]
    for h in section_headers(raw)[1:]:
        if h.values["sh_type"] == 8 or h.values["sh_size"] < 2:  # NOBITS has no bytes in the file
            continue
        cut = h.values["sh_offset"] + h.values["sh_size"] // 2
        result = parse(raw[:cut])
        assert isinstance(result, pybpf.ObjectError), f"cut in {h.name} parsed"


def test_empty():
    expect_object_error(b"")


@pytest.mark.parametrize("garbage", [
    b"not an ELF file at all",
    bytes(4096),
    b"\xff" * 4096,
    b"\x7fELF" + bytes(60),
    os.urandom(4096),
    b"\x7fELF" + os.urandom(4092),
], ids=["text", "zeros", "ones", "magic-only", "random", "magic-random"])
def test_garbage(garbage):
    expect_object_error(garbage)


def test_wrong_class_endianness_machine():
    raw = seeds()[0]
    expect_object_error(put(raw, 4, "B", 1), r"32-bit|class|ELF64|64-bit")          # ELFCLASS32
    expect_object_error(put(raw, 5, "B", 2), r"big-endian|endian|byte order|MSB")   # ELFDATA2MSB
    expect_object_error(put(raw, 0x12, "<H", 62), r"machine|EM_|x86|BPF")          # EM_X86_64
    expect_object_error(put(raw, 0x10, "<H", 2), r"relocatable|ET_|type")          # ET_EXEC


def test_relocation_symbol_out_of_range():
    raw = seeds()[0]  # corpus_xdp
    rel = section(raw, ".relxdp")
    err = expect_object_error(put(raw, rel.values["sh_offset"] + 12, "<I", 0xFFFF), r"\.relxdp|xdp")
    assert re.search(r"offset|0x[0-9a-f]+|\b\d+\b", str(err)), str(err)


def test_relocation_offset_outside_section():
    raw = seeds()[0]
    rel = section(raw, ".relxdp")
    err = expect_object_error(put(raw, rel.values["sh_offset"], "<Q", 1 << 32), r"xdp")
    assert re.search(r"offset|0x[0-9a-f]+|\b\d+\b", str(err)), str(err)


def test_section_outside_file():
    raw = seeds()[0]
    h = section(raw, "xdp")
    off, fmt = h.field_offset("sh_offset")
    expect_object_error(put(raw, off, fmt, len(raw) + 4096), r"xdp")
    off, fmt = h.field_offset("sh_size")
    expect_object_error(put(raw, off, fmt, 1 << 40), r"xdp")


def test_instructions_not_a_multiple_of_8():
    raw = seeds()[0]
    h = section(raw, "xdp")
    off, fmt = h.field_offset("sh_size")
    expect_object_error(put(raw, off, fmt, h.values["sh_size"] - 3), r"xdp")


def _compile(tmp_path: Path, name: str, source: str) -> bytes:
    src = tmp_path / f"{name}.bpf.c"
    src.write_text(source)
    return build_file(src, tmp_path).read_bytes()


MISSING_SYMBOL_C = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
extern int pybpf_fuzz_undefined_variable;   /* neither __ksym nor __kconfig: nobody defines it */
SEC("xdp")
int uses_missing(struct xdp_md *ctx)
{
	return pybpf_fuzz_undefined_variable;
}
char LICENSE[] SEC("license") = "GPL";
"""

UNKNOWN_SECTION_C = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
SEC("pybpf_no_such_kind/abc")
int code_in_unknown_section(void *ctx)
{
	return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""


def test_relocation_against_missing_symbol(tmp_path):
    raw = _compile(tmp_path, "missing_symbol", MISSING_SYMBOL_C)
    result = parse(raw)
    if isinstance(result, pybpf.ObjectError):
        err = result
    else:
        with pytest.raises(pybpf.ObjectError) as info:
            result.load().close()
        err = info.value
    assert "pybpf_fuzz_undefined_variable" in str(err), str(err)


def test_code_in_unknown_section(tmp_path):
    raw = _compile(tmp_path, "unknown_section", UNKNOWN_SECTION_C)
    result = parse(raw)
    if isinstance(result, pybpf.ObjectError):
        err = result
    else:
        with pytest.raises(pybpf.ObjectError) as info:
            result.load().close()
        err = info.value
    assert "pybpf_no_such_kind/abc" in str(err), str(err)


@pytest.mark.parametrize("case", ["magic", "version", "hdr_len", "type_len", "str_off", "kind", "name_off"])
def test_malformed_btf(case):
    raw = Path(build("corpus_maps")).read_bytes()   # BTF-defined maps: BTF is required
    btf = section(raw, ".BTF")
    start = btf.values["sh_offset"]
    hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<IIIII", raw, start + 4)
    types = start + hdr_len + type_off
    if case == "magic":
        bad = put(raw, start, "<H", 0x1234)
    elif case == "version":
        bad = put(raw, start + 2, "B", 9)
    elif case == "hdr_len":
        bad = put(raw, start + 4, "<I", 0x10000)
    elif case == "type_len":
        bad = put(raw, start + 12, "<I", type_len + 0x100000)
    elif case == "str_off":
        bad = put(raw, start + 16, "<I", str_off + 0x100000)
    elif case == "kind":
        # first type's info word: kind in bits 24-28; 31 is no kind at all
        info, = struct.unpack_from("<I", raw, types + 4)
        bad = put(raw, types + 4, "<I", (info & ~(0x1F << 24)) | (31 << 24))
    else:
        bad = put(raw, types, "<I", str_len + 0x1000)  # name_off past the string section
    err = expect_object_error(bad, r"\.BTF|BTF")
    assert re.search(r"offset|0x[0-9a-f]+|\b\d+\b", str(err)), str(err)


def test_deep_btf_type_chain_is_not_a_recursion_error():
    """A BTF type that refers to itself (a PTR cycle through a typedef) must not recurse forever."""
    raw = Path(build("corpus_maps")).read_bytes()
    btf = section(raw, ".BTF")
    start = btf.values["sh_offset"]
    hdr_len, type_off = struct.unpack_from("<II", raw, start + 4)
    types = start + hdr_len + type_off
    # Walk the type records to find a PTR or TYPEDEF and point it at itself.
    pos, type_id = types, 1
    end = types + struct.unpack_from("<I", raw, start + 12)[0]
    fixed = {1: 4, 3: 12, 14: 4, 17: 4}                       # INT, ARRAY, VAR, DECL_TAG
    per_member = {4: 12, 5: 12, 6: 8, 13: 8, 15: 12, 19: 12}  # STRUCT, UNION, ENUM, FUNC_PROTO, DATASEC, ENUM64
    target = None
    while pos < end:
        name_off, info, size_type = struct.unpack_from("<III", raw, pos)
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        if kind in (2, 8) and target is None:  # PTR, TYPEDEF
            target = (pos, type_id)
        pos += 12 + fixed.get(kind, 0) + per_member.get(kind, 0) * vlen
        type_id += 1
    assert target is not None
    pos, tid = target
    result = parse(put(raw, pos + 8, "<I", tid))
    touch(result)
