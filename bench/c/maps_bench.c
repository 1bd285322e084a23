// The C/libbpf side of bench/maps_bench.py: the same map operations, timed
// the same way, so the Python script can print pybpf/C ratios.
//
//   maps_bench ENTRIES BATCH_SIZE REPEATS SLICES
//
// creates a hash map of ENTRIES u32 -> u64 entries, fills it, then visits
// every key once in a scrambled order, REPEATS times, timing SLICES equal
// slices of that order separately, and prints the best slice (machines are
// shared: the minimum is the least disturbed measurement):
//   lookup_ns   <ns per bpf_map_lookup_elem>
//   update_ns   <ns per bpf_map_update_elem of an existing key>
//   batch_ns    <ns per entry of a full bpf_map_lookup_batch walk>
//   batch_count <entries the walk returned>

#include <bpf/bpf.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

// The order both sides visit keys in: a multiplicative scramble of 0..n-1.
static uint32_t scrambled(uint32_t i, uint32_t n)
{
	return (uint32_t)(((uint64_t)i * 2654435761u) % n);
}

static volatile uint64_t sink;

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s ENTRIES BATCH_SIZE REPEATS SLICES\n", argv[0]);
		return 2;
	}
	uint32_t n = strtoul(argv[1], NULL, 0);
	uint32_t batch = strtoul(argv[2], NULL, 0);
	int repeats = atoi(argv[3]);
	uint32_t slices = strtoul(argv[4], NULL, 0);
	uint32_t per_slice = n / slices;

	int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "bench_c", 4, 8, n, NULL);
	if (fd < 0) {
		fprintf(stderr, "bpf_map_create: %s\n", strerror(errno));
		return 1;
	}
	for (uint32_t k = 0; k < n; k++) {
		uint64_t v = k;
		if (bpf_map_update_elem(fd, &k, &v, BPF_ANY)) {
			fprintf(stderr, "fill: %s\n", strerror(errno));
			return 1;
		}
	}

	uint32_t *keys = malloc(sizeof(*keys) * batch);
	uint64_t *values = malloc(sizeof(*values) * batch);
	double best_lookup = 1e18, best_update = 1e18, best_batch = 1e18;
	uint64_t batch_count = 0;

	for (int r = 0; r < repeats; r++) {
		for (uint32_t sl = 0; sl < slices; sl++) {
			uint32_t lo = sl * per_slice, hi = lo + per_slice;
			uint64_t sum = 0;
			double t0 = now_ns();
			for (uint32_t i = lo; i < hi; i++) {
				uint32_t k = scrambled(i, n);
				uint64_t v;
				if (bpf_map_lookup_elem(fd, &k, &v) == 0)
					sum += v;
			}
			double t1 = now_ns();
			sink = sum;
			if ((t1 - t0) / per_slice < best_lookup)
				best_lookup = (t1 - t0) / per_slice;

			t0 = now_ns();
			for (uint32_t i = lo; i < hi; i++) {
				uint32_t k = scrambled(i, n);
				uint64_t v = i;
				bpf_map_update_elem(fd, &k, &v, BPF_ANY);
			}
			t1 = now_ns();
			if ((t1 - t0) / per_slice < best_update)
				best_update = (t1 - t0) / per_slice;
		}

		uint32_t token = 0;
		uint64_t total = 0;
		int first = 1;
		double t0 = now_ns();
		for (;;) {
			__u32 count = batch;
			int err = bpf_map_lookup_batch(fd, first ? NULL : &token, &token, keys, values, &count, NULL);
			first = 0;
			total += count;
			if (err) {
				if (errno == ENOENT)
					break;
				fprintf(stderr, "bpf_map_lookup_batch: %s\n", strerror(errno));
				return 1;
			}
		}
		double t1 = now_ns();
		batch_count = total;
		if ((t1 - t0) / total < best_batch)
			best_batch = (t1 - t0) / total;
	}

	printf("lookup_ns %.1f\nupdate_ns %.1f\nbatch_ns %.2f\nbatch_count %llu\n", best_lookup, best_update,
	       best_batch, (unsigned long long)batch_count);
	return 0;
}
