// BTF test object: a bit of every type kind clang emits, global data in
// .data/.bss/.rodata and a custom data section, BTF-defined maps and
// several functions (static, global, programs) for func_info/line_info.
// Parsed by tests/test_btf.py and tests/test_btf_codec.py; never loaded.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

enum btf_color { BTF_RED, BTF_GREEN = 5, BTF_BLUE = -1 };	/* signed enum */
enum btf_big { BTF_BIG_A = 1, BTF_BIG_B = 0x123456789ULL };	/* ENUM64 */
enum btf_sbig { BTF_SBIG_NEG = -2, BTF_SBIG_POS = 0x1ffffffffLL };	/* signed ENUM64 */

struct btf_flags {
	unsigned int a : 3;
	unsigned int b : 5;
	int c : 7;				/* signed bitfield */
	unsigned long long d : 33;		/* straddles a 32-bit boundary */
	bool e : 1;
};

struct btf_point {
	int x;
	int y;
};

union btf_num {
	__u32 u;
	int i;
	float f;
};

typedef int (*btf_callback_t)(int, void *);

struct btf_event {
	__u32 pid;
	__u64 ts;
	char comm[16];
	struct btf_point pts[2];
	struct btf_flags fl;
	union btf_num n;
	union {					/* anonymous union */
		__u16 port;
		__u16 sport;
	};
	struct {				/* anonymous struct */
		__u8 proto;
		__u8 pad[3];
	};
	enum btf_color col;
	enum btf_big big;
	const volatile int *ptr;
	double dbl;
	btf_callback_t cb;
	int tagged __attribute__((btf_decl_tag("btf_tag_member")));
	int __attribute__((btf_type_tag("user"))) *user_ptr;
	__s8 small;
	__s16 medium;
	__s64 large;
	unsigned __int128 huge;
	_Bool flag;
	__u8 raw[5];
};

struct btf_fwd_only;			/* only ever used through a pointer */

struct btf_node {
	struct btf_node *next;		/* self reference through a pointer */
	struct btf_fwd_only *opaque;
	long value;
};

/* global data */
int btf_counter = 1;					/* .data */
__u64 btf_total;					/* .bss */
const volatile __u32 btf_target_pid = 42;		/* .rodata */
const volatile char btf_greeting[8] = "hello";		/* .rodata */
struct btf_event btf_last_event;			/* .bss */
struct btf_node btf_head SEC(".data.custom") = { .value = 7 };
enum btf_color btf_fav_color = BTF_GREEN;		/* .data */
enum btf_big btf_big_value = BTF_BIG_B;			/* .data */
enum btf_sbig btf_sbig_value = BTF_SBIG_NEG;		/* .data */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 128);
	__type(key, struct btf_point);
	__type(value, struct btf_event);
} btf_events_by_point SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} btf_ring SEC(".maps");

static __noinline int btf_static_helper(int x)
{
	return x * 3 + btf_counter;
}

__noinline int btf_global_helper(struct btf_event *e)
{
	if (!e)
		return 0;
	return e->pid + e->fl.c;
}

__attribute__((btf_decl_tag("btf_tag_func")))
static __noinline long btf_tagged_func(struct btf_node *n, union btf_num *num)
{
	return n->value + num->i;
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int btf_prog_one(void *ctx)
{
	struct btf_point key = { .x = 1, .y = 2 };
	struct btf_event *ev;

	ev = bpf_map_lookup_elem(&btf_events_by_point, &key);
	if (!ev)
		return btf_static_helper(btf_target_pid);
	btf_total += ev->ts + ev->big + ev->huge;
	btf_last_event.fl.a = ev->fl.a;
	btf_last_event.port = ev->sport;
	return btf_global_helper(ev);
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int btf_prog_two(void *ctx)
{
	union btf_num num = { .i = btf_fav_color };
	struct btf_event *e;

	e = bpf_ringbuf_reserve(&btf_ring, sizeof(*e), 0);
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->col = BTF_BLUE;
	e->big = btf_big_value;
	e->n.i = btf_tagged_func(&btf_head, &num) + btf_greeting[0];
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
