// Programs the verifier rejects, loaded with BTF line info by tests/test_verifier.py
// so that the kernel annotates its log with "; <source> @ <file>:<line>".
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int no_bounds_check(struct xdp_md *ctx)
{
	unsigned char *data = (unsigned char *)(long)ctx->data;

	return data[12]; /* no check against data_end */
}
