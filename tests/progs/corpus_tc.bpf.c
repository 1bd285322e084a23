// Corpus: tc programs under every section spelling: "tc", "tcx/ingress",
// "tc/egress", "classifier".  Run with BPF_PROG_TEST_RUN (data + __sk_buff ctx).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_IP	0x0800
#define ETH_HLEN	14
#define TC_ACT_OK	0
#define TC_ACT_SHOT	2
#define TCX_NEXT	-1
#define IPPROTO_UDP	17

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u16);	/* ethertype, host order */
	__type(value, __u64);	/* bytes seen */
} tc_bytes SEC(".maps");

/* mark = len + 1, cb[0] = protocol: checked through ctx_out */
SEC("tc")
int tc_mark(struct __sk_buff *skb)
{
	skb->mark = skb->len + 1;
	skb->cb[0] = bpf_ntohs(skb->protocol);
	return TC_ACT_OK;
}

SEC("tcx/ingress")
int tcx_drop_udp(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + ETH_HLEN;

	if ((void *)(ip + 1) > data_end)
		return TCX_NEXT;
	if (eth->h_proto == bpf_htons(ETH_P_IP) && ip->protocol == IPPROTO_UDP)
		return TC_ACT_SHOT;
	return TCX_NEXT;
}

/* Rewrite the IPv4 TTL to 1 (no checksum fix: the test only reads it back). */
SEC("tc/egress")
int tc_egress_ttl(struct __sk_buff *skb)
{
	__u8 ttl = 1;

	if (bpf_skb_store_bytes(skb, ETH_HLEN + 8, &ttl, 1, 0))
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

SEC("classifier")
int cls_count_bytes(struct __sk_buff *skb)
{
	__u16 proto = bpf_ntohs(skb->protocol);
	__u64 len = skb->len, *v;

	v = bpf_map_lookup_elem(&tc_bytes, &proto);
	if (v)
		__sync_fetch_and_add(v, len);
	else
		bpf_map_update_elem(&tc_bytes, &proto, &len, BPF_NOEXIST);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
