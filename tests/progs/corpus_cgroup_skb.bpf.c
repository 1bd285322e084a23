// Corpus: cgroup_skb/ingress and cgroup_skb/egress.  BPF_PROG_TEST_RUN gives
// them the packet from the IP header on; 1 = allow, 0 = drop.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

/* set before load: packets to this IPv4 address (network order) are dropped */
const volatile __u32 blocked_daddr = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);		/* 0 = allowed, 1 = dropped */
	__type(value, __u64);
} cg_packets SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&cg_packets, &idx);

	if (v)
		__sync_fetch_and_add(v, 1);
}

SEC("cgroup_skb/ingress")
int cg_ingress_filter(struct __sk_buff *skb)
{
	struct iphdr ip;

	if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
		return 1;
	if (ip.daddr == blocked_daddr) {
		count(1);
		return 0;
	}
	count(0);
	return 1;
}

__u64 egress_bytes = 0;

SEC("cgroup_skb/egress")
int cg_egress_bytes(struct __sk_buff *skb)
{
	__sync_fetch_and_add(&egress_bytes, skb->len);
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
