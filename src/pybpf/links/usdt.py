"""USDT: user-space statically defined tracepoints (``<sys/sdt.h>``, ``DTRACE_PROBE``).

A USDT probe is a ``nop`` in the traced program plus an ELF note in
``.note.stapsdt`` giving its address, an optional *semaphore* (a 16-bit
counter the program checks before doing the work of preparing the
arguments) and where each argument lives at the ``nop``, as text such as
``"-4@%eax 8@-8(%rbp) 8@$5"`` (size in bytes, negative for signed;
``%reg``, ``off(%reg)`` or ``$constant``).

``attach_usdt(prog, target, provider, name, pid=, cookie=)`` finds every
site of ``provider:name`` and places a uprobe on each; when the probe has a
semaphore, the kernel increments it while the uprobe is attached
(``ref_ctr_offset``, a field of the uprobe PMU's config whose bits
``/sys/bus/event_source/devices/uprobe/format/ref_ctr_offset`` gives; Linux
4.20).  The link's ``probes`` list holds each site with its parsed
arguments (:class:`UsdtArg`: constant, register or memory at register plus
offset, with the ``struct pt_regs`` offset of the register).

Cookies: by default the kernel cookie of every site is ``cookie`` itself,
so ``bpf_get_attach_cookie()`` returns it.  With ``spec_map=`` (the
``__bpf_usdt_specs`` array of a C program built with libbpf's
``<bpf/usdt.bpf.h>``) pybpf writes libbpf's argument specs there instead and
uses the spec id as the kernel cookie, so ``bpf_usdt_arg()`` and
``bpf_usdt_cookie()`` work as they do under libbpf.

Minimum kernel: 4.17 (PMU uprobes), semaphores 4.20, cookies 5.15.

Example::

    with attach_usdt(prog, "/usr/bin/python3", "python", "function__entry", cookie=1) as link:
        for probe in link.probes:
            print(probe.offset, [str(a) for a in probe.args])
"""

from __future__ import annotations

import os
import re
import struct
from _thread import allocate_lock   # threading.Lock itself, without importing threading
import weakref

from pybpf._record import FrozenRecord
from pybpf.errors import LinkError, context
from pybpf.links.base import _label, check_program
from pybpf.links.link import Link, LinkGroup, close_all
from pybpf.links.symbols import ElfFile, SHT_NOTE
from pybpf.links.hook import Hook
from pybpf.links.uprobe import _pid_arg, attach_uprobe, resolve_target_for
from pybpf._sys.uapi import ProgType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Mapping, Sequence

__all__ = ["UsdtArg", "UsdtProbe", "UsdtLink", "find_probes", "parse_args", "parse_arg", "attach_usdt",
           "encode_spec", "SPEC_SIZE", "MAX_ARGS"]

NT_STAPSDT = 3
MAX_ARGS = 12          # BPF_USDT_MAX_ARG_CNT of libbpf's usdt.bpf.h
ARG_SPEC_SIZE = 16     # struct __bpf_usdt_arg_spec
SPEC_SIZE = 208        # struct __bpf_usdt_spec: 12 args, u64 cookie, short count, padding
ARG_CONST, ARG_REG, ARG_REG_DEREF = 0, 1, 2

# offsetof(struct pt_regs, reg) and the width of each register name (x86-64).
_X86_PT_REGS = {
    "r15": 0, "r14": 8, "r13": 16, "r12": 24, "bp": 32, "bx": 40, "r11": 48, "r10": 56, "r9": 64,
    "r8": 72, "ax": 80, "cx": 88, "dx": 96, "si": 104, "di": 112, "ip": 128, "sp": 152,
}


def _x86_register(name: str) -> tuple[str, int] | None:
    """("ax", pt_regs offset) for "rax"/"eax"/"ax"/"al"; "r8d" → r8."""
    n = name.lower()
    m = re.fullmatch(r"r(8|9|1[0-5])[dwb]?", n)
    if m:
        base = f"r{m.group(1)}"
        return base, _X86_PT_REGS[base]
    for base in ("ax", "bx", "cx", "dx"):
        if n in (f"r{base}", f"e{base}", base, f"{base[0]}l", f"{base[0]}h"):
            return base, _X86_PT_REGS[base]
    for base in ("si", "di", "bp", "sp", "ip"):
        if n in (f"r{base}", f"e{base}", base, f"{base}l"):
            return base, _X86_PT_REGS[base]
    return None


def _arm64_register(name: str) -> tuple[str, int] | None:
    n = name.lower()
    m = re.fullmatch(r"[xw](\d+)", n)
    if m and int(m.group(1)) <= 30:
        return f"x{m.group(1)}", 8 * int(m.group(1))
    if n == "sp":
        return "sp", 248
    return None


