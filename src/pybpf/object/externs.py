"""``extern`` variables and functions: ``__kconfig`` values and ``__ksym`` kernel symbols.

Parsing (:func:`collect_externs`) reads what the object's BTF says about
each undefined symbol and lays out the ``.kconfig`` map the way libbpf does
(descending alignment, then ascending size, then name).  Loading
(:func:`kconfig_data`, :class:`KsymResolver`) asks the running kernel:

- ``LINUX_KERNEL_VERSION`` from uname (KERNEL_VERSION(a, b, min(c, 255))),
  ``LINUX_HAS_BPF_COOKIE`` from :mod:`pybpf.features`,
  ``LINUX_HAS_SYSCALL_WRAPPER`` from the kernel BTF, ``CONFIG_*`` from
  /proc/config.gz or /boot/config-$(uname -r);
- typed ksyms (``extern const struct rq runqueues __ksym``) and kfuncs by
  name in vmlinux BTF, then in module BTF (the module's BTF fd then goes in
  the instruction: ``insn[1].imm`` for variables, an ``fd_array`` index in
  ``off`` for kfuncs; Linux 5.11 / 5.18);
- typeless ksyms (``extern const void x __ksym``) by address in /proc/kallsyms.

A ``__weak`` extern that cannot be resolved is 0 (a kfunc call to it is
turned into a call the verifier only refuses if it is reachable).

Example::

    externs = collect_externs(elf, btf)
    data = kconfig_data(externs, size)     # at load time
"""

from __future__ import annotations

import os
import struct

from pybpf._sys.kernel import kernel_version_code, syscall_prefix
from pybpf.btf.types import Array, BTFKind, Datasec, Enum, Func, Int, Type, Var, Void
from pybpf.btf.typeinfo import resolve
from pybpf.errors import BPFError, NotSupportedError, ObjectError
from pybpf.object.elffile import STB_GLOBAL, STB_WEAK, ElfFile
from pybpf.object.parts import ExternSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any
    from pybpf.btf.reader import Spec

__all__ = ["collect_externs", "kconfig_layout", "kconfig_data", "KsymResolver", "POISON_KFUNC_BASE"]

KCONFIG_SEC = ".kconfig"
KSYMS_SEC = ".ksyms"
#: libbpf's helper id for calls to unresolved weak kfuncs (+ extern index): the
#: verifier refuses them only when reachable.
POISON_KFUNC_BASE = 2002000000


def _kcfg_type(name: str, t: Type) -> tuple[str, int, int, bool]:
    """(kind, size, alignment, signed) of a __kconfig extern's type."""
    r = resolve(t)
    if isinstance(r, Int):
        if r.is_bool:
            return "bool", 1, 1, False
        if r.size == 1 and r.is_char:
            return "char", 1, 1, False
        if r.size in (1, 2, 4, 8):
            return "int", r.size, r.size, r.signed
    elif isinstance(r, Enum) and r.name == "libbpf_tristate":
        return "tristate", 4, 4, False
    elif isinstance(r, Array):
        elem = resolve(r.elem)
        if isinstance(elem, Int) and elem.size == 1 and r.nelems:
            return "char_arr", r.nelems, 1, False
    raise ObjectError(f"extern (kconfig) '{name}': type {t!r} is not supported "
                      "(bool, char, tristate, an integer or a char array)")


def collect_externs(elf: ElfFile, btf: "Spec | None") -> tuple[dict[str, ExternSpec], dict[str, str]]:
    """The externs of the object and, for undefined symbols that are not, why.

    Returns (externs by name, {name: reason}).
    """
    undefined = {s.name: s for s in elf.symbols
                 if s.shndx == 0 and s.name and s.bind in (STB_GLOBAL, STB_WEAK)}   # (is_undefined, inlined)
    externs: dict[str, ExternSpec] = {}
    problems: dict[str, str] = {}
    if not undefined:
        return externs, problems
    if btf is None:
        for name in undefined:
            problems[name] = "the object has no BTF to describe externs (build with clang -g)"
        return externs, problems
    described: dict[str, tuple[str, Type]] = {}
    for sec_name in (KCONFIG_SEC, KSYMS_SEC):
        ds = btf.find(sec_name, BTFKind.DATASEC)
        if isinstance(ds, Datasec):
            for vs in ds.vars:
                described[vs.var.name] = (sec_name, vs.var)
    for name, sym in sorted(undefined.items()):
        entry = described.get(name)
        if entry is None:
            problems[name] = "it is not declared __kconfig or __ksym (no BTF in .kconfig/.ksyms)"
            continue
        sec_name, t = entry
        weak = sym.bind == STB_WEAK
        if sec_name == KCONFIG_SEC:
            if not isinstance(t, Var):
                raise ObjectError(f"extern (kconfig) '{name}': {t.kind.name} in .kconfig, not a variable")
            kind, size, align, signed = _kcfg_type(name, t.type)
            externs[name] = ExternSpec(name, "kconfig", weak, t.id or 0, kind, 0, size, align, signed)
        elif isinstance(t, Func):
            externs[name] = ExternSpec(name, "kfunc", weak, t.id or 0)
        elif isinstance(t, Var):
            typed = not isinstance(resolve(t.type), Void)
            externs[name] = ExternSpec(name, "ksym", weak, t.id or 0, typed=typed)
        else:
            raise ObjectError(f"extern (ksym) '{name}': {t.kind.name} in .ksyms")
    kconfig_layout(externs)
    return externs, problems


