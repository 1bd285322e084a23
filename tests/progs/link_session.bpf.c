// Session programs (libbpf 1.5): one program runs at the entry and at the
// return of each call.  uprobe.session needs Linux 6.12, kprobe.session 6.10.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

extern bool bpf_session_is_return(void) __ksym __weak;
extern __u64 *bpf_session_cookie(void) __ksym __weak;

#define MARK 0xC0DE000000000000ULL

/* Indexed by the attach cookie: [cookie][0] entries, [1] returns, [2] returns
 * whose session cookie held the mark the entry wrote, [3] sum of the
 * arguments the entries saved and the returns read back. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} session_counts SEC(".maps");

const volatile __u32 target_tgid;

static void add(__u32 slot, __u64 value)
{
	__u64 *v = bpf_map_lookup_elem(&session_counts, &slot);

	if (v)
		__sync_fetch_and_add(v, value);
}

static int session(struct pt_regs *ctx)
{
	__u32 base = (__u32)bpf_get_attach_cookie(ctx) * 4;
	__u64 *cookie;

	if (bpf_get_current_pid_tgid() >> 32 != target_tgid || base >= 16)
		return 0;
	cookie = bpf_session_cookie();
	if (!bpf_session_is_return()) {
		add(base, 1);
		*cookie = MARK | (__u32)PT_REGS_PARM1(ctx);
		return base == 8;	/* cookie 2: non-zero skips this call's return */
	}
	add(base + 1, 1);
	if ((*cookie & 0xFFFF000000000000ULL) == MARK) {
		add(base + 2, 1);
		add(base + 3, (__u32)*cookie);
	}
	return 0;
}

SEC("uprobe.session")
int on_usession(struct pt_regs *ctx)
{
	return session(ctx);
}

SEC("kprobe.session")
int on_ksession(struct pt_regs *ctx)
{
	return session(ctx);
}

char LICENSE[] SEC("license") = "GPL";
