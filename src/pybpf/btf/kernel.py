"""The running kernel's BTF: vmlinux and module BTF, parsed once per process.

:func:`kernel_spec` parses /sys/kernel/btf/vmlinux lazily (types are decoded
when asked for) and caches it: the blob is mapped rather than copied where the
kernel allows (Linux 6.15), and the index of where each type starts and of
names is read from a disk cache made by an earlier process
(:mod:`pybpf.btf.kcache`) instead of walking the ~150,000 records (~40 ms).
:func:`module_spec` parses a module's split BTF on top of it.  Both are
thread-safe.  Kernel BTF appeared in
Linux 5.4 (``CONFIG_DEBUG_INFO_BTF``), module BTF in 5.11
(``CONFIG_DEBUG_INFO_BTF_MODULES``).

Example::

    from pybpf.btf.kernel import kernel_spec, find_in_kernel
    from pybpf.btf.types import BTFKind

    task = kernel_spec().find("task_struct", BTFKind.STRUCT)
    for spec, t in find_in_kernel("nf_conn", BTFKind.STRUCT):
        print(spec, t)      # vmlinux first, then modules (e.g. nf_conntrack)
"""

from __future__ import annotations

import mmap
import os
from _thread import allocate_lock   # threading.Lock itself, without importing threading

from pybpf.errors import NotSupportedError, ObjectError
from pybpf.btf import kcache
from pybpf.btf.reader import Spec
from pybpf.btf.types import BTFKind, Type

__all__ = ["BTF_DIR", "kernel_spec", "module_spec", "module_names", "find_in_kernel", "clear_cache"]

#: Where the kernel exposes its BTF (tests may point this elsewhere, then call clear_cache()).
BTF_DIR = "/sys/kernel/btf"   # a str or a Path (tests point it elsewhere)

_lock = allocate_lock()
_vmlinux: Spec | None = None
_modules: dict[str, Spec] = {}


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _map(path: str) -> bytes | mmap.mmap:
    """The file's bytes: mapped read-only where the kernel allows it (vmlinux BTF since 6.15), else read."""
    with open(path, "rb") as f:
        try:
            return mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
        except (OSError, ValueError):
            return f.read()


def kernel_spec() -> Spec:
    """vmlinux BTF, parsed on first use and cached (NotSupportedError if the kernel has none).

    >>> kernel_spec().find("task_struct", BTFKind.STRUCT).name
    'task_struct'
    """
    spec = _vmlinux
    if spec is not None:
        return spec
    with _lock:
        return _load_vmlinux()


def _load_vmlinux() -> Spec:
    global _vmlinux
    if _vmlinux is None:
        path = os.path.join(BTF_DIR, "vmlinux")
        try:
            data = _map(path)
        except FileNotFoundError:
            raise NotSupportedError("kernel BTF", "5.4",
                                    f"{path} is missing (CONFIG_DEBUG_INFO_BTF)") from None
        except OSError as err:
            raise ObjectError(f"kernel BTF: cannot read {path}: {err.strerror}") from None
        try:
            _vmlinux = kcache.load(data)
        except ObjectError as err:
            raise err.add_context(f"kernel BTF {path}")
    return _vmlinux


def module_names() -> list[str]:
    """Names of the loaded modules that have BTF, sorted.

    >>> "vmlinux" in module_names()
    False
    """
    try:
        names = os.listdir(BTF_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n != "vmlinux")


def module_spec(name: str) -> Spec:
    """Split BTF of kernel module ``name`` on top of :func:`kernel_spec`, cached.

    >>> module_spec("nf_conntrack").first_id == len(kernel_spec())   # ids go on after vmlinux's  # doctest: +SKIP
    True
    """
    spec = _modules.get(name)
    if spec is not None:
        return spec
    if not name or "/" in name or name in (".", "..", "vmlinux"):
        raise ObjectError(f"kernel module {name!r}: not a module name")
    with _lock:
        spec = _modules.get(name)
        if spec is None:
            base = _load_vmlinux()
            path = os.path.join(BTF_DIR, name)
            try:
                data = _read(path)
            except FileNotFoundError:
                if not os.path.exists(os.path.join(BTF_DIR, "vmlinux")):
                    raise NotSupportedError("kernel module BTF", "5.11") from None
                raise ObjectError(f"kernel module {name!r}: no BTF at {path} "
                                  "(module not loaded, or built without CONFIG_DEBUG_INFO_BTF_MODULES)") from None
            except OSError as err:
                raise ObjectError(f"kernel module {name!r}: cannot read {path}: {err.strerror}") from None
            try:
                spec = Spec.parse(data, base, lazy=True)
            except ObjectError as err:
                raise err.add_context(f"kernel module {name!r} BTF {path}")
            _modules[name] = spec
    return spec


def find_in_kernel(name: str, kind: BTFKind | type | None = None) -> list[tuple[Spec, Type]]:
    """Every type called ``name`` (of ``kind``) in vmlinux, then in each module's own types.

    >>> [(spec is kernel_spec(), t.name) for spec, t in find_in_kernel("task_struct", BTFKind.STRUCT)]
    [(True, 'task_struct')]
    """
    out: list[tuple[Spec, Type]] = []
    vmlinux = kernel_spec()
    out.extend((vmlinux, t) for t in vmlinux.types_by_name(name) if _matches(t, kind))
    for mod in module_names():
        try:
            spec = module_spec(mod)
        except ObjectError:
            if not os.path.exists(os.path.join(BTF_DIR, mod)):
                continue    # the module was unloaded meanwhile
            raise
        out.extend((spec, t) for t in spec.types_by_name(name, include_base=False) if _matches(t, kind))
    return out


def _matches(t: Type, kind: BTFKind | type | None) -> bool:
    if kind is None:
        return True
    if isinstance(kind, int):
        return t.kind == kind
    return isinstance(t, kind)


def clear_cache() -> None:
    """Forget the parsed specs (after changing BTF_DIR, or when modules come and go).

    >>> clear_cache(); kernel_spec() is kernel_spec()    # parsed again, then cached
    True
    """
    global _vmlinux
    with _lock:
        _vmlinux = None
        _modules.clear()
