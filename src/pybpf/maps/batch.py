"""Whole-map operations: iteration, counting, clearing and the batch commands.

The batch commands (BPF_MAP_LOOKUP_BATCH, LOOKUP_AND_DELETE_BATCH,
UPDATE_BATCH, DELETE_BATCH; Linux 5.6) move many entries per system call.
The hash family implements all four, arrays lookup and update; other map
types answer EINVAL or ENOTSUPP, and so do kernels before 5.6.  Each map
remembers which batch commands its kernel refused and from then on uses the
per-key path (GET_NEXT_KEY + LOOKUP, or one update/delete per key).

Kernel facts this module relies on (``kernel/bpf/hashtab.c``,
``kernel/bpf/syscall.c``):

- the batch cursor (``in_batch``/``out_batch``) of hash maps is a u32
  bucket index; of arrays (``generic_map_lookup_batch``) the last key, so
  the cursor buffer is ``max(key_size, 8)`` bytes;
- the last call returns ENOENT *with* ``count`` set to the entries it
  copied;
- a hash bucket holding more entries than ``count`` gives ENOSPC and no
  entries: ask again with a bigger batch;
- ``elem_flags`` of UPDATE_BATCH may only be 0 or BPF_F_LOCK;
- on failure ``count`` says how many elements were processed.

Everything here takes the :class:`~pybpf.maps.base.Map` as its first
argument; the Map methods are the public face.
"""

from __future__ import annotations

import ctypes
import errno as _errno

from pybpf._sys.attrs import MapBatchAttr, MapElemAttr
from pybpf._sys.flags import UpdateFlag
from pybpf._sys.syscall import ENOTSUPP, sys_bpf
from pybpf._sys.uapi import Cmd

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Iterable, Iterator
    from pybpf.maps.base import Map

_LOOKUP = int(Cmd.MAP_LOOKUP_ELEM)
_UPDATE = int(Cmd.MAP_UPDATE_ELEM)
_DELETE = int(Cmd.MAP_DELETE_ELEM)
_NEXT_KEY = int(Cmd.MAP_GET_NEXT_KEY)
LOOKUP_BATCH = int(Cmd.MAP_LOOKUP_BATCH)
LOOKUP_AND_DELETE_BATCH = int(Cmd.MAP_LOOKUP_AND_DELETE_BATCH)
UPDATE_BATCH = int(Cmd.MAP_UPDATE_BATCH)
DELETE_BATCH = int(Cmd.MAP_DELETE_BATCH)
_ELEM_SIZE = ctypes.sizeof(MapElemAttr)
_BATCH_SIZE = ctypes.sizeof(MapBatchAttr)

ENOENT = _errno.ENOENT
NOT_SUPPORTED = frozenset({_errno.EINVAL, _errno.EOPNOTSUPP, ENOTSUPP})
_OP = {LOOKUP_BATCH: "lookup_batch", LOOKUP_AND_DELETE_BATCH: "lookup_and_delete_batch",
       UPDATE_BATCH: "update_batch", DELETE_BATCH: "delete_batch"}
NO_KEY: Any = object()  # "no key to name in the error"


def buffer(size: int) -> tuple[bytearray, int, Any]:
    """A zeroed bytearray, its address, and the ctypes view that pins it (keep it alive)."""
    buf = bytearray(max(size, 1))
    view = (ctypes.c_char * len(buf)).from_buffer(buf)
    return buf, ctypes.addressof(view), view


class _NoBatch(Exception):
    """The kernel refused a batch command on its first use for this map."""


