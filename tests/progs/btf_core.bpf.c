// BTF test object with CO-RE relocations of every kind
// (field offset/size/exists/signed/lshift/rshift, type id local/target,
// type exists/size/matches, enum value exists/value).  Parsed by
// tests/test_btf.py; never loaded.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

/* A local "flavor" of a kernel type: the ___suffix is ignored by CO-RE. */
struct task_struct___old {
	int pid;
	int tgid;
	int no_such_field;
} __attribute__((preserve_access_index));

enum btf_core_local_enum { BTF_CORE_A = 1, BTF_CORE_B = 2 };

__u64 btf_core_out[16];

SEC("raw_tp/sys_enter")
int btf_core_prog(void *ctx)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	struct task_struct___old *old = (void *)task;
	int i = 0;

	btf_core_out[i++] = BPF_CORE_READ(task, real_parent, tgid);		/* FIELD_BYTE_OFFSET */
	btf_core_out[i++] = bpf_core_field_size(task->comm);			/* FIELD_BYTE_SIZE */
	btf_core_out[i++] = bpf_core_field_exists(old->no_such_field);		/* FIELD_EXISTS */
	btf_core_out[i++] = BPF_CORE_READ_BITFIELD_PROBED(task, sched_reset_on_fork); /* LSHIFT/RSHIFT/SIGNED/SIZE */
	btf_core_out[i++] = bpf_core_type_id_local(struct task_struct);		/* TYPE_ID_LOCAL */
	btf_core_out[i++] = bpf_core_type_id_kernel(struct task_struct);	/* TYPE_ID_TARGET */
	btf_core_out[i++] = bpf_core_type_exists(struct task_struct___old);	/* TYPE_EXISTS */
	btf_core_out[i++] = bpf_core_type_size(struct task_struct);		/* TYPE_SIZE */
	btf_core_out[i++] = bpf_core_type_matches(struct task_struct___old);	/* TYPE_MATCHES */
	btf_core_out[i++] = bpf_core_enum_value_exists(enum btf_core_local_enum, BTF_CORE_B); /* ENUMVAL_EXISTS */
	btf_core_out[i++] = bpf_core_enum_value(enum pid_type, PIDTYPE_TGID);	/* ENUMVAL_VALUE */
	btf_core_out[i++] = BPF_CORE_READ(old, pid);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
