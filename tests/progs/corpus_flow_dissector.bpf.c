// Corpus: a flow dissector filling struct bpf_flow_keys for IPv4 TCP/UDP.
// BPF_PROG_TEST_RUN returns the keys in ctx_out.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_IP	0x0800
#define IPPROTO_TCP	6
#define IPPROTO_UDP	17

/* Direct packet access (BPF_PROG_TEST_RUN has no skb, so bpf_skb_load_bytes
 * fails there), with bpf_skb_load_bytes for non-linear skbs. */
static __always_inline void *header(struct __sk_buff *skb, __u16 off, __u16 size, void *buf)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	void *hdr;

	if (off > 0xffff - size)	/* bounds the variable offset for the verifier */
		return NULL;
	hdr = data + off;
	if (hdr + size <= end)
		return hdr;
	if (bpf_skb_load_bytes(skb, off, buf, size))
		return NULL;
	return buf;
}

SEC("flow_dissector")
int dissect(struct __sk_buff *skb)
{
	struct bpf_flow_keys *keys = skb->flow_keys;
	struct iphdr ip_buf, *ip;
	__u16 port_buf[2], *ports;

	if (keys->n_proto != bpf_htons(ETH_P_IP))
		return BPF_DROP;
	ip = header(skb, keys->nhoff, sizeof(*ip), &ip_buf);
	if (!ip || ip->ihl != 5)
		return BPF_DROP;
	keys->addr_proto = ETH_P_IP;
	keys->ipv4_src = ip->saddr;
	keys->ipv4_dst = ip->daddr;
	keys->ip_proto = ip->protocol;
	keys->thoff = keys->nhoff + sizeof(*ip);
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return BPF_OK;
	ports = header(skb, keys->thoff, sizeof(port_buf), port_buf);
	if (!ports)
		return BPF_DROP;
	keys->sport = ports[0];
	keys->dport = ports[1];
	return BPF_OK;
}

char LICENSE[] SEC("license") = "GPL";
