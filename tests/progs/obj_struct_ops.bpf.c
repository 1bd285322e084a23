// struct_ops: a TCP congestion control ("pybpf_cc") made of three BPF programs
// that call the kernel's Reno functions (kfuncs).  SEC(".struct_ops.link"):
// registered by BPF_LINK_CREATE on the map (Linux 6.4), unregistered when the
// link closes.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

extern __u32 tcp_reno_ssthresh(struct sock *sk) __ksym;
extern void tcp_reno_cong_avoid(struct sock *sk, __u32 ack, __u32 acked) __ksym;
extern __u32 tcp_reno_undo_cwnd(struct sock *sk) __ksym;

/* How often the kernel called each operation (read through .bss). */
__u64 ssthresh_calls = 0;
__u64 cong_avoid_calls = 0;
__u64 undo_cwnd_calls = 0;

SEC("struct_ops/pybpf_ssthresh")
__u32 BPF_PROG(pybpf_ssthresh, struct sock *sk)
{
	__sync_fetch_and_add(&ssthresh_calls, 1);
	return tcp_reno_ssthresh(sk);
}

SEC("struct_ops/pybpf_cong_avoid")
void BPF_PROG(pybpf_cong_avoid, struct sock *sk, __u32 ack, __u32 acked)
{
	__sync_fetch_and_add(&cong_avoid_calls, 1);
	tcp_reno_cong_avoid(sk, ack, acked);
}

SEC("struct_ops/pybpf_undo_cwnd")
__u32 BPF_PROG(pybpf_undo_cwnd, struct sock *sk)
{
	__sync_fetch_and_add(&undo_cwnd_calls, 1);
	return tcp_reno_undo_cwnd(sk);
}

SEC(".struct_ops.link")
struct tcp_congestion_ops pybpf_cc = {
	.ssthresh = (void *)pybpf_ssthresh,
	.cong_avoid = (void *)pybpf_cong_avoid,
	.undo_cwnd = (void *)pybpf_undo_cwnd,
	.name = "pybpf_cc",
};

char LICENSE[] SEC("license") = "GPL";
