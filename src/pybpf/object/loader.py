"""``ObjectSpec.load()``: BTF, maps, programs — in the kernel, in that order.

1. The object's BTF is loaded once (kinds this kernel lacks rewritten
   first).  If the kernel refuses it, the object is loaded without BTF,
   func_info and line_info, as libbpf does, and ``Object.btf_error`` says why.
2. Maps are created (or reused from their pin); ``.rodata``/``.kconfig``
   are written and frozen before they are mapped, the other global data
   written through the map's memory (not at all when all zero); map-in-map
   slots filled, new pinned maps pinned.  No BPF_OBJ_GET_INFO_BY_FD: the
   loader knows what it created.
3. Each program's linked bytecode (made once, at parse time) is copied,
   CO-RE relocated (:func:`pybpf.btf.core.apply_relocations`), map fds and
   extern ids patched in place, and its attr made straight from the
   ProgramSpec with its func_info/line_info (what the programs of one kind
   share is worked out once); then all the programs are loaded back to back,
   and a program that fails there is loaded again the way
   :meth:`pybpf.Program.load` does, for its verifier log and error (see
   ``_Loader._load_programs``).  A program's :class:`LoadOptions` are made
   only when asked for.
4. Prog arrays get their initial programs; struct_ops maps learn the
   programs that fill their function pointers.

struct_ops (:mod:`.struct_ops`): before anything is made, each struct_ops
map is translated to the running kernel's struct, which gives each
``struct_ops/`` program its ``attach_btf_id`` (the kernel struct) and
expected attach type (its member's index); the map is created with
``btf_vmlinux_value_type_id`` and written when it is attached
(:func:`pybpf.links.struct_ops.attach_struct_ops`).  freplace and
fentry/fexit programs given a BPF program as target
(``ProgramSpec.set_attach_target`` or ``load(attach_targets=...)``) get
``attach_prog_fd`` and the BTF id of the function in that program's BTF
(:mod:`.targets`).

Anything that fails closes what was made and raises with context:
``object 'x.bpf.o': program 'p': load: ...``.
"""

from __future__ import annotations

import errno as _errno
import os
import struct
import ctypes
from ctypes import byref
from functools import partial
from operator import attrgetter, itemgetter

from pybpf._sys.flags import PIN_BY_NAME, MapFlag
from pybpf._sys.fs import ensure_bpffs
from pybpf._sys.kernel import kernel_version_code
from pybpf._sys.syscall import bpf_each, fd_of, object_name
from pybpf._sys.attrs import ProgLoadAttr
from pybpf._sys.uapi import Cmd, MapType, ProgType
from pybpf.asm.cookie import COOKIE_CALL
from pybpf.asm.instruction import Instruction, encode_all
from pybpf.btf.types import BTFKind
from pybpf.errors import BPFError, ObjectError, context
from pybpf.maps import Map, map_class
from pybpf.maps.info import PERCPU_TYPES
from pybpf.object import btf_fixup, externs as _externs
from pybpf.object.map_setup import (
    FD_VALUE_TYPES, btf_codecs, check_compatible, family_codecs, kernel_max_entries, new_map, write_data,
)
from pybpf.object.fixups import LazyResolver, LineTable, RawLineTable, line_strings, patch_linked, patch_listed
from pybpf.object.object import Object
from pybpf.object.parts import MapSpec, ProgramSpec, encode_variable
from pybpf.program import Program, _lacks_cookies
from pybpf import program_load
from pybpf.program_load import _ATTACH_TYPES, _PROG_TYPES, LoadOptions, _license

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable, Mapping
    from pybpf.object.spec import ObjectSpec

__all__ = ["load"]

