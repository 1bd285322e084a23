// Corpus: cgroup/sock_create.  The test attaches it to a fresh cgroup v2,
// creates sockets from a process inside it and reads the counts.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define AF_INET 2
#define SOCK_RAW 3

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);		/* socket type: SOCK_STREAM=1, SOCK_DGRAM=2, ... */
	__type(value, __u64);
} sock_types SEC(".maps");

/* refuse raw sockets, count the others by type */
SEC("cgroup/sock_create")
int sock_create_count(struct bpf_sock *ctx)
{
	__u32 type = ctx->type;
	__u64 *v;

	if (ctx->family != AF_INET)
		return 1;
	if (type == SOCK_RAW)
		return 0;
	v = bpf_map_lookup_elem(&sock_types, &type);
	if (v)
		__sync_fetch_and_add(v, 1);
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
