"""pybpf.features against the running kernel.

Every probe asks the kernel; the expected answers come from the kernel too, read another way
(tests/kernel_facts.py: its config, its lockdown mode, its version), so they hold on any kernel —
the development VM (Linux 6.18, lockdown=integrity, no kprobes) as well as one with kprobes and no
lockdown.
"""

from __future__ import annotations

import errno
import os
import re
import threading

import pytest

import pybpf
from pybpf import _probes, features
from pybpf.btf import BTFKind
from pybpf._sys import AttachType, HelperID, MapType, ProgType

import kernel_facts

pytestmark = pytest.mark.root

# Features that depend on the kernel's config or lockdown, not only its version.
MISSING = sorted(kernel_facts.expected_missing())
# The rest are there on every kernel at least as new as their first version.
PRESENT = [name for name, f in features.FEATURES.items()
           if name not in MISSING and kernel_facts.version_at_least(f.min_kernel)]


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("name", PRESENT)
def test_present_features(name: str) -> None:
    assert features.has(name) is True
    assert features.reason(name) is None
    features.require(name)  # does not raise


@pytest.mark.parametrize("name", MISSING)
def test_missing_features(name: str) -> None:
    assert features.has(name) is False
    assert features.reason(name)
    with pytest.raises(pybpf.NotSupportedError) as info:
        features.require(name)
    assert info.value.feature == name
    assert info.value.min_kernel == features.FEATURES[name].min_kernel


def test_require_kprobes_message() -> None:
    with features.override(kprobes=False):  # as on a kernel before 4.1
        with pytest.raises(pybpf.NotSupportedError) as info:
            features.require("kprobes")
    text = str(info.value)
    assert text.startswith("kprobes is not supported by this kernel (needs Linux 4.1)")
    assert isinstance(info.value, pybpf.BPFError)


def test_fentry_is_refused_by_lockdown() -> None:
    mode = kernel_facts.lockdown()
    if mode == "none":   # nothing to refuse it: whatever fentry's answer, lockdown is not the reason
        assert "lockdown" not in (features.reason("fentry") or "")
        return
    assert features.reason("fentry").endswith(f"(kernel lockdown={mode})")


def test_registry_is_complete() -> None:
    assert set(PRESENT + MISSING) <= set(features.FEATURES)
    for name, feature in features.FEATURES.items():
        assert feature.name == name
        assert re.fullmatch(r"\d+\.\d+", feature.min_kernel), name
        assert feature.description and "\n" not in feature.description
        assert re.search(rf"\b{name} {re.escape(feature.min_kernel)}\b", features.__doc__), f"{name} not documented"
    assert features.FEATURES["bpf_cookie"].min_kernel == "5.15"
    assert features.FEATURES["uprobe_multi_link"].min_kernel == "6.6"
    assert features.FEATURES["kprobe_multi_link"].min_kernel == "5.18"


def test_all_features() -> None:
    table = features.all_features()
    assert list(table) == list(features.FEATURES)
    assert all(isinstance(v, bool) for v in table.values())
    assert {n for n, v in table.items() if v} >= set(PRESENT)
    assert not {n for n, v in table.items() if v} & set(MISSING)


def test_unknown_name() -> None:
    for fn in (features.has, features.require, features.reason):
        with pytest.raises(ValueError, match="unknown feature 'no_such_thing'.*bpf_cookie"):
            fn("no_such_thing")
    with pytest.raises(ValueError, match="bpf_cookie"):
        features.override(no_such_thing=False)
    with pytest.raises(TypeError):
        features.override(bpf_cookie="no")


def test_override_flips_and_restores() -> None:
    assert features.has("bpf_cookie")
    with features.override(bpf_cookie=False):
        assert features.has("bpf_cookie") is False
        assert features.all_features()["bpf_cookie"] is False
        assert features.has("ringbuf") is True  # others untouched
        with pytest.raises(pybpf.NotSupportedError, match=r"bpf_cookie .*needs Linux 5\.15"):
            features.require("bpf_cookie")
    assert features.has("bpf_cookie") is True
    features.require("bpf_cookie")


def test_override_restores_after_exception() -> None:
    with pytest.raises(RuntimeError):
        with features.override(ringbuf=False):
            raise RuntimeError("boom")
    assert features.has("ringbuf")


