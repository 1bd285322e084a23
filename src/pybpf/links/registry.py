"""All hooks, collected from the ``HOOKS`` of the hook modules, and what derives from them.

The package (``pybpf/links/__init__.py``) imports every hook module and
passes it to :func:`register`; this module imports none of them, so the hook
modules can use it (``method_for`` in their errors) without an import cycle.
A module gives ``HOOKS`` (descriptors), ``LINK_INFO`` (link type → decoder of
its ``bpf_link_info``) and ``LINK_CLASSES`` (link type → the :class:`Link`
subclass that ``Link.from_pin``/``from_id`` return), each optional.

:func:`hooks` is the public, read-only list (``pybpf.links.hooks()``);
:func:`hook_for_section` is what auto-attach uses; :func:`install_methods`
puts one ``attach_*`` method per hook on :class:`pybpf.Program`, with the
attach function's own signature and docstring; :func:`method_for` names the
right method in error messages; :func:`sections_markdown` writes
``docs/sections.md`` (the command is :data:`REGENERATE`).

Example::

    >>> from pybpf.links import hooks
    >>> [h.method for h in hooks() if "uprobe" in h.sections]
    ['attach_uprobe']
"""

from __future__ import annotations

import functools
from types import ModuleType

from pybpf.links.hook import Hook

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

__all__ = ["register", "hooks", "hook_for_section", "link_info_decoders", "link_class", "install_methods",
           "method_for", "sections_markdown"]


REGENERATE = """python3 -c 'from pybpf.links.registry import sections_markdown as m; print(m(), end="")' > docs/sections.md"""


_MODULES: list[ModuleType] = []


def register(*modules: ModuleType) -> None:
    """Add hook modules (done once, by the package, for each of its modules that declares hooks)."""
    _MODULES.extend(m for m in modules if m not in _MODULES)
    for cached in (hooks, link_info_decoders, _link_classes, _by_section):
        cached.cache_clear()


@functools.lru_cache(maxsize=None)
def hooks() -> tuple[Hook, ...]:
    """Every hook pybpf knows, in module order (the ``HOOKS`` of each module of :mod:`pybpf.links`)."""
    return tuple(hook for module in _MODULES for hook in getattr(module, "HOOKS", ()))


@functools.lru_cache(maxsize=None)
def link_info_decoders() -> dict[Any, Callable[[int, Any], dict[str, Any]]]:
    """Link type → the decoder of its ``bpf_link_info`` fields (the ``LINK_INFO`` of each module)."""
    return {ltype: decode for module in _MODULES for ltype, decode in getattr(module, "LINK_INFO", {}).items()}


@functools.lru_cache(maxsize=None)
def _link_classes() -> dict[Any, type]:
    return {ltype: cls for module in _MODULES for ltype, cls in getattr(module, "LINK_CLASSES", {}).items()}


def link_class(link_type: Any, default: type) -> type:
    """The Link subclass for links of ``link_type`` (an iterator link reads), else ``default``."""
    return _link_classes().get(link_type, default)


@functools.lru_cache(maxsize=None)
def _by_section() -> dict[str, Hook]:
    table: dict[str, Hook] = {}
    for hook in hooks():
        for kind in hook.sections:
            if kind in table:
                raise RuntimeError(f"section kind {kind!r} claimed by {table[kind].method} and {hook.method}")
            table[kind] = hook
    return table


def hook_for_section(kind: str) -> Hook | None:
    """The hook that attaches programs of section kind ``kind`` ("uprobe", "xdp"...), if any."""
    return _by_section().get(kind)


def method_for(prog_type: Any, expected_attach_type: Any = None) -> str:
    """The attach method(s) for a program type, as a phrase: "attach_tracepoint()"."""
    names = [f"{h.method}()" for h in hooks() if h.on_program and h.accepts(prog_type, expected_attach_type)]
    if not names:
        names = [f"{h.method}()" for h in hooks() if h.on_program and prog_type in h.prog_types]
    if not names:
        kind = getattr(prog_type, "name", prog_type)
        return f"no pybpf attach method for {kind} programs yet"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def install_methods(cls: type, attach: Callable[..., Any]) -> None:
    """Give ``cls`` (the Program class) one method per hook, and ``attach`` (auto-attach from the
    section name) as ``attach()``.  The methods are the attach functions themselves: each takes
    the program first, so ``prog.attach_uprobe(...)`` is ``attach_uprobe(prog, ...)``."""
    for hook in hooks():
        if hook.on_program:
            setattr(cls, hook.method, hook.attach)
    setattr(cls, "attach", attach)


def sections_markdown() -> str:
    """The list of SEC() names as Markdown: the object layer's rules joined with the hooks."""
    from pybpf.object.sections import _SLEEPABLE_KINDS, SECTION_RULES

    lines = [
        "# SEC() names",
        "",
        "Generated from `pybpf.object.sections` (program types) and `pybpf.links.hooks()`",
        "(attach methods) by",
        "",
        f"    {REGENERATE}",
        "",
        "and a test checks that this file matches them.",
        "",
        "A name marked *prefix* may be followed by `/TARGET`; `.s` after the kind",
        "(`uprobe.s/...`) loads the program sleepable where the column says so.",
        "`attach()` / `Object.attach_all()` attach a program whose section gives",
        "the target; the other arguments are keyword arguments of `attach()`.",
        "",
        "| SEC() name | program type | expected attach type | attach with | target | min Linux | cookie |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, (ptype, atype, exact) in SECTION_RULES.items():
        hook = hook_for_section(name)
        shown = f"`{name}`" + ("" if exact else " *prefix*") + (" (`.s`)" if name in _SLEEPABLE_KINDS else "")
        method = f"`{hook.method}()`" if hook is not None else "(not attached by pybpf)"
        target = hook.target_format if hook is not None and not exact else ""
        lines.append(f"| {shown} | {ptype.name} | {atype.name if atype is not None else ''} | {method} | "
                     f"{target} | {hook.section_min_kernel.get(name, hook.min_kernel) if hook else ''} | {'yes' if hook and hook.cookies else ''} |")
    return "\n".join(lines) + "\n"
