"""__kconfig and __ksym externs resolved against the running kernel."""

from __future__ import annotations

import gzip
import os
import struct

import pytest

import pybpf
from buildprogs import build
from pybpf._sys.kernel import kernel_version_code

pytestmark = pytest.mark.root  # against the kernel: needs root


def kernel_config() -> dict[str, str]:
    for path in ("/proc/config.gz", f"/boot/config-{os.uname().release}"):
        try:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt") as f:
                return dict(line.strip().split("=", 1) for line in f if line.startswith("CONFIG_"))
        except OSError:
            continue
    pytest.skip("kernel config is not supported by this kernel: no /proc/config.gz (CONFIG_IKCONFIG_PROC) "
                "and no /boot/config-$(uname -r) to compare with")


def test_kconfig_values():
    with pybpf.load(build("obj_externs"), programs=["read_kconfig"]) as obj:
        assert obj.programs["read_kconfig"].test_run(ctx=bytes(8)).retval == 0
        v = obj.variables
        release = [int("".join(c for c in p if c.isdigit()) or 0) for p in os.uname().release.split("-")[0].split(".")]
        a, b, c = (release + [0, 0])[:3]
        assert v["result_version"].value == (a << 16) + (b << 8) + min(c, 255) == kernel_version_code()
        assert v["result_syscall"].value == (kernel_config().get("CONFIG_BPF_SYSCALL") == "y")
        assert v["result_cookie"].value == pybpf.features.has("bpf_cookie")
        assert v["result_missing"].value == 0            # __weak and not in the config
        # the .kconfig map itself, read-only after load
        assert v["LINUX_KERNEL_VERSION"].value == kernel_version_code()
        assert obj.maps[".kconfig"].frozen
        with pytest.raises(pybpf.BPFError, match="read-only"):
            v["LINUX_KERNEL_VERSION"].value = 1


def test_kfunc_calls_and_weak_ksyms():
    with pybpf.load(build("obj_externs"), programs=["task_kfunc"]) as obj:
        prog = obj.programs["task_kfunc"]
        res = prog.test_run(ctx=struct.pack("<ii", os.getpid(), 0))
        assert res.retval == 0                            # weak ksym missing: &sym is 0
        assert struct.unpack("<ii", res.ctx_out) == (os.getpid(), os.getpid())
        res = prog.test_run(ctx=struct.pack("<ii", 0x7FFFFFF0, 0))
        assert res.retval == 0xFFFFFFFF                   # no such task: -1


def test_strong_missing_kconfig_is_an_error(monkeypatch):
    from pybpf.object import externs

    spec = pybpf.ObjectSpec.from_file(build("obj_externs"))
    spec.externs["CONFIG_PYBPF_DOES_NOT_EXIST"].weak = False
    with pytest.raises(pybpf.ObjectError, match="CONFIG_PYBPF_DOES_NOT_EXIST.*__weak"):
        spec.load()
    spec.externs["CONFIG_PYBPF_DOES_NOT_EXIST"].weak = True
    monkeypatch.setattr(externs, "_read_kconfig", lambda: None)
    spec = pybpf.ObjectSpec.from_file(build("obj_externs"))
    spec.externs["CONFIG_BPF_SYSCALL"].weak = False
    with pytest.raises(pybpf.ObjectError, match="no kernel config found"):
        spec.load()


def test_strong_missing_kfunc_is_named():
    spec = pybpf.ObjectSpec.from_file(build("obj_externs"))
    spec.externs["bpf_pybpf_no_such_kfunc"].weak = False
    with pytest.raises(pybpf.ObjectError) as info:
        spec.load(programs=["task_kfunc"])
    assert "program 'task_kfunc'" in str(info.value) and "bpf_pybpf_no_such_kfunc" in str(info.value)
    assert "kernel's BTF" in str(info.value)
