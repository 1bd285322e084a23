"""``Struct`` classes with C layout, fixed arrays (``u8[16]``) and pointers for pybpf.lang.

A ``Struct`` subclass lays its annotated fields out as a C compiler does
(each field aligned to its size, the struct to its largest field)::

    class Event(Struct):
        pid: u32
        ppid: u32
        ts: u64
        comm: u8[16]

In a BPF program ``e = Event()`` is a zeroed stack buffer, ``e.pid = x``
stores, ``e.comm`` is the array's address (for helpers such as
``get_current_comm(e.comm)``), ``events.output(e)`` copies it into a ring
buffer.  In CPython it is an ordinary object with zeroed fields
(``bytearray`` for ``u8`` arrays), and :meth:`Struct.btf` is its BTF type
for the user side (ring buffer readers decode records with it).
"""

from __future__ import annotations

from typing import Any

from pybpf.lang.types import Fixed

__all__ = ["Struct", "ArrayType", "PtrType", "sizeof", "alignof", "array_of"]


class ArrayType:
    """``elem[count]``: a fixed array (``u8[16]``), made by indexing an integer type."""

    __slots__ = ("elem", "count")
    _cache: dict[tuple[Any, int], "ArrayType"] = {}

    def __new__(cls, elem: Any, count: int) -> "ArrayType":
        key = (elem, count)
        found = cls._cache.get(key)
        if found is None:
            found = object.__new__(cls)
            found.elem = elem
            found.count = count
            cls._cache[key] = found
        return found

    @property
    def size(self) -> int:
        return sizeof(self.elem) * self.count

    @property
    def __name__(self) -> str:   # messages
        return f"{getattr(self.elem, '__name__', self.elem)}[{self.count}]"

    def __repr__(self) -> str:
        return self.__name__

    def __call__(self) -> Any:
        """A zeroed array value (CPython): a bytearray for u8, else a list."""
        if self.elem.bits == 8 and not self.elem.signed:
            return bytearray(self.count)
        return [self.elem(0) for _ in range(self.count)]


def array_of(elem: Any, count: Any) -> ArrayType:
    if not isinstance(count, int) or count <= 0:
        raise TypeError(f"array length must be a positive int, not {count!r}")
    if not (isinstance(elem, type) and issubclass(elem, (Fixed, Struct))):
        raise TypeError(f"arrays hold integers or Structs, not {elem!r}")
    return ArrayType(elem, count)


class PtrType:
    """A pointer to ``target`` (what ``RingBuf.reserve(T)`` returns; may be NULL until checked)."""

    __slots__ = ("target",)
    _cache: dict[Any, "PtrType"] = {}

    def __new__(cls, target: Any) -> "PtrType":
        found = cls._cache.get(target)
        if found is None:
            found = object.__new__(cls)
            found.target = target
            cls._cache[target] = found
        return found

    @property
    def __name__(self) -> str:
        return f"{getattr(self.target, '__name__', self.target)}*"


def sizeof(t: Any) -> int:
    if isinstance(t, type) and issubclass(t, Fixed):
        return t.bits // 8
    if isinstance(t, ArrayType):
        return t.size
    if isinstance(t, type) and issubclass(t, Struct):
        return t._size
    if isinstance(t, PtrType):
        return 8
    raise TypeError(f"no size for {t!r}")


def alignof(t: Any) -> int:
    if isinstance(t, type) and issubclass(t, Fixed):
        return t.bits // 8
    if isinstance(t, ArrayType):
        return alignof(t.elem)
    if isinstance(t, type) and issubclass(t, Struct):
        return t._align
    return 8


class Struct:
    """Base of record types with C layout; fields come from the class annotations."""

    _fields: dict[str, tuple[int, Any]] = {}
    _size = 0
    _align = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        import sys

        ns = vars(sys.modules[cls.__module__]) if cls.__module__ in sys.modules else {}
        fields: dict[str, tuple[int, Any]] = {}
        off = 0
        align = 1
        for name, ann in cls.__dict__.get("__annotations__", {}).items():
            t = eval(ann, dict(ns), dict(vars(cls))) if isinstance(ann, str) else ann
            try:
                a, s = alignof(t), sizeof(t)
            except TypeError:
                raise TypeError(f"{cls.__name__}.{name}: fields are integers (u8..i64), arrays (u8[16]) or "
                                f"Structs, not {t!r}") from None
            off = (off + a - 1) // a * a
            fields[name] = (off, t)
            off += s
            align = max(align, a)
        cls._fields = fields
        cls._align = align
        cls._size = (off + align - 1) // align * align
        cls._btf = None

    def __init__(self, **values: Any) -> None:
        for name, (_off, t) in self._fields.items():
            setattr(self, name, t() if not isinstance(t, type) or not issubclass(t, Fixed) else t(0))
        for k, v in values.items():
            if k not in self._fields:
                raise AttributeError(f"{type(self).__name__} has no field {k!r}")
            setattr(self, k, v)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._fields)
        return f"{type(self).__name__}({inner})"

    @classmethod
    def btf(cls) -> Any:
        """The BTF type of this struct (for ``RingBufReader(m, record=Event.btf())``)."""
        if cls._btf is None:
            from pybpf.lang.btfgen import struct_btf

            cls._btf = struct_btf(cls)
        return cls._btf
