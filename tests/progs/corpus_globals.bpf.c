// Corpus: global data in every section kind: .data, .bss, .rodata (plain
// const and const volatile), .data.<custom>, .rodata.<custom>, and static
// (file-local) variables.  One xdp program reads and updates them.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

__u64 g_data = 100;				/* .data */
__u64 g_bss;					/* .bss */
const volatile __u32 g_rodata_scale = 3;	/* .rodata, settable before load */
const __u32 g_rodata_table[4] = {11, 22, 33, 44};	/* .rodata, a constant table */
static __u32 g_static_counter;			/* .bss, not visible outside */
__u64 g_custom_data SEC(".data.custom") = 7;
const volatile __u32 g_custom_ro SEC(".rodata.custom") = 5;
__u32 g_custom_array[3] SEC(".data.custom") = {1, 2, 3};
char g_message[16] = "hello pybpf";

/* retval = (g_rodata_scale * first byte + g_rodata_table[first byte & 3]) + g_custom_ro */
SEC("xdp")
int use_globals(struct xdp_md *ctx)
{
	unsigned char *p = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 idx;

	if ((void *)(p + 1) > end)
		return 0;
	g_data += 1;
	g_bss += p[0];
	g_static_counter++;
	g_custom_data *= 2;
	idx = p[0] & 3;
	if (idx < 3)
		g_custom_array[idx] += 10;
	g_message[0] = 'H';
	return g_rodata_scale * p[0] + g_rodata_table[p[0] & 3] + g_custom_ro + g_static_counter * 0;
}

char LICENSE[] SEC("license") = "GPL";
