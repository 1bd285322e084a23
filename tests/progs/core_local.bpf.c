// CO-RE relocations on local types, relocated by tests/test_core.py against
// target BTF that the test builds (different layouts, sizes, missing
// members, several candidates).  Compiled, never loaded.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

enum core_color { CORE_RED = 1, CORE_GREEN = 2, CORE_BLUE = 4 };

struct core_inner {
	int x;
	int arr[4];
};

struct core_s {
	int a;			/* target: long long, signed and wider: loads are poisoned */
	unsigned long long b;	/* target: unsigned int: loads and stores shrink */
	union {
		short c;
		int c_alias;	/* not in the target */
	};
	struct {
		int d;
		struct core_inner in;
	};
	unsigned int bf1:3, bf2:5;
	int bf3:7;
	enum core_color color;
	struct core_s *next;
	char tail[];		/* flexible array */
} __attribute__((preserve_access_index));

struct core_out {
	__u64 v[32];
};

SEC("syscall")
int core_local(struct core_out *out)
{
	struct core_s *s = (void *)(long)out->v[31];

	out->v[0] = s->a;
	out->v[1] = s->b;
	out->v[2] = s->c;
	out->v[3] = s->d;
	out->v[4] = s->in.arr[2];
	out->v[5] = BPF_CORE_READ_BITFIELD(s, bf2);
	out->v[6] = BPF_CORE_READ_BITFIELD(s, bf3);
	out->v[7] = s->color;
	out->v[8] = (long)s->next;
	out->v[9] = s->tail[5];
	out->v[10] = bpf_core_field_exists(s->c_alias);
	out->v[11] = bpf_core_enum_value(enum core_color, CORE_GREEN);
	out->v[12] = bpf_core_enum_value_exists(enum core_color, CORE_RED);
	out->v[13] = bpf_core_type_size(struct core_inner);
	out->v[14] = bpf_core_field_size(s->in.arr);
	out->v[15] = bpf_core_field_offset(s->in.arr[3]);
	out->v[16] = bpf_core_type_matches(struct core_inner);
	s->b = 7;		/* ST: the store shrinks too */
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
