// Corpus: maps pinned by name (LIBBPF_PIN_BY_NAME) under the pin path given
// at load: a second load reuses them, so counts survive reloads.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pinned_runs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u32);
} not_pinned SEC(".maps");

/* retval = number of runs so far, across loads */
SEC("xdp")
int count_runs(struct xdp_md *ctx)
{
	__u32 zero = 0, one = 1;
	__u64 *v = bpf_map_lookup_elem(&pinned_runs, &zero);

	bpf_map_update_elem(&not_pinned, &zero, &one, BPF_ANY);
	if (!v)
		return 0;
	*v += 1;
	return *v;
}

char LICENSE[] SEC("license") = "GPL";
