"""Which type ids have a given name: the two name indexes of a parsed BTF spec.

Both answer :meth:`ids` (the ids of the types called ``name``) and
:meth:`prefixed` (the ids of the types whose name starts with ``prefix``), in
ascending id order, for a spec's own types (not its base's).

- :class:`ScanIndex` comes with every parse: on the first lookup it reads the
  first id of each name offset and, apart, the later ones from the records;
  a lookup searches the string section for the name.  Little to build, but
  each lookup reads the strings (a few ms for vmlinux).
- :class:`SortedIndex` holds the named type ids sorted by name and looks
  names up by bisection, reading a handful of names.  Building it sorts every
  name, so it is built once per kernel and kept on disk by
  :mod:`pybpf.btf.kcache`; a lookup only trusts names it read from the blob.

Example::

    spec = Spec.parse(blob)                        # spec._names is a ScanIndex
    fast = SortedIndex(spec, SortedIndex.build(spec))
    fast.ids("task_struct"), fast.prefixed("task_struct___")
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from itertools import compress
from operator import ne

from pybpf.btf.layout import U32

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pybpf.btf.reader import Spec

__all__ = ["ScanIndex", "SortedIndex"]


class ScanIndex:
    """Name offset -> ids, read from the records on the first lookup; names are found by searching the strings."""

    __slots__ = ("spec", "_first", "_extra", "_extra_index")

    def __init__(self, spec: "Spec") -> None:
        self.spec = spec
        self._first: dict[int, int] | None = None              # name offset -> first id with that name
        self._extra: list[tuple[int, int]] = []                 # (name offset, id) of the later ones
        self._extra_index: dict[int, list[int]] | None = None

    def _read(self) -> dict[int, int]:
        """Read every own type's name offset (no Python step per type: most specs are never searched)."""
        spec = self.spec
        words = spec._words
        name_offs = [words[i] for i in spec._offs]
        ids = list(compress(spec.own_ids(), name_offs))        # the named types' ids
        named = list(compress(name_offs, name_offs))           # ... and name offsets
        first = dict(zip(reversed(named), reversed(ids)))     # the first id of a name wins
        if len(first) != len(named):
            self._extra = list(compress(zip(named, ids), map(ne, map(first.__getitem__, named), ids)))
        self._first = first
        return first

    def _ids_for_offset(self, off: int) -> list[int]:
        first = self._first
        if first is None:
            first = self._read()
        tid = first.get(off)
        if tid is None:
            return []
        if not self._extra:
            return [tid]
        extra = self._extra_index
        if extra is None:
            extra = {}
            for nm, later in self._extra:
                extra.setdefault(nm, []).append(later)
            self._extra_index = extra
        return [tid, *extra.get(off, ())]

    def ids(self, name: str) -> list[int]:
        out: list[int] = []
        for off in self.spec.strings.offsets_of(name):
            out.extend(self._ids_for_offset(off))
        out.sort()
        return out

    def prefixed(self, prefix: str) -> list[int]:
        out: list[int] = []
        for off in self.spec.strings.prefix_offsets(prefix):
            out.extend(self._ids_for_offset(off))
        out.sort()
        return out

    def named_ids(self) -> list[int]:
        """Every own type id that has a name."""
        first = self._first
        if first is None:
            first = self._read()
        return [*first.values(), *(tid for _, tid in self._extra)]


class SortedIndex:
    """The named type ids sorted by (name bytes, id); names are looked up by bisection."""

    __slots__ = ("spec", "sorted_ids")

    def __init__(self, spec: "Spec", sorted_ids: array) -> None:
        self.spec = spec
        self.sorted_ids = sorted_ids

    @staticmethod
    def build(spec: "Spec") -> array:
        """The sorted ids for ``spec`` (a sort of every name: ~0.1 s for vmlinux)."""
        ids = spec._names.named_ids() if isinstance(spec._names, ScanIndex) else list(spec.own_ids())
        ids.sort()
        ids.sort(key=_namer(spec))      # stable: one name's ids stay ascending
        return array(U32, ids)

    def ids(self, name: str) -> list[int]:
        key = name.encode("utf-8", "surrogateescape")
        return sorted(self._walk(key, key.__eq__))

    def prefixed(self, prefix: str) -> list[int]:
        key = prefix.encode("utf-8", "surrogateescape")
        return sorted(self._walk(key, lambda n: n.startswith(key)))

    def _walk(self, key: bytes, keep) -> list[int]:
        name = _namer(self.spec)
        ids = self.sorted_ids
        out = []
        i = bisect_left(ids, key, key=name)
        while i < len(ids):
            n = name(ids[i])
            if not keep(n):
                break
            out.append(ids[i])
            i += 1
        return out


def _namer(spec: "Spec"):
    """The function giving the name bytes of an own type id of ``spec`` (b"" for anonymous ones)."""
    words, offs, first = spec._words, spec._offs, spec.first_id
    data = spec.strings._data
    start = spec.strings.start

    def name(tid: int) -> bytes:
        local = words[offs[tid - first]] - start
        if local <= 0:
            return b""
        end = data.find(b"\0", local)
        return data[local:end] if end >= 0 else b""

    return name
