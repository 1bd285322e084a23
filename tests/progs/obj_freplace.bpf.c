// freplace: replaces pybpf_verdict() of obj_freplace_target.bpf.c with a
// function of the same prototype that drops every packet.  The target
// program is chosen at run time (ProgramSpec.set_attach_target).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

__u64 replaced_calls = 0;

SEC("freplace/pybpf_verdict")
int new_verdict(struct xdp_md *ctx)
{
	replaced_calls++;
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
