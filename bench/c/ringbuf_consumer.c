// SPDX-License-Identifier: Apache-2.0
/*
 * The C anchor of bench/streams_bench.py: drain a pre-filled BPF ring buffer
 * with libbpf's ring_buffer__consume() and report how long it took.
 *
 *     ringbuf_consumer <map id | /sys/fs/bpf/pinned/path> <expected records>
 *
 * The map is opened by id (bpf_map_get_fd_by_id) or by pinned path
 * (bpf_obj_get), so it is the very ring buffer the Python side filled.  The
 * callback does what the Python callbacks of the bench do at most: read the
 * record's first u64 (its sequence number) and add it up.  Output, one
 * "name value" per line: records, ns (time spent in ring_buffer__consume),
 * sum.
 *
 * Build: cc -O2 -o ringbuf_consumer ringbuf_consumer.c -lbpf   (libbpf-dev 1.1)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

struct totals {
	unsigned long long records;
	unsigned long long sum;
};

static int on_record(void *ctx, void *data, size_t size)
{
	struct totals *t = ctx;
	unsigned long long seq = 0;

	if (size >= sizeof(seq))
		memcpy(&seq, data, sizeof(seq));
	t->records++;
	t->sum += seq;
	return 0;
}

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	struct totals totals = { 0, 0 };
	struct ring_buffer *rb;
	unsigned long long expected;
	long long t0, t1;
	int fd, n;

	if (argc != 3) {
		fprintf(stderr, "usage: %s <map id | pinned path> <expected records>\n", argv[0]);
		return 2;
	}
	expected = strtoull(argv[2], NULL, 10);
	if (argv[1][0] == '/')
		fd = bpf_obj_get(argv[1]);
	else
		fd = bpf_map_get_fd_by_id((unsigned int)strtoul(argv[1], NULL, 10));
	if (fd < 0) {
		fprintf(stderr, "open map %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	rb = ring_buffer__new(fd, on_record, &totals, NULL);
	if (!rb) {
		fprintf(stderr, "ring_buffer__new: %s\n", strerror(errno));
		return 1;
	}
	t0 = now_ns();
	while (totals.records < expected) {
		n = ring_buffer__consume(rb);
		if (n < 0) {
			fprintf(stderr, "ring_buffer__consume: %s\n", strerror(-n));
			return 1;
		}
		if (n == 0)
			break; /* the pre-filled buffer is empty */
	}
	t1 = now_ns();
	printf("records %llu\nns %lld\nsum %llu\n", totals.records, t1 - t0, totals.sum);
	ring_buffer__free(rb);
	return 0;
}