# Map types whose keys/values the kernel refuses to describe with BTF (libbpf's list).
_NO_BTF = frozenset({
    MapType.PERF_EVENT_ARRAY, MapType.CGROUP_ARRAY, MapType.STACK_TRACE, MapType.ARRAY_OF_MAPS,
    MapType.HASH_OF_MAPS, MapType.DEVMAP, MapType.DEVMAP_HASH, MapType.CPUMAP, MapType.XSKMAP,
    MapType.SOCKMAP, MapType.SOCKHASH, MapType.QUEUE, MapType.STACK, MapType.RINGBUF,
    MapType.USER_RINGBUF, MapType.PROG_ARRAY,
})
_BASE_CODECS = Map._codecs.__func__   # families that keep it take BTF codecs as they are
# Maps whose max_entries the loader works out (see _max_entries).
_SIZED_BY_LOADER = frozenset({MapType.PERF_EVENT_ARRAY, MapType.RINGBUF, MapType.USER_RINGBUF})
_EXTRA_KINDS = {
    BTFKind.FUNC: "func", BTFKind.FUNC_PROTO: "func_proto", BTFKind.VAR: "var", BTFKind.DATASEC: "datasec",
    BTFKind.FLOAT: "float", BTFKind.DECL_TAG: "decl_tag", BTFKind.TYPE_TAG: "type_tag",
    BTFKind.ENUM64: "enum64",
}
_ALL_KINDS = frozenset(BTFKind)
_TRACING_PREFIX = {"tp_btf": ("btf_trace_", BTFKind.TYPEDEF), "lsm": ("bpf_lsm_", BTFKind.FUNC),
                   "lsm_cgroup": ("bpf_lsm_", BTFKind.FUNC), "iter": ("bpf_iter_", BTFKind.FUNC)}
# Program types whose load names a BTF target (fentry/fexit/lsm/iter/tp_btf, freplace).
_BTF_TARGET_TYPES = frozenset({ProgType.TRACING, ProgType.LSM, ProgType.EXT})
_FI = struct.Struct("<II")
_LI = struct.Struct("<IIII")
_MMAPABLE = int(MapFlag.MMAPABLE)   # a plain int: ms.flags & MapFlag.MMAPABLE would be IntFlag arithmetic
_PROG_LOAD = int(Cmd.PROG_LOAD)
_STRUCT_OPS = ProgType.STRUCT_OPS
_KPROBE = ProgType.KPROBE
# Program types whose attach target (and attach_btf_id) each program works out.
_PER_PROGRAM_TARGET = _BTF_TARGET_TYPES | {ProgType.STRUCT_OPS}
# (C-level attribute readers: no Python frame per program or map)
_ref_of = itemgetter(2)   # the name a fixup (slot, kind, name) refers to
_type_of = attrgetter("type")
_PROG_LOAD_SIZE = ctypes.sizeof(ProgLoadAttr)
_COOKIE_HELPER = COOKIE_CALL[4]   # the helper number's byte in the call


def pin_path_for(pin_path: str, name: str) -> str:
    """Where map ``name`` is pinned by name under ``pin_path``.

    The name comes from the object file, so it must not leave ``pin_path``
    (no ``/``, no ``..``) and must be a name bpffs accepts (no ``.``, no NUL,
    at most 255 bytes); otherwise ObjectError names the map.
    """
    bad = next((c for c in ("/", ".", "\0") if c in name), None)
    if not name or bad is not None or len(name.encode()) > 255:
        why = (f"it contains {bad!r}" if bad is not None else "it is empty" if not name
               else "it is longer than 255 bytes")
        raise ObjectError(f"map {name!r}: cannot be pinned by name under {pin_path}: {why} "
                          "(bpffs names have no '/' or '.')")
    return os.path.join(pin_path, name)


def load(spec: ObjectSpec, *, programs: Iterable[str] | None = None, pin_path: str | None = "/sys/fs/bpf",
         log_level: int = 0, variables: Mapping[str, Any] | None = None,
         attach_targets: Mapping[str, Any] | None = None) -> Object:
    obj = Object(spec)
    try:
        _Loader(spec, obj, pin_path, log_level, attach_targets).run(programs, variables)
    except BaseException as exc:
        if isinstance(exc, BPFError):
            exc.add_context(f"object '{spec.name}'")
        obj.close()
        raise
    return obj


# callx (BPF_JMP | BPF_CALL | BPF_X): clang -O0 calls helpers through a register holding the
# helper's "address"; no kernel accepts it ("unknown opcode 8d"), and its BTF is refused too.
_CALLX = 0x8D


