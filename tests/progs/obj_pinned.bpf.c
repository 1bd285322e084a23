// A map pinned by name (LIBBPF_PIN_BY_NAME) for tests/test_object_pin.py.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#ifndef PINNED_MAX
#define PINNED_MAX 16
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PINNED_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pybpf_test_pinned SEC(".maps");

SEC("xdp")
int bump(struct xdp_md *ctx)
{
	__u32 key = 1;
	__u64 one = 1, *v = bpf_map_lookup_elem(&pybpf_test_pinned, &key);

	if (v)
		__sync_fetch_and_add(v, 1);
	else
		bpf_map_update_elem(&pybpf_test_pinned, &key, &one, BPF_ANY);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
