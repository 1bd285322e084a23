"""``ObjectSpec.load()``: BTF, maps, programs — in the kernel, in that order.

1. The object's BTF is loaded once (kinds this kernel lacks rewritten
   first).  If the kernel refuses it, the object is loaded without BTF,
   func_info and line_info, as libbpf does, and ``Object.btf_error`` says why.
2. Maps are created (or reused from their pin), global data written through
   the map's memory and ``.rodata``/``.kconfig`` frozen, map-in-map slots
   filled, new pinned maps pinned.
3. Each program's instructions are copied, CO-RE relocated
   (:func:`pybpf.btf.core.apply_relocations`), map fds and extern ids
   filled in, and loaded with its func_info/line_info.
4. Prog arrays get their initial programs.

Anything that fails closes what was made and raises with context:
``object 'x.bpf.o': program 'p': load: ...``.
"""

from __future__ import annotations

import errno as _errno
import os
import struct
from typing import Any, Iterable, Mapping

from pybpf._sys.flags import PIN_BY_NAME
from pybpf._sys.uapi import MapType, ProgType
from pybpf.asm.instruction import Instruction, encode_all
from pybpf.asm.opcodes import PSEUDO_BTF_ID, PSEUDO_KFUNC_CALL, PSEUDO_MAP_FD, PSEUDO_MAP_VALUE
from pybpf.btf.types import BTFKind, Enum, Int, Pointer, resolve
from pybpf.errors import BPFError, NotSupportedError, ObjectError, context
from pybpf.object import btf_fixup, externs as _externs
from pybpf.object.object import Object, ObjectVariable
from pybpf.object.spec import MapSpec, ObjectSpec, ProgramSpec, encode_variable

__all__ = ["load"]

# Map types whose keys/values the kernel refuses to describe with BTF (libbpf's list).
_NO_BTF = frozenset({
    MapType.PERF_EVENT_ARRAY, MapType.CGROUP_ARRAY, MapType.STACK_TRACE, MapType.ARRAY_OF_MAPS,
    MapType.HASH_OF_MAPS, MapType.DEVMAP, MapType.DEVMAP_HASH, MapType.CPUMAP, MapType.XSKMAP,
    MapType.SOCKMAP, MapType.SOCKHASH, MapType.QUEUE, MapType.STACK, MapType.RINGBUF,
    MapType.USER_RINGBUF, MapType.PROG_ARRAY,
})
# Maps whose values are fds of other objects: their codecs come from the map family.
_FD_VALUES = frozenset({MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS, MapType.PROG_ARRAY})
_EXTRA_KINDS = {
    BTFKind.FUNC: "func", BTFKind.FUNC_PROTO: "func_proto", BTFKind.VAR: "var", BTFKind.DATASEC: "datasec",
    BTFKind.FLOAT: "float", BTFKind.DECL_TAG: "decl_tag", BTFKind.TYPE_TAG: "type_tag",
    BTFKind.ENUM64: "enum64",
}
_TRACING_PREFIX = {"tp_btf": ("btf_trace_", BTFKind.TYPEDEF), "lsm": ("bpf_lsm_", BTFKind.FUNC),
                   "lsm_cgroup": ("bpf_lsm_", BTFKind.FUNC), "iter": ("bpf_iter_", BTFKind.FUNC)}
_FI = struct.Struct("<II")
_IMM = struct.Struct("<i")
_OFF = struct.Struct("<h")
_LI = struct.Struct("<IIII")


def load(spec: ObjectSpec, *, programs: Iterable[str] | None = None, pin_path: str | None = "/sys/fs/bpf",
         log_level: int = 0, variables: Mapping[str, Any] | None = None) -> Object:
    obj = Object(spec)
    try:
        with context(f"object '{spec.name}'"):
            _Loader(spec, obj, pin_path, log_level).run(programs, variables)
    except BaseException:
        obj.close()
        raise
    return obj


