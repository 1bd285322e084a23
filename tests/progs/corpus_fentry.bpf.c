// Corpus: trampoline programs.  Under lockdown=integrity this kernel refuses
// them with EPERM; pybpf must say so (program name, errno, lockdown).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

__u64 fentry_hits = 0;

SEC("fentry/do_unlinkat")
int BPF_PROG(fentry_unlinkat, int dfd, struct filename *name)
{
	fentry_hits++;
	return 0;
}

SEC("fexit/do_unlinkat")
int BPF_PROG(fexit_unlinkat, int dfd, struct filename *name, long ret)
{
	fentry_hits++;
	return 0;
}

SEC("fentry.s/do_unlinkat")
int BPF_PROG(fentry_sleepable_unlinkat, int dfd, struct filename *name)
{
	fentry_hits++;
	return 0;
}

SEC("lsm/file_open")
int BPF_PROG(lsm_file_open, struct file *file)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
