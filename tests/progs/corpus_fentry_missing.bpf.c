// Corpus: an fentry program on a kernel function that does not exist.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

SEC("fentry/pybpf_corpus_no_such_function")
int BPF_PROG(fentry_missing_target)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