class _Loader:
    def __init__(self, spec: ObjectSpec, obj: Object, pin_path: str | None, log_level: int) -> None:
        self.spec = spec
        self.obj = obj
        self.pin_path = pin_path
        self.log_level = log_level
        self.btf_fd: Any = None

    def run(self, programs: Iterable[str] | None, variables: Mapping[str, Any] | None) -> None:
        spec = self.spec
        names = self._select(programs)
        data = self._data(variables)
        self._load_btf(names)
        self._create_maps(data)
        resolver = _externs.KsymResolver()
        try:
            for name in names:
                self._load_program(spec.programs[name], resolver)
        finally:
            resolver.close()
        self._init_prog_arrays()
        self._variables()

    # -- selection and variables ----------------------------------------------------------

    def _select(self, programs: Iterable[str] | None) -> list[str]:
        if programs is None:
            return [n for n, p in self.spec.programs.items() if p.autoload]
        if isinstance(programs, str):
            programs = [programs]
        names = list(dict.fromkeys(programs))
        for n in names:
            if n not in self.spec.programs:
                known = ", ".join(self.spec.programs) or "none"
                raise ObjectError(f"no program '{n}' (programs: {known})")
        return names

    def _data(self, variables: Mapping[str, Any] | None) -> dict[str, bytes]:
        data = {name: m.data for name, m in self.spec.maps.items() if m.data is not None}
        for name, value in (variables or {}).items():
            var = self.spec.variables.get(name)
            if var is None:
                raise ObjectError(f"no variable '{name}' (variables: {', '.join(self.spec.variables) or 'none'})")
            current = data.get(var.map.name) or bytes(var.map.value_size)
            data[var.map.name] = encode_variable(var, current, value)
        if ".kconfig" in self.spec.maps:
            m = self.spec.maps[".kconfig"]
            data[".kconfig"] = _externs.kconfig_data(self.spec.externs, m.value_size)
        return data

    # -- BTF ------------------------------------------------------------------------------

    def _load_btf(self, names: list[str]) -> None:
        spec, obj = self.spec, self.obj
        if spec.btf is None:
            return
        blob = spec._kernel_btf
        if blob is None:
            blob = self._encode_btf(names)
        try:
            blob = self._sanitize(blob)
        except BPFError as exc:
            obj.btf_error = f"BTF could not be prepared for this kernel: {exc}"
            return
        from pybpf._sys.commands import btf_load

        fd, _log, err = btf_load(blob)
        if fd is None:
            _fd, log, err2 = btf_load(blob, log_size=1 << 20, log_level=1)
            if _fd is not None:  # pragma: no cover - refused once, accepted with a log
                fd = _fd
            else:
                tail = " | ".join(line for line in log.strip().splitlines()[-3:]) if log else ""
                name = _errno.errorcode.get(err2 or err, str(err2 or err))
                obj.btf_error = f"the kernel refused the object's BTF ({name})" + (f": {tail}" if tail else "")
                obj.notes.append(obj.btf_error + "; loading without BTF, func_info and line_info")
                return
        self.btf_fd = obj._btf_fd = fd

    def _encode_btf(self, names: list[str]) -> bytes:
        """BTF built by hand (pybpf.lang): encode it, adding the line info strings."""
        from pybpf.btf.writer import encode

        btf = self.spec.btf
        strings = btf.strings.copy()
        offsets: dict[str, int] = {}
        for n in names:
            for li in self.spec.programs[n].line_info:
                for s in (li.file_name, li.line_text):
                    offsets[s] = strings.add(s)
        self.spec._btf_strings = offsets  # type: ignore[attr-defined]
        return encode(btf.types, strings=strings)

    @staticmethod
    def _sanitize(blob: bytes) -> bytes:
        try:
            from pybpf import features
        except ImportError:  # pragma: no cover
            return blob
        present = btf_fixup.kinds_present(blob)
        supported = set(BTFKind)
        for kind in present:
            name = _EXTRA_KINDS.get(kind)
            if name is not None and not features.btf_kind_supported(name):
                supported.discard(kind)
        func_global = BTFKind.FUNC not in present or features.btf_kind_supported("func_global")
        if supported == set(BTFKind) and func_global:
            return blob
        return btf_fixup.sanitize_for_kernel(blob, supported, func_global)

    # -- maps -----------------------------------------------------------------------------

    def _create_maps(self, data: dict[str, bytes]) -> None:
        spec, obj = self.spec, self.obj
        for name, ms in spec.maps.items():
            label = f"map '{name}'" if name != (ms.kernel_name or name) else None
            try:
                m = self._create_map(ms, data.get(name))
            except BPFError as exc:
                raise exc.add_context(label) if label else exc
            obj.maps[name] = m
        for name, ms in spec.maps.items():
            if not ms.contents or ms.type == MapType.PROG_ARRAY or name in obj._reused:
                continue
            outer = obj.maps[name]
            with context(f"map '{name}'"):
                for key, target in ms.contents:
                    inner = obj.maps.get(target)
                    if inner is None:
                        raise ObjectError(f".values[{key}] refers to map '{target}', which does not exist")
                    outer[key] = inner
        for name, path in obj._to_pin:
            obj.maps[name].pin(path)
        obj._to_pin.clear()

    def _codecs(self, ms: MapSpec) -> tuple[Any, Any]:
        if ms.type in _FD_VALUES:
            return (_codec(ms.key_type, ms.key_size) if ms.type == MapType.HASH_OF_MAPS else None), None
        return _codec(ms.key_type, ms.key_size), _codec(ms.value_type, ms.value_size)

    def _create_map(self, ms: MapSpec, data: bytes | None, *, inner: bool = False) -> Any:
        from pybpf.maps import Map, create
        from pybpf.maps.info import possible_cpus

        max_entries = ms.max_entries
        if ms.type == MapType.PERF_EVENT_ARRAY and not max_entries:
            max_entries = possible_cpus()
        elif ms.type in (MapType.RINGBUF, MapType.USER_RINGBUF):
            max_entries = _ring_size(max_entries)
        key, value = self._codecs(ms)
        pin = None
        if ms.pinning == PIN_BY_NAME and not inner and self.pin_path:
            pin = os.path.join(self.pin_path, ms.name)
            if os.path.exists(pin):
                reused = Map.from_pin(pin, key=key, value=value)
                try:
                    _check_compatible(ms, reused, pin, max_entries)
                except BaseException:
                    reused.close()
                    raise
                self.obj._reused.add(ms.name)
                return reused
            self._ensure_bpffs()
        tmpl = None
        if ms.inner is not None:
            with context(f"inner map '{ms.inner.name}'"):
                tmpl = self._create_map(ms.inner, None, inner=True)
        try:
            kwargs: dict[str, Any] = dict(
                key=key, value=value, key_size=None if key is not None else ms.key_size,
                value_size=None if value is not None else ms.value_size, max_entries=max_entries,
                flags=ms.flags, name=ms.kernel_name or ms.name, inner_map=tmpl, numa_node=ms.numa_node,
                map_extra=ms.map_extra,
            )
            if ms.type in _FD_VALUES:
                kwargs["key_size"] = ms.key_size if key is None else None
                kwargs["value_size"] = None
            btf_ids = self._btf_ids(ms)
            if btf_ids:
                try:
                    m = create(ms.type, **kwargs, btf_fd=self.btf_fd.fileno(), btf_key_type_id=btf_ids[0],
                               btf_value_type_id=btf_ids[1])
                except BPFError as exc:
                    if exc.errno is None:
                        raise
                    m = create(ms.type, **kwargs)
                    self.obj.notes.append(f"map '{ms.name}': created without BTF ({exc})")
            else:
                m = create(ms.type, **kwargs)
        finally:
            if tmpl is not None:
                tmpl.close()
        try:
            if data is not None:
                _write_data(m, data)
            if ms.freeze:
                m.freeze()
        except BaseException:
            m.close()
            raise
        if pin is not None:
            self.obj._to_pin.append((ms.name, pin))
        return m

    def _btf_ids(self, ms: MapSpec) -> tuple[int, int] | None:
        if self.btf_fd is None or ms.type in _NO_BTF:
            return None
        k = ms.key_type.id if ms.key_type is not None else 0
        v = ms.value_type.id if ms.value_type is not None else 0
        if not v or (ms.data is None and not k):
            return None
        return k or 0, v

    def _ensure_bpffs(self) -> None:
        root = self.pin_path or "/sys/fs/bpf"
        if root.rstrip("/").startswith("/sys/fs/bpf") and not os.path.ismount("/sys/fs/bpf"):
            try:
                from pybpf.links._mount import mount
            except ImportError:  # pragma: no cover
                mount = None
            try:
                if mount is not None:
                    mount("bpf", "/sys/fs/bpf", "bpf")
            except OSError as exc:
                raise ObjectError(f"bpffs is not mounted at /sys/fs/bpf and mounting it failed: {exc.strerror} "
                                  "(mount -t bpf bpf /sys/fs/bpf)") from None
        os.makedirs(root, exist_ok=True)

    # -- programs -------------------------------------------------------------------------

    def _load_program(self, ps: ProgramSpec, resolver: "_externs.KsymResolver") -> None:
        from pybpf.program import Program

        spec, obj = self.spec, self.obj
        with context(f"program '{ps.name}'"):
            insns = ps.instructions
            if ps.core_relos:
                insns = [Instruction(i.code, i.dst, i.src, i.off, i.imm, i.symbol, i.reference, i.source)
                         for i in insns]
                self._core(insns, ps)
            try:
                code = bytearray(encode_all(insns))
            except ValueError as exc:
                raise ObjectError(str(exc)) from None
            fd_array = self._resolve(insns, code, resolver)
            attach_btf_id, attach_obj = self._attach_target(ps, resolver)
        func_info = line_info = None
        if self.btf_fd is not None and ps.func_info:
            func_info = b"".join(_FI.pack(r.insn_off // 8, r.type_id) for r in ps.func_info)
            strings = getattr(spec, "_btf_strings", {})
            if ps.line_info and all(li.file_name in strings and li.line_text in strings for li in ps.line_info):
                line_info = b"".join(_LI.pack(li.insn_off // 8, strings[li.file_name], strings[li.line_text],
                                              li.line_num << 10 | li.col) for li in ps.line_info)
        kern_version = ps.kern_version
        if not kern_version and ps.type == ProgType.KPROBE:
            kern_version = _externs.kernel_version_code()
        try:
            prog = Program.load(
                bytes(code), prog_type=ps.type, expected_attach_type=ps.attach_type, license=ps.license, name=ps.name,
                kern_version=kern_version, flags=ps.flags,
                btf_fd=self.btf_fd if func_info else None, func_info=func_info, line_info=line_info,
                attach_btf_id=attach_btf_id, attach_btf_obj_fd=attach_obj or 0,
                fd_array=fd_array, log_level=self.log_level, line_table=_LineTable(insns),
            )
        except BPFError as exc:
            if obj.btf_error and (ps.func_info or exc.hint is None):
                exc.hint = (f"{exc.hint}; " if exc.hint else "") + f"the object's BTF was not loaded: {obj.btf_error}"
            raise
        prog.section = ps.section  # type: ignore[attr-defined]
        prog.spec = ps  # type: ignore[attr-defined]
        obj.programs[ps.name] = prog
        rodata = obj.maps.get(".rodata")
        if rodata is not None and not any(i.reference == ".rodata" for i in ps.instructions):
            # libbpf binds .rodata to every program: its bpf_metadata_* variables stay visible.
            from pybpf._sys.commands import prog_bind_map

            try:
                prog_bind_map(prog.fd, rodata.fd)
            except BPFError:
                pass

    def _core(self, insns: list[Instruction], ps: ProgramSpec) -> None:
        try:
            from pybpf.btf.core import apply_relocations
        except ImportError:
            raise NotSupportedError("CO-RE relocations", None,
                                    f"{len(ps.core_relos)} in this program; pybpf.btf.core is not available") \
                from None
        with context("CO-RE"):
            apply_relocations(insns, list(ps.core_relos), self.spec.btf)

    def _resolve(self, insns: list[Instruction], code: bytearray,
                 resolver: "_externs.KsymResolver") -> list[Any] | None:
        """Patch map fds and extern ids into ``code`` (the encoded ``insns``, which stay untouched)."""
        maps, externs = self.obj.maps, self.spec.externs
        fd_array: list[Any] = [0]
        fd_index: dict[int, int] = {}
        ext_names = list(externs)
        pack = _IMM.pack_into
        for i, insn in enumerate(insns):
            ref = insn.reference
            if ref is None:
                continue
            at = 8 * i
            op = insn.code
            if op == 0x18:
                if insn.src in (PSEUDO_MAP_FD, PSEUDO_MAP_VALUE):
                    m = maps.get(ref)
                    if m is None:
                        raise ObjectError(f"instruction {i} refers to map '{ref}', which does not exist")
                    pack(code, at + 4, m.fd)
                    continue
                ext = externs.get(ref)
                if ext is None:
                    continue
                if i + 1 >= len(insns):
                    raise ObjectError(f"instruction {i}: 64-bit load of '{ref}' has no second slot")
                found = self._extern(ext, resolver)
                if found is None:
                    src, lo, hi = 0, 0, 0
                elif not found[2]:
                    src, lo, hi = 0, _s32(found[0] & 0xFFFFFFFF), _s32(found[0] >> 32)
                else:
                    src, lo, hi = PSEUDO_BTF_ID, found[0], int(found[1].fileno()) if found[1] else 0
                code[at + 1] = (src << 4) | (code[at + 1] & 0xF)
                pack(code, at + 4, lo)
                pack(code, at + 12, hi)
            elif op == 0x85 and insn.src == PSEUDO_KFUNC_CALL:
                ext = externs.get(ref)
                if ext is None:
                    raise ObjectError(f"instruction {i} calls kfunc '{ref}', which is not an extern")
                found = self._extern(ext, resolver)
                if found is None:
                    # an unresolved weak kfunc: a call the verifier refuses only if it is reachable
                    code[at + 1] = code[at + 1] & 0xF
                    _OFF.pack_into(code, at + 2, 0)
                    pack(code, at + 4, _externs.POISON_KFUNC_BASE + ext_names.index(ref))
                    continue
                slot = 0
                if found[1]:
                    fd = found[1].fileno()
                    if fd not in fd_index:
                        fd_index[fd] = len(fd_array)
                        fd_array.append(fd)
                    slot = fd_index[fd]
                _OFF.pack_into(code, at + 2, slot)
                pack(code, at + 4, found[0])
        return fd_array if len(fd_array) > 1 else None

    def _extern(self, ext: Any, resolver: "_externs.KsymResolver") -> tuple[int, Any] | None:
        with context(f"extern '{ext.name}'"):
            found = resolver.resolve(ext)
            if found is None and not ext.weak:
                what = "/proc/kallsyms or the kernel's BTF" if ext.kind == "ksym" and not ext.typed \
                    else "the kernel's BTF"
                raise ObjectError(f"not found in {what} (declare it __weak to make it optional)")
            return found

    def _attach_target(self, ps: ProgramSpec, resolver: "_externs.KsymResolver") -> tuple[int, Any]:
        if ps.type not in (ProgType.TRACING, ProgType.LSM, ProgType.EXT):
            return 0, None
        info = ps.section_info
        kind = info.kind if info is not None else ""
        if ps.type == ProgType.EXT:
            raise ObjectError("freplace programs need the program they replace; load them with "
                              "pybpf.Program.load(..., attach_prog_fd=...)")
        target = ps.attach_target
        if not target:
            raise ObjectError(f"section '{ps.section}' names no attach target (e.g. SEC(\"{kind}/name\"))")
        module = None
        if ":" in target:
            module, _, target = target.partition(":")
        prefix, btf_kind = _TRACING_PREFIX.get(kind, ("", BTFKind.FUNC))
        from pybpf.btf.kernel import kernel_spec, module_spec

        with context("attach target"):
            specs = [module_spec(module)] if module else [kernel_spec()]
            for s in specs:
                own = s.types_by_name(prefix + target, include_base=module is None)
                for t in own:
                    if t.kind == btf_kind:
                        if module:
                            return t.id or 0, resolver._module_fd(module)
                        return t.id or 0, None
            raise ObjectError(f"'{prefix + target}' ({btf_kind.name}) is not in the kernel's BTF"
                              + (f" (module {module})" if module else ""))

    # -- after loading --------------------------------------------------------------------

    def _init_prog_arrays(self) -> None:
        obj = self.obj
        for name, ms in self.spec.maps.items():
            if ms.type != MapType.PROG_ARRAY or not ms.contents or name in obj._reused:
                continue
            m = obj.maps[name]
            with context(f"map '{name}'"):
                for key, prog_name in ms.contents:
                    prog = obj.programs.get(prog_name)
                    if prog is None:
                        obj.notes.append(f"map '{name}': .values[{key}] = '{prog_name}' left empty: the program "
                                         "was not loaded")
                        continue
                    m[key] = prog

    def _variables(self) -> None:
        obj = self.obj
        for name, vs in self.spec.variables.items():
            m = obj.maps.get(vs.map.name)
            if m is not None:
                obj.variables[name] = ObjectVariable(vs, m, obj)


class _LineTable(Mapping[int, str]):
    """Instruction index -> C source line, built only if a verifier error needs it."""

    def __init__(self, insns: list[Instruction]) -> None:
        self._insns = insns
        self._table: dict[int, str] | None = None

    def _get(self) -> dict[int, str]:
        if self._table is None:
            self._table = {i: str(x.source) for i, x in enumerate(self._insns) if x.source is not None}
        return self._table

    def __getitem__(self, key: int) -> str:
        return self._get()[key]

    def __iter__(self):
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


def _s32(v: int) -> int:
    return v - (1 << 32) if v & 0x80000000 else v


def _ring_size(size: int) -> int:
    """Ring buffers are a power-of-two number of pages (libbpf rounds up the same way)."""
    import mmap

    page = mmap.PAGESIZE
    size = max(size, page)
    n = page
    while n < size:
        n <<= 1
    return n


def _codec(t: Any, size: int) -> Any:
    """A map codec spec for BTF type ``t``: a fast scalar name for ints, the BTF codec otherwise."""
    if t is None or not size:
        return None
    try:
        r = resolve(t)
        if isinstance(r, (Int, Enum)) and r.size == size and size in (1, 2, 4, 8) and \
                not (isinstance(r, Int) and (r.is_bool or r.bits != 8 * size or r.offset)):
            return f"{'i' if r.signed else 'u'}{8 * size}"
        if isinstance(r, Pointer) and size == 8:
            return "u64"
        from pybpf.btf.codec import codec_for

        codec = codec_for(t)
        return codec if codec.size == size else None
    except (BPFError, TypeError, ValueError):
        return None


def _write_data(m: Any, data: bytes) -> None:
    """Initial contents of a global data map: through its memory when mmapped, else one update."""
    mem = None
    try:
        mem = m.memory
    except (BPFError, ValueError, AttributeError):
        mem = None
    if mem is not None and not mem.readonly:
        mem[:len(data)] = data
        return
    from pybpf.maps import Map

    raw = Map.from_fd(m.fd, key="u32", value=len(data))
    try:
        raw[0] = data
    finally:
        raw.close()


def _check_compatible(ms: MapSpec, m: Any, path: str, max_entries: int) -> None:
    info = m.info()
    want = [("type", int(ms.type), int(info.type)), ("key_size", ms.key_size, info.key_size),
            ("value_size", ms.value_size, info.value_size), ("max_entries", max_entries, info.max_entries),
            ("map_flags", int(ms.flags), int(info.flags)), ("map_extra", ms.map_extra, info.map_extra)]
    for fname, wanted, have in want:
        if wanted != have:
            if fname == "type":
                wanted, have = _type_name(wanted), _type_name(have)
            raise ObjectError(f"map '{ms.name}': the map pinned at {path} is incompatible: {fname} is {have}, "
                              f"the object wants {wanted} (remove the pin to recreate it)")


def _type_name(v: int) -> str:
    try:
        return MapType(v).name
    except ValueError:
        return str(v)

