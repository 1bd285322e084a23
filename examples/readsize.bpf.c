// A log2 histogram of the sizes read() returns in one process.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

const volatile __u32 target_tgid = 0;   // set from Python before load

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 64);            // slot 0: 0 bytes, slot k: 2^(k-1) .. 2^k - 1
	__type(key, __u32);
	__type(value, __u64);
} sizes SEC(".maps");

SEC("tracepoint/syscalls/sys_exit_read")
int on_read_exit(struct trace_event_raw_sys_exit *ctx)
{
	if (bpf_get_current_pid_tgid() >> 32 != target_tgid || ctx->ret < 0)
		return 0;
	__u64 bytes = ctx->ret;
	__u32 slot = 0;
	for (int i = 0; i < 63 && bytes; i++) {
		bytes >>= 1;
		slot++;
	}
	__u64 *count = bpf_map_lookup_elem(&sizes, &slot);
	if (count)
		__sync_fetch_and_add(count, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
