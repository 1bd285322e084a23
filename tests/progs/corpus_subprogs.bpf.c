// Corpus: bpf-to-bpf calls.  Global (.text, BTF-verified separately) and
// static noinline functions, a call chain three deep, and a sub-program
// used by two programs in different sections.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

static __noinline __u32 square(__u32 x)
{
	return x * x;
}

static __noinline __u32 sum_of_squares(__u32 a, __u32 b)
{
	return square(a) + square(b);
}

/* A global function: verified on its own, with its BTF signature. */
__noinline int clamp_global(int v, int lo, int hi)
{
	if (v < lo)
		return lo;
	if (v > hi)
		return hi;
	return v;
}

__u32 packet_bytes_sum = 0;

static __noinline __u32 sum_bytes(struct xdp_md *ctx)
{
	unsigned char *p = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 s = 0;
	int i;

	for (i = 0; i < 16; i++) {
		if ((void *)(p + i + 1) > end)
			break;
		s += p[i];
	}
	return s;
}

/* retval = clamp(a^2 + b^2, 0, 1000) with a, b the first two packet bytes */
SEC("xdp")
int xdp_calls(struct xdp_md *ctx)
{
	unsigned char *p = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;

	if ((void *)(p + 2) > end)
		return 0;
	packet_bytes_sum = sum_bytes(ctx);
	return clamp_global(sum_of_squares(p[0], p[1]), 0, 1000);
}

/* the same sub-programs from another program type */
SEC("syscall")
int syscall_calls(__u32 *args)
{
	return clamp_global(sum_of_squares(args[0], args[1]), 0, 1000) + square(2);
}

char LICENSE[] SEC("license") = "GPL";
