// Corpus: __ksym variables that this kernel can resolve (it has no
// CONFIG_KALLSYMS_ALL, so only text symbols are in kallsyms): a typed
// function ksym (ld_imm64 BPF_PSEUDO_BTF_ID of a BTF FUNC), an untyped one
// (the loader reads /proc/kallsyms) and a missing __weak one (0).  The test
// compares the addresses with /proc/kallsyms.  Per-CPU data ksyms are in
// corpus_ksyms_percpu.bpf.c.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

extern void schedule(void) __ksym;			/* typed: BTF FUNC */
extern const void _stext __ksym;			/* untyped: address only */
extern const void pybpf_corpus_no_such_symbol __ksym __weak;	/* missing */

struct ksym_out {
	__u64 schedule_addr;
	__u64 stext_addr;
	__u64 missing_weak_addr;	/* 0 */
};

struct ksym_out ksym_out = {};

SEC("raw_tp/sys_enter")
int read_ksyms(void *ctx)
{
	ksym_out.schedule_addr = (__u64)&schedule;
	ksym_out.stext_addr = (__u64)&_stext;
	ksym_out.missing_weak_addr = (__u64)&pybpf_corpus_no_such_symbol;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
