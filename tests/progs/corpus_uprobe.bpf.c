// Corpus: uprobe, uretprobe and a sleepable uprobe.s that copies a user
// string with bpf_copy_from_user (allowed only with BPF_F_SLEEPABLE).
// (BPF_KPROBE/BPF_KRETPROBE read uprobe arguments too: libbpf 1.1 has no BPF_UPROBE.)
// The target (a small C program built by the test) calls
// corpus_add(i, 10 * i) for i in 1..N and corpus_name("pybpf-corpus").
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct add_stats {
	__u64 calls;
	__u64 sum_a;
	__u64 sum_b;
	__u64 sum_ret;
	__u64 returns;
};

struct add_stats stats = {};
char seen_name[32] = {};
__u64 name_calls = 0;

SEC("uprobe")
int BPF_KPROBE(on_add, long a, long b)
{
	__sync_fetch_and_add(&stats.calls, 1);
	__sync_fetch_and_add(&stats.sum_a, a);
	__sync_fetch_and_add(&stats.sum_b, b);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(on_add_ret, long ret)
{
	__sync_fetch_and_add(&stats.sum_ret, ret);
	__sync_fetch_and_add(&stats.returns, 1);
	return 0;
}

SEC("uprobe.s")
int BPF_KPROBE(on_name, const char *name)
{
	char buf[32] = {};

	if (bpf_copy_from_user(buf, sizeof(buf) - 1, name))
		return 0;
	__builtin_memcpy(seen_name, buf, sizeof(buf));
	name_calls++;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
