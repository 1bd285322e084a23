/* libbpf's per-probe uprobe attach, for bench/attach_bench.py.
 *
 * usage: attach_bench <bpf object> <target binary> <symbol prefix> <count>
 *
 * Opens and loads the object (its first program must be a uprobe program),
 * then attaches it to <prefix>0000 ... <prefix><count-1> of <target> with
 * bpf_program__attach_uprobe_opts(), one call per function, each with its
 * own BPF cookie; libbpf resolves the function name in the ELF file on every
 * call.  Prints one line: "attach_ms=<float> detach_ms=<float>".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <bpf/libbpf.h>

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int quiet(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_WARN)
		return vfprintf(stderr, fmt, args);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s OBJECT TARGET PREFIX COUNT\n", argv[0]);
		return 2;
	}
	const char *object_path = argv[1], *target = argv[2], *prefix = argv[3];
	int count = atoi(argv[4]);

	libbpf_set_print(quiet);
	struct bpf_object *obj = bpf_object__open_file(object_path, NULL);
	if (!obj) {
		fprintf(stderr, "open %s: %s\n", object_path, strerror(errno));
		return 1;
	}
	if (bpf_object__load(obj)) {
		fprintf(stderr, "load %s: %s\n", object_path, strerror(errno));
		return 1;
	}
	struct bpf_program *prog = bpf_object__next_program(obj, NULL);
	struct bpf_link **links = calloc(count, sizeof(*links));
	char name[64];

	double start = now_ms();
	for (int i = 0; i < count; i++) {
		LIBBPF_OPTS(bpf_uprobe_opts, opts, .func_name = name, .bpf_cookie = (unsigned long long)i);
		snprintf(name, sizeof(name), "%s%04d", prefix, i);
		links[i] = bpf_program__attach_uprobe_opts(prog, -1, target, 0, &opts);
		if (!links[i]) {
			fprintf(stderr, "attach %s: %s\n", name, strerror(errno));
			return 1;
		}
	}
	double attached = now_ms();
	for (int i = 0; i < count; i++)
		bpf_link__destroy(links[i]);
	double detached = now_ms();

	printf("attach_ms=%.3f detach_ms=%.3f\n", attached - start, detached - attached);
	free(links);
	bpf_object__close(obj);
	return 0;
}
