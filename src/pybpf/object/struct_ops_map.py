"""The loaded struct_ops map: :class:`StructOpsMap` (see :mod:`pybpf.object.struct_ops`).

The loader creates STRUCT_OPS maps as this :class:`~pybpf.maps.Map`
subclass, which keeps the value in the kernel's layout (made by
:func:`pybpf.object.struct_ops.plan`) and the programs whose fds fill its
function pointers.  The value is written once, when the map is attached
(:func:`pybpf.links.struct_ops.attach_struct_ops`): the kernel takes a
struct_ops value only once, and for a plain ``.struct_ops`` map writing it
registers the struct.  Linux 5.6 (BPF_F_LINK maps: 6.4).

Example::

    cc = obj.maps["pybpf_cc"]            # StructOpsMap
    cc.struct_name, cc.is_link           # ('tcp_congestion_ops', True)
    link = cc.attach()
"""

from __future__ import annotations

import errno as _errno
import struct

from pybpf._sys.uapi import MapType
from pybpf.errors import ObjectError, context
from pybpf.maps.base import Map
from pybpf.object.hooks import hook
from pybpf.object.parts import MapSpec
from pybpf.object.struct_ops import KernelValue

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["StructOpsMap", "create_struct_ops_map"]

_FD = struct.Struct("<Q")


class StructOpsMap(Map):
    """A STRUCT_OPS map made by the loader: it knows its value and the programs that fill it.

    ``struct_name`` is the kernel struct ("tcp_congestion_ops"), ``is_link``
    whether it registers through a BPF link (``.struct_ops.link``);
    ``programs`` maps each function-pointer member to its Program (None when
    the program was not loaded).  :meth:`attach` registers it
    (:func:`pybpf.links.struct_ops.attach_struct_ops`).
    """

    __slots__ = ("struct_name", "is_link", "_template", "_slots", "_written")

    def _bind(self, kv: KernelValue, programs: dict[str, Any], link: bool) -> None:
        self.struct_name = kv.struct_name
        self.is_link = link
        self._template = kv.template
        self._slots = [(off, member, name, programs.get(name)) for off, member, name in kv.slots]
        self._written = False

    @property
    def programs(self) -> dict[str, Any]:
        return {member: prog for _off, member, _name, prog in self._slots}

    @property
    def written(self) -> bool:
        """Whether the value was written (the kernel takes a struct_ops value only once)."""
        return self._written

    def kernel_value(self) -> bytes:
        """The value to write: the kernel's wrapper struct with the program fds filled in."""
        value = bytearray(self._template)
        for off, member, name, prog in self._slots:
            with context(f"member '{member}'"):
                if prog is None:
                    raise ObjectError(f"program '{name}' was not loaded (load the object with it)")
                if prog.closed:
                    raise ObjectError(f"program '{name}' is closed")
                _FD.pack_into(value, off, prog.fd)
        return bytes(value)

    def _write_value(self) -> None:
        """Write the value (BPF_MAP_UPDATE_ELEM, key 0) unless done already; for a plain
        ``.struct_ops`` map this registers the struct with the kernel."""
        if self._written:
            return
        self[0] = self.kernel_value()
        self._written = True

    def _hint(self, op: str, err: int, key: Any, flags: int) -> str | None:
        if op.startswith("update"):
            if err == _errno.EEXIST:
                return f"a {self.struct_name} of this name is registered already"
            if err == _errno.EBUSY:
                return "the map's value was written already: a struct_ops map takes one value"
            if err == _errno.EINVAL:
                return (f"the kernel refused the {self.struct_name} value: a required operation is missing, or "
                        "a data member is set that the kernel wants zero or checks")
        return super()._hint(op, err, key, flags)

    def attach(self) -> Any:
        """Register the struct with the kernel: :func:`pybpf.links.struct_ops.attach_struct_ops`."""
        return hook("attach_struct_ops")(self)


def create_struct_ops_map(ms: MapSpec, kv: KernelValue, btf_fd: Any, btf_error: str | None) -> StructOpsMap:
    """Create the STRUCT_OPS map of ``ms`` (planned as ``kv``) with the object's BTF fd."""
    with context(f"struct_ops map '{ms.name}'"):
        if ms.pinning:
            raise ObjectError("struct_ops maps cannot be pinned by name")
        if btf_fd is None:
            raise ObjectError("the kernel needs the object's BTF to create a struct_ops map: "
                              + (btf_error or "the object has no BTF"))
        # The value is the kernel's wrapper struct (btf_vmlinux_value_type_id); the object's
        # BTF fd is required although none of its types describes the map.
        m = StructOpsMap.__new__(StructOpsMap)
        Map._create(m, MapType.STRUCT_OPS, key="u32", value_size=kv.value_size, max_entries=1, flags=ms.flags,
                    name=ms.kernel_name or ms.name, btf_fd=btf_fd.fileno(),
                    btf_vmlinux_value_type_id=kv.wrapper_id)
    m._bind(kv, {}, bool(ms.struct_ops is not None and ms.struct_ops.link))
    return m
