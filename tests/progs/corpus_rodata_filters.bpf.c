// Corpus: "const volatile" filters set before load (the classic libbpf
// pattern): with filter_enabled false the verifier prunes the filter away.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

const volatile bool filter_enabled = false;
const volatile __u16 filter_ethertype = 0;	/* host order */
const volatile __u8 filter_verdict = XDP_DROP;
const volatile char filter_name[8] = "none";

__u64 matched = 0;
__u64 unmatched = 0;
char seen_name[8] = {};

SEC("xdp")
int xdp_filter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	int i;

	/* element by element: a memcpy from a cast-away-volatile const would be folded */
#pragma unroll
	for (i = 0; i < sizeof(seen_name); i++)
		seen_name[i] = filter_name[i];
	if (!filter_enabled)
		return XDP_PASS;
	if ((void *)(eth + 1) > end)
		return XDP_ABORTED;
	if (bpf_ntohs(eth->h_proto) == filter_ethertype) {
		matched++;
		return filter_verdict;
	}
	unmatched++;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
