// Corpus: a legacy SEC("maps") map described by struct bpf_map_def (libbpf
// 1.0 removed it from its headers, so the struct is declared here).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct bpf_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

struct bpf_map_def SEC("maps") legacy_counts = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 4,
};

struct bpf_map_def SEC("maps") legacy_hash = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u32),
	.max_entries = 16,
};

/* legacy_counts[first byte & 3] += packet length; legacy_hash[len] = first byte */
SEC("socket")
int legacy_count(struct __sk_buff *skb)
{
	__u8 b = 0;
	__u32 k, len = skb->len, v;
	__u64 *c;

	bpf_skb_load_bytes(skb, 0, &b, 1);
	k = b & 3;
	c = bpf_map_lookup_elem(&legacy_counts, &k);
	if (c)
		__sync_fetch_and_add(c, skb->len);
	v = b;
	bpf_map_update_elem(&legacy_hash, &len, &v, BPF_ANY);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
