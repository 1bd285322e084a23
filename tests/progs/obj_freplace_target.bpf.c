// freplace target: an XDP program whose verdict comes from a global function.
// obj_freplace.bpf.c replaces pybpf_verdict() (BPF_PROG_TYPE_EXT, Linux 5.6).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

__u64 verdict_calls = 0;

__noinline int pybpf_verdict(struct xdp_md *ctx)
{
	verdict_calls++;
	return ctx->data_end - ctx->data > 14 ? XDP_PASS : XDP_DROP;
}

__noinline int pybpf_count(struct xdp_md *ctx)
{
	return ctx ? 1 : 0;
}

SEC("xdp")
int freplace_target(struct xdp_md *ctx)
{
	if (!pybpf_count(ctx))
		return XDP_ABORTED;
	return pybpf_verdict(ctx);
}

char LICENSE[] SEC("license") = "GPL";
