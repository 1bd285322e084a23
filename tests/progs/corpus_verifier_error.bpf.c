// Corpus: a program the verifier refuses: it reads the packet without
// checking data_end.  pybpf must raise VerifierError naming this C line.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("xdp")
int good_prog(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("xdp")
int unchecked_read(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;

	return data[20] == 0x45 ? XDP_DROP : XDP_PASS; /* CORPUS_BAD_LINE */
}

char LICENSE[] SEC("license") = "GPL";
