"""What the object layer needs from the hooks layer, handed down instead of imported.

:mod:`pybpf.links` lies below :mod:`pybpf.object` in the layers (it attaches
what objects load), so ``Object.attach_all`` and ``StructOpsMap.attach``
cannot import it.  The package :mod:`pybpf` installs the two functions when
it is imported, which is before any of its modules runs.

Example::

    install(attach_object=attach_object, attach_struct_ops=attach_struct_ops)
    links = hook("attach_object")(obj)
"""

from __future__ import annotations

from pybpf.errors import BPFError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

__all__ = ["install", "hook"]

_hooks: dict[str, Callable[..., Any]] = {}


def install(**hooks: Callable[..., Any]) -> None:
    """Give the object layer ``attach_object(obj, **kwargs)`` and ``attach_struct_ops(map)``."""
    _hooks.update(hooks)


def hook(name: str) -> Callable[..., Any]:
    """The installed function ``name``; BPFError when pybpf.links did not install it."""
    try:
        return _hooks[name]
    except KeyError:
        raise BPFError(f"{name} is not available: pybpf.links did not install it (import pybpf)") from None