def test_nested_overrides() -> None:
    with features.override(bpf_cookie=False, ringbuf=False):
        with features.override(bpf_cookie=True):
            assert features.has("bpf_cookie") is True  # innermost wins
            assert features.has("ringbuf") is False     # outer still applies
            with features.override(kprobes=True):
                assert features.has("kprobes") is True
                features.require("kprobes")
            assert features.has("kprobes") is False
        assert features.has("bpf_cookie") is False
    assert features.has("bpf_cookie") and features.has("ringbuf")


def test_override_as_decorator() -> None:
    @features.override(perf_link=False)
    def inner() -> bool:
        return features.has("perf_link")

    assert inner() is False
    assert inner() is False  # reusable
    assert features.has("perf_link") is True


def test_override_across_threads() -> None:
    results: list[bool] = []
    with features.override(uprobes=False):
        thread = threading.Thread(target=lambda: results.append(features.has("uprobes")))
        thread.start()
        thread.join()
    assert results == [False]  # overrides are process-wide
    assert features.has("uprobes")


@pytest.mark.parametrize("prog_type", [ProgType.SOCKET_FILTER, ProgType.KPROBE, ProgType.TRACEPOINT,
                                       ProgType.XDP, ProgType.SCHED_CLS, ProgType.RAW_TRACEPOINT,
                                       ProgType.CGROUP_SOCK_ADDR, ProgType.SK_LOOKUP, ProgType.SYSCALL,
                                       ProgType.NETFILTER, ProgType.TRACING, ProgType.STRUCT_OPS])
def test_prog_types_present(prog_type: ProgType) -> None:
    assert features.prog_type_supported(prog_type) is True


def test_prog_types_missing() -> None:
    assert features.prog_type_supported(999) is False
    assert features.prog_type_supported(max(ProgType) + 1) is False
    assert features.prog_type_supported(ProgType.UNSPEC) is False
    if kernel_facts.lockdown() != "none":
        assert features.prog_type_supported(ProgType.LSM) is False  # refused under lockdown


@pytest.mark.parametrize("map_type", [MapType.HASH, MapType.ARRAY, MapType.PERCPU_ARRAY, MapType.LPM_TRIE,
                                      MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS, MapType.QUEUE,
                                      MapType.RINGBUF, MapType.SK_STORAGE, MapType.TASK_STORAGE,
                                      MapType.CGROUP_STORAGE, MapType.STRUCT_OPS, MapType.BLOOM_FILTER,
                                      MapType.ARENA, MapType.STACK_TRACE])
def test_map_types_present(map_type: MapType) -> None:
    assert features.map_type_supported(map_type) is True


def test_map_types_missing() -> None:
    assert features.map_type_supported(999) is False
    assert features.map_type_supported(max(MapType) + 1) is False
    assert features.map_type_supported(MapType.UNSPEC) is False


def test_helpers() -> None:
    assert features.helper_supported(ProgType.TRACEPOINT, HelperID.get_attach_cookie) is True
    assert features.helper_supported(ProgType.KPROBE, HelperID.get_attach_cookie) is True
    assert features.helper_supported(ProgType.TRACING, HelperID.get_attach_cookie) is True  # as tp_btf
    # a helper this program type may not call
    assert features.helper_supported(ProgType.SOCKET_FILTER, HelperID.get_attach_cookie) is False
    assert features.helper_supported(ProgType.XDP, HelperID.skb_store_bytes) is False
    assert features.helper_supported(ProgType.SOCKET_FILTER, HelperID.xdp_adjust_head) is False
    assert features.helper_supported(ProgType.SCHED_CLS, HelperID.skb_store_bytes) is True
    # the verifier refuses the arguments (r1 is not a map), but it knows the helper
    assert features.helper_supported(ProgType.XDP, HelperID.map_lookup_elem) is True
    # a helper id no kernel has
    assert features.helper_supported(ProgType.KPROBE, 9999) is False
    # program type the kernel lacks
    assert features.helper_supported(999, HelperID.map_lookup_elem) is False
    with pytest.raises(ValueError, match="EXT"):
        features.helper_supported(ProgType.EXT, HelperID.map_lookup_elem)