def kconfig_layout(externs: dict[str, ExternSpec]) -> int:
    """Give each kconfig extern its offset in the .kconfig map; return the map's size."""
    kcfg = sorted((e for e in externs.values() if e.kind == "kconfig"),
                  key=lambda e: (-e.align, e.size, e.name))
    off = 0
    for e in kcfg:
        off = (off + e.align - 1) // e.align * e.align
        e.offset = off
        off += e.size
    return off


# ---------------------------------------------------------------------- load time: kconfig


def _read_kconfig() -> dict[str, str] | None:
    import gzip   # only objects with __kconfig externs read /proc/config.gz

    release = os.uname().release
    for path in ("/proc/config.gz", f"/boot/config-{release}"):
        try:
            if path.endswith(".gz"):
                with gzip.open(path, "rt", errors="replace") as f:
                    text = f.read()
            else:
                with open(path, errors="replace") as f:
                    text = f.read()
        except (OSError, EOFError):
            continue
        values: dict[str, str] = {}
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("# CONFIG_") and line.endswith(" is not set"):
                values[line[2:-len(" is not set")]] = "n"
            elif line.startswith("CONFIG_") and "=" in line:
                key, _, value = line.partition("=")
                values[key] = value
        return values
    return None


def _has_syscall_wrapper() -> bool:
    from pybpf.btf.kernel import kernel_spec

    name = syscall_prefix() + "sys_bpf"
    try:
        return kernel_spec().find(name, BTFKind.FUNC) is not None
    except BPFError:
        return False


def _put(buf: bytearray, e: ExternSpec, value: int) -> None:
    fmt = {1: "B", 2: "H", 4: "I", 8: "Q"}[e.size]
    lo = -(1 << (8 * e.size - 1)) if e.signed else 0
    hi = (1 << (8 * e.size - 1)) - 1 if e.signed else (1 << (8 * e.size)) - 1
    if not lo <= value <= hi:
        raise ObjectError(f"extern (kconfig) '{e.name}': value {value} does not fit in {e.size} bytes")
    struct.pack_into("<" + fmt, buf, e.offset, value & ((1 << (8 * e.size)) - 1))


def _set_config(buf: bytearray, e: ExternSpec, raw: str) -> None:
    where = f"extern (kconfig) '{e.name}'"
    if e.kcfg_type in ("bool", "tristate", "char") and raw in ("y", "n", "m"):
        if e.kcfg_type == "bool":
            if raw == "m":
                raise ObjectError(f"{where}: value 'm' needs a tristate or char extern, not bool")
            buf[e.offset] = 1 if raw == "y" else 0
        elif e.kcfg_type == "tristate":
            _put(buf, e, {"n": 0, "y": 1, "m": 2}[raw])
        else:
            buf[e.offset] = ord(raw)
        return
    if e.kcfg_type == "char_arr":
        if len(raw) < 2 or raw[0] != '"' or raw[-1] != '"':
            raise ObjectError(f"{where}: value {raw!r} is not a string")
        text = raw[1:-1].encode()[: e.size - 1]
        buf[e.offset:e.offset + e.size] = text + bytes(e.size - len(text))
        return
    if e.kcfg_type == "int":
        try:
            value = int(raw, 0)
        except ValueError:
            raise ObjectError(f"{where}: value {raw!r} is not an integer") from None
        _put(buf, e, value)
        return
    raise ObjectError(f"{where}: value {raw!r} does not suit a {e.kcfg_type} extern")


def kconfig_data(externs: dict[str, ExternSpec], size: int) -> bytes:
    """The contents of the .kconfig map for this kernel (ObjectError for strong externs it lacks)."""
    buf = bytearray(size)
    config: dict[str, str] | None = None
    config_read = False
    for e in sorted((e for e in externs.values() if e.kind == "kconfig"), key=lambda e: e.offset):
        where = f"extern (kconfig) '{e.name}'"
        if e.name.startswith("CONFIG_"):
            if not config_read:
                config, config_read = _read_kconfig(), True
            raw = config.get(e.name) if config is not None else None
            if raw is None:
                if e.weak:
                    continue
                why = "not set in the kernel config" if config is not None else \
                    "no kernel config found (/proc/config.gz or /boot/config-$(uname -r))"
                raise ObjectError(f"{where}: {why}; declare it __weak to default to 0")
            _set_config(buf, e, raw)
        elif e.name == "LINUX_KERNEL_VERSION":
            if e.kcfg_type != "int" or e.size < 4:
                raise ObjectError(f"{where}: must be an unsigned int")
            _put(buf, e, kernel_version_code())
        elif e.name == "LINUX_HAS_BPF_COOKIE":
            _put(buf, e, int(_feature("bpf_cookie")))
        elif e.name == "LINUX_HAS_SYSCALL_WRAPPER":
            _put(buf, e, int(_has_syscall_wrapper()))
        elif e.name.startswith("LINUX_"):
            raise ObjectError(f"{where}: unknown LINUX_ extern")
        else:
            raise ObjectError(f"{where}: __kconfig externs are CONFIG_* or LINUX_* names")
    return bytes(buf)


