// Corpus: XDP programs, several in the same "xdp" section, plus "xdp.frags".
// tests/test_corpus.py runs each through BPF_PROG_TEST_RUN.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_IP	0x0800
#define ETH_P_IPV6	0x86DD

/* verdict -> how many times it was returned (XDP_ABORTED..XDP_REDIRECT) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 5);
	__type(key, __u32);
	__type(value, __u64);
} xdp_verdicts SEC(".maps");

__u64 frags_len = 0;

static __always_inline int count(__u32 verdict)
{
	__u64 *v = bpf_map_lookup_elem(&xdp_verdicts, &verdict);

	if (v)
		*v += 1;
	return verdict;
}

SEC("xdp")
int xdp_pass_all(struct xdp_md *ctx)
{
	return count(XDP_PASS);
}

SEC("xdp")
int xdp_drop_ipv6(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return count(XDP_ABORTED);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return count(XDP_DROP);
	return count(XDP_PASS);
}

/* Swap source and destination MAC and send the packet back out. */
SEC("xdp")
int xdp_swap_macs(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	unsigned char tmp[6];

	if ((void *)(eth + 1) > data_end)
		return count(XDP_ABORTED);
	__builtin_memcpy(tmp, eth->h_dest, 6);
	__builtin_memcpy(eth->h_dest, eth->h_source, 6);
	__builtin_memcpy(eth->h_source, tmp, 6);
	return count(XDP_TX);
}

/* Needs BPF_F_XDP_HAS_FRAGS: test_run accepts packets bigger than a page only then. */
SEC("xdp.frags")
int xdp_frags_len(struct xdp_md *ctx)
{
	frags_len = bpf_xdp_get_buff_len(ctx);
	return frags_len > 4000 ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
