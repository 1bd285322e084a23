// Corpus: typed per-CPU __ksym variables read with bpf_this_cpu_ptr and
// bpf_per_cpu_ptr.  The kernel resolves their address with
// kallsyms_lookup_name(), which finds data symbols only with
// CONFIG_KALLSYMS_ALL; without it the load fails naming the symbol.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

extern const struct rq runqueues __ksym;
extern const int bpf_prog_active __ksym;

struct percpu_out {
	__u32 cpu;
	__s32 rq_cpu;		/* this_rq()->cpu == current CPU */
	__s32 rq0_cpu;		/* per_cpu(runqueues, 0).cpu == 0 */
	__s32 active_readable;
};

struct percpu_out percpu_out = {};

SEC("raw_tp/sys_enter")
int read_percpu_ksyms(void *ctx)
{
	struct rq *rq = bpf_this_cpu_ptr(&runqueues);
	struct rq *rq0 = bpf_per_cpu_ptr(&runqueues, 0);
	const int *active = bpf_this_cpu_ptr(&bpf_prog_active);

	percpu_out.cpu = bpf_get_smp_processor_id();
	percpu_out.rq_cpu = rq->cpu;
	percpu_out.rq0_cpu = rq0 ? rq0->cpu : -1;
	percpu_out.active_readable = *active >= 0;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