def _feature(name: str) -> bool:
    from pybpf import features   # the probes load only for objects that ask (LINUX_HAS_BPF_COOKIE)

    try:
        return bool(features.has(name))
    except BPFError:
        return False


# ---------------------------------------------------------------------- load time: ksyms


class KsymResolver:
    """Resolves ksyms and kfuncs in kernel BTF (and kallsyms); owns the module BTF fds it opens.

    ``resolve(ext)`` returns (btf id, module BTF fd or 0, True) for typed
    ksyms and kfuncs and (address, 0, False) for typeless ones, or None when
    not found.  A typeless ksym missing from /proc/kallsyms (data symbols
    are only there with CONFIG_KALLSYMS_ALL) falls back to its BTF VAR when
    it is a per-CPU variable, which the kernel describes in BTF.
    Close the resolver once the programs using the fds are loaded.
    """

    def __init__(self) -> None:
        self._module_fds: dict[str, Any] = {}
        self._kallsyms: dict[str, int] | None = None
        self._cache: dict[tuple[str, str], tuple[int, Any, bool] | None] = {}

    def resolve(self, ext: ExternSpec) -> tuple[int, Any, bool] | None:
        key = (ext.name, ext.kind if ext.kind == "kfunc" else ("ksym" if ext.typed else "addr"))
        if key not in self._cache:
            self._cache[key] = self._resolve(ext)
        return self._cache[key]

    def _resolve(self, ext: ExternSpec) -> tuple[int, Any, bool] | None:
        addr = None
        if ext.kind == "ksym":
            addr = self._kallsyms_addr(ext.name)
            if addr is not None and not ext.typed:
                return addr, 0, False
        found = self._btf(ext)
        if found is not None and ext.kind == "ksym" and addr is None:
            # The kernel turns the BTF id into an address with kallsyms_lookup_name(),
            # which only knows variables with CONFIG_KALLSYMS_ALL.
            if ext.weak:
                return None
            raise NotSupportedError(
                "ksym variables", None,
                f"'{ext.name}' is in the kernel's BTF but not in /proc/kallsyms: this kernel was built "
                "without CONFIG_KALLSYMS_ALL and cannot give programs the address of its variables")
        return found

    def _btf(self, ext: ExternSpec) -> tuple[int, Any, bool] | None:
        kind = BTFKind.FUNC if ext.kind == "kfunc" else BTFKind.VAR
        from pybpf.btf.kernel import find_in_kernel, kernel_spec

        vmlinux = kernel_spec()
        t = vmlinux.find(ext.name, kind)
        if t is not None:
            return t.id or 0, 0, True
        for spec, t in find_in_kernel(ext.name, kind):
            if spec is vmlinux:
                return t.id or 0, 0, True
            module = self._module_of(spec)
            if module is not None:
                return t.id or 0, self._module_fd(module), True
        return None

    @staticmethod
    def _module_of(spec: Any) -> str | None:
        from pybpf.btf import kernel

        for name in kernel.module_names():
            try:
                if kernel.module_spec(name) is spec:
                    return name
            except BPFError:
                continue
        return None

    def _module_fd(self, module: str) -> Any:
        fd = self._module_fds.get(module)
        if fd is not None:
            return fd
        import ctypes

        from pybpf._sys import commands as cmd
        from pybpf._sys.attrs import BtfInfo

        for btf_id in cmd.btf_ids():
            try:
                candidate = cmd.btf_fd_by_id(btf_id)
            except BPFError:
                continue
            name = ctypes.create_string_buffer(64)
            try:
                info = cmd.obj_info(candidate.fileno(), BtfInfo(name=ctypes.addressof(name), name_len=64))
            except BPFError:
                candidate.close()
                continue
            if info.kernel_btf and name.value.decode(errors="replace") == module:
                self._module_fds[module] = candidate
                return candidate
            candidate.close()
        raise ObjectError(f"kernel module '{module}': its BTF object was not found",)

    def _kallsyms_addr(self, name: str) -> int | None:
        if self._kallsyms is None:
            table: dict[str, int] = {}
            try:
                with open("/proc/kallsyms") as f:
                    for line in f:
                        parts = line.split()
                        if len(parts) >= 3:
                            table.setdefault(parts[2], int(parts[0], 16))
            except OSError as exc:
                raise ObjectError(f"cannot read /proc/kallsyms: {exc.strerror}") from None
            self._kallsyms = table
        addr = self._kallsyms.get(name)
        if addr == 0:
            raise ObjectError(f"ksym '{name}': /proc/kallsyms shows address 0 "
                              "(kernel.kptr_restrict hides addresses; run as root)")
        return addr

    def close(self) -> None:
        for fd in self._module_fds.values():
            fd.close()
        self._module_fds.clear()


