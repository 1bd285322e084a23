// Corpus: fentry programs whose target is not usable as written: none given
// (set at run time, like xdpdump's) and a function the kernel does not have.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

SEC("fentry")
int BPF_PROG(fentry_no_target)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
