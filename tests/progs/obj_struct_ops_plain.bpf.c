// struct_ops in a plain SEC(".struct_ops") section (Linux 5.6): writing the
// map's value registers the congestion control, deleting it unregisters.
// The struct is a CO-RE flavor of tcp_congestion_ops with its own layout
// (name first, fewer members): the loader copies members by name into the
// kernel's layout.  pybpf_unused is used by no map, so it is not loaded.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

extern __u32 tcp_reno_ssthresh(struct sock *sk) __ksym;
extern void tcp_reno_cong_avoid(struct sock *sk, __u32 ack, __u32 acked) __ksym;
extern __u32 tcp_reno_undo_cwnd(struct sock *sk) __ksym;

struct tcp_congestion_ops___pybpf {
	char name[16];
	__u32 flags;
	__u32 (*ssthresh)(struct sock *sk);
	void (*cong_avoid)(struct sock *sk, __u32 ack, __u32 acked);
	void (*init)(struct sock *sk);
	__u32 (*undo_cwnd)(struct sock *sk);
};

SEC("struct_ops/plain_ssthresh")
__u32 BPF_PROG(plain_ssthresh, struct sock *sk)
{
	return tcp_reno_ssthresh(sk);
}

SEC("struct_ops/plain_cong_avoid")
void BPF_PROG(plain_cong_avoid, struct sock *sk, __u32 ack, __u32 acked)
{
	tcp_reno_cong_avoid(sk, ack, acked);
}

SEC("struct_ops/plain_undo_cwnd")
__u32 BPF_PROG(plain_undo_cwnd, struct sock *sk)
{
	return tcp_reno_undo_cwnd(sk);
}

SEC("struct_ops/pybpf_unused")
void BPF_PROG(pybpf_unused, struct sock *sk)
{
}

SEC(".struct_ops")
struct tcp_congestion_ops___pybpf pybpf_cc_plain = {
	.name = "pybpf_cc_plain",
	.ssthresh = (void *)plain_ssthresh,
	.cong_avoid = (void *)plain_cong_avoid,
	.undo_cwnd = (void *)plain_undo_cwnd,
};

char LICENSE[] SEC("license") = "GPL";
