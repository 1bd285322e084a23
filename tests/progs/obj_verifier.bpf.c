// A program the verifier refuses, for the source line in VerifierError.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} values SEC(".maps");

static __noinline int helper(int x)
{
	return x + 1;
}

SEC("xdp")
int null_deref(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *value = bpf_map_lookup_elem(&values, &key);

	return helper(*value == 3); /* pybpf: missing NULL check */
}

char LICENSE[] SEC("license") = "GPL";
