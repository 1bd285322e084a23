"""A loaded BPF object: its programs, maps and global variables in the kernel.

:class:`Object` owns every program and map (and the BTF) that
:meth:`ObjectSpec.load` made; :meth:`Object.close`, ``with`` or garbage
collection closes them all.  :class:`ObjectVariable` reads and writes a
global variable straight in the memory-mapped global data map: no system
call per access.

Example::

    with pybpf.load("counter.bpf.o", variables={"target_pid": 42}) as obj:
        obj.programs["count"].test_run(b"\\0" * 64)
        print(obj.variables["hits"].value)        # .bss, read through mmap
        obj.variables["enabled"].value = True     # .data, seen by the program
        print(dict(obj.maps["counts"].items()))   # typed through BTF
"""

from __future__ import annotations

from pybpf.errors import BPFError
from pybpf.object.hooks import hook
from pybpf.object.parts import NameTable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any
    from pybpf.object.spec import ObjectSpec, VariableSpec

__all__ = ["Object", "ObjectVariable"]

_UNSET: Any = object()


class Object:
    """Programs (``programs[name]``: :class:`pybpf.Program` with ``.section`` and ``.spec``),
    maps (``maps[name]``: :class:`pybpf.maps.Map`, keys ``".rodata"``, ``".bss"``, ``"counts"``...)
    and ``variables[name]`` (:class:`ObjectVariable`) of one loaded object.

    ``btf_error`` says why the object's BTF was not loaded (None when it
    was); ``notes`` lists what the loader adjusted or skipped.
    """

    def __init__(self, spec: "ObjectSpec") -> None:
        self.spec = spec
        self.name = spec.name
        owner = f"object '{spec.name}'"
        self.programs: dict[str, Any] = NameTable(kind="program", owner=owner)
        self.maps: dict[str, Any] = NameTable(kind="map", owner=owner)
        self._variables: dict[str, ObjectVariable] | None = None   # made on first access
        self._variable_specs: dict[str, VariableSpec] = {}          # what the loader leaves for it
        self.btf_error: str | None = None
        self.notes: list[str] = []
        self._btf_fd: Any = None
        self._raw_maps: dict[str, Any] = {}
        self._reused: set[str] = set()
        self._to_pin: list[tuple[str, str]] = []
        self._closed = False

    @property
    def variables(self) -> dict[str, ObjectVariable]:
        """The object's global variables by name (:class:`ObjectVariable`), in the maps this load made."""
        variables = self._variables
        if variables is None:
            variables = self._variables = NameTable(kind="variable", owner=f"object '{self.name}'")
            maps = self.maps
            for name, vs in self._variable_specs.items():
                m = maps.get(vs.map.name)
                if m is not None:
                    var = variables[name] = ObjectVariable(vs, m, self)
                    if self._closed:
                        var._release()
        return variables

    @property
    def btf(self) -> Any:
        """The object's BTF (``spec.btf``: types by name with ``find``/``types_by_name``), or None."""
        return self.spec.btf

    @property
    def btf_fd(self) -> int | None:
        """The fd of the object's BTF in the kernel (None if it was not loaded)."""
        return self._btf_fd.fileno() if self._btf_fd is not None and not self._btf_fd.closed else None

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close every program, map and the BTF (pinned maps stay in bpffs).

        The programs and variables then let go of the object (``prog.object``
        becomes None): nothing is left in a reference cycle, so a closed
        object is freed as soon as it is dropped, not by the garbage collector.
        """
        if self._closed:
            return
        self._closed = True
        for var in (self._variables or {}).values():
            var._release()
        for m in self._raw_maps.values():
            m.close()
        self._raw_maps.clear()
        for prog in self.programs.values():
            prog.close()
            prog.object = None
        for m in self.maps.values():
            m.close()
        if self._btf_fd is not None:
            self._btf_fd.close()

    def attach_all(self, **kwargs: Any) -> dict[str, Any]:
        """Attach every program whose section says where, like libbpf's auto-attach.

        Returns ``{name: Link}``: programs whose section names no target
        (``xdp``, ``cgroup_skb/ingress``...) are left alone, and every
        ``.struct_ops.link`` map is registered under its map name, as libbpf
        does.  All or nothing: on an error the links made so far are closed.
        See :func:`pybpf.links.auto.attach_object`.
        """
        return hook("attach_object")(self, **kwargs)

    def __enter__(self) -> "Object":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<Object {self.name!r} programs={list(self.programs)} maps={list(self.maps)}{state}>"

    def _raw_map(self, name: str) -> Any:
        """The global data map ``name`` with raw bytes values (for kernels without mmapable maps)."""
        raw = self._raw_maps.get(name)
        if raw is None:
            from pybpf.maps import Map

            m = self.maps[name]
            raw = Map.from_fd(m.fd, key="u32", value=m.value_size)
            self._raw_maps[name] = raw
        return raw


class ObjectVariable:
    """A global variable of a loaded object.

    ``value`` reads and writes the variable in the memory of its map
    (``.data``, ``.bss``, ``.rodata``...): the same bytes the programs use,
    with no system call.  ``.rodata`` and ``.kconfig`` are frozen after
    load, so assigning their variables raises :class:`pybpf.BPFError`.
    """

    __slots__ = ("name", "section", "offset", "size", "type", "map", "_codec", "_obj", "_spec")

    def __init__(self, spec: "VariableSpec", map_: Any, obj: Object) -> None:
        self.name = spec.name
        self.section = spec.section
        self.offset = spec.offset
        self.size = spec.size
        self.type = spec.type
        self.map = map_
        self._codec: Any = _UNSET   # the VariableSpec's codec, fetched on first use
        self._spec = spec
        self._obj = obj

    def _get_codec(self) -> Any:
        codec = self._codec
        if codec is _UNSET:
            codec = self._codec = self._spec.codec
        return codec

    def _memory(self) -> memoryview | None:
        try:
            return self.map.memory
        except (BPFError, AttributeError):
            return None

    def _closed_error(self) -> BPFError:
        return BPFError(f"variable '{self.name}': the object is closed")

    @property
    def value(self) -> Any:
        if self.map is None:
            raise self._closed_error()
        mem = self._memory()
        off, size = self.offset, self.size
        if mem is None:
            raw = self._obj._raw_map(self.section)[0]
            mem = memoryview(raw)
        codec = self._get_codec()
        if codec is None:
            return bytes(mem[off:off + size])
        try:
            return codec.decode_from(mem, off)
        except (ValueError, TypeError) as exc:
            raise BPFError(f"variable '{self.name}': {exc}") from None

    @value.setter
    def value(self, value: Any) -> None:
        if self.map is None:
            raise self._closed_error()
        mem = self._memory()
        if (mem.readonly if mem is not None else self.map.frozen):
            raise BPFError(f"variable '{self.name}': section '{self.section}' is read-only after load "
                           "(frozen); set it on the ObjectSpec before loading")
        codec = self._get_codec()
        if codec is None:
            if not isinstance(value, (bytes, bytearray, memoryview)) or len(value) != self.size:
                raise BPFError(f"variable '{self.name}': without BTF the value must be {self.size} raw bytes")
            raw = bytes(value)
        else:
            try:
                raw = codec.encode(value)
            except (TypeError, ValueError, OverflowError) as exc:
                raise BPFError(f"variable '{self.name}': {exc}") from None
        off = self.offset
        if mem is not None:
            mem[off:off + self.size] = raw
            return
        rawmap = self._obj._raw_map(self.section)
        current = bytearray(rawmap[0])
        current[off:off + self.size] = raw
        rawmap[0] = bytes(current)

    def _release(self) -> None:
        self.map = None
        self._obj = None

    def __repr__(self) -> str:
        return f"<ObjectVariable {self.name!r} section={self.section!r} offset={self.offset} size={self.size}>"
