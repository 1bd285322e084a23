"""How the object loader makes the map of a :class:`~pybpf.object.parts.MapSpec`.

Its size where the kernel wants one worked out (perf event arrays, ring
buffers), its key and value codecs from the BTF types (scalars read as
ints, records through a BTF codec compiled on first use), its initial
contents, and the check that a map pinned by an earlier load fits the spec.
The loader (:mod:`pybpf.object.loader`) calls these; nothing here makes a
map without it.

Example (what the loader does for one map)::

    key, value = map_codec(ms.key_type, ms.key_size), map_codec(ms.value_type, ms.value_size)
    m = new_map(map_class(ms.type), ms, key, value, None, None, kernel_max_entries(ms.type, ms.max_entries),
                None, None)
"""

from __future__ import annotations

from pybpf._sys.uapi import MapType
from pybpf.btf.types import BTFKind, Datasec, Enum, Int, Pointer
from pybpf.btf.typeinfo import resolve, sizeof
from pybpf.errors import BPFError, ObjectError
from pybpf.maps import Map
from pybpf.maps.codec import ForeignCodec, RawCodec, scalar_codec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any
    from pybpf.object.parts import MapSpec

__all__ = ["new_map", "kernel_max_entries", "ring_size", "btf_codecs", "family_codecs", "map_codec", "write_data",
           "check_compatible"]


def new_map(cls: type, ms: MapSpec, key: Any, value: Any, key_size: int | None, value_size: int | None,
             max_entries: int, inner: Any, init: bytes | None, btf_fd: int = 0,
             btf_ids: tuple[int, int] = (0, 0), codecs: Any = None) -> Any:
    """A new map of ``cls`` (its family, :func:`pybpf.maps.map_class`) for ``ms``: what
    :func:`pybpf.maps.create` does, without its keyword arguments passed on once more.
    ``codecs``: makes the codecs on first use instead (:func:`family_codecs`)."""
    m = cls.__new__(cls)
    m._create(int(ms.type), key=key, value=value, key_size=key_size, value_size=value_size,
              max_entries=max_entries, flags=ms.flags, name=ms.kernel_name or ms.name, inner_map=inner,
              numa_node=ms.numa_node, map_extra=ms.map_extra, btf_fd=btf_fd, btf_key_type_id=btf_ids[0],
              btf_value_type_id=btf_ids[1], init=init, freeze=ms.freeze, codecs=codecs)
    return m


def kernel_max_entries(map_type: MapType, max_entries: int) -> int:
    """max_entries of a perf event array (0: one per possible CPU) or a ring buffer (see :func:`ring_size`)."""
    if map_type == MapType.PERF_EVENT_ARRAY:
        if max_entries:
            return max_entries
        from pybpf.maps.info import possible_cpus

        return possible_cpus()
    return ring_size(max_entries)


def ring_size(size: int) -> int:
    """Ring buffers are a power-of-two number of pages (libbpf rounds up the same way)."""
    import mmap

    page = mmap.PAGESIZE
    size = max(size, page)
    n = page
    while n < size:
        n <<= 1
    return n


# Maps whose values are fds of other objects: their codecs come from the map family.
FD_VALUE_TYPES = frozenset({MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS, MapType.PROG_ARRAY})


def btf_codecs(ms: MapSpec) -> tuple[Any, Any]:
    """The key and value codecs the BTF of ``ms`` gives (None: raw bytes, or the family's own);
    cached on the MapSpec while its types and sizes stay the same."""
    key = (ms.type, ms.key_type, ms.key_size, ms.value_type, ms.value_size)
    cached = ms._codec_cache
    if cached is not None and cached[0] == key:
        return cached[1]
    if ms.type in FD_VALUE_TYPES:
        out = (map_codec(ms.key_type, ms.key_size) if ms.type == MapType.HASH_OF_MAPS else None), None
    else:
        out = map_codec(ms.key_type, ms.key_size), map_codec(ms.value_type, ms.value_size)
    ms._codec_cache = (key, out)
    return out


