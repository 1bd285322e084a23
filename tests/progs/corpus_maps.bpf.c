// Corpus: BTF-defined maps of every family, filled by one raw_tp program run
// with BPF_PROG_TEST_RUN (not "syscall": sleepable programs may not use
// queue, stack, bloom or LPM maps).  The test reads each map back through pybpf.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct pair { __u32 a; __u32 b; };

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32);
	__type(key, __u32);
	__type(value, struct pair);
} m_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} m_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} m_percpu_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} m_percpu_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16);
	__type(key, __u64);
	__type(value, __u64);
} m_lru SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} m_lru_percpu SEC(".maps");

struct lpm_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_key);
	__type(value, __u32);
} m_lpm SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 8);
	__type(value, __u32);
} m_queue SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK);
	__uint(max_entries, 8);
	__type(value, __u32);
} m_stack SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_BLOOM_FILTER);
	__uint(max_entries, 64);
	__uint(map_extra, 3);		/* number of hash functions */
	__type(value, __u32);
} m_bloom SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} m_ringbuf SEC(".maps");

struct rb_event {
	__u32 seq;
	__u32 magic;
};

struct maps_result {
	__u32 lpm_10_1_2_3;	/* value for 10.1.2.3: the /16 entry */
	__u32 lpm_10_9_9_9;	/* value for 10.9.9.9: the /8 entry */
	__u32 lpm_11_0_0_1;	/* 0: no match */
	__u32 bloom_hits;	/* of 1..4 (1..3 were pushed) */
	__u32 queue_first;	/* popped from the queue: 1 (FIFO) */
	__u32 stack_first;	/* popped from the stack: 3 (LIFO) */
	__u32 ringbuf_ok;	/* 3 records submitted */
};

struct maps_result result = {};

/* no loops: the verifier cannot bound a counter whose address goes to helpers */
static __always_inline void fill_one(__u32 i)
{
	struct pair p = { .a = i, .b = i * 100 };
	__u64 big = (__u64)i << 40;
	__u64 v64;

	bpf_map_update_elem(&m_hash, &i, &p, BPF_ANY);
	v64 = i * 1000;
	bpf_map_update_elem(&m_array, &i, &v64, BPF_ANY);
	v64 = i + 7;
	bpf_map_update_elem(&m_percpu_hash, &i, &v64, BPF_ANY);
	v64 = i * 3;
	bpf_map_update_elem(&m_lru, &big, &v64, BPF_ANY);
	bpf_map_update_elem(&m_lru_percpu, &i, &v64, BPF_ANY);
	bpf_map_push_elem(&m_queue, &i, 0);
	bpf_map_push_elem(&m_stack, &i, 0);
	bpf_map_push_elem(&m_bloom, &i, 0);
}

static __always_inline __u32 in_bloom(__u32 v)
{
	return bpf_map_peek_elem(&m_bloom, &v) == 0;
}

static __always_inline __u32 emit(__u32 seq)
{
	struct rb_event *e = bpf_ringbuf_reserve(&m_ringbuf, sizeof(*e), 0);

	if (!e)
		return 0;
	e->seq = seq;
	e->magic = 0xC0FFEE;
	bpf_ringbuf_submit(e, 0);
	return 1;
}

SEC("raw_tp/sys_enter")
int fill_maps(void *ctx)
{
	struct maps_result *r = &result;
	__u32 k, v32;

	fill_one(1);
	fill_one(2);
	fill_one(3);
	k = 1;
	v32 = 42;
	bpf_map_update_elem(&m_percpu_array, &k, &v32, BPF_ANY);

	{
		struct lpm_key k8 = { .prefixlen = 8, .addr = {10, 0, 0, 0} };
		struct lpm_key k16 = { .prefixlen = 16, .addr = {10, 1, 0, 0} };
		struct lpm_key q = { .prefixlen = 32, .addr = {10, 1, 2, 3} };
		__u32 val8 = 8, val16 = 16, *hit;

		bpf_map_update_elem(&m_lpm, &k8, &val8, BPF_ANY);
		bpf_map_update_elem(&m_lpm, &k16, &val16, BPF_ANY);
		hit = bpf_map_lookup_elem(&m_lpm, &q);
		r->lpm_10_1_2_3 = hit ? *hit : 0;
		q.addr[1] = 9; q.addr[2] = 9; q.addr[3] = 9;
		hit = bpf_map_lookup_elem(&m_lpm, &q);
		r->lpm_10_9_9_9 = hit ? *hit : 0;
		q.addr[0] = 11; q.addr[1] = 0; q.addr[2] = 0; q.addr[3] = 1;
		hit = bpf_map_lookup_elem(&m_lpm, &q);
		r->lpm_11_0_0_1 = hit ? *hit : 0;
	}

	r->bloom_hits = in_bloom(1) + in_bloom(2) + in_bloom(3) + in_bloom(4);

	if (bpf_map_pop_elem(&m_queue, &v32) == 0)
		r->queue_first = v32;
	if (bpf_map_pop_elem(&m_stack, &v32) == 0)
		r->stack_first = v32;

	r->ringbuf_ok = emit(0) + emit(1) + emit(2);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
