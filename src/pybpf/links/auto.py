"""Attach a program from its ELF section name, like libbpf's auto-attach.

``attach(program)`` reads ``program.section`` (set by the ELF loader) and
calls the matching attach function:

===========================================  ==========================================
section                                      call
===========================================  ==========================================
``uprobe/PATH:FUNC[+OFF]``                   attach_uprobe(PATH, FUNC, offset=OFF)
``uretprobe//bin/x:func``                    attach_uprobe("/bin/x", "func", retprobe=True)
``uprobe.multi/PATH:GLOB``                   attach_uprobe_multi(PATH, GLOB)
``usdt/PATH:PROVIDER:NAME``                  attach_usdt(PATH, PROVIDER, NAME)
``kprobe/FUNC[+OFF]``, ``kretprobe/FUNC``    attach_kprobe(FUNC, ...)
``kprobe.multi/GLOB``                        attach_kprobe_multi(GLOB)
``ksyscall/NAME``                            attach_kprobe(<arch prefix>sys_NAME)
``tracepoint/CAT/NAME``, ``tp/CAT/NAME``     attach_tracepoint(CAT, NAME)
``raw_tp/NAME``, ``raw_tracepoint/NAME``     attach_raw_tracepoint(NAME)
``tp_btf/``, ``fentry/``, ``fexit/``,        attach_tracing()
``fmod_ret/``, ``lsm/``, ``freplace/``
``iter/TARGET``                              attach_iter()
===========================================  ==========================================

Hooks whose section does not say where to attach need keyword arguments,
which ``attach`` passes on: ``interface=`` (xdp, tc/tcx), ``cgroup=``
(cgroup_skb/..., cgroup/...), ``sock=`` (socket), ``pid=`` (uprobes, usdt,
perf_event), ``cookie=``; ``perf_event`` needs ``event_type``/``config``
and a sample period or frequency.  A ``usdt`` program whose object has
libbpf's ``__bpf_usdt_specs`` map (``maps=`` or ``program.object.maps``)
gets its argument specs written there, so ``bpf_usdt_arg()`` works.  Without them the error says which
method or argument to use.  Keyword arguments override what the section
says (``attach(target="/other/bin")`` for a bare ``SEC("uprobe")``...).

``attach_all(programs)`` attaches every program whose section is complete
and skips the others (as libbpf's skeleton ``attach`` does); it returns
``{name: Link}`` and closes what it attached if one attach fails.
"""

from __future__ import annotations

import platform
from typing import Any, Iterable, Mapping

from pybpf.errors import BPFError, LinkError
from pybpf.links.base import Link, _label, close_all
from pybpf.links.usdt import usdt_spec_map
from pybpf.object.struct_ops_map import StructOpsMap

__all__ = ["attach", "attach_all", "attach_object", "attachable", "AutoAttachError"]


class AutoAttachError(LinkError, ValueError):
    """The section name does not say enough to attach the program (or no section is known)."""

    def __str__(self) -> str:
        return LinkError.__str__(self)


def _section(program: Any) -> str:
    section = getattr(program, "section", None)
    if not section:
        raise AutoAttachError(f"{_label(program)} has no ELF section name (it was not loaded from an object); "
                              "call one of the attach_*() methods")
    return section


def _need(program: Any, section: str, what: str) -> AutoAttachError:
    return AutoAttachError(f"{_label(program)} (SEC(\"{section}\")): cannot attach from the section name alone: {what}")


def _split_offset(func: str) -> tuple[str, int]:
    if "+" in func:
        name, _, off = func.partition("+")
        try:
            return name, int(off, 0)
        except ValueError:
            raise ValueError(f"bad offset in {func!r}") from None
    return func, 0


def _syscall_prefix() -> str:
    return {"x86_64": "__x64_", "aarch64": "__arm64_", "s390x": "__s390x_", "riscv64": "__riscv_"}.get(
        platform.machine(), "")


