// Corpus: sk_lookup, run with BPF_PROG_TEST_RUN and a struct bpf_sk_lookup ctx.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

const volatile __u32 blocked_port = 0;	/* host order, set before load */

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);		/* local port */
	__type(value, __u32);		/* lookups */
} lookups SEC(".maps");

SEC("sk_lookup")
int sk_lookup_port_filter(struct bpf_sk_lookup *ctx)
{
	__u32 port = ctx->local_port, one = 1, *v;

	v = bpf_map_lookup_elem(&lookups, &port);
	if (v)
		__sync_fetch_and_add(v, 1);
	else
		bpf_map_update_elem(&lookups, &port, &one, BPF_ANY);
	return port == blocked_port ? SK_DROP : SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
