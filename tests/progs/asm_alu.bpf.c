// Instruction-layer test program: ALU32/ALU64 arithmetic, shifts, byte swaps,
// signed and 32-bit compares, a real (not unrolled) loop and 64-bit constants.
// Built with -mcpu=v3 by tests/test_asm.py (jmp32 and alu32 need v3).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

volatile __u64 in_a = 0x1234567890ULL;
volatile __u64 in_b = 67;
volatile __s64 in_s = -42;
volatile __u32 in_w = 0xdeadbeef;
volatile __s32 in_sw = -1000;

__u64 out[48];

SEC("tracepoint/syscalls/sys_enter_getpid")
int alu_ops(void *ctx)
{
	__u64 a = in_a, b = in_b | 1;
	__s64 s = in_s;
	__u32 w = in_w, v = (__u32)b;
	__s32 sw = in_sw;

	out[0] = a + b;
	out[1] = a - b;
	out[2] = a * b;
	out[3] = a / b;
	out[4] = a % b;
	out[5] = a << (b & 63);
	out[6] = a >> (b & 63);
	out[7] = (__u64)(s >> (b & 63));
	out[8] = a & b;
	out[9] = a | b;
	out[10] = a ^ b;
	out[11] = (__u64)(-s);
	out[12] = ~a;
	out[13] = a / 10;
	out[14] = a % 1000;
	out[15] = s >> 3;

	out[16] = w + v;
	out[17] = w - v;
	out[18] = w * v;
	out[19] = w / v;
	out[20] = w % v;
	out[21] = w << (v & 31);
	out[22] = w >> (v & 31);
	out[23] = (__u32)(sw >> (v & 31));
	out[24] = (__u32)(-sw);
	out[25] = w ^ 0x5a5a5a5a;
	out[26] = w / 7;

	out[27] = bpf_htons((__u16)w);
	out[28] = bpf_htonl(w);
	out[29] = __builtin_bswap64(a);
	out[30] = bpf_ntohs((__u16)v);

	out[31] = a ^ 0x123456789abcdef0ULL;
	out[32] = 0xfedcba9876543210ULL;

	/* signed 64-bit compares */
	if (s < -5)
		out[33] = 1;
	if (s >= 1000)
		out[34] = 2;
	if ((__s64)a <= s)
		out[35] = 3;
	/* 32-bit compares (jmp32 with -mcpu=v3) */
	if (sw > 100)
		out[36] = 4;
	if (w < v)
		out[37] = 5;
	if ((w & 0xff) == 0x42)
		out[38] = 6;
	if (w & 0x10000)
		out[39] = 7;

	__u64 acc = 17;
#pragma clang loop unroll(disable)
	for (int i = 0; i < (int)(b & 15); i++)
		acc = acc * 31 + (a >> i);
	out[40] = acc;

	__u32 wacc = 3;
#pragma clang loop unroll(disable)
	for (__u32 i = 0; i < (v & 7); i++)
		wacc = (wacc << 1) ^ (w >> i);
	out[41] = wacc;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
