// Externs for tests/test_object_*.py: __kconfig values and __ksym kfuncs, some __weak.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

/* libbpf 1.1 headers predate bpf_ksym_exists() */
#define ksym_exists(sym) (!!(sym))

extern unsigned int LINUX_KERNEL_VERSION __kconfig;
extern bool LINUX_HAS_BPF_COOKIE __kconfig;
extern bool CONFIG_BPF_SYSCALL __kconfig;
extern int CONFIG_PYBPF_DOES_NOT_EXIST __kconfig __weak;

extern struct task_struct *bpf_task_from_pid(s32 pid) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;
extern void bpf_pybpf_no_such_kfunc(void) __ksym __weak;
extern const int pybpf_no_such_ksym __ksym __weak;

__u64 result_version = 0;
__u32 result_cookie = 0;
__u32 result_syscall = 0;
__s32 result_missing = -1;

SEC("syscall")
int read_kconfig(void *ctx)
{
	result_version = LINUX_KERNEL_VERSION;
	result_cookie = LINUX_HAS_BPF_COOKIE;
	result_syscall = CONFIG_BPF_SYSCALL;
	result_missing = CONFIG_PYBPF_DOES_NOT_EXIST;
	return 0;
}

struct args {
	__s32 pid;
	__s32 tgid_seen;
};

SEC("syscall")
int task_kfunc(struct args *args)
{
	struct task_struct *task = bpf_task_from_pid(args->pid);
	int ret = 0;

	if (!task)
		return -1;
	args->tgid_seen = task->tgid;
	bpf_task_release(task);
	if (ksym_exists(bpf_pybpf_no_such_kfunc))
		bpf_pybpf_no_such_kfunc();   /* dead code: the weak kfunc is missing */
	if (&pybpf_no_such_ksym)
		ret = 100;
	return ret;
}

char LICENSE[] SEC("license") = "GPL";
