"""Program decorators: which hook a Python function is compiled for.

Each decorator gives the function a libbpf section name, from which the
loader derives the program type and ``obj.attach_all()`` the attach point::

    @uprobe                                  # SEC("uprobe"): attach with prog.attach_uprobe(...)
    @uprobe("libc.so.6:malloc")              # SEC("uprobe/libc.so.6:malloc"): auto-attached
    @tracepoint("syscalls/sys_enter_getppid")
    @xdp

The decorated object still runs in CPython (``prog(FakeCtx(...))``) so the
probe logic can be tested without a kernel.

``SECTIONS`` is the one table of decorator → section prefix (and whether a
target is required); the program types come from
:mod:`pybpf.object.sections`.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from pybpf.errors import CompileError

__all__ = ["BPFProgram", "SECTIONS", "bpf_function"]

# decorator name -> (section prefix, target: "optional" | "required" | "none", min kernel)
SECTIONS: dict[str, tuple[str, str, str]] = {
    "uprobe": ("uprobe", "optional", "4.17"),
    "uretprobe": ("uretprobe", "optional", "4.17"),
    "uprobe_multi": ("uprobe.multi", "optional", "6.6"),
    "uretprobe_multi": ("uretprobe.multi", "optional", "6.6"),
    "usdt": ("usdt", "optional", "4.17"),
    "kprobe": ("kprobe", "optional", "4.1"),
    "kretprobe": ("kretprobe", "optional", "4.1"),
    "kprobe_multi": ("kprobe.multi", "optional", "5.18"),
    "ksyscall": ("ksyscall", "optional", "4.1"),
    "tracepoint": ("tracepoint", "optional", "4.7"),
    "raw_tracepoint": ("raw_tracepoint", "optional", "4.17"),
    "tp_btf": ("tp_btf", "required", "5.5"),
    "fentry": ("fentry", "required", "5.5"),
    "fexit": ("fexit", "required", "5.5"),
    "perf_event": ("perf_event", "none", "4.9"),
    "xdp": ("xdp", "none", "4.8"),
    "tc": ("tc", "optional", "4.1"),
    "tcx_ingress": ("tcx/ingress", "none", "6.6"),
    "tcx_egress": ("tcx/egress", "none", "6.6"),
    "socket_filter": ("socket", "none", "3.19"),
    "cgroup_skb_ingress": ("cgroup_skb/ingress", "none", "4.10"),
    "cgroup_skb_egress": ("cgroup_skb/egress", "none", "4.10"),
    "syscall": ("syscall", "none", "5.14"),
}


class BPFProgram:
    """A Python function marked as a BPF program; calling it runs the Python function."""

    def __init__(self, fn: Callable[..., Any], kind: str, target: str | None) -> None:
        prefix, _, _ = SECTIONS[kind]
        self.fn = fn
        self.kind = kind
        self.target = target
        self.name = fn.__name__
        self.section = f"{prefix}/{target}" if target else prefix
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<BPFProgram {self.name!r} section={self.section!r}>"


def make_decorator(kind: str) -> Callable[..., Any]:
    prefix, target_rule, min_kernel = SECTIONS[kind]

    def decorator(arg: Any = None, /) -> Any:
        if callable(arg) and not isinstance(arg, str):
            if target_rule == "required":
                raise CompileError(f"@{kind} needs a target: @{kind}(\"name\")")
            return BPFProgram(arg, kind, None)
        if arg is not None and not isinstance(arg, str):
            raise TypeError(f"@{kind}(): the target must be a str, not {type(arg).__name__}")
        if arg and target_rule == "none":
            raise CompileError(f"@{kind} takes no target (section '{prefix}')")

        def wrap(fn: Callable[..., Any]) -> BPFProgram:
            return BPFProgram(fn, kind, arg or None)

        return wrap

    decorator.__name__ = kind
    decorator.__doc__ = (f"Compile the function as a ``SEC(\"{prefix}[/target]\")`` program "
                         f"(Linux {min_kernel}).")
    return decorator


def bpf_function(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a helper function called by programs (compiled as a BPF subprogram; optional)."""
    fn.__pybpf_function__ = True  # type: ignore[attr-defined]
    return fn
