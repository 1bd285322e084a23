"""The :class:`Map` base class, :func:`create` and the map-type registry.

A :class:`Map` owns one kernel map fd and reads and writes it like a dict.
The family classes (:mod:`.hash`, :mod:`.array`, :mod:`.percpu`, ...) are
thin subclasses that fix the key type, add family operations (push/pop,
``sum``, mmap) and say which kernel they need.

Example::

    from pybpf.maps import HashMap
    with HashMap(key="u32", value="u64", max_entries=1024, name="counts") as counts:
        counts[1] = 10
        counts.update({2: 20, 3: 30})
        assert dict(counts.items()) == {1: 10, 2: 20, 3: 30}

Hot paths.  Every single-element operation packs the key (and value) with a
precompiled ``struct.Struct.pack_into`` straight into a preallocated buffer
whose address already sits in a preallocated ``MapElemAttr``, then calls the
raw ``sys_bpf`` (no exceptions; the error is built only when the result is
negative) and decodes with ``unpack_from``.  Nothing is allocated per call
but the result.

Threads.  The scratch buffers are per thread (see :mod:`.scratch`), so one
Map object may be used from several threads at once; iterators and batch
operations have buffers of their own.
"""

from __future__ import annotations

import ctypes
import importlib
import errno as _errno
import os
from collections.abc import Mapping

from pybpf._sys.attrs import MapCreateAttr, MapElemAttr, check_int, packer
from pybpf._sys.commands import map_fd_by_id, map_info, obj_get
from pybpf._sys.pin import Pinnable
from pybpf._sys.flags import MapFlag, UpdateFlag
from pybpf._sys.syscall import FD, bpf, error, object_name, sys_bpf
from pybpf._sys.uapi import Cmd, MapType
from pybpf.errors import BPFError, KeyNotFoundError, MapError, MapFullError, SyscallError
from pybpf.maps import batch as _batch
from pybpf.maps.batch import _DELETE, _ELEM_SIZE, _LOOKUP, _NEXT_KEY, _UPDATE, NOT_SUPPORTED
from pybpf.maps.codec import PerCPUCodec, make_codec
from pybpf.maps.info import PERCPU_TYPES, MapInfo, flags_text, possible_cpus
from pybpf.maps.scratch import CodecsOnFirstUse, FirstUse, Layout

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, ClassVar, Iterable, Iterator

__all__ = ["Map", "MapInfo", "create", "map_class", "FAMILIES", "possible_cpus", "PERCPU_TYPES"]

# Plain ints (the others come from batch): an IntEnum member costs an attribute lookup and a
# conversion per call.
_LOOKUP_AND_DELETE = int(Cmd.MAP_LOOKUP_AND_DELETE_ELEM)

# The hot paths hand sys_bpf ready-made ctypes arguments: its foreign function
# declares argtypes (c_long, c_long, c_void_p, c_ulong), and ctypes passes an
# instance of the declared type through as is, where a Python int would be
# converted into a new object on every call (about 110 ns per call measured).
_C_LOOKUP = ctypes.c_long(_LOOKUP)
_C_UPDATE = ctypes.c_long(_UPDATE)
_C_DELETE = ctypes.c_long(_DELETE)
_C_LOOKUP_AND_DELETE = ctypes.c_long(_LOOKUP_AND_DELETE)
_C_ELEM_SIZE = ctypes.c_ulong(_ELEM_SIZE)

ENOENT = _errno.ENOENT

_NO_KEY: Any = _batch.NO_KEY
_MISSING: Any = object()

# Map type -> (module of pybpf.maps, class): each family's module is imported when a map of its
# type is first made or opened, so a program that uses hash maps never imports the LPM trie code.
FAMILIES: dict[MapType, tuple[str, str]] = {
    MapType.HASH: ("hash", "HashMap"), MapType.LRU_HASH: ("hash", "LRUHashMap"),
    MapType.ARRAY: ("array", "ArrayMap"),
    MapType.PERCPU_HASH: ("percpu", "PerCPUHashMap"), MapType.LRU_PERCPU_HASH: ("percpu", "LRUPerCPUHashMap"),
    MapType.PERCPU_ARRAY: ("percpu", "PerCPUArrayMap"),
    MapType.LPM_TRIE: ("lpm", "LPMTrieMap"),
    MapType.QUEUE: ("queue", "QueueMap"), MapType.STACK: ("queue", "StackMap"),
    MapType.BLOOM_FILTER: ("bloom", "BloomFilterMap"),
    MapType.STACK_TRACE: ("stacktrace", "StackTraceMap"),
    MapType.PROG_ARRAY: ("progarray", "ProgArrayMap"),
    MapType.ARRAY_OF_MAPS: ("mapinmap", "ArrayOfMapsMap"), MapType.HASH_OF_MAPS: ("mapinmap", "HashOfMapsMap"),
    MapType.PERF_EVENT_ARRAY: ("perf_event_array", "PerfEventArray"),
    MapType.RINGBUF: ("ringbuf", "RingBuf"), MapType.USER_RINGBUF: ("ringbuf", "UserRingBuf"),
}
_CLASSES: dict[int, type["Map"]] = {}


