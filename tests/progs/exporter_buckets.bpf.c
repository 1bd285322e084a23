// The exporter's exp2zero and fixed histograms and its regexp decoder, end to end.
// `observe` runs at the entry of each function the test's config lists (one
// cookie per function) and files the function's first argument three ways:
// a call count per cookie, an exp2zero histogram (key 0 for the value 0,
// ceil(log2(x)) + 1 otherwise) and a fixed histogram whose keys are the
// bounds 1, 5, 10 and 100.  Both histograms add x to the key after their last
// bucket, which the exporter reads as the sum.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define EXP2ZERO_MAX 6			/* bucket 6 counts values up to 2^5 = 32 */
#define FIXED_LAST 100			/* the last of the fixed bucket keys */

struct hist_key {
	__u64 cookie;
	__u64 bucket;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u64);
	__type(value, __u64);
} calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct hist_key);
	__type(value, __u64);
} exp2zero_hist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct hist_key);
	__type(value, __u64);
} fixed_hist SEC(".maps");

static __always_inline void add(void *map, void *key, __u64 n)
{
	__u64 *value = bpf_map_lookup_elem(map, key);

	if (value) {
		__sync_fetch_and_add(value, n);
		return;
	}
	if (bpf_map_update_elem(map, key, &n, BPF_NOEXIST) != 0) {
		value = bpf_map_lookup_elem(map, key);	/* another CPU made it first */
		if (value)
			__sync_fetch_and_add(value, n);
	}
}

static __always_inline __u64 log2_ceil(__u64 x)
{
	__u64 r = 0;

	/* the smallest r with 2^r >= x (x >= 1) */
	for (int i = 0; i < 64; i++) {
		if ((1ULL << r) >= x)
			break;
		r++;
	}
	return r;
}

static __always_inline __u64 fixed_bucket(__u64 x)
{
	if (x <= 1)
		return 1;
	if (x <= 5)
		return 5;
	if (x <= 10)
		return 10;
	return FIXED_LAST;
}

SEC("uprobe")
int observe(struct pt_regs *ctx)
{
	__u64 x = PT_REGS_PARM1(ctx);
	__u64 cookie = bpf_get_attach_cookie(ctx);
	struct hist_key key = { .cookie = cookie };

	add(&calls, &cookie, 1);

	key.bucket = x == 0 ? 0 : log2_ceil(x) + 1;
	if (key.bucket > EXP2ZERO_MAX)
		key.bucket = EXP2ZERO_MAX;
	add(&exp2zero_hist, &key, 1);
	key.bucket = EXP2ZERO_MAX + 1;
	add(&exp2zero_hist, &key, x);

	key.bucket = fixed_bucket(x);
	add(&fixed_hist, &key, 1);
	key.bucket = FIXED_LAST + 1;
	add(&fixed_hist, &key, x);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