def _plan(program: Any, section: str, kwargs: dict[str, Any],
          maps: Mapping[str, Any] | None = None) -> tuple[Any, tuple, dict]:
    """(function, args, kwargs) for this program and section; AutoAttachError when underspecified."""
    from pybpf.object.sections import parse_section
    from pybpf import links as L

    info = parse_section(section)
    if info is None:
        raise AutoAttachError(f"{_label(program)}: unknown section name {section!r}; call an attach_*() method")
    kind, target = info.kind, info.target
    kw = dict(kwargs)

    def pop(name: str, default: Any = None) -> Any:
        return kw.pop(name, default)

    if kind in ("uprobe", "uretprobe"):
        tgt = pop("target")
        sym = pop("symbol")
        off = pop("offset", None)
        if target and tgt is None:
            path, sep, func = target.rpartition(":")
            if not sep or not path:
                raise _need(program, section, "expected uprobe/PATH:FUNCTION")
            sym_name, sec_off = _split_offset(func)
            tgt, sym = path, (sym if sym is not None else (sym_name or None))
            off = sec_off if off is None else off
        if tgt is None:
            raise _need(program, section, "a uprobe needs a binary and a function; call "
                        "attach_uprobe(target, symbol) or attach(target=..., symbol=...)")
        return L.attach_uprobe, (program, tgt, sym), dict(offset=off or 0, retprobe=info.retprobe, **kw)
    if kind in ("uprobe.multi", "uretprobe.multi"):
        tgt, syms = pop("target"), pop("symbols")
        if target and tgt is None:
            path, sep, pattern = target.rpartition(":")
            if not sep or not path:
                raise _need(program, section, "expected uprobe.multi/PATH:PATTERN")
            tgt, syms = path, (syms if syms is not None else pattern)
        if tgt is None or syms is None:
            raise _need(program, section, "call attach_uprobe_multi(target, symbols)")
        return L.attach_uprobe_multi, (program, tgt, syms), dict(retprobe=info.retprobe, **kw)
    if kind == "usdt":
        tgt, prov, name = pop("target"), pop("provider"), pop("name")
        if "spec_map" not in kw and maps is not None:
            kw["spec_map"] = usdt_spec_map(program, maps)
        if target and tgt is None:
            parts = target.rsplit(":", 2)
            if len(parts) != 3:
                raise _need(program, section, "expected usdt/PATH:PROVIDER:NAME")
            tgt, prov, name = parts
        if tgt is None or prov is None or name is None:
            raise _need(program, section, "call attach_usdt(target, provider, name)")
        return L.attach_usdt, (program, tgt, prov, name), kw
    if kind in ("kprobe", "kretprobe"):
        func = pop("function")
        off = pop("offset", None)
        if target and func is None:
            func, sec_off = _split_offset(target)
            off = sec_off if off is None else off
        if not func:
            raise _need(program, section, "call attach_kprobe(function)")
        return L.attach_kprobe, (program, func), dict(offset=off or 0, retprobe=info.retprobe, **kw)
    if kind in ("ksyscall", "kretsyscall"):
        name = pop("function") or target
        if not name:
            raise _need(program, section, "expected ksyscall/NAME")
        return L.attach_kprobe, (program, f"{_syscall_prefix()}sys_{name}"), dict(retprobe=info.retprobe, **kw)
    if kind in ("kprobe.multi", "kretprobe.multi"):
        funcs = pop("functions") or target
        if not funcs:
            raise _need(program, section, "call attach_kprobe_multi(functions)")
        return L.attach_kprobe_multi, (program, funcs), dict(retprobe=info.retprobe, **kw)
    if kind in ("tracepoint", "tp"):
        cat, name = pop("category"), pop("name")
        if target and cat is None:
            cat, sep, name = target.partition("/")
            if not sep or not name:
                raise _need(program, section, "expected tracepoint/CATEGORY/NAME")
        if not cat or not name:
            raise _need(program, section, "call attach_tracepoint(category, name)")
        return L.attach_tracepoint, (program, cat, name), kw
    if kind in ("raw_tracepoint", "raw_tp", "raw_tracepoint.w", "raw_tp.w"):
        name = pop("name") or target
        if not name:
            raise _need(program, section, "call attach_raw_tracepoint(name)")
        return L.attach_raw_tracepoint, (program, name), kw
    if kind in ("tp_btf", "fentry", "fexit", "fmod_ret", "lsm", "freplace", "lsm_cgroup"):
        if kind == "lsm_cgroup":
            cg = pop("cgroup")
            if cg is None:
                raise _need(program, section, "an lsm_cgroup program needs a cgroup: attach(cgroup=path)")
            return L.attach_cgroup, (program, cg), kw
        return L.attach_tracing, (program,), kw
    if kind == "iter":
        return L.attach_iter, (program,), kw
    if kind.startswith("xdp"):
        iface = pop("interface", pop("ifname", None))
        if iface is None:
            raise _need(program, section, "XDP needs an interface: call attach_xdp(ifname) or attach(interface=...)")
        return L.attach_xdp, (program, iface), kw
    if kind in ("tc", "tcx", "classifier", "action") or kind.startswith(("tc/", "tcx/")):
        iface = pop("interface", pop("ifname", None))
        direction = pop("direction")
        if direction is None and info.attach_type is not None:
            direction = "egress" if "EGRESS" in info.attach_type.name else "ingress"
        if iface is None:
            raise _need(program, section, "tc needs an interface: call attach_tc(ifname, direction) or "
                        "attach(interface=..., direction=...)")
        return L.attach_tc, (program, iface, direction or "ingress"), kw
    if kind.startswith("cgroup") or kind == "sockops":
        cg = pop("cgroup")
        if cg is None:
            raise _need(program, section, "a cgroup program needs a cgroup v2 directory: call "
                        "attach_cgroup(path, attach_type) or attach(cgroup=path)")
        atype = pop("attach_type", info.attach_type)
        return L.attach_cgroup, (program, cg, atype), kw
    if kind == "socket":
        sock = pop("sock", pop("socket", None))
        if sock is None:
            raise _need(program, section, "a socket filter needs a socket: call attach_socket(sock)")
        return L.attach_socket, (program, sock), kw
    if kind == "perf_event":
        if "event_type" not in kw and "config" not in kw:
            raise _need(program, section, "a perf_event program needs an event: call "
                        "attach_perf_event(event_type, config, sample_period=...)")
        return L.attach_perf_event, (program,), kw
    raise _need(program, section, f"pybpf does not auto-attach {kind} programs")