def map_class(map_type: int) -> type["Map"]:
    """The class that wraps maps of ``map_type``; the generic :class:`Map` for unknown types."""
    found = _CLASSES.get(int(map_type))
    if found is None:
        try:
            family = FAMILIES[MapType(map_type)]
        except (ValueError, KeyError):
            return Map
        module = importlib.import_module(f"pybpf.maps.{family[0]}")
        found = _CLASSES[int(map_type)] = getattr(module, family[1])
    return found


class Map(Pinnable):
    """A kernel BPF map, read and written like a dict.

    Attributes: ``fd``, ``name``, ``type`` (:class:`MapType`), ``key_size``,
    ``value_size``, ``max_entries``, ``flags`` (:class:`MapFlag`), ``id``,
    ``map_extra``.  ``close()``, ``with``, or garbage collection closes it.

    Dict operations: ``m[k]``, ``m[k] = v``, ``del m[k]``, ``k in m``,
    ``get``, ``keys``/``values``/``items`` (iterators), ``len`` (counts by
    iterating: O(n) in the kernel, see :meth:`__len__`), ``clear``,
    ``update``, ``pop``, ``setdefault``; batch operations ``lookup_batch``,
    ``items_batch``, ``update_batch``, ``delete_batch``,
    ``lookup_and_delete_batch``.  A missing key is a
    :class:`~pybpf.errors.KeyNotFoundError` (a ``KeyError``).

    Maps are made by :func:`create`, by a family class
    (``HashMap(key="u32", value="u64", max_entries=16)``), or from an
    existing map with :meth:`from_fd`, :meth:`from_id`, :meth:`from_pin`,
    which return the family class of the kernel's map type.

    Example::

        m = pybpf.maps.create(MapType.HASH, key="u32", value="u64", max_entries=16, name="m")
        m[1] = 2; assert m[1] == 2 and 1 in m and len(m) == 1
        m.close()
    """

    __slots__ = (
        "_fd", "name", "type", "key_size", "value_size", "max_entries", "flags", "_id", "map_extra",
        "_label", "_key_codec", "_value_codec", "_kc", "_vc", "_kpack", "_vpack", "_vunpack",
        "_layout", "_tls", "_nobatch", "_no_lookup_and_delete", "_pinned", "btf", "__weakref__",
    )

    #: the kernel map type the family constructor creates (None: the generic class)
    map_type: ClassVar[MapType | None] = None
    #: first Linux version with this map type (None: the generic class, any type)
    min_kernel: ClassVar[str | None] = None
    #: the errno an update gets when the map holds max_entries already (hash: E2BIG; None: n/a)
    _full_errno: ClassVar[int | None] = None
    #: default key/value codec specs when none is given (None: raw bytes of the kernel's size)
    _default_key: ClassVar[Any] = None
    _default_value: ClassVar[Any] = None
    #: keys are indices that always exist (arrays): iteration needs no restart bookkeeping
    _index_keys: ClassVar[bool] = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("Map is the base class: use pybpf.maps.create(map_type, ...), a family class "
                        "such as HashMap(...), or Map.from_fd/from_id/from_pin")

    # ------------------------------------------------------------------ construction

    @classmethod
    def _codecs(
        cls, key: Any, key_size: int | None, value: Any, value_size: int | None, flags: int = 0,
    ) -> tuple[Any, Any]:
        """Key and value codecs for a new or adopted map (family classes refine this)."""
        if key is None and cls._default_key is not None and key_size in (None, _spec_size(cls._default_key)):
            key = cls._default_key
        if value is None and cls._default_value is not None and value_size in (None, _spec_size(cls._default_value)):
            value = cls._default_value
        return (make_codec(key, size=key_size, role="key"), make_codec(value, size=value_size, role="value"))

    @classmethod
    def _create_flags(cls, flags: int) -> int:
        return flags

    def _create(
        self, map_type: int, *, key: Any = None, value: Any = None, key_size: int | None = None,
        value_size: int | None = None, max_entries: int, flags: int = 0, name: str = "",
        inner_map: "Map | None" = None, numa_node: int | None = None, map_extra: int = 0,
        btf_fd: int = 0, btf_key_type_id: int = 0, btf_value_type_id: int = 0,
        btf_vmlinux_value_type_id: int = 0, init: bytes | None = None, freeze: bool = False,
        codecs: Callable[[], tuple[Any, Any]] | None = None,
    ) -> None:
        """Create the map and wrap it.  ``codecs``, when given, makes the (key, value) codecs of a map
        of ``key_size``/``value_size`` bytes the first time one is used (see
        :class:`~pybpf.maps.scratch.CodecsOnFirstUse`), for a family whose codecs cannot fail: the
        object loader's, whose BTF codecs most loads never use."""
        flags = int(self._create_flags(int(flags)))
        if codecs is None:
            try:  # (not contextlib's context(): a generator per map)
                kc, vc = self._codecs(key, key_size, value, value_size, flags)
            except BPFError as exc:
                raise exc.add_context(_label(name, None))
            key_size, value_size = kc.size, vc.size
        else:
            kc, vc = CodecsOnFirstUse.pair(self, codecs, key_size, value_size)
        if numa_node is not None:
            flags |= MapFlag.NUMA_NODE
        values = (map_type, key_size, value_size, max_entries, flags,
                  inner_map.fd if inner_map is not None else 0, numa_node or 0,
                  object_name(name) if name else b"", 0, btf_fd or 0, btf_key_type_id or 0,
                  btf_value_type_id or 0, btf_vmlinux_value_type_id or 0, map_extra or 0, 0, 0)
        attr = _map_create_attr_of(values)
        label = _label(name, None)
        try:
            res = bpf(_MAP_CREATE, attr, op="create", hint_for=lambda err: self._create_hint(err, attr))
        except SyscallError as exc:
            raise _as_map_error(exc).add_context(label) from None
        fd = FD(res, label)
        try:
            if init is not None:
                _write_first(res, key_size, value_size, init, label)
            if freeze:
                _freeze_fd(res, label)
            # No BPF_OBJ_GET_INFO_BY_FD: the map is what was asked for (the id is read when needed).
            self._setup(fd, (map_type, key_size, value_size, max_entries, flags, 0, map_extra or 0, freeze), kc, vc,
                        name, label)
        except BaseException:
            fd.close()
            raise

    def _create_hint(self, err: int, attr: MapCreateAttr) -> str | None:
        try:
            kind = MapType(attr.map_type).name.lower()
        except ValueError:
            kind = f"type {attr.map_type}"
        if err in NOT_SUPPORTED:
            text = (f"invalid argument: {kind} map with key_size={attr.key_size}, value_size={attr.value_size}, "
                    f"max_entries={attr.max_entries}, flags={flags_text(attr.map_flags)} was refused")
            return text + (f"; {kind} maps need Linux {self.min_kernel}" if self.min_kernel else "")
        if err == _errno.E2BIG:
            return f"key_size={attr.key_size}/value_size={attr.value_size}/max_entries={attr.max_entries} too big"
        return None

    def _setup(self, fd: FD, info: tuple, key_codec: Any, value_codec: Any, name: str, label: str) -> None:
        """``info``: (type, key_size, value_size, max_entries, flags, id (0: not asked yet), map_extra,
        frozen) of the kernel's map (see :func:`_info_of`); ``label`` is :func:`_label` of the map."""
        self._fd = fd
        self.name = name
        kind, self.key_size, self.value_size, self.max_entries, flags, map_id, self.map_extra, _frozen = info
        self.type = _MAP_TYPES.get(kind, kind)
        self.flags = _map_flags(flags)
        self._id = map_id or None
        self._label = label
        if not name:
            self._label = label = _label(None, self.id)   # (asks the kernel for the id of a new map without a name)
        fd.what = label
        self._nobatch: set[int] = set()
        self._no_lookup_and_delete = False
        self._pinned: str | None = None
        #: the BTF of the object the map was loaded from (readers look ``record="struct event"`` up in it)
        self.btf: Any = None
        self._install_codecs(key_codec, value_codec)
        self._layout: Layout | None = None   # made with the first scratch buffers
        self._tls = FirstUse(self)

    def _install_codecs(self, key_codec: Any, value_codec: Any) -> None:
        if key_codec.size != self.key_size:
            raise TypeError(f"{self._label}: key codec {key_codec.label} is {key_codec.size} bytes, "
                            f"the map's key_size is {self.key_size}")
        if value_codec.size != self.value_size:
            raise TypeError(f"{self._label}: value codec {value_codec.label} is {value_codec.size} bytes, "
                            f"the map's value_size is {self.value_size}")
        self._key_codec = key_codec
        self._value_codec = value_codec
        self._kc = key_codec
        self._vc = PerCPUCodec(value_codec, possible_cpus()) if self.type in PERCPU_TYPES else value_codec
        self._kpack = self._kc.pack_into
        self._vpack = self._vc.pack_into
        self._vunpack = self._vc.unpack_from

    def set_codecs(self, *, key: Any = None, value: Any = None) -> None:
        """Retype keys and/or values (a codec spec each; None keeps the current one).

        >>> m.set_codecs(value="<II")    # 8-byte values now read as (a, b)
        """
        if self._key_codec.__class__ is CodecsOnFirstUse:
            self._key_codec.resolve()   # (an object loader's codecs, made now)
        kc, vc = self._codecs(key if key is not None else self._key_codec, self.key_size,
                              value if value is not None else self._value_codec, self.value_size,
                              int(self.flags))
        self._install_codecs(kc, vc)

    @classmethod
    def from_fd(cls, fd: int, *, dup: bool = True, key: Any = None, value: Any = None) -> "Map":
        """Wrap an existing map fd in the class of its kernel map type.

        With ``dup=True`` (default) the fd is duplicated and the caller keeps
        theirs; with ``dup=False`` the Map takes ownership and closes it.
        ``key``/``value`` are optional codec specs (the loader passes BTF codecs).
        """
        fd = check_int("fd", fd, 32, signed=True)
        if dup:
            try:
                fd = os.dup(fd)
            except OSError as exc:
                raise MapError(f"from_fd({fd}): {os.strerror(exc.errno or _errno.EBADF)}",
                               errno=exc.errno or _errno.EBADF, hint="not an open file descriptor") from None
        return cls._adopt(FD(fd, "map"), key, value)

    @classmethod
    def from_id(cls, map_id: int, *, key: Any = None, value: Any = None) -> "Map":
        """Open the map with kernel id ``map_id``."""
        try:
            fd = map_fd_by_id(map_id)
        except SyscallError as exc:
            raise _as_map_error(exc) from None
        return cls._adopt(fd, key, value)

    @classmethod
    def from_pin(cls, path: str | os.PathLike[str], *, key: Any = None, value: Any = None) -> "Map":
        """Open the map pinned at ``path`` on a bpffs."""
        path = os.fspath(path)
        try:
            fd = obj_get(path, what="map")
        except SyscallError as exc:
            raise _as_map_error(exc) from None
        m = cls._adopt(fd, key, value)
        m._pinned = path
        return m

    @classmethod
    def _adopt(cls, fd: FD, key: Any, value: Any) -> "Map":
        try:
            try:
                raw = map_info(fd.fileno())
            except SyscallError as exc:
                err = _as_map_error(exc)
                if exc.errno in (_errno.EINVAL, _errno.EBADF):
                    err.hint = "the fd is not a BPF map"
                raise err from None
            target = map_class(raw.type)
            if cls is not Map and not issubclass(target, cls):
                have = MapType(raw.type).name if raw.type in MapType._value2member_map_ else str(raw.type)
                raise TypeError(f"map id {raw.id} is a {have} map, not a {cls.__name__}")
            obj = target.__new__(target)
            kc, vc = target._codecs(key, raw.key_size, value, raw.value_size, raw.map_flags)
            name = raw.name.decode(errors="replace")
            obj._setup(fd, (raw.type, raw.key_size, raw.value_size, raw.max_entries, raw.map_flags, raw.id,
                            raw.map_extra, False), kc, vc, name, _label(name, raw.id))
        except BaseException:
            fd.close()
            raise
        return obj

    # ------------------------------------------------------------------ lifetime

    @property
    def id(self) -> int:
        """The kernel's id of the map (asked once, the first time it is needed)."""
        map_id = self._id
        if map_id is None:
            try:
                map_id = self._id = map_info(self.fd).id
            except SyscallError as exc:
                raise _as_map_error(exc).add_context(self._label) from None
        return map_id

    @property
    def fd(self) -> int:
        """The map's file descriptor (ValueError once closed)."""
        return self._fd.fileno()

    def fileno(self) -> int:
        return self._fd.fileno()

    @property
    def closed(self) -> bool:
        return self._fd.closed

    def close(self) -> None:
        """Close the fd (the kernel frees the map once nothing else holds it)."""
        if not self._fd.closed:
            self._release()
            if self._layout is not None:
                self._layout.invalidate()
            self._fd.close()

    def _release(self) -> None:
        """Family hook: drop what refers to the fd (mmaps) before it closes."""

    def __enter__(self) -> "Map":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self._fd.closed else ""
        map_id = self._id
        if map_id is None and not state:
            try:
                map_id = self.id
            except BPFError:
                pass
        return (f"<{type(self).__name__} {self.name!r} id={map_id} key_size={self.key_size} "
                f"value_size={self.value_size} max_entries={self.max_entries}{state}>")

    # ------------------------------------------------------------------ object operations

    def info(self) -> MapInfo:
        """Ask the kernel for the map's info (BPF_OBJ_GET_INFO_BY_FD)."""
        try:
            return MapInfo.from_kernel(map_info(self.fd))
        except SyscallError as exc:
            raise _as_map_error(exc).add_context(self._label) from None

    def _pin_error(self, exc: BPFError) -> BPFError:
        return _as_map_error(exc) if isinstance(exc, SyscallError) else exc

    @property
    def pinned(self) -> str | None:
        """The same as :attr:`pinned_path`."""
        return self._pinned

    def freeze(self) -> None:
        """Make the map read-only for user space (BPF_MAP_FREEZE, Linux 5.2); programs still write."""
        attr = MapElemAttr(map_fd=self.fd)
        try:
            bpf(Cmd.MAP_FREEZE, attr, op="freeze", hint_for=_freeze_hint)
        except SyscallError as exc:
            raise _as_map_error(exc).add_context(self._label) from None

    @property
    def frozen(self) -> bool:
        """Whether the map is frozen (from /proc/self/fdinfo, Linux 5.2+)."""
        try:
            with open(f"/proc/self/fdinfo/{self.fd}") as f:
                for line in f:
                    if line.startswith("frozen:"):
                        return line.split()[1] != "0"
        except OSError:
            pass
        return False

    # ------------------------------------------------------------------ errors

    def _pack_slow(self, role: str, buf: Any, offset: int, value: Any, exc: BaseException) -> None:
        """After the codec's pack_into refused ``value``: raw bytes of the right size, else the error."""
        codec = self._kc if role == "key" else self._vc
        codec.pack_raw(buf, offset, value, role, exc)

    def _fail(self, op: str, err: int, key: Any = _NO_KEY, flags: int = 0) -> Exception:
        """The exception for bpf(2) failing with ``err`` during ``op``, with the map's context."""
        if err == _errno.EBADF and self._fd.closed:
            return ValueError(f"{self._label} is closed")
        hint = self._hint(op, err, key, flags)
        exc: BPFError
        if err == ENOENT and key is not _NO_KEY:
            exc = KeyNotFoundError(f"{op}: key {key!r} not found", hint=hint, errno=err)
        else:
            full = err == self._full_errno and op.startswith(("update", "push"))
            exc = error(err, op, hint=hint, cls=MapFullError if full else MapError)
        return exc.add_context(self._label)

    def _hint(self, op: str, err: int, key: Any, flags: int) -> str | None:
        if err == self._full_errno and op.startswith(("update", "push")):
            return f"map is full, max_entries={self.max_entries}"
        if err == _errno.EEXIST and flags == UpdateFlag.NOEXIST:
            return "the key exists and flags=NOEXIST"
        if err == ENOENT and flags == UpdateFlag.EXIST:
            return "flags=EXIST"
        if err == _errno.EPERM and op.startswith(("update", "delete")) and self.frozen:
            return "the map is frozen: user space may only read it"
        return None

    # ------------------------------------------------------------------ single elements (hot paths)

    def __getitem__(self, key: Any) -> Any:
        s = self._tls.s
        try:
            self._kpack(s.key, 0, key)
        except Exception as exc:
            self._pack_slow("key", s.key, 0, key, exc)
        res = sys_bpf(_C_LOOKUP, s.attr_arg, _C_ELEM_SIZE)
        if res < 0:
            raise self._fail("lookup", -res, key)
        return self._vunpack(s.value, 0)[0]

    def get(self, key: Any, default: Any = None) -> Any:
        s = self._tls.s
        try:
            self._kpack(s.key, 0, key)
        except Exception as exc:
            self._pack_slow("key", s.key, 0, key, exc)
        res = sys_bpf(_C_LOOKUP, s.attr_arg, _C_ELEM_SIZE)
        if res < 0:
            if res == -ENOENT:
                return default
            raise self._fail("lookup", -res, key)
        return self._vunpack(s.value, 0)[0]

    def __setitem__(self, key: Any, value: Any) -> None:
        s = self._tls.s
        try:
            self._kpack(s.key, 0, key)
        except Exception as exc:
            self._pack_slow("key", s.key, 0, key, exc)
        try:
            self._vpack(s.value, 0, value)
        except Exception as exc:
            self._pack_slow("value", s.value, 0, value, exc)
        res = sys_bpf(_C_UPDATE, s.attr_arg, _C_ELEM_SIZE)
        if res < 0:
            raise self._fail("update", -res, key)

    def __delitem__(self, key: Any) -> None:
        s = self._tls.s
        try:
            self._kpack(s.key, 0, key)
        except Exception as exc:
            self._pack_slow("key", s.key, 0, key, exc)
        res = sys_bpf(_C_DELETE, s.dattr_arg, _C_ELEM_SIZE)
        if res < 0:
            raise self._fail("delete", -res, key)

    def __contains__(self, key: Any) -> bool:
        s = self._tls.s
        try:
            self._kpack(s.key, 0, key)
        except Exception as exc:
            self._pack_slow("key", s.key, 0, key, exc)
        res = sys_bpf(_C_LOOKUP, s.attr_arg, _C_ELEM_SIZE)
        if res < 0:
            if res == -ENOENT:
                return False
            raise self._fail("lookup", -res, key)
        return True

    def put(self, key: Any, value: Any, flags: int = UpdateFlag.ANY) -> None:
        """``m[key] = value`` with update flags (NOEXIST: only add; EXIST: only replace; LOCK)."""
        s = self._tls.s
        try:
            self._kpack(s.key, 0, key)
        except Exception as exc:
            self._pack_slow("key", s.key, 0, key, exc)
        try:
            self._vpack(s.value, 0, value)
        except Exception as exc:
            self._pack_slow("value", s.value, 0, value, exc)
        s.fattr.flags = flags
        res = sys_bpf(_C_UPDATE, s.fattr_arg, _C_ELEM_SIZE)
        if res < 0:
            raise self._fail("update", -res, key, flags)

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return its value (``default`` if given and the key is missing).

        Uses BPF_MAP_LOOKUP_AND_DELETE_ELEM, atomic in the kernel (hash maps
        since Linux 5.14).  Where the map type lacks it (EINVAL/ENOTSUPP) it
        falls back to a lookup then a delete, which a program may race.
        """
        if not self._no_lookup_and_delete:
            s = self._tls.s
            try:
                self._kpack(s.key, 0, key)
            except Exception as exc:
                self._pack_slow("key", s.key, 0, key, exc)
            res = sys_bpf(_C_LOOKUP_AND_DELETE, s.attr_arg, _C_ELEM_SIZE)
            if res >= 0:
                return self._vunpack(s.value, 0)[0]
            if res == -ENOENT:
                if default is _MISSING:
                    raise self._fail("pop", ENOENT, key)
                return default
            if -res not in NOT_SUPPORTED:
                raise self._fail("pop", -res, key)
            self._no_lookup_and_delete = True
        value = self.get(key, _MISSING)
        if value is _MISSING:
            if default is _MISSING:
                raise self._fail("pop", ENOENT, key)
            return default
        try:
            del self[key]
        except KeyNotFoundError:
            pass  # deleted meanwhile by someone else: we still read its last value
        return value

    def setdefault(self, key: Any, default: Any = None) -> Any:
        """Return ``m[key]``; if missing, add it with ``default`` (NOEXIST, so a racing writer wins)."""
        value = self.get(key, _MISSING)
        if value is not _MISSING:
            return value
        try:
            self.put(key, default, UpdateFlag.NOEXIST)
        except MapError as exc:
            if exc.errno != _errno.EEXIST:
                raise
            return self[key]
        return default

    # ------------------------------------------------------------------ whole-map operations

    def _next_key_exists(self) -> bool:
        next_key = ctypes.create_string_buffer(max(self.key_size, 1))
        attr = MapElemAttr(map_fd=self.fd, key=0, value=ctypes.addressof(next_key))
        res = sys_bpf(_NEXT_KEY, ctypes.addressof(attr), _ELEM_SIZE)
        if res < 0:
            if res == -ENOENT:
                return False
            raise self._fail("get next key", -res)
        return True

    def __bool__(self) -> bool:
        """True if the map holds at least one key (one GET_NEXT_KEY call, not a count)."""
        return self._next_key_exists()

    def __len__(self) -> int:
        """Count the entries by walking the map: O(n) syscalls, or O(n / batch) with batch ops.

        The kernel keeps no count user space can read; for a 1M-entry hash
        map this takes tens of milliseconds.  Entries added or removed while
        counting may or may not be counted.
        """
        return _batch.count(self)

    def __iter__(self) -> Iterator[Any]:
        return self.keys()

    def keys(self) -> Iterator[Any]:
        """Iterate over the keys (see :meth:`items` for how concurrent changes behave)."""
        for keys, _values in _batch.chunks(self, None):
            yield from keys

    def values(self) -> Iterator[Any]:
        for _keys, values in _batch.chunks(self, None):
            yield from values

    def items(self) -> Iterator[tuple[Any, Any]]:
        """Iterate over (key, value) pairs.

        Uses BPF_MAP_LOOKUP_BATCH where the map type has it (Linux 5.6: hash
        and array families), whose cursor is a bucket or index and so
        survives entries being deleted meanwhile.  Otherwise it walks
        GET_NEXT_KEY; when the current key is deleted under it the kernel
        restarts from the first key (or says ENOENT), so the walk then
        restarts itself and skips the keys it already yielded (it remembers
        them: O(n) memory on that fallback path only).  A key deleted between
        being found and being read is skipped.  Either way no key is yielded
        twice; keys added during iteration may or may not appear.
        """
        for keys, values in _batch.chunks(self, None):
            yield from zip(keys, values)

    def clear(self) -> None:
        """Delete every entry (batched where possible).  Entries added meanwhile may survive."""
        _batch.clear(self)

    def update(self, other: Mapping[Any, Any] | Iterable[tuple[Any, Any]] = (), flags: int = UpdateFlag.ANY) -> None:
        """Write many entries: a mapping or (key, value) pairs; uses :meth:`update_batch`."""
        pairs = other.items() if isinstance(other, Mapping) else other
        keys: list[Any] = []
        values: list[Any] = []
        for k, v in pairs:
            keys.append(k)
            values.append(v)
            if len(keys) >= 4096:
                self.update_batch(keys, values, flags)
                keys, values = [], []
        if keys:
            self.update_batch(keys, values, flags)

    # ------------------------------------------------------------------ batch operations (Linux 5.6)

    def lookup_batch(self, batch_size: int | None = None) -> Iterator[tuple[list[Any], list[Any]]]:
        """Yield ``(keys, values)`` lists, one pair per BPF_MAP_LOOKUP_BATCH call.

        ``batch_size`` is the number of entries asked for per call (default:
        up to 4096, fewer for big values).  Map types without batch lookup
        (EINVAL/ENOTSUPP: LPM tries, queues, stack traces, fd arrays, kernels
        before 5.6) fall back to GET_NEXT_KEY + lookup, chunked the same way.
        """
        return _batch.chunks(self, batch_size)

    def items_batch(self, batch_size: int | None = None) -> Iterator[tuple[Any, Any]]:
        """(key, value) pairs read with :meth:`lookup_batch`."""
        for keys, values in _batch.chunks(self, batch_size):
            yield from zip(keys, values)

    def update_batch(self, keys: Iterable[Any], values: Iterable[Any], flags: int = UpdateFlag.ANY) -> None:
        """Write ``keys[i] = values[i]`` with BPF_MAP_UPDATE_BATCH.

        The kernel accepts only flags ANY (and LOCK) in batch updates, so
        NOEXIST/EXIST, and map types without batch update, fall back to
        one update per key.  On failure the error names the key that failed;
        the keys before it were written.
        """
        _batch.update_batch(self, keys, values, flags)

    def delete_batch(self, keys: Iterable[Any]) -> None:
        """Delete ``keys`` with BPF_MAP_DELETE_BATCH (per key where unsupported).

        A missing key raises KeyNotFoundError naming it; the keys before it
        were deleted.
        """
        _batch.delete_batch(self, keys)

    def lookup_and_delete_batch(self, batch_size: int | None = None) -> list[tuple[Any, Any]]:
        """Remove every entry and return the (key, value) pairs removed.

        BPF_MAP_LOOKUP_AND_DELETE_BATCH on hash maps (5.6); elsewhere each key
        is popped in turn (see :meth:`pop`).
        """
        return _batch.lookup_and_delete_all(self, batch_size)


def _as_map_error(exc: SyscallError) -> MapError:
    """The same error as a MapError (bpf() raises the generic SyscallError)."""
    if isinstance(exc, MapError):
        return exc
    new = MapError(exc.message, errno=exc.errno or 0, hint=exc.hint)
    new.contexts = list(exc.contexts)
    return new


_SPEC_SIZES: dict[str, int | None] = {}   # the families' default specs ("u32"...)


def _spec_size(spec: Any) -> int | None:
    size = _SPEC_SIZES.get(spec, -1) if isinstance(spec, str) else -1
    if size == -1:
        try:
            size = make_codec(spec).size
        except TypeError:
            size = None
        if isinstance(spec, str):
            _SPEC_SIZES[spec] = size
    return size


_MAP_CREATE = int(Cmd.MAP_CREATE)
_map_create_attr_of = packer(MapCreateAttr)
_map_elem_attr_of = packer(MapElemAttr, ("map_fd", "key", "value"))
_FREEZE = int(Cmd.MAP_FREEZE)
_MAP_TYPES: dict[int, MapType] = {int(t): t for t in MapType}
_FLAGS: dict[int, MapFlag] = {}


def _map_flags(value: int) -> MapFlag:
    flags = _FLAGS.get(value)
    if flags is None:
        flags = MapFlag(value)
        if len(_FLAGS) < 256:
            _FLAGS[value] = flags
    return flags


def _write_first(fd: int, key_size: int, value_size: int, value: bytes, label: str) -> None:
    """Element 0 = ``value`` (a new array's contents, before it is mapped or frozen)."""
    key = ctypes.create_string_buffer(max(key_size, 4))
    val = ctypes.create_string_buffer(value, max(len(value), value_size))
    attr = _map_elem_attr_of((fd, ctypes.addressof(key), ctypes.addressof(val)))
    try:
        bpf(_UPDATE, attr, op="update")
    except SyscallError as exc:
        raise _as_map_error(exc).add_context(label) from None


def _freeze_fd(fd: int, label: str) -> None:
    try:
        bpf(_FREEZE, _map_elem_attr_of((fd, 0, 0)), op="freeze", hint_for=_freeze_hint)
    except SyscallError as exc:
        raise _as_map_error(exc).add_context(label) from None


def _label(name: str | None, map_id: int | None) -> str:
    if name:
        return f"map '{name}'"
    return f"map id {map_id}" if map_id else "map"


def _freeze_hint(err: int) -> str | None:
    if err == _errno.EBUSY:
        return "the map is mmapped writable or already frozen"
    if err in NOT_SUPPORTED:
        return "freezing maps needs Linux 5.2 (and not every map type can be frozen)"
    return None


def create(
    map_type: MapType | int, *, key_size: int | None = None, value_size: int | None = None, key: Any = None,
    value: Any = None, max_entries: int, flags: int = 0, name: str = "", inner_map: Map | None = None,
    numa_node: int | None = None, map_extra: int = 0, btf_fd: int = 0, btf_key_type_id: int = 0,
    btf_value_type_id: int = 0, btf_vmlinux_value_type_id: int = 0, init: bytes | None = None,
    freeze: bool = False,
) -> Map:
    """Create a map of any type and return it as its family class.

    ``key``/``value`` are codec specs (see :mod:`pybpf.maps.codec`);
    ``key_size``/``value_size`` alone give raw-bytes keys/values.  For
    per-CPU maps ``value`` is one CPU's value.  Family-specific defaults
    apply (LPM tries get NO_PREALLOC, arrays a u32 key, queues no key).
    ``init`` (raw bytes) is written to element 0 and ``freeze`` freezes the
    map before it is wrapped (and, for mmapable arrays, mapped): how a
    loader fills ``.rodata``.

    >>> m = create(MapType.HASH, key="u32", value="u64", max_entries=1024, name="counts")
    """
    cls = map_class(map_type)
    obj = cls.__new__(cls)
    obj._create(int(map_type), key=key, value=value, key_size=key_size, value_size=value_size,
                max_entries=max_entries, flags=flags, name=name, inner_map=inner_map, numa_node=numa_node,
                map_extra=map_extra, btf_fd=btf_fd, btf_key_type_id=btf_key_type_id,
                btf_value_type_id=btf_value_type_id, btf_vmlinux_value_type_id=btf_vmlinux_value_type_id,
                init=init, freeze=freeze)
    return obj
