/* Test target for pybpf.links: two probe-able functions and USDT probes.
 *
 * usage: cookie_target N M [wait_fd]
 *   calls func_a N times and func_b M times, each call also hits the USDT
 *   probe pybpf_test:tick with (which, i, 1000+i); the semaphore-guarded
 *   probe pybpf_test:guarded fires only while a tracer holds its semaphore.
 *   With "wait" as third argument, reads one line from stdin before starting
 *   (so a test can attach with pid= first).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>

/* Semaphores (in .probes, as <sys/sdt.h> expects): a tracer attached to a
 * probe increments its semaphore through the uprobe ref_ctr_offset. */
__extension__ unsigned short pybpf_test_tick_semaphore __attribute__((unused)) __attribute__((section(".probes")));
__extension__ unsigned short pybpf_test_guarded_semaphore __attribute__((unused)) __attribute__((section(".probes")));

volatile long sink;
long guarded_hits;

__attribute__((noinline)) long func_a(long x)
{
	sink += x;
	__asm__ volatile("" ::: "memory");
	return sink;
}

__attribute__((noinline)) long func_b(long x)
{
	sink -= x;
	__asm__ volatile("" ::: "memory");
	return sink;
}

__attribute__((noinline)) long func_c(long x)
{
	sink ^= x;
	__asm__ volatile("" ::: "memory");
	return sink;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 3;
	long m = argc > 2 ? atol(argv[2]) : 5;
	if (argc > 3 && strcmp(argv[3], "wait") == 0) {
		char line[16];
		if (!fgets(line, sizeof(line), stdin))
			return 2;
	}
	for (long i = 0; i < n; i++) {
		func_a(i);
		int which = 1;
		long big = 1000 + i;
		STAP_PROBE3(pybpf_test, tick, which, i, big);
	}
	for (long i = 0; i < m; i++) {
		func_b(i);
		int which = 2;
		long big = 1000 + i;
		STAP_PROBE3(pybpf_test, tick, which, i, big);
	}
	for (long i = 0; i < n + m; i++) {
		if (pybpf_test_guarded_semaphore) {
			guarded_hits++;
			STAP_PROBE1(pybpf_test, guarded, i);
		}
	}
	printf("%ld\n", guarded_hits);
	return 0;
}
