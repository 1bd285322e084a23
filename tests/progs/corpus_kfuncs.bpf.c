// Corpus: kfuncs and typed ksyms in a "syscall" program: bpf_task_from_pid /
// bpf_task_release (acquire/release), bpf_rcu_read_lock/unlock, a __weak
// kfunc that does not exist (resolved to 0 and checked with bpf_ksym_exists).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

extern struct task_struct *bpf_task_from_pid(s32 pid) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;
extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;
extern void corpus_no_such_kfunc(void) __ksym __weak;

struct task_query {
	__s32 pid;		/* in */
	__s32 tgid;		/* out: -1 when no such task */
	__s32 parent_tgid;	/* out */
	__u32 weak_kfunc_exists;/* out */
};

SEC("syscall")
int query_task(struct task_query *q)
{
	struct task_struct *t, *parent;

	q->weak_kfunc_exists = &corpus_no_such_kfunc != 0;
	t = bpf_task_from_pid(q->pid);
	if (!t) {
		q->tgid = -1;
		return 1;
	}
	q->tgid = t->tgid;
	bpf_rcu_read_lock();
	parent = t->real_parent;
	q->parent_tgid = parent ? parent->tgid : -1;
	bpf_rcu_read_unlock();
	bpf_task_release(t);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
