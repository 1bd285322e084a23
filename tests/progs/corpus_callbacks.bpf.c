// Corpus: callbacks: bpf_loop and bpf_for_each_map_elem (static callback
// functions referenced by address, relocated as sub-programs).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} cb_values SEC(".maps");

struct loop_ctx {
	__u64 sum;
	__u32 limit;
};

static int loop_step(__u32 i, struct loop_ctx *c)
{
	c->sum += i;
	return i + 1 >= c->limit;	/* 1 stops the loop */
}

struct each_ctx {
	__u64 sum;
	__u32 visited;
};

static __u64 each_elem(struct bpf_map *map, __u32 *key, __u64 *val, struct each_ctx *c)
{
	c->sum += *key * *val;
	c->visited++;
	return 0;
}

struct cb_result {
	__u32 n;		/* in: loop bound */
	__u32 loops;		/* out: bpf_loop's return */
	__u64 loop_sum;		/* out: 0 + 1 + ... + (n - 1) */
	__u32 visited;		/* out: elements visited */
	__u32 pad;
	__u64 weighted;		/* out: sum(key * value) over cb_values */
};

SEC("syscall")
int run_callbacks(struct cb_result *r)
{
	struct loop_ctx lc = { .sum = 0, .limit = r->n };
	struct each_ctx ec = {};

	r->loops = bpf_loop(1000, loop_step, &lc, 0);
	r->loop_sum = lc.sum;
	bpf_for_each_map_elem(&cb_values, each_elem, &ec, 0);
	r->visited = ec.visited;
	r->weighted = ec.sum;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
