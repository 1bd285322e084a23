// Corpus: "usdt" with libbpf's <bpf/usdt.bpf.h>: its spec maps, static
// inline argument fetching and the LINUX_HAS_BPF_COOKIE __kconfig extern.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/usdt.bpf.h>

__u64 usdt_calls = 0;
__s64 usdt_sum_arg0 = 0;
__s64 usdt_sum_arg1 = 0;
__s64 usdt_arg_cnt = -1;

SEC("usdt")
int BPF_USDT(on_usdt, long x, long y)
{
	usdt_calls++;
	usdt_sum_arg0 += x;
	usdt_sum_arg1 += y;
	usdt_arg_cnt = bpf_usdt_arg_cnt(ctx);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
