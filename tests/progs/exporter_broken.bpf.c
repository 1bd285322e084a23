// A module that cannot load: the verifier refuses the unchecked map value.
// The exporter tests use it to show one broken module does not stop the others.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u64);
	__type(value, __u64);
} broken_total SEC(".maps");

SEC("tracepoint/raw_syscalls/sys_enter")
int broken(void *ctx)
{
	__u64 key = 0;
	__u64 *value = bpf_map_lookup_elem(&broken_total, &key);

	*value += 1;		/* no NULL check: refused */
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
