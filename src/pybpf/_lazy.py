"""Packages whose public names are imported on first use (PEP 562 module ``__getattr__``).

A package lists where each name lives; ``from pybpf.btf import Spec`` then imports
``pybpf.btf.reader`` only, so a process that loads one object does not pay for the
encoders, codecs and disassemblers it never touches (issue 13).

>>> __getattr__, __dir__ = lazy_exports(globals(), {"reader": "Spec StringTable"},
...                                     renamed={"encode_btf": ("writer", "encode")})  # doctest: +SKIP
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable


def lazy_exports(namespace: dict[str, Any], submodules: dict[str, str],
                 renamed: dict[str, tuple[str, str]] | None = None
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for the module whose globals are ``namespace``:
    ``submodules`` maps a module of the same package (of the package itself, for an
    ``__init__``) to the space-separated names it exports; ``renamed`` maps a public name to
    (module, its name there).  A name is imported once, then kept in ``namespace``."""
    name_of, package = namespace["__name__"], namespace["__package__"]
    where = {name: (module, name) for module, names in submodules.items() for name in names.split()}
    where.update(renamed or {})

    def __getattr__(name: str) -> Any:
        found = where.get(name)
        if found is None:
            raise AttributeError(f"module {name_of!r} has no attribute {name!r}")
        module, attr = found
        value = getattr(importlib.import_module(f"{package}.{module}"), attr)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(where))

    return __getattr__, __dir__
