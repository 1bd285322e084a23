// Corpus: "uprobe.multi" (one link, several user functions, cookies).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u64);	/* attach cookie */
	__type(value, __u64);	/* hits */
} multi_hits SEC(".maps");

SEC("uprobe.multi")
int on_multi(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx), one = 1, *v;

	v = bpf_map_lookup_elem(&multi_hits, &cookie);
	if (v)
		__sync_fetch_and_add(v, 1);
	else
		bpf_map_update_elem(&multi_hits, &cookie, &one, BPF_NOEXIST);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