def family_codecs(cls: Any, ms: MapSpec) -> tuple[Any, Any]:
    """The codecs of the map ``cls`` made for ``ms``, for a family that takes the BTF codecs as they
    are (``Map._codecs``): the BTF's where it gives one, the family's defaults or raw bytes of
    the spec's sizes otherwise."""
    key, value = btf_codecs(ms)
    return cls._codecs(key, None if key is not None else ms.key_size, value,
                       None if value is not None else ms.value_size, int(cls._create_flags(int(ms.flags))))


# Scalar codec names by (signed, size): ints, enums and pointers read as Python ints.
_SCALARS = {(signed, size): f"{'i' if signed else 'u'}{8 * size}" for signed in (False, True) for size in (1, 2, 4, 8)}


def map_codec(t: Any, size: int) -> Any:
    """The map codec for BTF type ``t``: a scalar codec for ints, the BTF codec otherwise (None: raw bytes)."""
    if t is None or not size:
        return None
    try:
        if t.__class__ is Datasec and getattr(t, "_codec", None) is None:   # every map of global data
            return _lazy_codec(t, size) if t.size == size else None
        r = resolve(t)
        if isinstance(r, (Int, Enum)) and r.size == size and size in (1, 2, 4, 8) and \
                not (isinstance(r, Int) and (r.is_bool or r.bits != 8 * size or r.offset)):
            return scalar_codec(_SCALARS[r.signed, size])
        if isinstance(r, Pointer) and size == 8:
            return scalar_codec("u64")
        compiled = getattr(t, "_codec", None)
        if compiled is not None:
            return ForeignCodec(compiled) if compiled.size == size else None
        return _lazy_codec(t, size) if sizeof(t) == size else None
    except (BPFError, TypeError, ValueError):
        return None


def _lazy_codec(t: Any, size: int) -> Any:
    lazy = _LazyCodec(t, size)
    return ForeignCodec(lazy, size, lazy.label)


class _LazyCodec:
    """The BTF codec of ``t``, compiled the first time a value is encoded or decoded.

    Compiling the codec of a record type (a global data section, a struct
    value) costs tens of microseconds; most loads never read the map from
    Python.  A type the BTF codecs cannot handle reads and writes raw bytes,
    as a map without BTF does.  Maps take it through a
    :class:`~pybpf.maps.codec.ForeignCodec`.
    """

    def __init__(self, t: Any, size: int) -> None:
        self._type = t
        self.size = size

    @property
    def label(self) -> str:
        t = self._type
        if t.kind == BTFKind.DATASEC:   # (every map of global data: no import on the way)
            return f'SEC("{t.name}")'  # what type_name() says, without walking the variables
        from pybpf.btf.typeinfo import type_name

        return type_name(t)

    def _compile(self) -> Any:
        from pybpf.btf.codec import codec_for

        try:
            codec = codec_for(self._type)
        except (BPFError, TypeError, ValueError):
            codec = None
        if codec is None or codec.size != self.size:
            codec = RawCodec(self.size)
        self.encode = codec.encode  # type: ignore[method-assign]
        self.decode = codec.decode  # type: ignore[method-assign]
        return codec

    def encode(self, value: Any) -> bytes:
        return self._compile().encode(value)

    def decode(self, buf: bytes) -> Any:
        return self._compile().decode(buf)


def write_data(m: Any, data: bytes) -> None:
    """Initial contents of a global data map: through its memory when mmapped, else one update."""
    mem = None
    try:
        mem = m.memory
    except (BPFError, ValueError, AttributeError):
        mem = None
    if mem is not None and not mem.readonly:
        mem[:len(data)] = data
        return
    raw = Map.from_fd(m.fd, key="u32", value=len(data))
    try:
        raw[0] = data
    finally:
        raw.close()


def check_compatible(ms: MapSpec, m: Any, path: str, max_entries: int) -> None:
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