def _refuse_indirect_calls(ps: ProgramSpec) -> None:
    """Say how to build the object before the kernel answers "unknown opcode 8d" (for a program
    whose linked bytes may hold a callx, or that is given as instructions)."""
    for index, insn in enumerate(ps.instructions):
        if insn.code == _CALLX:
            raise ObjectError(f"program '{ps.name}': instruction {index} is an indirect call "
                              f"(callx r{insn.dst}): build BPF objects with -O2 (clang -O0 emits code the "
                              "kernel cannot load)")


class _Loader:
    def __init__(self, spec: ObjectSpec, obj: Object, pin_path: str | None, log_level: int,
                 attach_targets: Mapping[str, Any] | None = None) -> None:
        self.spec = spec
        self.obj = obj
        self.pin_path = pin_path
        self.log_level = log_level
        self.btf_fd: Any = None
        self._btf_fd_number = 0                        # its fd number, once loaded
        self._core_results: dict[str, list[Any]] = {}  # program name -> CO-RE outcomes, for hints
        self._targets = {}  # program -> (target program, function)
        if attach_targets:
            from pybpf.object.targets import check_attach_targets

            self._targets = check_attach_targets(spec, attach_targets)
        self._target_resolver: Any = None              # parsed BTF of target programs, per load
        self._struct_ops: dict[str, Any] = {}          # struct_ops map name -> KernelValue
        self._struct_ops_progs: dict[str, tuple[int, int]] = {}  # program -> (struct id, member index)

    def run(self, programs: Iterable[str] | None, variables: Mapping[str, Any] | None) -> None:
        spec = self.spec
        names = self._select(programs)
        specs = [spec.programs[name] for name in names]
        for ps in specs:
            raw = ps._code   # the linked bytes; None once decoded into instructions (ProgramSpec keeps one form)
            if raw is None or _CALLX in raw[0::8]:   # (the opcode byte of every slot: an ld_imm64's second has 0)
                _refuse_indirect_calls(ps)
        if _STRUCT_OPS in map(_type_of, specs) or any(ms.struct_ops is not None for ms in spec.maps.values()):
            names = self._plan_struct_ops(names, explicit=programs is not None)
            specs = [spec.programs[name] for name in names]
        data = self._data(variables)
        self._load_btf(names)
        self._create_maps(data)
        resolver = LazyResolver()
        try:
            self._load_programs(specs, resolver)
        finally:
            resolver.close()
            if self._target_resolver is not None:
                self._target_resolver.close()
        self._init_prog_arrays()
        self._bind_struct_ops()
        self.obj._variable_specs = dict(spec.variables)   # Object.variables are made when first asked for

    # -- selection and variables ----------------------------------------------------------

    def _select(self, programs: Iterable[str] | None) -> list[str]:
        if programs is None:
            found = self.spec.programs
            return [name for name, ps in found.items() if ps.autoload]
        if isinstance(programs, str):
            programs = [programs]
        names = list(dict.fromkeys(programs))
        for n in names:
            if n not in self.spec.programs:
                known = ", ".join(self.spec.programs) or "none"
                raise ObjectError(f"no program '{n}' (programs: {known})")
        return names

    # -- struct_ops -------------------------------------------------------------------------

    def _plan_struct_ops(self, names: list[str], explicit: bool) -> list[str]:
        """Translate the struct_ops maps to the kernel's layout (see :func:`.struct_ops.plan_object`)."""
        from pybpf.object.struct_ops import plan_object

        spec = self.spec
        self._struct_ops, self._struct_ops_progs, names = plan_object(spec, names, explicit, self.obj.notes)
        return names

    def _create_struct_ops(self, ms: MapSpec) -> Any:
        from pybpf.object.struct_ops_map import create_struct_ops_map

        return create_struct_ops_map(ms, self._struct_ops[ms.name], self.btf_fd, self.obj.btf_error)

    def _bind_struct_ops(self) -> None:
        """Give each struct_ops map the programs that fill its function pointers."""
        obj = self.obj
        for name, kv in self._struct_ops.items():
            m = obj.maps[name]
            m._bind(kv, {prog: obj.programs.get(prog) for _o, _m, prog in kv.slots}, m.is_link)

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
        self._btf_fd_number = fd.fileno()

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

    def _sanitize(self, blob: bytes) -> bytes:
        from pybpf.features import btf_kind_supported as supported   # (a module: no package import machinery)

        spec = self.spec
        cached = getattr(spec, "_btf_kinds", None)   # set by the parser for its blob
        if cached is None or cached[0] is not blob:
            cached = (blob, frozenset(btf_fixup.kinds_present(blob)))
            spec._btf_kinds = cached  # type: ignore[attr-defined]
        present = cached[1]
        missing = [kind for kind in present.intersection(_EXTRA_KINDS) if not supported(_EXTRA_KINDS[kind])]
        func_global = BTFKind.FUNC not in present or supported("func_global")
        if not missing and func_global:
            return blob
        return btf_fixup.sanitize_for_kernel(blob, _ALL_KINDS.difference(missing), func_global)

    # -- maps -----------------------------------------------------------------------------

    def _create_maps(self, data: dict[str, bytes]) -> None:
        spec, obj = self.spec, self.obj
        for name, ms in spec.maps.items():
            try:
                m = self._create_map(ms, data.get(name))
            except BPFError as exc:
                label = f"map '{name}'" if name != (ms.kernel_name or name) else None
                raise exc.add_context(label) if label else exc
            m.btf = spec.btf
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
        if obj._to_pin:
            for name, path in obj._to_pin:
                obj.maps[name].pin(path)
            obj._to_pin.clear()

    def _create_map(self, ms: MapSpec, data: bytes | None, *, inner: bool = False) -> Any:
        if ms.struct_ops is not None:
            return self._create_struct_ops(ms)

        max_entries = ms.max_entries
        if ms.type in _SIZED_BY_LOADER:
            max_entries = kernel_max_entries(ms.type, max_entries)
        pin = None
        if ms.pinning == PIN_BY_NAME and not inner and self.pin_path:
            pin = pin_path_for(self.pin_path, ms.name)
            if os.path.exists(pin):
                key, value = btf_codecs(ms)
                reused = Map.from_pin(pin, key=key, value=value)
                try:
                    check_compatible(ms, reused, pin, max_entries)
                except BaseException:
                    reused.close()
                    raise
                self.obj._reused.add(ms.name)
                return reused
            ensure_bpffs(self.pin_path)
            os.makedirs(self.pin_path, exist_ok=True)
        tmpl = None
        if ms.inner is not None:
            with context(f"inner map '{ms.inner.name}'"):
                tmpl = self._create_map(ms.inner, None, inner=True)
        # Global data: .rodata/.kconfig are written and frozen before they are wrapped
        # (one update, one freeze, one read-only mapping); the others through their
        # writable mapping, and not at all when all zero (a new array is zeroed).
        init = None
        if data is not None and data.count(0) == len(data):
            data = None
        if data is not None and (ms.freeze or not ms.flags & _MMAPABLE):
            init, data = data, None
        cls = map_class(ms.type)
        codecs = None
        if cls._codecs.__func__ is _BASE_CODECS and ms.type not in PERCPU_TYPES:
            # The family takes the BTF codecs as they are (and does not wrap them): they are made when
            # the map is first read or written from Python (most loads never do), for a map of the
            # sizes the spec gives (see pybpf.maps.scratch.CodecsOnFirstUse).
            codecs = partial(family_codecs, cls, ms)
            key = value = None
            key_size, value_size = ms.key_size, ms.value_size
        else:
            key, value = btf_codecs(ms)
            key_size = None if key is not None else ms.key_size
            value_size = None if value is not None else ms.value_size
            if ms.type in FD_VALUE_TYPES:
                key_size, value_size = (ms.key_size if key is None else None), None
        try:
            btf_ids = self._btf_ids(ms)
            if btf_ids:
                try:
                    m = new_map(cls, ms, key, value, key_size, value_size, max_entries, tmpl, init,
                                 self._btf_fd_number, btf_ids, codecs)
                except BPFError as exc:
                    if exc.errno is None:
                        raise
                    m = new_map(cls, ms, key, value, key_size, value_size, max_entries, tmpl, init, codecs=codecs)
                    self.obj.notes.append(f"map '{ms.name}': created without BTF ({exc})")
            else:
                m = new_map(cls, ms, key, value, key_size, value_size, max_entries, tmpl, init, codecs=codecs)
        finally:
            if tmpl is not None:
                tmpl.close()
        if data is not None:
            try:
                write_data(m, data)
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

    # -- programs -------------------------------------------------------------------------

    def _load_programs(self, specs: list[ProgramSpec], resolver: "_externs.KsymResolver") -> None:
        """Prepare every program, then load them back to back, then wrap them.

        All the Python work (copying, fds and ids filled in, attrs) comes first
        and the BPF_PROG_LOADs follow one another with nothing between them, on
        two threads where there are two CPUs (:func:`~pybpf._sys.syscall.bpf_each`):
        Python work between two loads evicts the caches the verifier runs in,
        which costs the kernel more than the work itself (about 10 us a program,
        measured on Linux 6.18).  A
        program that fails there (or all of them, when a log is asked for) is
        loaded again the ordinary way (:meth:`Program.load`'s steps), with the
        verifier log; errors come in program order.
        """
        prepared, attrs, _keep, failure = self._prepare_programs(specs, resolver)
        obj = self.obj
        programs = obj.programs
        rodata = obj.maps.get(".rodata")
        results: list[int] = []   # the fds loaded (-1: load again below)
        loaded = Program._loaded
        done = 0
        try:
            if self.log_level:
                results.extend([-1] * len(prepared))
            else:
                bpf_each(_PROG_LOAD, attrs, _PROG_LOAD_SIZE, results)
            for (ps, eat, kept, options, refs_rodata), res in zip(prepared, results):
                done += 1   # from here on the FD below (or the error) owns this load
                if res >= 0:
                    prog = loaded(res, ps.name, _PROG_TYPES.get(ps.type, ps.type), eat, kept, ps.license, options,
                                  ps.section, ps, obj)
                else:
                    try:
                        prog = Program._complete(Program._prepare(kept, options()), None)
                    except BPFError as exc:
                        raise self._btf_hint(exc, ps)
                    prog.section = ps.section
                    prog.spec = ps
                    prog.object = obj
                programs[ps.name] = prog
                if rodata is not None and not refs_rodata:
                    self._bind_rodata(prog, rodata)
        finally:
            for res in results[done:]:  # loaded but not handed to a Program (after a failure)
                if res >= 0:
                    os.close(res)
        if failure is not None:
            raise failure

    def _btf_hint(self, exc: BPFError, ps: ProgramSpec) -> BPFError:
        """Add what the object knows to a load error: a failed CO-RE relocation, missing BTF."""
        obj = self.obj
        index = getattr(exc, "insn_index", None)
        results = self._core_results.get(ps.name)
        if index is not None and results:
            from pybpf.btf.core import explain_poison

            why = explain_poison(index, results)
            if why:
                exc.hint = why  # the verifier only saw an unknown helper; this says which field
        if obj.btf_error and (ps.func_info or exc.hint is None):
            exc.hint = (f"{exc.hint}; " if exc.hint else "") + f"the object's BTF was not loaded: {obj.btf_error}"
        return exc

    @staticmethod
    def _bind_rodata(prog: Any, rodata: Any) -> None:
        # libbpf binds .rodata to every program: its bpf_metadata_* variables stay visible.
        from pybpf._sys.commands import prog_bind_map

        try:
            prog_bind_map(prog.fd, rodata.fd)
        except BPFError:
            pass

    def _prepare_programs(self, specs: list[ProgramSpec], resolver: "_externs.KsymResolver",
                          ) -> tuple[list[tuple[Any, ...]], list[Any], list[Any], BaseException | None]:
        """Each program ready to load, as (ps, expected attach type, the instructions, what makes its
        LoadOptions, whether it refers to .rodata); the address of its attr (or ``byref`` of it);
        the buffers those point to; and the error of the program that could not be prepared (the
        ones after it are not).

        The attrs are made from the ProgramSpecs at once, in two buffers for all the programs
        (:func:`~pybpf.program_load.prog_load_attrs`); what programs of one kind share (type,
        attach type, license, version, flags) is worked out once; the :class:`LoadOptions` only if
        they are asked for: a failed load, a log, ``Program.load_options``, ``clone()``.
        """
        prepared: list[tuple[Any, ...]] = []
        append = prepared.append
        attrs: list[Any] = []   # per program: its index in rows (batched) or byref of its own attr
        rows: list[tuple[Any, ...]] = []
        pieces: list[bytes] = []   # the instructions, func_info and line_info of the batched programs
        at = 0   # where the next piece starts
        keep: list[Any] = []
        failure: BaseException | None = None
        extern = partial(self._extern, resolver=resolver)   # resolves an extern a program refers to
        map_fds: dict[str, int] | None = None                # made for the first program with fixups
        externs = self.spec.externs
        btf_fd, btf_fd_number, log_level = self.btf_fd, self._btf_fd_number, self.log_level
        last_kind = shared = None
        for ps in specs:
            try:
                try:
                    # The instructions: linked at parse time (copy the bytes, fill in fds and ids), or a list.
                    linked = ps._code   # None once decoded (see _refuse_indirect_calls)
                    fixups = ps._fixups
                    if fixups and map_fds is None:
                        map_fds = {name: m.fd for name, m in self.obj.maps.items()}
                    if linked is not None:
                        code = bytearray(linked)
                        if ps.core_relos:
                            code = self._core_raw(code, ps)
                        insns = fd_array = None
                        refs_rodata = False
                        if fixups:
                            fd_array = patch_linked(code, fixups, map_fds, externs, extern)
                            refs_rodata = ".rodata" in map(_ref_of, fixups)
                    else:
                        code, insns, fd_array, refs_rodata = self._listed_code(ps, extern)
                    attach = None
                    if ps.type in _PER_PROGRAM_TARGET:
                        attach = self._target(ps, resolver)
                except BPFError as exc:
                    raise exc.add_context(f"program '{ps.name}'")
                func_info = line_info = None
                if btf_fd is not None:
                    raw = ps._kernel_ext()
                    if raw is not None:
                        func_info, line_info = raw
                        if func_info is None:
                            line_info = None
                    elif ps.func_info:
                        func_info, line_info = self._ext_records(ps)
                kind = (ps.type, ps.attach_type, ps.license, ps.kern_version, ps.flags)
                if kind != last_kind:
                    last_kind, shared = kind, self._kind(*kind)
                    keep.append(shared[2])
                    license = ctypes.addressof(shared[2])
            except BaseException as exc:  # raised after the programs before it, as when loading one by one
                failure = exc
                break
            prog_type, eat, _license_buf, kern_version, flags = shared
            if attach is not None:
                eat = attach[0]
            options = partial(_load_options, ps, eat, kern_version, btf_fd, func_info, line_info, attach, fd_array,
                              log_level, insns)
            kept = bytes(code)
            try:
                attach_btf_id = attach_fd = 0
                if attach is not None:
                    _eat, attach_btf_id, attach_obj, attach_prog = attach
                    target = attach_obj or attach_prog
                    attach_fd = fd_of(target) if target else 0
                # (the helper's number first: a byte search is cheap, a search for the whole call is not)
                if kept and not len(kept) & 7 and not (_COOKIE_HELPER in kept and COOKIE_CALL in kept
                                                       and _lacks_cookies()):
                    n = len(kept)
                    fds = 0
                    if fd_array is not None:
                        fds = (ctypes.c_int32 * len(fd_array))(*(fd_of(f) for f in fd_array))
                        keep.append(fds)
                        fds = ctypes.addressof(fds)
                    fi_cnt = len(func_info) >> 3 if func_info else 0
                    li_cnt = len(line_info) >> 4 if line_info else 0
                    rows.append((prog_type, n >> 3, at, license, kern_version, flags,
                                 object_name(ps.name) if ps.name else b"", eat or 0,
                                 btf_fd_number if func_info else 0, at + n, fi_cnt, at + n + 8 * fi_cnt, li_cnt,
                                 attach_btf_id, attach_fd, fds))
                    pieces.append(kept)
                    at += n
                    if fi_cnt:
                        pieces.append(func_info)
                        at += len(func_info)
                    if li_cnt:
                        pieces.append(line_info)
                        at += len(line_info)
                    attrs.append(len(rows) - 1)
                    append((ps, eat, kept, options, refs_rodata))
                    continue
                # What the batch leaves to the ordinary path: code it refuses (empty, a partial
                # instruction), cookie calls this kernel lacks.
                p = Program._prepare(kept, options())
            except BPFError as exc:
                failure = self._btf_hint(exc, ps)
                break
            except BaseException as exc:
                failure = exc
                break
            attrs.append(byref(p.attr))
            keep.append(p.keep)
            append((ps, eat, kept, options, refs_rodata))
        if rows:
            addresses, buffers = program_load.prog_load_attrs(rows, pieces)
            keep.extend(buffers)
            for index, attr in enumerate(attrs):
                if attr.__class__ is not int:
                    continue
                address = addresses[attr]
                if address is None:   # a value its field cannot hold: Program._prepare says which, with context
                    ps, _eat, kept, options, _refs = prepared[index]
                    try:
                        p = Program._prepare(kept, options())
                    except BaseException as exc:
                        failure = self._btf_hint(exc, ps) if isinstance(exc, BPFError) else exc
                        del prepared[index:], attrs[index:]
                        break
                    keep.append(p.keep)
                    address = byref(p.attr)
                attrs[index] = address
        return prepared, attrs, keep, failure

    def _listed_code(self, ps: ProgramSpec, extern: Callable[[Any], Any]) -> tuple[bytearray, Any, Any, bool]:
        """(code, the instruction list, fd_array, refers to .rodata) of a program given as instructions."""
        insns = ps.instructions
        if ps.core_relos:
            insns = [Instruction(i.code, i.dst, i.src, i.off, i.imm, i.symbol, i.reference, i.source) for i in insns]
            self._core(insns, ps)
        try:
            code = bytearray(encode_all(insns))
        except ValueError as exc:
            raise ObjectError(str(exc)) from None
        fd_array = patch_listed(insns, code, self.obj.maps, self.spec.externs, extern)
        return code, insns, fd_array, any(i.reference == ".rodata" for i in insns)

    @staticmethod
    def _kind(prog_type: Any, attach_type: Any, license: str, kern_version: int, flags: int) -> tuple[Any, ...]:
        """What programs of one kind share: (type, expected attach type, the license as a C string,
        kern_version, flags for the attr)."""
        if attach_type is not None:
            attach_type = _ATTACH_TYPES.get(attach_type, attach_type)
        if not kern_version and prog_type == _KPROBE:
            kern_version = kernel_version_code()
        return prog_type, attach_type, _license(license), kern_version, flags or 0

    def _target(self, ps: ProgramSpec, resolver: "_externs.KsymResolver") -> tuple[Any, int, Any, Any]:
        """(expected attach type, attach_btf_id, attach_btf_obj_fd, attach_prog_fd) of a program whose
        target is a BTF type or another program, or a struct_ops member."""
        if ps.type == _STRUCT_OPS:
            attach_btf_id, eat = self._struct_ops_target(ps)
            return _ATTACH_TYPES.get(eat, eat), attach_btf_id, None, None
        eat = ps.attach_type
        return (_ATTACH_TYPES.get(eat, eat) if eat is not None else None, *self._attach_target(ps, resolver))

    def _ext_records(self, ps: ProgramSpec) -> tuple[bytes, bytes | None]:
        """func_info and line_info in the kernel's layout, from the decoded records."""
        func_info = b"".join(_FI.pack(r.insn_off // 8, r.type_id) for r in ps.func_info)
        line_info = None
        strings = line_strings(self.spec, ps.line_info)
        if ps.line_info and strings is not None:
            line_info = b"".join(_LI.pack(li.insn_off // 8, strings[li.file_name], strings[li.line_text],
                                          li.line_num << 10 | li.col) for li in ps.line_info)
        return func_info, line_info

    def _core(self, insns: list[Instruction], ps: ProgramSpec) -> None:
        from pybpf.btf.core import apply_relocations

        with context("CO-RE"):
            self._core_results[ps.name] = apply_relocations(insns, list(ps.core_relos), self.spec.btf,
                                                            section=ps.section)

    def _core_raw(self, code: bytearray, ps: ProgramSpec) -> bytearray:
        from pybpf.asm.instruction import decode_all

        insns = decode_all(code)
        self._core(insns, ps)
        try:
            return bytearray(encode_all(insns))
        except ValueError as exc:
            raise ObjectError(str(exc)) from None

    def _extern(self, ext: Any, resolver: "_externs.KsymResolver") -> tuple[int, Any] | None:
        with context(f"extern '{ext.name}'"):
            found = resolver.resolve(ext)
            if found is None and not ext.weak:
                what = "/proc/kallsyms or the kernel's BTF" if ext.kind == "ksym" and not ext.typed \
                    else "the kernel's BTF"
                raise ObjectError(f"not found in {what} (declare it __weak to make it optional)")
            return found

    def _struct_ops_target(self, ps: ProgramSpec) -> tuple[int, int]:
        """(attach_btf_id, expected_attach_type): the kernel struct and the member index."""
        found = self._struct_ops_progs.get(ps.name)
        if found is None:  # pragma: no cover - _plan_struct_ops leaves these out or raises
            raise ObjectError("struct_ops program not used by any struct_ops map")
        return found

    def _attach_target(self, ps: ProgramSpec, resolver: "_externs.KsymResolver") -> tuple[int, Any, Any]:
        """(attach_btf_id, attach_btf_obj_fd, attach_prog_fd) of a TRACING/LSM/EXT program."""
        if ps.type not in (ProgType.TRACING, ProgType.LSM, ProgType.EXT):
            return 0, None, None
        info = ps.section_info
        kind = info.kind if info is not None else ""
        program, function = self._targets.get(ps.name, (ps.attach_program, None))
        if program is not None:
            return self._program_target(ps, program, function or ps.attach_target, kind)
        if ps.type == ProgType.EXT:
            raise ObjectError(f"freplace program '{ps.name}' needs set_attach_target(target_program, 'function') "
                              f"before load (or spec.load(attach_targets={{'{ps.name}': (program, 'function')}}))")
        target = function or ps.attach_target
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
                            return t.id or 0, resolver._module_fd(module), None
                        return t.id or 0, None, None
            raise ObjectError(f"'{prefix + target}' ({btf_kind.name}) is not in the kernel's BTF"
                              + (f" (module {module})" if module else ""))

    def _program_target(self, ps: ProgramSpec, program: Any, function: str | None, kind: str) -> tuple[int, Any, Any]:
        """A function of a loaded BPF program (freplace; fentry/fexit on BPF): its FUNC id in the
        target program's BTF, and the target's fd as attach_prog_fd."""
        from pybpf.object.targets import TargetResolver
        from pybpf.program import program_fd

        what = "freplace" if ps.type == ProgType.EXT else kind or "tracing"
        if ps.type == ProgType.TRACING and kind not in ("fentry", "fexit", "fmod_ret", ""):
            raise ObjectError(f"{kind} programs cannot attach to a BPF program (set_attach_target with a program "
                              "is for freplace and fentry/fexit)")
        if not function:
            raise ObjectError(f"{what} program '{ps.name}' names no function to attach to: give it in the section "
                              f"(SEC(\"{kind or 'freplace'}/func\")) or in set_attach_target(program, 'func')")
        if self._target_resolver is None:
            self._target_resolver = TargetResolver()
        with context("attach target"):
            btf_id = self._target_resolver.func_id(program, function)
            return btf_id, None, program_fd(program)

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



def _load_options(ps: ProgramSpec, expected_attach_type: Any, kern_version: int, btf_fd: Any,
                  func_info: bytes | None, line_info: bytes | None, attach: tuple[Any, int, Any, Any] | None,
                  fd_array: Any, log_level: int, insns: Any) -> LoadOptions:
    """The :class:`LoadOptions` of a program the loader prepared (made only when needed);
    ``attach``: what ``_Loader._target`` found, if the program type has a target."""
    attach_btf_id, attach_obj, attach_prog = attach[1:] if attach is not None else (0, None, None)
    return LoadOptions(
        ps.type, expected_attach_type, ps.license, ps.name, kern_version, ps.flags,
        btf_fd=btf_fd if func_info else None, func_info=func_info, line_info=line_info, attach_btf_id=attach_btf_id,
        attach_btf_obj_fd=attach_obj or 0, attach_prog_fd=attach_prog or 0, fd_array=fd_array, log_level=log_level,
        line_table=RawLineTable(ps) if insns is None else LineTable(insns))
