"""record="struct event" / "event": the type is looked up in the BTF of the object the map comes from.

A C object writes one ``struct event`` per run into a ring buffer and a perf
buffer (an XDP program run with test_run); the readers decode it by name.  A
struct the C code never uses is not in BTF: naming it is an error that says
why and how to get it there, not a silent fall-back to raw bytes.
"""

from __future__ import annotations

import pytest

import pybpf
from pybpf.btf import types as bt
from pybpf.readers import PerfBufReader, RingBufReader

from buildprogs import build_file

EVENT_C = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct event {
	__u32 pid;
	__u32 kind;
	__u64 value;
};

struct never_used {        /* only a local variable uses it: not in BTF */
	__u64 x;
};

/* the usual way to put a type into BTF (libbpf-tools do the same) */
struct event *unused_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} perf_events SEC(".maps");

SEC("xdp")
int emit(struct xdp_md *ctx)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	struct event copy = {.pid = 7, .kind = 2, .value = 123456789};
	volatile struct never_used local = {.x = 1};

	if (!e)
		return XDP_ABORTED;
	*e = copy;
	bpf_ringbuf_submit(e, 0);
	bpf_perf_event_output(ctx, &perf_events, BPF_F_CURRENT_CPU, &copy, sizeof(copy));
	return XDP_PASS;
}
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def obj_path(tmp_path_factory):
    d = tmp_path_factory.mktemp("btf_record")
    src = d / "btf_record.bpf.c"
    src.write_text(EVENT_C)
    return build_file(src, d)


@pytest.fixture
def obj(obj_path):
    with pybpf.load(str(obj_path)) as o:
        yield o


def _run(obj, times: int = 3) -> None:
    for _ in range(times):
        assert obj.programs["emit"].test_run(bytes(64)).retval == 2  # XDP_PASS


@pytest.mark.parametrize("name", ["struct event", "event"])
def test_ring_buffer_records_by_btf_name(obj, name):
    with RingBufReader(obj.maps["events"], record=name) as reader:
        _run(obj)
        got = list(reader.poll(timeout=1.0))
    assert [(e.pid, e.kind, e.value) for e in got] == [(7, 2, 123456789)] * 3


def test_perf_buffer_records_by_btf_name(obj):
    import os

    os.sched_setaffinity(0, {0})
    try:
        with PerfBufReader(obj.maps["perf_events"], record="struct event") as reader:
            _run(obj, 2)
            got = list(reader.poll(timeout=1.0))
    finally:
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
    assert [(e.pid, e.kind, e.value) for e in got] == [(7, 2, 123456789)] * 2


def test_obj_btf_is_the_spec_btf(obj):
    assert obj.btf is obj.spec.btf
    assert isinstance(obj.btf.find("event"), bt.Struct)


def test_a_type_not_in_btf_says_why(obj):
    for name in ("struct never_used", "evnt"):
        with pytest.raises(pybpf.NameNotFoundError) as info:
            RingBufReader(obj.maps["events"], record=name)
        text = str(info.value)
        assert "BTF" in text and "a local variable is not enough" in text and "__type(value" in text, text
    assert "did you mean event" in text


def test_a_map_without_btf_says_so():
    from pybpf.maps.ringbuf import RingBuf

    with RingBuf(4096) as rb:
        with pytest.raises(pybpf.NameNotFoundError, match="has no BTF"):
            RingBufReader(rb, record="struct event")
        RingBufReader(rb, record="u64").close()  # a codec name is still a codec


def test_perf_buffer_reader_with_an_unknown_type_leaks_nothing(obj):
    with pytest.raises(pybpf.NameNotFoundError):
        PerfBufReader(obj.maps["perf_events"], record="struct nope")
