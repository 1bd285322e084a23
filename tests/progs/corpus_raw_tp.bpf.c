// Corpus: raw tracepoints ("raw_tp/..." and "raw_tracepoint/...").  Run with
// BPF_PROG_TEST_RUN and a ctx of u64 arguments.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

__u64 raw_tp_calls = 0;
__u64 raw_tp_last_id = 0;

/* sys_enter(struct pt_regs *regs, long id): returns id * 2 + 1 (low 32 bits) */
SEC("raw_tp/sys_enter")
int raw_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 id = ctx->args[1];

	raw_tp_calls++;
	raw_tp_last_id = id;
	return (int)(id * 2 + 1);
}

/* sched_process_exit(struct task_struct *p): sums the three arguments given */
SEC("raw_tracepoint/sched_process_exit")
int raw_sum_args(struct bpf_raw_tracepoint_args *ctx)
{
	return (int)(ctx->args[0] + ctx->args[1] + ctx->args[2]);
}

char LICENSE[] SEC("license") = "GPL";
