// SPDX-License-Identifier: GPL-2.0
/* pybpf.links end to end through the ELF loader: one uprobe program for many
 * attach points with cookies, a uprobe.multi program, a USDT program using
 * libbpf's <bpf/usdt.bpf.h> (bpf_usdt_arg, bpf_usdt_cookie) and a tracepoint,
 * all attached from their section names by pybpf.links.attach_all(). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

/* tests/test_links_object.py builds with -DTARGET_PATH="<path of tests/bin/cookie_target>" */
#ifndef TARGET_PATH
#define TARGET_PATH "/tmp/pybpf_cookie_target"
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u64);
	__type(value, __u64);
} counts SEC(".maps");

const volatile __u32 target_tgid = 0;

static __always_inline void bump(__u64 key, __u64 by)
{
	__u64 *v = bpf_map_lookup_elem(&counts, &key);

	if (v)
		__sync_fetch_and_add(v, by);
	else
		bpf_map_update_elem(&counts, &key, &by, BPF_NOEXIST);
}

/* attached by hand to func_a and func_b with cookies 1 and 2 */
SEC("uprobe")
int on_func(struct pt_regs *ctx)
{
	bump(bpf_get_attach_cookie(ctx), 1);
	return 0;
}

/* the section names the binary and the functions (the test fills in the path) */
SEC("uprobe.multi/" TARGET_PATH ":func_[ab]")
int on_multi(struct pt_regs *ctx)
{
	bump(10 + bpf_get_attach_cookie(ctx), 1);
	return 0;
}

/* sums the third argument of pybpf_test:tick (1000 + i) under key 100 + usdt cookie */
SEC("usdt/" TARGET_PATH ":pybpf_test:tick")
int BPF_USDT(on_tick, int which, long i, long big)
{
	bump(100 + bpf_usdt_cookie(ctx), big);
	bump(200 + which, 1);
	return 0;
}

SEC("tp/syscalls/sys_enter_getpid")
int on_getpid(void *ctx)
{
	if ((bpf_get_current_pid_tgid() >> 32) == target_tgid)
		bump(300 + bpf_get_attach_cookie(ctx), 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
