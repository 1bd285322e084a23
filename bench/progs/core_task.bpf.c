// bench/load_bench.py: a small object with CO-RE relocations against
// task_struct, so that loading it needs the kernel's BTF (/sys/kernel/btf/vmlinux).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct task_struct___flavor {
	int pid;
	long no_such_field;
} __attribute__((preserve_access_index));

__u64 out[8];

SEC("raw_tp/sys_enter")
int core_read(void *ctx)
{
	struct task_struct *t = (void *)bpf_get_current_task();

	out[0] = BPF_CORE_READ(t, pid);
	out[1] = BPF_CORE_READ(t, tgid);
	out[2] = BPF_CORE_READ(t, real_parent, tgid);
	out[3] = BPF_CORE_READ(t, mm, total_vm);
	out[4] = bpf_core_field_exists(((struct task_struct___flavor *)t)->no_such_field);
	out[5] = bpf_core_type_size(struct task_struct);
	out[6] = BPF_CORE_READ(t, cred, uid.val);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
