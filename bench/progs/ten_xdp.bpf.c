// bench/load_bench.py: ten XDP programs sharing an array map, .rodata/.bss and
// one subprogram (a copy of tests/progs/obj_many.bpf.c).  Unlike ten_progs and
// core_task nothing here needs the kernel's BTF (no CO-RE, no tracing target,
// no kprobe), so libbpf does not re-read vmlinux BTF on every load either: the
// comparison is of the bare loaders (ELF, BTF, relocations, maps, program loads).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

const volatile __u32 bias = 0;
__u64 total = 0;

static __noinline int count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&hits, &slot);

	if (v)
		__sync_fetch_and_add(v, 1);
	total++;
	return slot + bias;
}

#define PROG(n)						\
SEC("xdp")						\
int prog_##n(struct xdp_md *ctx)			\
{							\
	return count(n) == (n) + bias ? XDP_PASS : XDP_DROP; \
}

PROG(0) PROG(1) PROG(2) PROG(3) PROG(4) PROG(5) PROG(6) PROG(7) PROG(8) PROG(9)

char LICENSE[] SEC("license") = "GPL";
