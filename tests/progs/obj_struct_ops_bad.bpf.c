// struct_ops errors the loader names before any system call:
//   typo_cc: a function pointer member the kernel's struct does not have;
//   wide_cc: a data member of another size than the kernel's (u64 flags);
//   nope:    a struct the kernel has no struct_ops type for.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct tcp_congestion_ops___typo {
	__u32 (*ssthresh)(struct sock *sk);
	void (*cong_avoid_typo)(struct sock *sk, __u32 ack, __u32 acked);
	char name[16];
};

struct tcp_congestion_ops___wide {
	__u32 (*ssthresh)(struct sock *sk);
	__u64 flags;
	char name[16];
};

struct pybpf_no_such_ops {
	void (*fn)(struct sock *sk);
};

SEC("struct_ops/bad_ssthresh")
__u32 BPF_PROG(bad_ssthresh, struct sock *sk)
{
	return 2;
}

SEC("struct_ops/bad_cong_avoid")
void BPF_PROG(bad_cong_avoid, struct sock *sk, __u32 ack, __u32 acked)
{
}

SEC("struct_ops/wide_ssthresh")
__u32 BPF_PROG(wide_ssthresh, struct sock *sk)
{
	return 2;
}

SEC("struct_ops/nope_fn")
void BPF_PROG(nope_fn, struct sock *sk)
{
}

SEC(".struct_ops")
struct tcp_congestion_ops___typo typo_cc = {
	.ssthresh = (void *)bad_ssthresh,
	.cong_avoid_typo = (void *)bad_cong_avoid,
	.name = "pybpf_typo",
};

SEC(".struct_ops")
struct tcp_congestion_ops___wide wide_cc = {
	.ssthresh = (void *)wide_ssthresh,
	.flags = 1,
	.name = "pybpf_wide",
};

SEC(".struct_ops")
struct pybpf_no_such_ops nope = {
	.fn = (void *)nope_fn,
};

char LICENSE[] SEC("license") = "GPL";
