"""Calls per function, written in Python (pybpf.lang) instead of C.

The same design as uprobe_counter.bpf.c: ONE program attached to every
function of calls_py.yaml, one BPF cookie each; the exporter compiles this
file with pybpf.compile() when it loads the module, no clang needed.
Linux 4.17 (uprobes), 5.15 (cookies).
"""

from pybpf.lang import HashMap, u64, uprobe

calls_py_total = HashMap(key=u64, value=u64, max_entries=4096)


@uprobe
def count_call_py(ctx) -> int:
    calls_py_total[ctx.cookie] += 1
    return 0
