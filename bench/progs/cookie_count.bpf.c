// SPDX-License-Identifier: GPL-2.0
/* bench/cookie_bench.py: a per-function call counter for many uprobes.
 *
 * One program serves every probed function: the BPF cookie of the
 * attachment says which function fired.  The program keeps, per cookie, the
 * number of calls and the sum of the first argument, for one process only
 * (target_tgid, set in .rodata before load; 0 = every process).
 *
 * The benchmark loads it either once (cookies from the kernel) or once per
 * function with bpf_get_attach_cookie() rewritten to the constant
 * (pybpf.links.fallback.rewrite_cookie_calls), the fallback for kernels
 * without BPF cookies (before Linux 5.15).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct fn_stat {
	__u64 calls;
	__u64 arg_sum;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);		/* attach cookie: which function */
	__type(value, struct fn_stat);
} counts SEC(".maps");

const volatile __u32 target_tgid = 0;

SEC("uprobe")
int count_calls(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 key, arg = PT_REGS_PARM1(ctx);
	struct fn_stat *st, init = { .calls = 1 };

	if (target_tgid && tgid != target_tgid)
		return 0;
	key = bpf_get_attach_cookie(ctx);
	st = bpf_map_lookup_elem(&counts, &key);
	if (!st) {
		init.arg_sum = arg;
		if (!bpf_map_update_elem(&counts, &key, &init, BPF_NOEXIST))
			return 0;
		/* another CPU created it first */
		st = bpf_map_lookup_elem(&counts, &key);
		if (!st)
			return 0;
	}
	__sync_fetch_and_add(&st->calls, 1);
	__sync_fetch_and_add(&st->arg_sum, arg);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
