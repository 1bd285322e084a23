// SPDX-License-Identifier: GPL-2.0
/* Calls per function with ONE program: the exporter attaches `count_call`
 * to every function listed in the config, each attach point with its own
 * BPF cookie, and the program counts under bpf_get_attach_cookie().  The
 * `cookie` decoder turns the cookie back into the function's name.  One
 * program and one map however many functions a fleet watches.
 * Linux 4.17 (uprobe programs), 5.15 (cookies), 6.6 (one uprobe_multi link).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);		/* the attach point's cookie */
	__type(value, __u64);		/* calls */
} calls_total SEC(".maps");

SEC("uprobe")
int count_call(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u64 *calls = bpf_map_lookup_elem(&calls_total, &cookie);
	if (calls) {
		__sync_fetch_and_add(calls, 1);
		return 0;
	}
	__u64 one = 1;
	if (bpf_map_update_elem(&calls_total, &cookie, &one, BPF_NOEXIST) != 0) {
		/* another CPU created it first */
		calls = bpf_map_lookup_elem(&calls_total, &cookie);
		if (calls)
			__sync_fetch_and_add(calls, 1);
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
