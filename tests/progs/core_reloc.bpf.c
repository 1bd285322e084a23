// CO-RE relocations against the running kernel (tests/test_core.py).
//
// The local "flavors" below (struct task_struct___mine, ...) describe kernel
// types with a deliberately different layout, so every relocation has to
// move something: pybpf must rewrite the offsets, sizes and values to the
// kernel's.  core_run is a syscall program: test_run executes it in the
// calling thread, so what it reads from `current` can be checked against
// /proc and os.getpid().  It writes its results into its context.
// core_poisoned and core_wide reach instructions that cannot be relocated;
// the verifier must refuse them at the poisoned instruction.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct task_struct___mine {
	char pad[3];
	unsigned long long flags;	/* kernel: unsigned int -> the load shrinks to 4 bytes */
	int tgid;			/* kernel order: pid, tgid */
	int pid;
	struct task_struct___mine *real_parent;
	char comm[16];
	int no_such_field;		/* not in the kernel */
	unsigned int sched_reset_on_fork:1;
} __attribute__((preserve_access_index));

/* A local bitfield over a kernel field that is a plain int. */
struct task_struct___bits {
	int pad:5;
	int tgid:20;
} __attribute__((preserve_access_index));

/* A signed field whose size differs: loads of it cannot be resized. */
struct task_struct___wide {
	long long pid;
} __attribute__((preserve_access_index));

/* Members the kernel keeps inside anonymous unions and structs. */
struct sk_buff___mine {
	__u8 pkt_type:3;
	unsigned int len;
	struct sk_buff___mine *next;
	__u16 protocol;
} __attribute__((preserve_access_index));

struct list_head___mine {
	struct list_head___mine *next, *prev;
};

struct core_no_such_type {
	int x;
};

enum pid_type___mine {
	PIDTYPE_PID___mine = 7,
	PIDTYPE_SID___mine = 9,
	PIDTYPE_NONE___mine = 11,	/* not in the kernel's enum pid_type */
};

struct core_out {
	__u64 v[32];
};

SEC("syscall")
int core_run(struct core_out *out)
{
	struct task_struct___mine *t = (void *)bpf_get_current_task_btf();
	struct task_struct___mine *pt = (void *)bpf_get_current_task();
	struct task_struct___bits *bt = (void *)pt;

	out->v[0] = t->tgid;						/* LDX off */
	out->v[1] = t->pid;
	out->v[2] = t->flags;						/* LDX DW -> W */
	out->v[3] = t->comm[1];						/* array element */
	out->v[4] = BPF_CORE_READ(pt, real_parent, tgid);		/* probe reads */
	out->v[5] = bpf_core_field_offset(struct task_struct___mine, pid);
	out->v[6] = bpf_core_field_size(struct task_struct___mine, flags);
	out->v[7] = bpf_core_field_exists(struct task_struct___mine, no_such_field);
	out->v[8] = bpf_core_field_exists(struct task_struct___mine, comm);
	if (bpf_core_field_exists(t->no_such_field))
		out->v[9] = t->no_such_field;				/* poisoned, dead */
	else
		out->v[9] = 42;
	out->v[10] = BPF_CORE_READ_BITFIELD_PROBED(pt, sched_reset_on_fork);
	out->v[11] = BPF_CORE_READ_BITFIELD(t, sched_reset_on_fork);
	out->v[12] = BPF_CORE_READ_BITFIELD_PROBED(bt, tgid);
	out->v[13] = bpf_core_type_exists(struct core_no_such_type);
	out->v[14] = bpf_core_type_exists(struct task_struct___mine);
	out->v[15] = bpf_core_type_size(struct task_struct___mine);
	out->v[16] = bpf_core_type_id_kernel(struct task_struct___mine);
	out->v[17] = bpf_core_type_id_local(struct task_struct___mine);
	out->v[18] = bpf_core_type_matches(struct task_struct___mine);
	out->v[19] = bpf_core_type_matches(struct list_head___mine);
	out->v[20] = bpf_core_enum_value_exists(enum pid_type___mine, PIDTYPE_SID___mine);
	out->v[21] = bpf_core_enum_value(enum pid_type___mine, PIDTYPE_SID___mine);
	out->v[22] = bpf_core_enum_value_exists(enum pid_type___mine, PIDTYPE_NONE___mine);
	out->v[23] = bpf_core_field_offset(struct sk_buff___mine, len);
	out->v[24] = bpf_core_field_offset(struct sk_buff___mine, next);
	out->v[25] = bpf_core_field_offset(struct sk_buff___mine, protocol);
	out->v[26] = bpf_core_field_size(t->comm[0]);
	out->v[27] = bpf_core_field_exists(struct sk_buff___mine, pkt_type);
	return 0;
}

SEC("syscall")
int core_poisoned(struct core_out *out)
{
	struct task_struct___mine *t = (void *)bpf_get_current_task_btf();

	out->v[0] = t->no_such_field;					/* reachable: refused */
	return 0;
}

SEC("syscall")
int core_wide(struct core_out *out)
{
	struct task_struct___wide *t = (void *)bpf_get_current_task_btf();

	out->v[0] = t->pid;						/* 8-byte signed on 4 */
	return 0;
}

SEC("syscall")
int core_enum_missing(struct core_out *out)
{
	out->v[0] = bpf_core_enum_value(enum pid_type___mine, PIDTYPE_NONE___mine);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
