// Malformed on purpose: code in a section whose name is no known program type.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("pybpf_not_a_hook")
int in_unknown_section(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
