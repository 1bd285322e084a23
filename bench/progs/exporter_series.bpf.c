// SPDX-License-Identifier: GPL-2.0
/* A map shaped like a fleet exporter's: three labels per series (process,
 * CPU, function by cookie), room for 16384 series.  bench/exporter_bench.py
 * fills it from user space and scrapes it; the program is what would fill
 * it in production (one uprobe program, one cookie per function).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct series_key {
	__u32 pid;
	__u32 cpu;
	__u64 cookie;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct series_key);
	__type(value, __u64);
} series_total SEC(".maps");

SEC("uprobe")
int count_series(struct pt_regs *ctx)
{
	struct series_key key = {
		.pid = bpf_get_current_pid_tgid() >> 32,
		.cpu = bpf_get_smp_processor_id(),
		.cookie = bpf_get_attach_cookie(ctx),
	};
	__u64 one = 1, *calls = bpf_map_lookup_elem(&series_total, &key);
	if (calls)
		__sync_fetch_and_add(calls, 1);
	else
		bpf_map_update_elem(&series_total, &key, &one, BPF_NOEXIST);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
