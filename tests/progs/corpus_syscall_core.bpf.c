// Corpus: a "syscall" program reading the calling task with CO-RE
// (BPF_CORE_READ through real_parent, a missing field of a local flavor,
// type and enum relocations).  The test compares the numbers with /proc.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

/* A flavor of task_struct: the ___v1 suffix is ignored by CO-RE matching. */
struct task_struct___v1 {
	int pid;
	int tgid;
	long field_that_never_existed;
} __attribute__((preserve_access_index));

enum corpus_missing_enum { CORPUS_NOT_IN_KERNEL = 7 };

struct task_facts {
	__u32 pid;
	__u32 tgid;
	__u32 ppid;		/* real_parent->tgid */
	__u32 flavor_pid;	/* read through the ___v1 flavor */
	__u32 has_pid;		/* bpf_core_field_exists(pid) */
	__u32 has_missing;	/* bpf_core_field_exists(field_that_never_existed) */
	__u32 task_size;	/* bpf_core_type_size(struct task_struct) */
	__u32 comm_size;	/* bpf_core_field_size(task->comm) */
	__u32 pidtype_tgid;	/* bpf_core_enum_value(enum pid_type, PIDTYPE_TGID) */
	__u32 has_missing_enum;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct task_facts);
} facts SEC(".maps");

SEC("syscall")
int read_task_facts(void *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct task_struct___v1 *v1 = (void *)task;
	struct task_facts *f;
	__u32 zero = 0;

	f = bpf_map_lookup_elem(&facts, &zero);
	if (!f)
		return 1;
	f->pid = BPF_CORE_READ(task, pid);
	f->tgid = BPF_CORE_READ(task, tgid);
	f->ppid = BPF_CORE_READ(task, real_parent, tgid);
	f->flavor_pid = BPF_CORE_READ(v1, pid);
	f->has_pid = bpf_core_field_exists(task->pid);
	f->has_missing = bpf_core_field_exists(v1->field_that_never_existed);
	f->task_size = bpf_core_type_size(struct task_struct);
	f->comm_size = bpf_core_field_size(task->comm);
	f->pidtype_tgid = bpf_core_enum_value(enum pid_type, PIDTYPE_TGID);
	f->has_missing_enum = bpf_core_enum_value_exists(enum corpus_missing_enum, CORPUS_NOT_IN_KERNEL);
	BPF_CORE_READ_STR_INTO(&f->comm, task, comm);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
