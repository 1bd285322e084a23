"""Plain data records: named fields in ``__slots__``, with ``repr``, equality and copies.

The data classes every ``pybpf`` process creates derive from these instead of using
:mod:`dataclasses`: that module imports :mod:`inspect` (and with it ``ast``, ``dis`` and
``tokenize``) and builds each class's methods with ``exec`` — on this project's load path
that was about a tenth of a fresh process's life (issue 13).  A record writes its own
``__init__``; the base derives the rest from the slot names, base classes first.  Slots
whose names start with ``_`` (caches, back references) are not fields.

>>> class Point(Record):
...     __slots__ = ("x", "y")
...     def __init__(self, x: int, y: int = 0) -> None:
...         self.x, self.y = x, y
>>> Point(1), Point(1) == Point(1, 0), Point(1)._replace(y=5)
(Point(x=1, y=0), True, Point(x=1, y=5))
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar

    _R = TypeVar("_R", bound="Record")


class Record:
    """Mutable plain data: equal when of the same class with equal fields; not hashable."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names: list[str] = []
        for klass in reversed(cls.__mro__):
            slots = klass.__dict__.get("__slots__", ())
            names.extend((slots,) if isinstance(slots, str) else slots)
        cls._fields = tuple(name for name in names if not name.startswith("_"))

    def __repr__(self) -> str:
        values = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({values})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self._fields)

    __hash__ = None  # type: ignore[assignment]

    def _replace(self: _R, **changes: Any) -> _R:
        """A copy with some fields changed (``TypeError`` for a name that is not a field)."""
        unknown = set(changes).difference(self._fields)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {', '.join(sorted(unknown))}")
        new = object.__new__(type(self))
        for name in self._fields:
            object.__setattr__(new, name, changes[name] if name in changes else getattr(self, name))
        return new

    def _asdict(self) -> dict[str, Any]:
        """The fields as a new dict, in declaration order."""
        return {name: getattr(self, name) for name in self._fields}


class FrozenRecord(Record):
    """Read-only plain data, hashable when its fields are.  Subclasses pass every field to
    ``super().__init__`` by name.

    >>> class Pair(FrozenRecord):
    ...     __slots__ = ("a", "b")
    ...     def __init__(self, a: int, b: int) -> None:
    ...         super().__init__(a=a, b=b)
    >>> p = Pair(1, 2); p.a = 3
    Traceback (most recent call last):
    AttributeError: Pair is read-only: cannot set 'a'
    """

    __slots__ = ()

    def __init__(self, **values: Any) -> None:
        setter = object.__setattr__     # a name that is not a slot raises AttributeError
        for name, value in values.items():
            setter(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only: cannot delete {name!r}")

    def __hash__(self) -> int:
        return hash((type(self), *(getattr(self, name) for name in self._fields)))

    def __reduce__(self) -> tuple:
        return (_rebuild, (type(self), self._asdict()))


def _rebuild(cls: type[FrozenRecord], values: dict[str, Any]) -> FrozenRecord:
    new = object.__new__(cls)
    FrozenRecord.__init__(new, **values)
    return new
