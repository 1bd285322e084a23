// SPDX-License-Identifier: GPL-2.0
/* Syscalls by name: every raw_syscalls:sys_enter event counts one call of
 * its syscall number; the exporter's `syscall` decoder names the numbers.
 *
 * A per-CPU hash: each CPU adds to its own copy without atomics, and the
 * exporter sums the copies at scrape time.  `target_tgid` (.rodata, set from
 * the config's `variables:`) limits counting to one process; 0 counts all.
 * Linux 4.7 (tracepoint programs), 4.6 (per-CPU hash).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

const volatile __u32 target_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);		/* syscall number */
	__type(value, __u64);		/* calls */
} syscalls_total SEC(".maps");

SEC("tracepoint/raw_syscalls/sys_enter")
int count_syscall(struct trace_event_raw_sys_enter *ctx)
{
	if (target_tgid && (__u32)(bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	__u64 nr = ctx->id;
	__u64 *calls = bpf_map_lookup_elem(&syscalls_total, &nr);
	if (calls) {
		*calls += 1;		/* this CPU's copy: no other writer */
		return 0;
	}
	__u64 one = 1;
	bpf_map_update_elem(&syscalls_total, &nr, &one, BPF_NOEXIST);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
