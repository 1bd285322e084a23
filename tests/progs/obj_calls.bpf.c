// Calls for tests/test_object_*.py: several programs per section, static and global
// subprograms in .text, bpf_loop callbacks, tail calls through a prog array initialised
// with .values, and a map-in-map initialised with .values.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
};

struct inner inner_a SEC(".maps"), inner_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, struct inner);
} outer SEC(".maps") = {
	.values = { [0] = &inner_a, [3] = &inner_b },
};

int tail_target(struct __sk_buff *skb);
int tail_other(struct __sk_buff *skb);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, int (struct __sk_buff *));
} jumps SEC(".maps") = {
	.values = { [1] = (void *)&tail_target, [2] = (void *)&tail_other },
};

static __noinline int square(int x)
{
	return x * x;
}

__noinline int add_twice(int a, int b)
{
	return square(a) + b + b;
}

struct loop_ctx {
	int sum;
	int limit;
};

static long loop_body(__u32 i, void *data)
{
	struct loop_ctx *lc = data;

	lc->sum += i;
	return lc->sum > lc->limit;
}

SEC("xdp")
int calls_main(struct xdp_md *ctx)
{
	return add_twice(3, 4);           /* 9 + 8 = 17 */
}

SEC("xdp")
int calls_loop(struct xdp_md *ctx)
{
	struct loop_ctx lc = { .sum = 0, .limit = 1000 };

	bpf_loop(10, loop_body, &lc, 0);  /* 0 + 1 + ... + 9 = 45 */
	return lc.sum + square(2);        /* 49 */
}

SEC("tc")
int tail_entry(struct __sk_buff *skb)
{
	bpf_tail_call(skb, &jumps, skb->mark);
	return 99;                         /* empty slot */
}

SEC("tc")
int tail_target(struct __sk_buff *skb)
{
	return 11 + square(1);            /* 12 */
}

SEC("tc")
int tail_other(struct __sk_buff *skb)
{
	return 22;
}

SEC("xdp")
int map_in_map(struct xdp_md *ctx)
{
	__u32 slot = 3, key = 0;
	__u32 *value;
	void *inner = bpf_map_lookup_elem(&outer, &slot);

	if (!inner)
		return 1;
	value = bpf_map_lookup_elem(inner, &key);
	if (!value)
		return 2;
	return *value;
}

SEC("?xdp")
int not_autoloaded(struct xdp_md *ctx)
{
	return 5;
}

char LICENSE[] SEC("license") = "GPL";
