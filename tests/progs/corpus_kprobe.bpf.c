// Corpus: kprobe flavours.  This kernel has no CONFIG_KPROBES: the programs
// load (BPF_PROG_TYPE_KPROBE exists for uprobes) but cannot be attached.
// BPF_KSYSCALL reads the LINUX_HAS_SYSCALL_WRAPPER __kconfig extern.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

__u64 kprobe_hits = 0;

SEC("kprobe/do_unlinkat")
int BPF_KPROBE(kp_unlinkat, int dfd, struct filename *name)
{
	kprobe_hits++;
	return 0;
}

SEC("kretprobe/do_unlinkat")
int BPF_KRETPROBE(krp_unlinkat, long ret)
{
	kprobe_hits += 2;
	return 0;
}

SEC("ksyscall/getppid")
int BPF_KSYSCALL(ks_getppid)
{
	kprobe_hits += 3;
	return 0;
}

SEC("kprobe.multi/do_unlinkat")
int kpm_unlinkat(struct pt_regs *ctx)
{
	kprobe_hits += 4;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
