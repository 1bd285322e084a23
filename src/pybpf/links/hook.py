"""The descriptor of a hook: everything pybpf derives its attach surfaces from.

Each hook module (:mod:`pybpf.links.uprobe`, :mod:`pybpf.links.xdp`, ...)
declares its hooks once, as ``HOOKS = (Hook(...), ...)``.  From those
descriptors come the ``Program.attach_*`` methods (with the attach
function's own signature and docstring), auto-attach from a section name
(``prog.attach()``, ``obj.attach_all()``), the names suggested by error
messages, and the table of section names in ``docs/sections.md``.

The section kinds a hook lists are the rule names of
:mod:`pybpf.object.sections` (which says which program type a section
loads as); ``section_args`` turns the section's target — the text after
``kind/``, already split off by the object layer — into keyword arguments of
the attach function.

Example::

    from pybpf import links
    for hook in links.hooks():
        print(hook.method, hook.sections, hook.min_kernel)
"""

from __future__ import annotations

from types import MappingProxyType

from pybpf._record import FrozenRecord
from pybpf._sys.uapi import AttachType, ProgType
from pybpf.object.sections import SectionInfo, parse_section

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Mapping

__all__ = ["Hook", "section_of", "retprobe_for", "split_offset"]


class Hook(FrozenRecord):
    """One hook: how a program of some type is attached, and from which sections.

    ``attach``: the attach function (``attach(program, ...) -> Link``); its
    name is the ``Program`` method name.  ``sections``: the section kinds
    (libbpf ``SEC()`` prefixes) whose programs this hook attaches.
    ``prog_types``/``attach_types``: the program types it accepts and, when
    it matters, the expected attach types (None in the tuple: loaded without
    one).  ``section_args(info)``: the attach function's keyword arguments
    that the section's target says (None: sections never say enough and
    auto-attach needs all arguments from the caller).  ``needs``: parameter
    → what the user is told when neither the section nor ``attach(**kw)``
    gives it.  ``aliases``: extra keyword names ``attach()`` accepts.
    ``object_args(program, maps)``: keyword arguments found in the
    program's object (usdt's spec map).  ``target_format``: the section's
    target syntax, for the docs.
    ``min_kernel``: the first Linux version with the hook
    (``section_min_kernel``: a later one for some section kinds).  ``cookies``:
    whether the link carries a BPF cookie (``cookie=``/``cookies=``).
    ``on_program``: False for hooks that take something else than a program
    (struct_ops attaches a map).
    """

    __slots__ = ("attach", "sections", "prog_types", "attach_types", "section_args", "needs", "aliases",
                 "object_args", "target_format", "min_kernel", "section_min_kernel", "cookies", "on_program")

    def __init__(self, attach: Callable[..., Any], sections: tuple[str, ...] = (),
                 prog_types: tuple[ProgType, ...] = (), attach_types: tuple[AttachType | None, ...] | None = None,
                 section_args: Callable[[SectionInfo], dict[str, Any]] | None = None,
                 needs: Mapping[str, str] | None = None, aliases: Mapping[str, str] | None = None,
                 object_args: Callable[[Any, Any], dict[str, Any]] | None = None, target_format: str = "",
                 min_kernel: str = "", section_min_kernel: Mapping[str, str] | None = None, cookies: bool = False,
                 on_program: bool = True) -> None:
        def read_only(table: Mapping[str, str] | None) -> Mapping[str, str]:
            return MappingProxyType(dict(table or {}))

        super().__init__(attach=attach, sections=sections, prog_types=prog_types, attach_types=attach_types,
                         section_args=section_args, needs=read_only(needs), aliases=read_only(aliases),
                         object_args=object_args, target_format=target_format, min_kernel=min_kernel,
                         section_min_kernel=read_only(section_min_kernel), cookies=cookies,
                         on_program=on_program)

    @property
    def method(self) -> str:
        """The attach function's name, which is also the ``Program`` method: "attach_uprobe"."""
        return self.attach.__name__

    @property
    def name(self) -> str:
        """The hook's name: "uprobe", "tracepoint", "xdp"..."""
        return self.method.removeprefix("attach_")

    def accepts(self, prog_type: Any, expected_attach_type: Any = None) -> bool:
        """True if a program of this type (loaded for this attach type) can go to this hook."""
        if prog_type not in self.prog_types:
            return False
        return self.attach_types is None or expected_attach_type in self.attach_types

    def plan(self, info: SectionInfo, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments for :attr:`attach`: what the section says, overridden by ``kwargs``.

        Raises LookupError naming what is missing (the caller adds the program and section).
        """
        if self.section_args is None:
            raise LookupError(f"pybpf does not auto-attach {info.kind} programs; call {self.method}()")
        kw = dict(self.section_args(info))
        for key, value in kwargs.items():
            kw[self.aliases.get(key, key)] = value
        missing = [p for p in self.needs if kw.get(p) is None]
        if missing:
            alias: dict[str, str] = {}
            for short, param in self.aliases.items():
                alias.setdefault(param, short)  # the first alias is the one to suggest
            given = ", ".join(f"{alias.get(p, p)}=..." for p in missing)
            raise LookupError(f"{self.needs[missing[0]]}: call {self.method}({self._params()}) or attach({given})")
        return kw

    def _params(self) -> str:
        import inspect   # only for this message

        params = list(inspect.signature(self.attach).parameters.values())[1:]
        return ", ".join(p.name for p in params if p.default is inspect.Parameter.empty
                         and p.kind is p.POSITIONAL_OR_KEYWORD)


def split_offset(text: str) -> tuple[str, int]:
    """``"func+0x10"`` → ``("func", 16)``; ValueError for a bad offset."""
    name, plus, off = text.partition("+")
    if not plus:
        return text, 0
    try:
        return name, int(off, 0)
    except ValueError:
        raise ValueError(f"bad offset in {text!r}") from None


def section_of(program: Any) -> SectionInfo | None:
    """What the program's ELF section says (None without a known section)."""
    section = getattr(program, "section", None)
    return parse_section(section) if isinstance(section, str) and section else None


# Section kinds that fix a probe's direction; a session program runs at entry and at return.
_ENTRY_KINDS = frozenset({"uprobe", "kprobe", "uprobe.multi", "kprobe.multi", "ksyscall"})
_RETURN_KINDS = frozenset({"uretprobe", "kretprobe", "uretprobe.multi", "kretprobe.multi", "kretsyscall"})
SESSION_KINDS = frozenset({"uprobe.session", "kprobe.session"})


def retprobe_for(program: Any, retprobe: bool | None, method: str) -> bool:
    """The probe direction: ``retprobe`` if given, else what the program's section says.

    An explicit value that contradicts the section is a ValueError naming both.
    """
    info = section_of(program)
    kind = info.kind if info is not None else None
    said = True if kind in _RETURN_KINDS else False if kind in _ENTRY_KINDS | SESSION_KINDS else None
    if retprobe is None:
        return bool(said)
    if said is not None and bool(retprobe) != said:
        label = getattr(program, "_label", None) or f"program '{getattr(program, 'name', '')}'"
        what = ("a session program (it runs at entry and at return)" if kind in SESSION_KINDS
                else "a return probe" if said else "an entry probe")
        raise ValueError(f"{label}: {method}(retprobe={bool(retprobe)}) conflicts with its section "
                         f"SEC(\"{program.section}\"), which makes it {what}")
    return bool(retprobe)