class UsdtArg(FrozenRecord):
    """One argument of a USDT site.

    ``kind`` is "const", "reg" (the value is in register ``reg``), "deref"
    (in memory at ``reg + offset``) or "unsupported" (e.g. %rip-relative or
    indexed addressing).  ``size`` is 1, 2, 4 or 8 bytes, ``signed`` its
    sign; ``reg_offset`` is the register's offset in ``struct pt_regs`` (the
    context of a uprobe program); ``value`` is the constant of a "const".
    """

    __slots__ = ("text", "size", "signed", "kind", "reg", "reg_offset", "offset", "value")

    def __init__(self, text: str, size: int, signed: bool, kind: str, reg: str | None = None,
                 reg_offset: int = -1, offset: int = 0, value: int = 0) -> None:
        super().__init__(text=text, size=size, signed=signed, kind=kind, reg=reg, reg_offset=reg_offset,
                         offset=offset, value=value)

    def __str__(self) -> str:
        sign = "s" if self.signed else "u"
        if self.kind == "const":
            return f"{sign}{self.size * 8} {self.value}"
        if self.kind == "reg":
            return f"{sign}{self.size * 8} %{self.reg}"
        if self.kind == "deref":
            return f"{sign}{self.size * 8} [{self.reg}{self.offset:+d}]"
        return f"unsupported {self.text!r}"

    @property
    def bitshift(self) -> int:
        return 64 - 8 * self.size

    def encode_spec(self) -> bytes:
        """libbpf's ``struct __bpf_usdt_arg_spec`` (16 bytes) for this argument."""
        if self.kind == "const":
            return struct.pack("<QIh?b", self.value % (1 << 64), ARG_CONST, 0, self.signed, self.bitshift)
        if self.kind == "reg":
            return struct.pack("<QIh?b", 0, ARG_REG, self.reg_offset, self.signed, self.bitshift)
        if self.kind == "deref":
            return struct.pack("<QIh?b", self.offset % (1 << 64), ARG_REG_DEREF, self.reg_offset, self.signed,
                               self.bitshift)
        raise LinkError(f"USDT argument {self.text!r} cannot be read by a BPF program (unsupported addressing)")


def _int(text: str) -> int:
    return int(text, 0)


_X86_CONST = re.compile(r"^\$(-?(?:0x[0-9a-fA-F]+|\d+))$")
_X86_REG = re.compile(r"^%(\w+)$")
_X86_DEREF = re.compile(r"^(-?(?:0x[0-9a-fA-F]+|\d+))?\(%(\w+)\)$")
_ARM_CONST = re.compile(r"^(-?(?:0x[0-9a-fA-F]+|\d+))$")
_ARM_REG = re.compile(r"^([xw]\d+|sp)$")
_ARM_DEREF = re.compile(r"^\[([xw]\d+|sp)(?:\s*,\s*(-?(?:0x[0-9a-fA-F]+|\d+)))?\]$")


def parse_arg(text: str, arch: str | None = None) -> UsdtArg:
    """Parse one argument spec ("-4@%eax", "8@-8(%rbp)", "4@$5"; arm64 "8@x0", "-4@[sp, 12]")."""
    arch = arch or os.uname().machine
    size, signed = 8, False
    loc = text
    m = re.match(r"^(-?\d+)@(.+)$", text)
    if m:
        n = int(m.group(1))
        signed, size = n < 0, abs(n)
        loc = m.group(2)
    if size not in (1, 2, 4, 8):
        return UsdtArg(text, 8, signed, "unsupported")
    if arch in ("x86_64", "amd64"):
        if (c := _X86_CONST.match(loc)):
            return UsdtArg(text, size, signed, "const", value=_int(c.group(1)))
        if (r := _X86_REG.match(loc)):
            reg = _x86_register(r.group(1))
            if reg:
                return UsdtArg(text, size, signed, "reg", reg=reg[0], reg_offset=reg[1])
        if (d := _X86_DEREF.match(loc)):
            reg = _x86_register(d.group(2))
            if reg and reg[0] != "ip":
                return UsdtArg(text, size, signed, "deref", reg=reg[0], reg_offset=reg[1],
                               offset=_int(d.group(1)) if d.group(1) else 0)
        return UsdtArg(text, size, signed, "unsupported")
    if arch in ("aarch64", "arm64"):
        if (c := _ARM_CONST.match(loc)):
            return UsdtArg(text, size, signed, "const", value=_int(c.group(1)))
        if (r := _ARM_REG.match(loc)):
            reg = _arm64_register(r.group(1))
            if reg:
                return UsdtArg(text, size, signed, "reg", reg=reg[0], reg_offset=reg[1])
        if (d := _ARM_DEREF.match(loc)):
            reg = _arm64_register(d.group(1))
            if reg:
                return UsdtArg(text, size, signed, "deref", reg=reg[0], reg_offset=reg[1],
                               offset=_int(d.group(2)) if d.group(2) else 0)
        return UsdtArg(text, size, signed, "unsupported")
    return UsdtArg(text, size, signed, "unsupported")


