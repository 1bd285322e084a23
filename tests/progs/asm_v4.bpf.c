// Instruction-layer test program for cpu v4 instructions: signed div/mod
// (sdiv/smod), sign-extending moves (movsx) and loads (ldsx), unconditional
// byte swaps (bswap).  Built with -mcpu=v4 by tests/test_asm.py; with an older
// -mcpu (build_all() uses clang's default, v1) only the unsigned part compiles.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

volatile __s64 in_s = -1000;
volatile __s32 in_w = -77;
volatile __s8 in_b = -3;
volatile __s16 in_h = -300;
volatile __u64 in_u = 0x1122334455667788ULL;

__s64 out[32];

SEC("tracepoint/syscalls/sys_enter_getpid")
int v4_ops(void *ctx)
{
	__s64 a = in_s;
	__s32 w = in_w | 1;
	__u64 u = in_u;

#if __BPF_CPU_VERSION__ >= 4
	out[0] = a / 7;
	out[1] = a % 7;
	out[2] = a / w;
	out[3] = a % w;
	out[4] = w / 3;
	out[5] = w % (w - 2);
	out[6] = in_b;
	out[7] = in_h;
	out[8] = in_w;
	out[9] = (__s8)a;
	out[10] = (__s16)a;
	out[11] = (__s32)a;
	out[12] = (__s8)w;
	out[13] = __builtin_bswap16((__u16)u);
	out[14] = __builtin_bswap32((__u32)u);
	out[15] = __builtin_bswap64(u);
#endif
	out[16] = __builtin_bswap64(u) + in_b;
	if (a < w)
		out[17] = 1;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