def default_batch_size(m: "Map") -> int:
    per_entry = max(m.key_size + m._vc.size, 1)
    return max(16, min(4096, (1 << 20) // per_entry))


def _raw_batches(m: "Map", cmd: int, batch_size: int | None) -> Iterator[tuple[bytearray, bytearray, int]]:
    """Yield (keys buffer, values buffer, count) per kernel batch; the buffers are reused.

    Raises _NoBatch before yielding anything if the kernel refuses ``cmd``.
    """
    ks, vs = m.key_size, m._vc.size
    size = batch_size or default_batch_size(m)
    if size <= 0:
        raise ValueError(f"batch_size must be positive, got {size}")
    keys, kaddr, kpin = buffer(size * ks)
    values, vaddr, vpin = buffer(size * vs)
    _tok, taddr, tpin = buffer(max(ks, 8))
    attr = MapBatchAttr(keys=kaddr, values=vaddr, out_batch=taddr)
    attr_addr = ctypes.addressof(attr)
    first = True
    while True:
        attr.map_fd = m.fd
        attr.count = size
        attr.in_batch = 0 if first else taddr
        res = sys_bpf(cmd, attr_addr, _BATCH_SIZE)
        n = attr.count
        if res < 0:
            err = -res
            if err == ENOENT:
                if n:
                    yield keys, values, n
                return
            if err == _errno.ENOSPC and n == 0:
                # A hash bucket holds more entries than we asked for.
                size *= 2
                keys, kaddr, kpin = buffer(size * ks)
                values, vaddr, vpin = buffer(size * vs)
                attr.keys, attr.values = kaddr, vaddr
                continue
            if first and (err in NOT_SUPPORTED or err == _errno.EINTR):
                # count is left untouched when the map type has no batch op.  EINTR:
                # before Linux 6.x generic_map_lookup_batch gave up on empty fd-array
                # slots after three retries; the per-key walk skips them instead.
                raise _NoBatch
            raise m._fail(_OP[cmd], err)
        first = False
        if n:
            yield keys, values, n


def _walk_keys(m: "Map") -> Iterator[bytes]:
    """Yield each raw key once, by GET_NEXT_KEY, surviving deletion of the current key.

    Hash maps and LPM tries restart from their first key when asked for the
    key after one that no longer exists; other types say ENOENT.  Either
    way we restart and skip the keys already yielded (kept in a set).  Maps
    whose keys are indices (arrays) never lose keys and need neither.
    """
    ks = m.key_size
    index_keys = m._index_keys
    cur, cur_addr, cpin = buffer(ks)
    nxt, nxt_addr, npin = buffer(ks)
    _val, val_addr, vpin = buffer(m._vc.size)
    step = MapElemAttr(key=0, value=nxt_addr)
    step_addr = ctypes.addressof(step)
    probe = MapElemAttr(key=cur_addr, value=val_addr)
    probe_addr = ctypes.addressof(probe)
    seen: set[bytes] = set()
    have_cur = False
    new_since_restart = False
    while True:
        step.map_fd = probe.map_fd = m.fd
        step.key = cur_addr if have_cur else 0
        res = sys_bpf(_NEXT_KEY, step_addr, _ELEM_SIZE)
        if res < 0:
            err = -res
            if err != ENOENT:
                raise m._fail("get next key", err)
            if have_cur and not index_keys and new_since_restart \
                    and sys_bpf(_LOOKUP, probe_addr, _ELEM_SIZE) == -ENOENT:
                have_cur = False  # the current key vanished: start again, skipping what we gave
                new_since_restart = False
                continue
            return
        key = bytes(nxt[:ks])
        cur[:ks] = key
        have_cur = True
        if not index_keys:
            if key in seen:
                continue
            seen.add(key)
        new_since_restart = True
        yield key


def _raw_chunks_by_key(m: "Map", size: int) -> Iterator[tuple[bytearray, bytearray, int]]:
    """Like _raw_batches, from GET_NEXT_KEY + LOOKUP; keys without a value are skipped."""
    ks, vs = m.key_size, m._vc.size
    key, kaddr, kpin = buffer(ks)
    value, vaddr, vpin = buffer(vs)
    attr = MapElemAttr(key=kaddr, value=vaddr)
    attr_addr = ctypes.addressof(attr)
    keys_out = bytearray()
    values_out = bytearray()
    n = 0
    for raw in _walk_keys(m):
        key[:ks] = raw
        attr.map_fd = m.fd
        res = sys_bpf(_LOOKUP, attr_addr, _ELEM_SIZE)
        if res < 0:
            if res == -ENOENT:
                continue  # deleted since the walk found it, or an empty fd-array slot
            raise m._fail("lookup", -res, m._kc.unpack_from(raw, 0)[0])
        keys_out += raw
        values_out += value[:vs]
        n += 1
        if n == size:
            yield keys_out, values_out, n
            keys_out, values_out, n = bytearray(), bytearray(), 0
    if n:
        yield keys_out, values_out, n


def raw_chunks(m: "Map", batch_size: int | None) -> Iterator[tuple[bytearray, bytearray, int]]:
    """Raw (keys, values, count) chunks: batch lookups where supported, else per key."""
    if LOOKUP_BATCH not in m._nobatch:
        try:
            yield from _raw_batches(m, LOOKUP_BATCH, batch_size)
            return
        except _NoBatch:
            m._nobatch.add(LOOKUP_BATCH)
    yield from _raw_chunks_by_key(m, batch_size or default_batch_size(m))


def chunks(m: "Map", batch_size: int | None) -> Iterator[tuple[list[Any], list[Any]]]:
    """Decoded (keys, values) lists per chunk."""
    kc, vc = m._kc, m._vc
    for keys, values, n in raw_chunks(m, batch_size):
        yield kc.decode_many(keys, n), vc.decode_many(values, n)


def count(m: "Map") -> int:
    return sum(n for _k, _v, n in raw_chunks(m, None))


def _delete_raw(m: "Map", keys: bytearray, n: int, *, ignore_missing: bool) -> None:
    """Delete ``n`` raw keys packed in ``keys``."""
    ks = m.key_size
    if DELETE_BATCH not in m._nobatch:
        pin = (ctypes.c_char * len(keys)).from_buffer(keys)
        base_addr = ctypes.addressof(pin)
        attr = MapBatchAttr()
        attr_addr = ctypes.addressof(attr)
        start = 0
        while start < n:
            attr.map_fd = m.fd
            attr.keys = base_addr + start * ks
            attr.count = n - start
            res = sys_bpf(DELETE_BATCH, attr_addr, _BATCH_SIZE)
            if res >= 0:
                return
            done = attr.count
            err = -res
            if err == ENOENT and ignore_missing:
                start += done + 1  # skip the key someone else deleted
                continue
            if start == 0 and err in NOT_SUPPORTED and done in (0, n):  # (untouched count: unsupported)
                m._nobatch.add(DELETE_BATCH)
                break
            key = m._kc.unpack_from(keys, (start + done) * ks)[0]
            raise m._fail("delete_batch", err, key if err == ENOENT else NO_KEY)
        else:
            return
    key, kaddr, kpin = buffer(ks)
    attr1 = MapElemAttr(key=kaddr)
    addr1 = ctypes.addressof(attr1)
    for i in range(n):
        key[:ks] = keys[i * ks:(i + 1) * ks]
        attr1.map_fd = m.fd
        res = sys_bpf(_DELETE, addr1, _ELEM_SIZE)
        if res < 0 and not (res == -ENOENT and ignore_missing):
            raise m._fail("delete", -res, m._kc.unpack_from(keys, i * ks)[0])


def clear(m: "Map") -> None:
    if LOOKUP_BATCH not in m._nobatch:
        try:
            for keys, _values, n in _raw_batches(m, LOOKUP_BATCH, None):
                _delete_raw(m, keys, n, ignore_missing=True)
            return
        except _NoBatch:
            m._nobatch.add(LOOKUP_BATCH)
    raws = list(_walk_keys(m))
    keys = bytearray().join(raws)
    _delete_raw(m, keys, len(raws), ignore_missing=True)


def update_batch(m: "Map", keys: Iterable[Any], values: Iterable[Any], flags: int) -> None:
    keys = list(keys)
    values = list(values)
    if len(keys) != len(values):
        raise ValueError(f"update_batch: {len(keys)} keys but {len(values)} values")
    n = len(keys)
    if not n:
        return
    if UPDATE_BATCH not in m._nobatch and flags in (UpdateFlag.ANY, UpdateFlag.LOCK):
        kbuf, kaddr, kpin = buffer(n * m.key_size)
        vbuf, vaddr, vpin = buffer(n * m._vc.size)
        m._kc.pack_many(kbuf, keys, "keys")
        _pack_values(m, vbuf, values)
        attr = MapBatchAttr(keys=kaddr, values=vaddr, count=n, map_fd=m.fd, elem_flags=flags)
        res = sys_bpf(UPDATE_BATCH, ctypes.addressof(attr), _BATCH_SIZE)
        if res >= 0:
            return
        done, err = attr.count, -res
        if not (err in NOT_SUPPORTED and done in (0, n)):  # count untouched: no batch op for this type
            exc = m._fail("update_batch", err, keys[done] if done < n and err == ENOENT else NO_KEY, flags)
            if done < n and err != ENOENT:
                exc.message += f" at keys[{done}]={keys[done]!r} ({done} of {n} written)"
            raise exc
        m._nobatch.add(UPDATE_BATCH)
    for k, v in zip(keys, values):
        m.put(k, v, flags)


def _pack_values(m: "Map", buf: bytearray, values: list[Any]) -> None:
    vc = m._vc
    size, pack = vc.size, vc.pack_into
    for i, v in enumerate(values):
        try:
            pack(buf, i * size, v)
        except Exception as exc:
            raise vc.error(f"values[{i}]", v, exc) from None


def delete_batch(m: "Map", keys: Iterable[Any]) -> None:
    keys = list(keys)
    n = len(keys)
    if not n:
        return
    kbuf = bytearray(max(n * m.key_size, 1))
    m._kc.pack_many(kbuf, keys, "keys")
    if DELETE_BATCH in m._nobatch:
        for k in keys:
            del m[k]
        return
    _delete_raw(m, kbuf, n, ignore_missing=False)


def lookup_and_delete_all(m: "Map", batch_size: int | None) -> list[tuple[Any, Any]]:
    out: list[tuple[Any, Any]] = []
    kc, vc = m._kc, m._vc
    if LOOKUP_AND_DELETE_BATCH not in m._nobatch:
        try:
            for keys, values, n in _raw_batches(m, LOOKUP_AND_DELETE_BATCH, batch_size):
                out.extend(zip(kc.decode_many(keys, n), vc.decode_many(values, n)))
            return out
        except _NoBatch:
            m._nobatch.add(LOOKUP_AND_DELETE_BATCH)
    missing = object()
    for raw in list(_walk_keys(m)):
        key = kc.unpack_from(raw, 0)[0]
        value = m.pop(key, missing)
        if value is not missing:
            out.append((key, value))
    return out
