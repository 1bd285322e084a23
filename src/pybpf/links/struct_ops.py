"""struct_ops: register a struct of BPF programs with the kernel (a TCP congestion control...).

A struct_ops map (``SEC(".struct_ops")`` / ``SEC(".struct_ops.link")`` in C,
see :mod:`pybpf.object.struct_ops`) holds a kernel struct whose function
pointers are BPF programs.  :func:`attach_struct_ops` registers it:

* a ``.struct_ops.link`` map (created with BPF_F_LINK, Linux 6.4): the
  value is written (BPF_MAP_UPDATE_ELEM, which only prepares it), then
  ``BPF_LINK_CREATE`` with the map fd and attach type BPF_STRUCT_OPS makes
  the link; closing the link unregisters.  :meth:`StructOpsLink.update`
  swaps in another ``.struct_ops.link`` map of the same struct type
  (BPF_LINK_UPDATE with ``new_map_fd``);
* a plain ``.struct_ops`` map (Linux 5.6): writing the value registers the
  struct; the returned link unregisters it on close by deleting key 0 (it
  keeps its own fd of the map for that).

The kernel takes a struct_ops map's value once: a map registered and
unregistered again cannot be registered a second time (load the object again).

Example::

    obj = pybpf.load("cc.bpf.o")
    with attach_struct_ops(obj.maps["pybpf_cc"]) as link:
        assert "pybpf_cc" in open("/proc/sys/net/ipv4/tcp_available_congestion_control").read()
"""

from __future__ import annotations

import errno as _errno

from pybpf._sys.attrs import LinkCreateAttr
from pybpf._sys.commands import link_create, link_update
from pybpf._sys.flags import MapFlag
from pybpf._sys.uapi import AttachType, LinkType, MapType, ProgType
from pybpf.errors import LinkError, SyscallError, context
from pybpf.links.link import Link
from pybpf.links.hook import Hook

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["attach_struct_ops", "StructOpsLink"]

_F_REPLACE = 1 << 2  # BPF_F_REPLACE


def _check_map(m: Any, op: str) -> None:
    t = getattr(m, "type", None)
    if t is None or not hasattr(m, "fd"):
        raise TypeError(f"{op}() takes a struct_ops map (pybpf.maps.Map), not {type(m).__name__}")
    if t != MapType.STRUCT_OPS:
        kind = getattr(t, "name", str(t))
        raise TypeError(f"map '{getattr(m, 'name', '')}' is not a STRUCT_OPS map but {kind} ({op}() registers "
                        "struct_ops maps)")


def _is_link_map(m: Any) -> bool:
    flag = getattr(m, "is_link", None)
    if flag is not None:
        return bool(flag)
    return bool(int(getattr(m, "flags", 0)) & MapFlag.LINK)


def _label(m: Any) -> str:
    return f"struct_ops map '{getattr(m, 'name', '') or '?'}'"


def _write(m: Any) -> None:
    """Write the value of a loader-made map (a map opened from the kernel has one already)."""
    write = getattr(m, "_write_value", None)
    if write is not None:
        write()


def attach_struct_ops(map: Any) -> "StructOpsLink":
    """Register the struct_ops ``map`` with the kernel; close the returned link to unregister; Linux 5.6.

    Example: ``link = attach_struct_ops(obj.maps["my_ops"])`` (or ``obj.maps["my_ops"].attach()``).
    """
    _check_map(map, "attach_struct_ops")
    with context(_label(map)), context("attach"):
        if _is_link_map(map):
            _write(map)
            attr = LinkCreateAttr(prog_fd=map.fd, attach_type=int(AttachType.STRUCT_OPS), flags=0)  # prog_fd: map_fd
            try:
                fd = link_create(attr, what="struct_ops link")
            except SyscallError as exc:
                exc.hint = _link_hint(exc.errno, map) or exc.hint
                raise
            return StructOpsLink(fd, map=map, kind="struct_ops", target=_target(map))
        if getattr(map, "_write_value", None) is None:
            raise LinkError("this map was not made by the pybpf loader, so its value is unknown: a plain "
                            ".struct_ops map is registered by writing its value (map[0] = value)")
        if map.written:
            raise LinkError("the map was registered already: a plain .struct_ops map takes its value (and "
                            "registers) once; load the object again to register it again")
        from pybpf.maps.base import Map

        own = Map.from_fd(map.fd, key="u32")  # to unregister even after the object is closed
        try:
            map._write_value()
        except BaseException:
            own.close()
            raise

        def unregister() -> None:
            try:
                del own[0]
            finally:
                own.close()
        return StructOpsLink(None, map=map, kind="struct_ops", target=_target(map), cleanups=[unregister],
                             local_info={"link_type": LinkType.STRUCT_OPS, "map_id": _map_id(own)})


def _target(m: Any) -> str:
    struct = getattr(m, "struct_name", None)
    return f"{struct} {getattr(m, 'name', '')}" if struct else str(getattr(m, "name", ""))


def _map_id(m: Any) -> int:
    try:
        return int(m.id)
    except Exception:  # noqa: BLE001 - informational only
        return 0


def _link_hint(err: int | None, m: Any) -> str | None:
    struct = getattr(m, "struct_name", "struct")
    if err == _errno.EEXIST:
        return f"a {struct} of this name is registered already"
    if err == _errno.EINVAL:
        return "the map was not created with BPF_F_LINK (.struct_ops.link), or its value was not written"
    if err == _errno.EBUSY:
        return "the map is registered already"
    return None


class StructOpsLink(Link):
    """The registration of a struct_ops map; ``map`` is the registered map.

    For a ``.struct_ops.link`` map it is a BPF link (pin, info, :meth:`update`);
    for a plain ``.struct_ops`` map closing it deletes the map's value, which
    unregisters the struct.
    """

    def __init__(self, fd: Any, *, map: Any, **kwargs: Any) -> None:
        super().__init__(fd, **kwargs)
        self.map = map

    def update(self, map: Any, *, old_map: Any = None) -> None:  # type: ignore[override]
        """Swap in another ``.struct_ops.link`` map of the same struct type (BPF_LINK_UPDATE,
        Linux 6.4); with ``old_map`` only if that map is still the registered one."""
        _check_map(map, "update")
        if self._fd is None:
            raise LinkError(f"{self._what}: update: a plain .struct_ops map is registered without a BPF link; "
                            "use SEC(\".struct_ops.link\") to update it in place")
        fd = self._link_fd("update")
        with context(self._what), context(_label(map)):
            if not _is_link_map(map):
                raise LinkError("update: the new map must be a .struct_ops.link map (created with BPF_F_LINK)")
            _write(map)
            try:
                if old_map is not None:
                    link_update(fd, map.fd, old_prog_fd=old_map.fd, flags=_F_REPLACE)  # map fds in the prog fields
                else:
                    link_update(fd, map.fd)
            except SyscallError as exc:
                if exc.errno == _errno.EINVAL:
                    exc.hint = "the new map must hold the same struct type, with its value written"
                    if getattr(map, "struct_name", None) == "tcp_congestion_ops":
                        exc.hint += "; a TCP congestion control keeps its name across an update"
                elif exc.errno == _errno.EPERM and old_map is not None:
                    exc.hint = "old_map is not the registered map"
                raise
        self.map = map
        self.target = _target(map)


HOOKS = (
    Hook(attach_struct_ops, sections=("struct_ops",), prog_types=(ProgType.STRUCT_OPS,),
         target_format="OP (a member of a struct_ops map)", min_kernel="5.6", on_program=False),
)
