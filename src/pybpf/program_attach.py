"""The links a :class:`pybpf.Program` owns, and where its ``attach_*`` methods come from.

The ``attach_*`` methods themselves are installed on :class:`AttachMethods`
by :mod:`pybpf.links` (one per hook descriptor, with the attach function's
signature and docstring), so the program layer never imports the hooks
layer.  ``import pybpf`` does not import the hooks either (start-up stays
short): it registers a function that does, which runs the first time a
program is asked for an ``attach*`` attribute it does not have yet, or when
``pybpf.Program`` is first named.

A link attached through a program belongs to it: dropping the returned
:class:`~pybpf.Link` does not detach; :meth:`AttachMethods.close_links`
(called by ``Program.close()``, and so by ``Object.close()``) does.  A
caller can still close a link early, or take it over with
``link.take()`` (then dropping it detaches).

Example::

    prog = obj.programs["count_calls"]
    prog.attach_uprobe("/usr/bin/myapp", "func_a", cookie=1)   # stays attached
    prog.attach_uprobe("/usr/bin/myapp", "func_b", cookie=2)
    print(prog.links)                                          # both
    prog.close()                                               # detaches both
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable


_install_hooks: list[Callable[[], None]] = []


def install_hooks_with(install: Callable[[], None]) -> None:
    """Register ``install()``, which imports the hooks layer (and so installs ``attach_*``)."""
    _install_hooks[:] = [install]


class AttachMethods:
    """Mixed into :class:`pybpf.Program`: the links it owns; the hooks add ``attach_*``."""

    __slots__ = ()

    @property
    def links(self) -> tuple[Any, ...]:
        """The open links attached through this program, oldest first."""
        return tuple(link for link in self.__dict__.get("_links", {}).values() if not link.closed)

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: the hooks are not imported yet.
        if name.startswith("attach") and _install_hooks:
            _install_hooks.pop()()
            return getattr(self, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _own_link(self, link: Any) -> None:
        owned = self.__dict__.setdefault("_links", {})
        for key in [k for k, v in owned.items() if v.closed]:
            del owned[key]
        owned[id(link)] = link

    def _disown_link(self, link: Any) -> None:
        self.__dict__.get("_links", {}).pop(id(link), None)

    def close_links(self) -> None:
        """Detach every link this program owns (newest first)."""
        owned = self.__dict__.pop("_links", None)
        if owned:
            for link in reversed(list(owned.values())):
                link.close()
