// bpf_time.so: how long a process spends inside bpf(2), by command.
//
//   LD_PRELOAD=bench/build/bpf_time.so BPF_TIME_OUT=/tmp/out PROGRAM...
//
// Wraps libc's syscall(): both libbpf and pybpf (through ctypes) make their
// bpf(2) calls with it.  At exit, writes one line per command seen:
// "cmd calls nanoseconds".  Used by bench/load_bench.py --kernel-time.
// Build: cc -O2 -shared -fPIC bench/c/bpf_time.c -ldl -o bench/build/bpf_time.so

#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>

#define MAX_CMD 64

static long long total_ns[MAX_CMD], calls[MAX_CMD];
static long (*real_syscall)(long, ...);

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

long syscall(long nr, ...)
{
	long a[6], res;
	long long t0;
	va_list ap;
	int i;

	va_start(ap, nr);
	for (i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (!real_syscall)
		real_syscall = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
	if (nr != SYS_bpf)
		return real_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
	t0 = now_ns();
	res = real_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
	if (a[0] >= 0 && a[0] < MAX_CMD) {
		total_ns[a[0]] += now_ns() - t0;
		calls[a[0]]++;
	}
	return res;
}

__attribute__((destructor)) static void report(void)
{
	const char *path = getenv("BPF_TIME_OUT");
	FILE *out = path ? fopen(path, "w") : stderr;
	int i;

	if (!out)
		return;
	for (i = 0; i < MAX_CMD; i++)
		if (calls[i])
			fprintf(out, "%d %lld %lld\n", i, calls[i], total_ns[i]);
	if (out != stderr)
		fclose(out);
}
