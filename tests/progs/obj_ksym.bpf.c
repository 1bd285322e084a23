// Typed and typeless ksym variables: the kernel resolves them with kallsyms, which only
// knows variables with CONFIG_KALLSYMS_ALL.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

extern const struct rq runqueues __ksym;
extern const void bpf_prog_active __ksym;

__u64 active_addr = 0;

SEC("syscall")
int this_cpu(void *ctx)
{
	struct rq *rq = bpf_this_cpu_ptr(&runqueues);

	active_addr = (__u64)&bpf_prog_active;
	return rq->cpu;
}

char LICENSE[] SEC("license") = "GPL";
