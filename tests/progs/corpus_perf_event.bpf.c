// Corpus: "perf_event" on a software cpu-clock event, counting samples per CPU
// and reading the sample period from struct bpf_perf_event_data.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} samples SEC(".maps");

__u64 last_period = 0;

SEC("perf_event")
int on_cpu_clock(struct bpf_perf_event_data *ctx)
{
	__u32 zero = 0;
	__u64 *v = bpf_map_lookup_elem(&samples, &zero);

	if (v)
		*v += 1;
	last_period = ctx->sample_period;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
