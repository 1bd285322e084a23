// SPDX-License-Identifier: GPL-2.0
/* Function latency as a log2 histogram: `on_entry` (uprobe) notes when the
 * thread entered, `on_return` (uretprobe) counts the time spent in bucket
 * ceil(log2(ns)) under the function's cookie, and adds the nanoseconds to
 * bucket MAX_BUCKET + 1, which the exporter reads as the histogram's sum.
 * Recursion into the same function on one thread is not separated.
 * Linux 4.17 (uprobes), 5.15 (cookies).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define MAX_BUCKET 36			/* 2^36 ns: 68.7 s */

struct latency_key {
	__u64 cookie;			/* the function (its attach point's cookie) */
	__u64 bucket;			/* ceil(log2(ns)), or MAX_BUCKET + 1 for the sum */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);		/* thread id */
	__type(value, __u64);		/* entry time, ns */
} entered SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct latency_key);
	__type(value, __u64);
} latency_seconds SEC(".maps");

static __always_inline __u64 log2_floor(__u64 v)
{
	__u64 r, shift;

	r = (v > 0xFFFFFFFFULL) << 5; v >>= r;
	shift = (v > 0xFFFF) << 4; v >>= shift; r |= shift;
	shift = (v > 0xFF) << 3; v >>= shift; r |= shift;
	shift = (v > 0xF) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	return r | (v >> 1);
}

static __always_inline __u64 log2_ceil(__u64 v)
{
	if (v <= 1)
		return 0;
	__u64 r = log2_floor(v);
	return (1ULL << r) == v ? r : r + 1;
}

static __always_inline void add(struct latency_key *key, __u64 n)
{
	__u64 *value = bpf_map_lookup_elem(&latency_seconds, key);
	if (value) {
		__sync_fetch_and_add(value, n);
		return;
	}
	if (bpf_map_update_elem(&latency_seconds, key, &n, BPF_NOEXIST) != 0) {
		value = bpf_map_lookup_elem(&latency_seconds, key);
		if (value)
			__sync_fetch_and_add(value, n);
	}
}

SEC("uprobe")
int on_entry(struct pt_regs *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 now = bpf_ktime_get_ns();
	bpf_map_update_elem(&entered, &tid, &now, BPF_ANY);
	return 0;
}

SEC("uretprobe")
int on_return(struct pt_regs *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 *start = bpf_map_lookup_elem(&entered, &tid);
	if (!start)
		return 0;
	__u64 ns = bpf_ktime_get_ns() - *start;
	bpf_map_delete_elem(&entered, &tid);

	struct latency_key key = { .cookie = bpf_get_attach_cookie(ctx) };
	key.bucket = log2_ceil(ns);
	if (key.bucket > MAX_BUCKET)
		key.bucket = MAX_BUCKET;
	add(&key, 1);
	key.bucket = MAX_BUCKET + 1;
	add(&key, ns);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
