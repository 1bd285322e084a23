// bench/load_bench.py: an object of 10 programs of assorted types sharing a
// few maps and global data.  No CO-RE (see core_task.bpf.c for that), so the
// comparison with libbpf measures the loader itself: ELF, BTF, relocations,
// map creation and program loads.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} per_cpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u32);
} flows SEC(".maps");

const volatile __u32 target_tgid = 0;
__u64 total_packets = 0;
__u64 total_events = 0;

static __noinline void bump(__u32 key, __u64 by)
{
	__u64 *v = bpf_map_lookup_elem(&counts, &key);

	if (v)
		__sync_fetch_and_add(v, by);
	else
		bpf_map_update_elem(&counts, &key, &by, BPF_NOEXIST);
}

static __always_inline void per_cpu_inc(__u32 key)
{
	__u64 *v = bpf_map_lookup_elem(&per_cpu, &key);

	if (v)
		*v += 1;
}

static __always_inline void emit(__u32 kind)
{
	__u32 *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (e) {
		*e = kind;
		bpf_ringbuf_submit(e, 0);
	}
	total_events++;
}

SEC("xdp")
int b_xdp_count(struct xdp_md *ctx)
{
	bump(1, ctx->data_end - ctx->data);
	per_cpu_inc(1);
	total_packets++;
	return XDP_PASS;
}

SEC("xdp")
int b_xdp_filter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u64 key;
	__u32 one = 1;

	if ((void *)(eth + 1) > end)
		return XDP_ABORTED;
	key = bpf_ntohs(eth->h_proto);
	bpf_map_update_elem(&flows, &key, &one, BPF_ANY);
	return eth->h_proto == bpf_htons(0x86DD) ? XDP_DROP : XDP_PASS;
}

SEC("tc")
int b_tc(struct __sk_buff *skb)
{
	bump(2, skb->len);
	per_cpu_inc(2);
	return 0;
}

SEC("socket")
int b_socket(struct __sk_buff *skb)
{
	bump(3, skb->len);
	return skb->len;
}

SEC("cgroup_skb/egress")
int b_cgroup(struct __sk_buff *skb)
{
	per_cpu_inc(4);
	return 1;
}

SEC("raw_tp/sys_enter")
int b_raw_tp(struct bpf_raw_tracepoint_args *ctx)
{
	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	bump(5, ctx->args[1]);
	emit(5);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int b_tracepoint(struct trace_event_raw_sys_enter *ctx)
{
	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	bump(6, 1);
	emit(6);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(b_uprobe, long a)
{
	bump(7, a);
	return 0;
}

SEC("perf_event")
int b_perf(struct bpf_perf_event_data *ctx)
{
	per_cpu_inc(8);
	return 0;
}

SEC("syscall")
int b_syscall(void *ctx)
{
	bump(9, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
