// Corpus: BPF iterators.  "iter/bpf_map" prints one line per map and
// "iter/task" counts tasks of the target process; the test reads the text.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

const volatile __u32 target_tgid = 0;
__u64 target_threads = 0;

SEC("iter/bpf_map")
int dump_maps(struct bpf_iter__bpf_map *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct bpf_map *map = ctx->map;

	if (!map)
		return 0;
	BPF_SEQ_PRINTF(seq, "map %u %u\n", map->id, map->max_entries);
	return 0;
}

SEC("iter/task")
int dump_tasks(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;

	if (!task) {
		BPF_SEQ_PRINTF(seq, "threads %llu\n", target_threads);
		return 0;
	}
	if (task->tgid == target_tgid) {
		target_threads++;
		BPF_SEQ_PRINTF(seq, "tid %d\n", task->pid);
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
