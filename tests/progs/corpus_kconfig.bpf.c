// Corpus: .kconfig externs: LINUX_KERNEL_VERSION, a bool (y), a tristate,
// an int, a string, and a __weak option the kernel does not have (0).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

extern unsigned int LINUX_KERNEL_VERSION __kconfig;
extern bool CONFIG_BPF_SYSCALL __kconfig;
extern bool CONFIG_BPF_JIT __kconfig;
extern enum libbpf_tristate CONFIG_BPF_LSM __kconfig __weak;
extern int CONFIG_HZ __kconfig;
extern char CONFIG_LOCALVERSION[64] __kconfig __weak;
extern int CONFIG_PYBPF_NO_SUCH_OPTION __kconfig __weak;
extern bool CONFIG_PYBPF_NO_SUCH_BOOL __kconfig __weak;

struct kconfig_out {
	__u32 kernel_version;
	__u32 bpf_syscall;
	__u32 bpf_jit;
	__u32 bpf_lsm;		/* TRI_YES = 1 */
	__u32 hz;
	__s32 missing_int;	/* 0 */
	__u32 missing_bool;	/* 0 */
	__u32 pad;
	char localversion[16];
};

struct kconfig_out kconfig_out = {};

SEC("syscall")
int read_kconfig(void *ctx)
{
	kconfig_out.kernel_version = LINUX_KERNEL_VERSION;
	kconfig_out.bpf_syscall = CONFIG_BPF_SYSCALL;
	kconfig_out.bpf_jit = CONFIG_BPF_JIT;
	kconfig_out.bpf_lsm = CONFIG_BPF_LSM;
	kconfig_out.hz = CONFIG_HZ;
	kconfig_out.missing_int = CONFIG_PYBPF_NO_SUCH_OPTION;
	kconfig_out.missing_bool = CONFIG_PYBPF_NO_SUCH_BOOL;
	__builtin_memcpy(kconfig_out.localversion, CONFIG_LOCALVERSION, 16);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
