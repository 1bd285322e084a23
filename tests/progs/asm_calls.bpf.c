// Instruction-layer test program: atomics (lock add/or/and/xor, fetch
// variants, cmpxchg, xchg) on a map value and on global data, helper calls,
// bpf-to-bpf calls (static and global __noinline functions), a bpf_loop
// callback, and two programs in different sections.  Built with -mcpu=v3 by
// tests/test_asm.py; with an older -mcpu only the 64-bit "lock" atomics remain.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct val {
	__u64 counter;
	__u64 bits;
	__u32 word;
	__u32 word_bits;
	__u64 swapped;
	__u64 cas;
	__u64 result;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct val);
} vals SEC(".maps");

__u64 g_counter;
__u32 g_word;

static __noinline __u64 mix(__u64 x, __u64 y)
{
	return (x ^ (y << 7)) + (y >> 3);
}

__noinline int global_sub(int x)
{
	if (x > 10)
		return x - 10;
	return x * 3;
}

static int loop_cb(__u32 idx, void *data)
{
	*(__u64 *)data += idx * 3;
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int atomics(void *ctx)
{
	__u32 key = 0;
	struct val *v = bpf_map_lookup_elem(&vals, &key);
	if (!v)
		return 0;

	__sync_fetch_and_add(&v->counter, 1);
	__sync_fetch_and_or(&v->bits, 0x10);
	__sync_fetch_and_and(&v->bits, ~0x3ULL);
	__sync_fetch_and_xor(&v->bits, 0x100);
	__u64 old = 0;
#if __BPF_CPU_VERSION__ >= 3
	__sync_fetch_and_add(&v->word, 1);
	__sync_fetch_and_or(&v->word_bits, 4);

	old = __sync_fetch_and_add(&v->counter, 2);
	old += __sync_fetch_and_or(&v->bits, 0x20);
	old += __sync_fetch_and_and(&v->bits, 0xffff);
	old += __sync_fetch_and_xor(&v->bits, 0x1);
	old += __sync_fetch_and_add(&v->word, 3);
	old += __sync_val_compare_and_swap(&v->cas, 0, old);
	old += __sync_lock_test_and_set(&v->swapped, old);
#endif

	__u64 sum = 0;
	bpf_loop(8, loop_cb, &sum, 0);
	v->result = mix(old, sum) + global_sub((int)sum);

	__sync_fetch_and_add(&g_counter, 1);
#if __BPF_CPU_VERSION__ >= 3
	__sync_fetch_and_add(&g_word, 1);
#endif
	return 0;
}

SEC("xdp")
int xdp_count(struct xdp_md *xdp)
{
	__u32 key = 1;
	struct val *v = bpf_map_lookup_elem(&vals, &key);
	if (v)
		v->counter += mix(xdp->data_end - xdp->data, 1);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
