// Corpus: classic tracepoints ("tracepoint/<cat>/<name>" and "tp/<cat>/<name>").
// The test attaches them through perf_event_open and calls getppid().
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

const volatile __u32 target_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);	/* tgid */
	__type(value, __u64);	/* getppid() calls */
} getppid_enter SEC(".maps");

__s64 last_getppid_ret = -1;

SEC("tracepoint/syscalls/sys_enter_getppid")
int tp_enter_getppid(struct trace_event_raw_sys_enter *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 one = 1, *v;

	if (tgid != target_tgid)
		return 0;
	v = bpf_map_lookup_elem(&getppid_enter, &tgid);
	if (v)
		__sync_fetch_and_add(v, 1);
	else
		bpf_map_update_elem(&getppid_enter, &tgid, &one, BPF_NOEXIST);
	return 0;
}

SEC("tp/syscalls/sys_exit_getppid")
int tp_exit_getppid(struct trace_event_raw_sys_exit *ctx)
{
	if ((bpf_get_current_pid_tgid() >> 32) == target_tgid)
		last_getppid_ret = ctx->ret;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