@pytest.mark.parametrize("kind", ["int", "struct", "func", "func_global", "datasec", "var", "float",
                                  "decl_tag", "type_tag", "enum64"])
def test_btf_kinds(kind: str) -> None:
    assert features.btf_kind_supported(kind) is True


def test_btf_kind_versions() -> None:
    assert features.BTF_KINDS["enum64"] == "6.0" and features.BTF_KINDS["func_global"] == "5.6"
    assert all(re.fullmatch(r"\d+\.\d+", v) for v in features.BTF_KINDS.values())


def test_btf_kind_unknown() -> None:
    with pytest.raises(ValueError, match="unknown BTF kind 'tuple'.*enum64"):
        features.btf_kind_supported("tuple")


def test_cache_and_clear() -> None:
    first = features.all_features()
    features.clear_cache()
    assert features.all_features() == first
    assert features.prog_type_supported(ProgType.XDP) is True


def test_no_fd_leak() -> None:
    features.clear_cache()
    before = fd_count()
    features.all_features()
    for pt in list(ProgType) + [999]:
        features.prog_type_supported(pt)
    for mt in list(MapType) + [999]:
        features.map_type_supported(mt)
    for kind in features.BTF_KINDS:
        features.btf_kind_supported(kind)
    features.helper_supported(ProgType.TRACING, HelperID.ktime_get_ns)
    features.helper_supported(ProgType.SOCKET_FILTER, HelperID.probe_write_user)
    assert fd_count() == before


def test_concurrent_first_use() -> None:
    features.clear_cache()
    results: list[dict[str, bool]] = []
    threads = [threading.Thread(target=lambda: results.append(features.all_features())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(r == results[0] for r in results)
    assert {n for n, v in results[0].items() if v} >= set(PRESENT)


def test_unprivileged_eperm_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without privileges an EPERM says nothing about the kernel: has() raises and caches nothing.

    fentry loads meet EPERM on this machine even as root (lockdown), which is
    what a caller without CAP_BPF would meet on any machine.
    """
    features.clear_cache()
    monkeypatch.setattr(_probes, "_privileged", lambda: False)
    if "fentry" not in MISSING:   # this kernel loads fentry programs: make its probe meet EPERM
        def refused(*args: object, **kwargs: object) -> int:
            raise pybpf.SyscallError("load probe program: EPERM", errno=errno.EPERM)

        monkeypatch.setattr(_probes, "bpf", refused)
    with pytest.raises(pybpf.SyscallError) as info:
        features.has("fentry")
    assert info.value.errno == errno.EPERM
    assert str(info.value).startswith("probing fentry: operation not permitted: run as root")
    monkeypatch.undo()
    assert features.has("fentry") is ("fentry" not in MISSING)  # the error was not cached


def test_vmlinux_ids() -> None:
    """The attach targets found in the kernel's BTF are ones the kernel itself accepts."""
    assert _probes.vmlinux_id(("no_such_function_anywhere", "vfs_read"), BTFKind.FUNC) is not None
    assert _probes.vmlinux_id(("vfs_read",), BTFKind.TYPEDEF) is None  # kind matters: vfs_read is a FUNC
    tid = _probes.vmlinux_id(("btf_trace_sys_enter",), BTFKind.TYPEDEF)
    fd, err, log = _probes.load(ProgType.TRACING, attach_type=AttachType.TRACE_RAW_TP, btf_id=tid, log=True)
    assert fd is not None, (err, log)
    fd.close()


def test_lower_level_probes_take_names() -> None:
    assert features.prog_type_supported("xdp") is features.prog_type_supported(ProgType.XDP) is True
    assert features.map_type_supported("RINGBUF") is True
    assert features.helper_supported("kprobe", "get_attach_cookie") is True
    with pytest.raises(ValueError, match="unknown program type 'no_such_type'"):
        features.prog_type_supported("no_such_type")
    with pytest.raises(ValueError, match="unknown helper 'nope'"):
        features.helper_supported(ProgType.XDP, "nope")
    with pytest.raises(TypeError, match="map type must be"):
        features.map_type_supported(1.5)  # type: ignore[arg-type]
