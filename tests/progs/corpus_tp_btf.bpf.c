// Corpus: "tp_btf" (BTF-typed raw tracepoint) counting getppid() calls of one
// process, with bpf_rcu_read_lock/unlock kfuncs around a task pointer walk.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define NR_getppid 110	/* x86_64 */

extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;

const volatile __u32 target_tgid = 0;
__u64 getppid_calls = 0;
__u32 seen_parent_tgid = 0;

SEC("tp_btf/sys_enter")
int BPF_PROG(tp_btf_getppid, struct pt_regs *regs, long id)
{
	struct task_struct *task;

	if (id != NR_getppid || (bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	getppid_calls++;
	task = bpf_get_current_task_btf();
	bpf_rcu_read_lock();
	seen_parent_tgid = task->real_parent->tgid;
	bpf_rcu_read_unlock();
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