def attach(program: Any, *, maps: Mapping[str, Any] | None = None, **kwargs: Any) -> Link:
    """Attach ``program`` as its section name says (see the module docs).

    ``maps`` (the object's maps by name) lets a ``usdt`` program find
    libbpf's ``__bpf_usdt_specs`` map; ``program.object.maps`` is used too.
    """
    section = _section(program)
    fn, args, kw = _plan(program, section, kwargs, maps)
    return fn(*args, **kw)


def attachable(program: Any) -> bool:
    """True if ``program.section`` alone says where to attach it."""
    try:
        _plan(program, _section(program), {})
    except (AutoAttachError, ValueError):
        return False
    return True


def attach_all(programs: Mapping[str, Any] | Iterable[Any], *, maps: Mapping[str, Any] | None = None,
               **kwargs: Any) -> dict[str, Link]:
    """Attach every auto-attachable program; skip the others; all or nothing on error.

    ``Object.attach_all()`` is :func:`attach_object`.
    """
    items = list(programs.items()) if isinstance(programs, Mapping) else [(getattr(p, "name", str(i)), p)
                                                                          for i, p in enumerate(programs)]
    done: dict[str, Link] = {}
    try:
        for name, prog in items:
            if not attachable(prog):
                continue
            done[name] = attach(prog, maps=maps, **kwargs)
    except BaseException as exc:
        close_all(done.values())
        if isinstance(exc, BPFError):
            exc.add_context(f"attach_all: {name}")
        raise
    return done


def attach_object(obj: Any, **kwargs: Any) -> dict[str, Link]:
    """``Object.attach_all()``: :func:`attach_all` of its programs, then every ``.struct_ops.link`` map.

    The struct_ops maps are registered under their map names, as libbpf's
    auto-attach does; all or nothing: on an error what was attached is closed.
    """
    links = attach_all(obj.programs, maps=obj.maps, **kwargs)
    try:
        for name, m in obj.maps.items():
            if isinstance(m, StructOpsMap) and m.is_link:
                links[name] = m.attach()
    except BaseException:
        close_all(links.values())
        raise
    return links
