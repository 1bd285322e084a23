// Corpus: a BPF_MAP_TYPE_PROG_ARRAY initialised at load time with
// ".values = { [i] = &prog }" and tail calls through it.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("xdp")
int tail_ret_10(struct xdp_md *ctx)
{
	return 10;
}

SEC("xdp")
int tail_ret_20(struct xdp_md *ctx)
{
	return 20;
}

SEC("xdp")
int tail_ret_30(struct xdp_md *ctx)
{
	return 30;
}

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 8);
	__uint(key_size, sizeof(__u32));
	__array(values, int (void *));
} jump_table SEC(".maps") = {
	.values = {
		[0] = (void *)&tail_ret_10,
		[2] = (void *)&tail_ret_20,
		[5] = (void *)&tail_ret_30,
	},
};

/* tail-calls jump_table[first packet byte]; 99 when the slot is empty */
SEC("xdp")
int tail_dispatch(struct xdp_md *ctx)
{
	unsigned char *p = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;

	if ((void *)(p + 1) > end)
		return 98;
	bpf_tail_call(ctx, &jump_table, p[0]);
	return 99;
}

char LICENSE[] SEC("license") = "GPL";