def parse_args(text: str, arch: str | None = None) -> list[UsdtArg]:
    """Parse a whole argument string ("-4@$1 -8@%rdx -8@%rax") into a list."""
    text = text.strip()
    if not text:
        return []
    # Arguments are separated by spaces; arm64's "[sp, 12]" contains one.
    parts = re.findall(r"(?:-?\d+@)?(?:\[[^\]]*\]|\S+)", text)
    return [parse_arg(p, arch) for p in parts]


class UsdtProbe(FrozenRecord):
    """One site of a USDT probe in a file.

    ``address`` is its virtual address, ``offset`` the file offset of the
    ``nop`` (where the uprobe goes), ``semaphore``/``semaphore_offset`` the
    address and file offset of its semaphore (0: none).
    """

    __slots__ = ("provider", "name", "path", "address", "offset", "semaphore", "semaphore_offset", "arg_text",
                 "args")

    def __init__(self, provider: str, name: str, path: str, address: int, offset: int, semaphore: int,
                 semaphore_offset: int, arg_text: str, args: tuple[UsdtArg, ...] | None = None) -> None:
        super().__init__(provider=provider, name=name, path=path, address=address, offset=offset,
                         semaphore=semaphore, semaphore_offset=semaphore_offset, arg_text=arg_text,
                         args=() if args is None else args)


def _notes(elf: ElfFile, data: bytes) -> list[tuple[str, int, bytes]]:
    o = elf.order
    out = []
    off = 0
    while off + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from(o + "III", data, off)
        off += 12
        name = data[off:off + namesz].rstrip(b"\0").decode(errors="replace")
        off += (namesz + 3) & ~3
        desc = data[off:off + descsz]
        off += (descsz + 3) & ~3
        out.append((name, ntype, desc))
    return out


def find_probes(target: str, provider: str | None = None, name: str | None = None,
                *, pid: int | None = None) -> list[UsdtProbe]:
    """Every USDT site in ``target`` (a path or library name), optionally of one provider/name."""
    path = resolve_target_for(target, pid)
    elf = ElfFile.open(path)
    sec = next((s for s in elf.sections if s.name == ".note.stapsdt" and s.type == SHT_NOTE), None)
    if sec is None:
        return []
    base_sec = elf.section(".stapsdt.base")
    addr_fmt = elf.order + ("QQQ" if elf.is64 else "III")
    addr_size = struct.calcsize(addr_fmt)
    arch = _elf_arch(elf)
    probes = []
    for owner, ntype, desc in _notes(elf, elf.read_section(sec)):
        if owner != "stapsdt" or ntype != NT_STAPSDT or len(desc) < addr_size:
            continue
        pc, base, sema = struct.unpack_from(addr_fmt, desc)
        strings = desc[addr_size:].split(b"\0")
        if len(strings) < 3:
            continue
        prov, nm, args = (s.decode(errors="replace") for s in strings[:3])
        if provider is not None and prov != provider:
            continue
        if name is not None and nm != name:
            continue
        # Prelink may have moved the file: .stapsdt.base tells by how much.
        if base_sec is not None and base:
            delta = base_sec.addr - base
            pc += delta
            if sema:
                sema += delta
        offset = elf.vaddr_to_offset(pc)
        sema_off = elf.vaddr_to_offset(sema) if sema else 0
        probes.append(UsdtProbe(prov, nm, path, pc, offset, sema, sema_off, args, tuple(parse_args(args, arch))))
    return probes


def _elf_arch(elf: ElfFile) -> str:
    return {62: "x86_64", 183: "aarch64"}.get(elf.machine, f"machine {elf.machine}")


def encode_spec(args: Sequence[UsdtArg], cookie: int = 0) -> bytes:
    """libbpf's ``struct __bpf_usdt_spec`` (208 bytes): up to 12 argument specs, the user cookie, the count."""
    if len(args) > MAX_ARGS:
        raise LinkError(f"USDT probe has {len(args)} arguments; libbpf's spec holds at most {MAX_ARGS}")
    body = b"".join(a.encode_spec() for a in args).ljust(MAX_ARGS * ARG_SPEC_SIZE, b"\0")
    return body + struct.pack("<Qh6x", cookie % (1 << 64), len(args))


# -- spec ids in a __bpf_usdt_specs map ------------------------------------------------------

_spec_lock = allocate_lock()
_spec_ids: "weakref.WeakKeyDictionary[Any, set[int]]" = weakref.WeakKeyDictionary()


USDT_SPEC_MAP = "__bpf_usdt_specs"  # libbpf's <bpf/usdt.bpf.h>


