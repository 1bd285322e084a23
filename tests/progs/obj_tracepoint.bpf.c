// A tracepoint program counting getpid() calls, attached through perf_event_open in the tests.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

__u64 calls = 0;
const volatile __u32 target_tgid = 0;

SEC("tracepoint/syscalls/sys_enter_getpid")
int count_getpid(void *ctx)
{
	if (target_tgid && (bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	__sync_fetch_and_add(&calls, 1);
	return 0;
}

SEC("raw_tp/sys_enter")
int raw_enter(struct bpf_raw_tracepoint_args *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
