// SPDX-License-Identifier: GPL-2.0
/* bench/lang_bench.py: the C twins of the pybpf.lang programs in bench/lang_pairs.py.
 *
 * Each program here does what the Python program of the same name does, written
 * the way libbpf C programs usually are, so the instruction counts of the two
 * compilers (pybpf.lang and clang -O2) can be compared program by program.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 1024); __type(key, __u64); __type(value, __u64); }
	counts SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 1024); __type(key, __u64); __type(value, __u64); }
	syscalls SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 10240); __type(key, __u64); __type(value, __u64); }
	starts SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 64); __type(key, __u32); __type(value, __u64); }
	hist SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 2); __type(key, __u32); __type(value, __u64); }
	packets SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u64); }
	percpu SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 16); __type(key, __u32); __type(value, __u64); }
	family SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 16); __type(key, __u32); __type(value, __u64); }
	classes SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 1 << 14); } events SEC(".maps");

const volatile __u32 TARGET_TGID = 0;
__u64 MASK = 1;
__u64 MASK2 = 0;
__u64 OUT = 0;

struct event { __u32 pid; __u32 nr; __u64 ts; char comm[16]; };

static __always_inline void count(void *map, __u64 key, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(map, &key);
	if (v) {
		__sync_fetch_and_add(v, n);
		return;
	}
	if (bpf_map_update_elem(map, &key, &n, BPF_NOEXIST) == 0)
		return;
	v = bpf_map_lookup_elem(map, &key);
	if (v)
		__sync_fetch_and_add(v, n);
}

SEC("uprobe")
int generic_probe(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	if (cookie == 1)
		count(&counts, cookie, 1);
	else if (cookie == 2)
		count(&counts, cookie, 10);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int myapp(void *ctx)
{
	if ((bpf_get_current_pid_tgid() >> 32) != TARGET_TGID)
		return 0;
	__sync_fetch_and_add(&MASK, 1);
	__sync_fetch_and_add(&MASK2, 1);
	return 0;
}

SEC("tracepoint/raw_syscalls/sys_enter")
int count_syscalls(struct trace_event_raw_sys_enter *ctx)
{
	if ((bpf_get_current_pid_tgid() >> 32) != TARGET_TGID)
		return 0;
	count(&syscalls, ctx->id, 1);
	return 0;
}

SEC("tracepoint/raw_syscalls/sys_enter")
int snoop(struct trace_event_raw_sys_enter *ctx)
{
	if ((bpf_get_current_pid_tgid() >> 32) != TARGET_TGID || ctx->id != 110)
		return 0;
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->nr = ctx->id;
	e->ts = bpf_ktime_get_ns();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("xdp")
int count_udp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 key;
	__u64 *v;
	if (data + 42 > end)
		return XDP_PASS;
	if (*(__u16 *)(data + 12) != bpf_htons(0x0800) || *(__u8 *)(data + 23) != 17) {
		key = 1;
		v = bpf_map_lookup_elem(&packets, &key);
		if (v)
			__sync_fetch_and_add(v, 1);
		return XDP_PASS;
	}
	if (*(__u16 *)(data + 36) == bpf_htons(40404)) {
		key = 0;
		v = bpf_map_lookup_elem(&packets, &key);
		if (v)
			__sync_fetch_and_add(v, 1);
	}
	return XDP_PASS;
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int task_family(void *ctx)
{
	if ((bpf_get_current_pid_tgid() >> 32) != TARGET_TGID)
		return 0;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 k = 0;
	__u64 v = BPF_CORE_READ(task, tgid);
	bpf_map_update_elem(&family, &k, &v, BPF_ANY);
	k = 1;
	v = BPF_CORE_READ(task, real_parent, tgid);
	bpf_map_update_elem(&family, &k, &v, BPF_ANY);
	return 0;
}

SEC("uprobe")
int lat_entry(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 ts = bpf_ktime_get_ns();
	bpf_map_update_elem(&starts, &id, &ts, BPF_ANY);
	return 0;
}

SEC("uretprobe")
int lat_exit(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 *start = bpf_map_lookup_elem(&starts, &id);
	if (!start)
		return 0;
	__u64 delta = bpf_ktime_get_ns() - *start;
	bpf_map_delete_elem(&starts, &id);
	__u32 slot = 0;
	for (int i = 0; i < 63; i++) {
		if (delta <= 1)
			break;
		delta >>= 1;
		slot++;
	}
	__u64 *c = bpf_map_lookup_elem(&hist, &slot);
	if (c)
		__sync_fetch_and_add(c, 1);
	return 0;
}

SEC("syscall")
int arith(__u64 *args)
{
	__u64 a = args[0], b = args[1];
	__u32 c = (__u32)a * 3 + (__u32)b;
	__u64 d = a / 7 - (b >> 3);
	__u64 e = (a ^ b) & 0xff00ff00ffULL;
	if (a > b)
		e += c;
	else
		e -= d;
	OUT = e + (c << 5) + (a % 13);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int percpu_count(void *ctx)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&percpu, &k);
	if (v)
		*v += 1;
	return 0;
}

SEC("tracepoint/raw_syscalls/sys_enter")
int classify(struct trace_event_raw_sys_enter *ctx)
{
	__u32 cls;
	switch (ctx->id) {
	case 0: case 1: case 17: case 18:
		cls = 1;	/* read/write */
		break;
	case 2: case 3: case 257:
		cls = 2;	/* open/close */
		break;
	case 9: case 11: case 10:
		cls = 3;	/* memory */
		break;
	default:
		cls = 0;
	}
	__u64 *v = bpf_map_lookup_elem(&classes, &cls);
	if (v) {
		__sync_fetch_and_add(v, 1);
	} else {
		__u64 one = 1;
		bpf_map_update_elem(&classes, &cls, &one, BPF_NOEXIST);
	}
	return 0;
}
