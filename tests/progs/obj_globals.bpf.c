// Global data and maps for tests/test_object_*.py: .rodata (const volatile), .data, .bss,
// a custom .data.* section, BTF-defined maps with typed keys/values and a legacy map.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

/* libbpf 1.0 dropped struct bpf_map_def; old objects still use the "maps" section. */
struct legacy_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

struct legacy_map_def legacy_counts SEC("maps") = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 4,
};

struct event {
	__u32 pid;
	__u32 len;
	__u64 total;
	char tag[8];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, struct event);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __s64);
} counters SEC(".maps");

const volatile __u32 min_len = 0;        /* .rodata: set before load */
const volatile __u32 drop_all = 0;
__u32 seen = 0;                          /* .bss */
__u64 last_len = 0;                      /* .bss */
__u32 increment = 1;                     /* .data: written by user space after load */
char label[8] = "pybpf";                 /* .data */
__u32 custom_hits SEC(".data.custom") = 100;
static volatile __u32 static_calls;      /* static .bss variable */

SEC("xdp")
int filter(struct xdp_md *ctx)
{
	__u32 len = ctx->data_end - ctx->data;
	__u32 key = 0;
	__s64 *c;
	__u64 *legacy;

	seen += increment;
	last_len = len;
	custom_hits++;
	static_calls++;
	legacy = bpf_map_lookup_elem(&legacy_counts, &key);
	if (legacy)
		__sync_fetch_and_add(legacy, 1);
	if (drop_all)
		return XDP_DROP;
	if (len < min_len) {
		key = 1;
		c = bpf_map_lookup_elem(&counters, &key);
		if (c)
			*c -= 1;
		return XDP_ABORTED;
	}
	c = bpf_map_lookup_elem(&counters, &key);
	if (c)
		*c += len;
	struct event ev = { .pid = 7, .len = len, .total = seen };
	__builtin_memcpy(ev.tag, label, sizeof(ev.tag));
	bpf_map_update_elem(&events, &len, &ev, BPF_ANY);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
