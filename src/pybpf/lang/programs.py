"""Program decorators: which hook a Python function is compiled for.

The decorators come from the hook registry (:func:`pybpf.links.hooks`):
each section kind a hook attaches (``uprobe``, ``uprobe.multi``,
``tracepoint``, ``xdp``, ``cgroup_skb/ingress``...) is a decorator named
after it with ``.`` and ``/`` as ``_`` (``uprobe_multi``,
``cgroup_skb_ingress``), plus ``syscall`` (run with ``test_run``, no hook)
and ``socket_filter`` (an alias of ``socket``).  A decorator gives the
function the libbpf section name, from which the loader derives the
program type and ``obj.attach_all()`` the attach point::

    @uprobe                                  # SEC("uprobe"): attach with prog.attach_uprobe(...)
    @uprobe("libc.so.6:malloc")              # SEC("uprobe/libc.so.6:malloc"): auto-attached
    @tracepoint("syscalls/sys_enter_getppid")
    @xdp

The decorated object still runs in CPython (``prog(FakeCtx(...))``) so the
probe logic can be tested without a kernel.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from pybpf.errors import CompileError
from pybpf.object.sections import SECTION_RULES

__all__ = ["BPFProgram", "decorators", "bpf_function", "decorator_name"]

# Section kinds whose target names a BTF object the loader must find (it cannot be left out).
_TARGET_REQUIRED = {"tp_btf", "fentry", "fexit", "fmod_ret", "lsm", "freplace", "iter", "lsm_cgroup"}
# Program kinds without an attach hook, and friendlier names: decorator -> (section kind, min kernel).
_EXTRA = {"syscall": ("syscall", "5.14"), "socket_filter": ("socket", "3.19")}


def decorator_name(kind: str) -> str:
    """The decorator of a section kind: "uprobe.multi" -> "uprobe_multi" ("iter" -> "bpf_iter", not the builtin)."""
    if kind == "iter":
        return "bpf_iter"
    return kind.replace(".", "_").replace("/", "_")


class TailCall(Exception):
    """Raised by ``ProgArray.tail_call`` when CPython runs a program: the program ends with ``result``."""

    def __init__(self, result: Any) -> None:
        super().__init__(result)
        self.result = result


class BPFProgram:
    """A Python function marked as a BPF program; calling it runs the Python function."""

    def __init__(self, fn: Callable[..., Any], kind: str, target: str | None) -> None:
        self.fn = fn
        self.kind = kind          # the section kind: "uprobe", "tracepoint", "cgroup_skb/ingress"...
        self.target = target
        self.name = fn.__name__
        self.section = f"{kind}/{target}" if target else kind
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.fn(*args, **kwargs)
        except TailCall as jump:     # ProgArray.tail_call() in CPython: the callee's result ends this call
            return jump.result

    def __repr__(self) -> str:
        return f"<BPFProgram {self.name!r} section={self.section!r}>"


def make_decorator(name: str, kind: str, min_kernel: str) -> Callable[..., Any]:
    exact = SECTION_RULES[kind][2]
    required = kind in _TARGET_REQUIRED

    def decorator(arg: Any = None, /) -> Any:
        if callable(arg) and not isinstance(arg, str):
            if required:
                raise CompileError(f"@{name} needs a target: @{name}(\"name\")")
            return BPFProgram(arg, kind, None)
        if arg is not None and not isinstance(arg, str):
            raise TypeError(f"@{name}(): the target must be a str, not {type(arg).__name__}")
        if arg and exact:
            raise CompileError(f"@{name} takes no target (section '{kind}')")

        def wrap(fn: Callable[..., Any]) -> BPFProgram:
            return BPFProgram(fn, kind, arg or None)

        return wrap

    decorator.__name__ = decorator.__qualname__ = name
    decorator.__doc__ = (f"Compile the function as a ``SEC(\"{kind}{'' if exact else '[/target]'}\")`` program "
                         f"(Linux {min_kernel or '?'}).")
    return decorator


@functools.lru_cache(maxsize=None)
def decorators() -> dict[str, Callable[..., Any]]:
    """Every program decorator, by name, from the hook registry (and the extras above)."""
    from pybpf.links import hooks

    out: dict[str, Callable[..., Any]] = {}
    for hook in hooks():
        for kind in hook.sections:
            if kind in SECTION_RULES:
                name = decorator_name(kind)
                out[name] = make_decorator(name, kind, hook.min_kernel)
    for name, (kind, min_kernel) in _EXTRA.items():
        out[name] = make_decorator(name, kind, min_kernel)
    return out


def bpf_function(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a function called by programs (compiled as a BPF subprogram; plain functions work too)."""
    fn.__pybpf_function__ = True  # type: ignore[attr-defined]
    return fn
