/* Workload for the exporter tests: an exact number of calls of each function.
 *
 * usage: exporter_target ALPHA BETA SLOW GETPPID [wait]
 *   calls alpha() ALPHA times, beta() BETA times, slow() SLOW times (each
 *   sleeps 1 ms) and the getppid system call GETPPID times.  With "wait",
 *   reads one line from stdin first, so the test can set up probes on this
 *   process before any call.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

volatile long sink;

__attribute__((noinline)) long alpha(long x)
{
	sink += x;
	__asm__ volatile("" ::: "memory");
	return sink;
}

__attribute__((noinline)) long beta(long x)
{
	sink -= x;
	__asm__ volatile("" ::: "memory");
	return sink;
}

__attribute__((noinline)) long slow(long x)
{
	struct timespec ms = { .tv_sec = 0, .tv_nsec = 1000000 };
	nanosleep(&ms, NULL);
	sink ^= x;
	__asm__ volatile("" ::: "memory");
	return sink;
}

int main(int argc, char **argv)
{
	if (argc < 5)
		return 2;
	long n_alpha = atol(argv[1]), n_beta = atol(argv[2]), n_slow = atol(argv[3]), n_getppid = atol(argv[4]);
	if (argc > 5 && strcmp(argv[5], "wait") == 0) {
		char line[16];
		if (!fgets(line, sizeof(line), stdin))
			return 2;
	}
	for (long i = 0; i < n_alpha; i++)
		alpha(i);
	for (long i = 0; i < n_beta; i++)
		beta(i);
	for (long i = 0; i < n_slow; i++)
		slow(i);
	for (long i = 0; i < n_getppid; i++)
		syscall(SYS_getppid);
	return 0;
}
