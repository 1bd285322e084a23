// Corpus: maps of maps with "__array(values, struct inner)": an array of
// maps initialised with ".values", and a hash of maps filled from user space.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
};

struct inner inner_a SEC(".maps");
struct inner inner_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, struct inner);
} outer_array SEC(".maps") = {
	.values = { [0] = &inner_a, [3] = &inner_b },
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_HASH);
		__uint(max_entries, 8);
		__type(key, __u32);
		__type(value, __u64);
	});
} outer_hash SEC(".maps");

struct mim_args {
	__u32 outer_key;	/* in */
	__u32 value;		/* in: written to inner[1] of outer_array[outer_key] */
	__s32 found;		/* out: 1 if outer_array[outer_key] holds a map */
	__s32 hash_found;	/* out: 1 if outer_hash[outer_key] holds a map */
	__u64 hash_value;	/* out: that map's [7] */
};

SEC("syscall")
int use_maps_of_maps(struct mim_args *a)
{
	__u32 one = 1, seven = 7, key = a->outer_key;
	__u32 *v;
	__u64 *hv;
	void *inner;

	inner = bpf_map_lookup_elem(&outer_array, &key);
	a->found = inner != NULL;
	if (inner) {
		v = bpf_map_lookup_elem(inner, &one);
		if (v)
			*v = a->value;
	}
	inner = bpf_map_lookup_elem(&outer_hash, &key);
	a->hash_found = inner != NULL;
	if (inner) {
		hv = bpf_map_lookup_elem(inner, &seven);
		a->hash_value = hv ? *hv : 0;
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
