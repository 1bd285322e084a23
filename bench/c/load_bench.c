// load_bench: time libbpf's bpf_object__open_file + bpf_object__load + close.
//
//   load_bench OBJECT ITERATIONS
//
// Prints "name value" lines (nanoseconds): first_open/first_load/first_close
// (the first iteration, cold), then the median and the minimum of the others
// for open, load, close and total, and cpu_mean: the process's CPU time (user
// and system) per iteration over the others.  Used by bench/load_bench.py.
// Build: cc -O2 bench/c/load_bench.c -lbpf -lelf -lz -o bench/build/load_bench

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bpf/libbpf.h>

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int silent(enum libbpf_print_level level, const char *fmt, va_list args)
{
	return 0;
}

static int cmp(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return x < y ? -1 : x > y;
}

static void report(const char *name, long long *v, int n)
{
	qsort(v, n, sizeof(*v), cmp);
	printf("%s_median %lld\n", name, v[n / 2]);
	printf("%s_min %lld\n", name, v[0]);
}

int main(int argc, char **argv)
{
	long long *open_t, *load_t, *close_t, *total_t, cpu0 = 0;
	int n, i;

	if (argc != 3 || (n = atoi(argv[2])) < 2) {
		fprintf(stderr, "usage: %s OBJECT ITERATIONS(>=2)\n", argv[0]);
		return 2;
	}
	libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
	libbpf_set_print(silent);
	open_t = calloc(n, sizeof(*open_t));
	load_t = calloc(n, sizeof(*load_t));
	close_t = calloc(n, sizeof(*close_t));
	total_t = calloc(n, sizeof(*total_t));
	for (i = 0; i < n; i++) {
		long long t0, t1, t2, t3;
		struct bpf_object *obj;
		int err;

		if (i == 1)
			cpu0 = cpu_ns();
		t0 = now_ns();
		obj = bpf_object__open_file(argv[1], NULL);
		if (libbpf_get_error(obj)) {
			fprintf(stderr, "open %s failed\n", argv[1]);
			return 1;
		}
		t1 = now_ns();
		err = bpf_object__load(obj);
		t2 = now_ns();
		bpf_object__close(obj);
		t3 = now_ns();
		if (err) {
			fprintf(stderr, "load %s failed: %d\n", argv[1], err);
			return 1;
		}
		open_t[i] = t1 - t0;
		load_t[i] = t2 - t1;
		close_t[i] = t3 - t2;
		total_t[i] = t3 - t0;
	}
	printf("first_open %lld\nfirst_load %lld\nfirst_close %lld\nfirst_total %lld\n",
	       open_t[0], load_t[0], close_t[0], total_t[0]);
	report("open", open_t + 1, n - 1);
	report("load", load_t + 1, n - 1);
	report("close", close_t + 1, n - 1);
	report("total", total_t + 1, n - 1);
	printf("cpu_mean %lld\n", (cpu_ns() - cpu0) / (n - 1));
	return 0;
}