def usdt_spec_map(program: Any, maps: Mapping[str, Any] | None = None) -> Any:
    """The ``__bpf_usdt_specs`` map from ``maps`` or the program's object, if there is one."""
    for source in (maps, getattr(getattr(program, "object", None), "maps", None)):
        if source is not None and USDT_SPEC_MAP in source:
            return source[USDT_SPEC_MAP]
    return None


def _alloc_spec(spec_map: Any) -> int:
    with _spec_lock:
        used = _spec_ids.setdefault(spec_map, set())
        limit = getattr(spec_map, "max_entries", None) or 256
        for i in range(limit):
            if i not in used:
                used.add(i)
                return i
    raise LinkError(f"the USDT spec map is full ({limit} specs)")


def _free_spec(spec_map: Any, spec_id: int) -> None:
    with _spec_lock:
        used = _spec_ids.get(spec_map)
        if used is not None:
            used.discard(spec_id)


def _write_spec(spec_map: Any, spec_id: int, blob: bytes) -> None:
    """Store a spec through the map's dict interface, or raw bytes through ``put_raw``."""
    raw = getattr(spec_map, "put_raw", None) or getattr(spec_map, "update_raw", None)
    if raw is not None:
        raw(struct.pack("<I", spec_id), blob)
        return
    try:
        spec_map[spec_id] = blob
    except Exception as exc:  # noqa: BLE001 - a typed map may not take bytes: say what it needs
        raise LinkError(f"cannot store a USDT spec in {spec_map!r}: {exc} "
                        "(the map's value must be libbpf's struct __bpf_usdt_spec, 208 bytes)") from None


class UsdtLink(LinkGroup):
    """The uprobes of one USDT probe; ``probes`` are its sites (with parsed arguments)."""

    def __init__(self, links: Sequence[Link], probes: Sequence[UsdtProbe], **kwargs: Any) -> None:
        super().__init__(links, **kwargs)
        self.probes = list(probes)


def attach_usdt(program: Any, target: str, provider: str, name: str, *, pid: int | None = None,
                cookie: int = 0, spec_map: Any = None, fallback: bool = True) -> UsdtLink:
    """Attach a KPROBE-type program to every site of USDT probe ``provider:name`` in ``target``.

    Linux 4.17 (semaphores 4.20, cookie 5.15).  Example:
    ``prog.attach_usdt("/usr/bin/python3", "python", "function__entry", cookie=1)``.
    """
    check_program(program, (ProgType.KPROBE,), "attach_usdt")
    pid = _pid_arg(pid)
    if spec_map is None:
        spec_map = usdt_spec_map(program)
    desc = f"{target}:{provider}:{name}"
    probes = find_probes(target, provider, name, pid=pid)
    if not probes:
        path = resolve_target_for(target, pid)
        known = sorted({f"{p.provider}:{p.name}" for p in find_probes(path)})
        import difflib

        close = difflib.get_close_matches(f"{provider}:{name}", known, n=5, cutoff=0.5)
        raise LinkError(f"{path}: no USDT probe {provider}:{name}"
                        + (f"; did you mean {', '.join(close)}?" if close else
                           (f"; the file has {', '.join(known[:10])}" if known else " (the file has no USDT notes)")))
    cleanups = []
    links: list[Link] = []
    with context(_label(program)), context(f"attach_usdt {desc}"):
        try:
            for probe in probes:
                kcookie = cookie
                if spec_map is not None:
                    spec_id = _alloc_spec(spec_map)
                    cleanups.append(lambda m=spec_map, i=spec_id: _free_spec(m, i))
                    _write_spec(spec_map, spec_id, encode_spec(probe.args, cookie))
                    kcookie = spec_id
                links.append(attach_uprobe(program, probe.path, None, offset=probe.offset, pid=pid,
                                           cookie=kcookie, ref_ctr_offset=probe.semaphore_offset,
                                           fallback=fallback))
        except BaseException:
            close_all(links)
            for fn in cleanups:
                fn()
            raise
    return UsdtLink(links, probes, program=program, kind="usdt", target=desc, cookie=cookie, cleanups=cleanups)


def _section_args(info: Any) -> dict[str, Any]:
    if not info.target:
        return {}
    parts = info.target.rsplit(":", 2)
    if len(parts) != 3:
        raise ValueError(f"expected usdt/PATH:PROVIDER:NAME, not usdt/{info.target}")
    return dict(zip(("target", "provider", "name"), parts))


HOOKS = (
    Hook(attach_usdt, sections=("usdt",), prog_types=(ProgType.KPROBE,), attach_types=(None,),
         section_args=_section_args,
         needs={p: "a usdt program needs a binary, a provider and a probe name" for p in ("target", "provider", "name")},
         object_args=lambda program, maps: {"spec_map": usdt_spec_map(program, maps)},
         target_format="PATH:PROVIDER:NAME", min_kernel="4.17", cookies=True),
)
