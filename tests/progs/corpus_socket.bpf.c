// Corpus: socket filters ("socket" and "socket/<anything>").  For these
// BPF_PROG_TEST_RUN hands the program the packet from the network header on.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define IPPROTO_UDP 17

__u32 sock_seen = 0;

SEC("socket")
int sock_keep_all(struct __sk_buff *skb)
{
	__sync_fetch_and_add(&sock_seen, 1);
	return skb->len;
}

/* keep UDP only, truncated to 64 bytes */
SEC("socket")
int sock_udp_only(struct __sk_buff *skb)
{
	__u8 proto = 0;

	if (bpf_skb_load_bytes(skb, 9, &proto, 1))
		return 0;
	return proto == IPPROTO_UDP ? 64 : 0;
}

char LICENSE[] SEC("license") = "GPL";
