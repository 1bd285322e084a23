// Malformed on purpose: a relocation against an undefined symbol that is neither
// __kconfig nor __ksym, so the loader has nothing to resolve it with.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

extern int pybpf_undefined_counter;

SEC("xdp")
int uses_undefined(struct xdp_md *ctx)
{
	return pybpf_undefined_counter;
}

char LICENSE[] SEC("license") = "GPL";
