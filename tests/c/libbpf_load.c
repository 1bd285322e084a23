// libbpf_load: open a BPF object file with libbpf, load it, print one line of JSON.
//
//   libbpf_load OBJECT [PIN_ROOT [PACKET_HEX]]
//
// Output (always exactly one line on stdout, exit status 0 unless the
// arguments are wrong):
//   {"ok": true|false, "error": "...", "stage": "open"|"load"|"",
//    "programs": ["name", ...], "sections": ["sec", ...], "maps": ["name", ...],
//    "retvals": {"name": retval, ...}, "log": "last lines of libbpf's log"}
//
// With PACKET_HEX, every loaded XDP, tc and socket filter program is run once
// on that packet with BPF_PROG_TEST_RUN and its return value reported.
//
// Used by tests/test_libxdp.py as the reference outcome that pybpf must match.
// PIN_ROOT becomes bpf_object_open_opts.pin_root_path, so maps declared with
// LIBBPF_PIN_BY_NAME are pinned (or reused) there and not in /sys/fs/bpf.
// Build: cc -O2 tests/c/libbpf_load.c -lbpf -lelf -lz -o tests/progs/build/libbpf_load
// (tests/test_libxdp.py does it).

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#define LOG_CAP 16384

static char log_buf[LOG_CAP];
static size_t log_len;

// Keep the tail of libbpf's messages (warnings and the verifier log explain
// why a load failed).
static int collect(enum libbpf_print_level level, const char *fmt, va_list args)
{
	static char msg[1 << 20];
	const char *src = msg;
	int n;

	if (level == LIBBPF_DEBUG)
		return 0;
	n = vsnprintf(msg, sizeof(msg), fmt, args);
	if (n <= 0)
		return 0;
	if ((size_t)n >= sizeof(msg))
		n = sizeof(msg) - 1;
	if ((size_t)n >= LOG_CAP - 1) {		// keep the end of a huge message
		src += n - (LOG_CAP - 1);
		n = LOG_CAP - 1;
		log_len = 0;
	}
	if (log_len + (size_t)n >= LOG_CAP) {	// drop the oldest bytes
		size_t drop = log_len + (size_t)n - (LOG_CAP - 1);

		memmove(log_buf, log_buf + drop, log_len - drop);
		log_len -= drop;
	}
	memcpy(log_buf + log_len, src, (size_t)n);
	log_len += (size_t)n;
	log_buf[log_len] = '\0';
	return 0;
}

static void json_string(const char *s)
{
	putchar('"');
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c == '\n')
			fputs("\\n", stdout);
		else if (c == '\t')
			fputs("\\t", stdout);
		else if (c < 0x20 || c >= 0x7f)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void print_names(struct bpf_object *obj)
{
	struct bpf_program *prog;
	struct bpf_map *map;
	int first;

	fputs(", \"programs\": [", stdout);
	first = 1;
	bpf_object__for_each_program(prog, obj) {
		if (!first)
			fputs(", ", stdout);
		json_string(bpf_program__name(prog));
		first = 0;
	}
	fputs("], \"sections\": [", stdout);
	first = 1;
	bpf_object__for_each_program(prog, obj) {
		if (!first)
			fputs(", ", stdout);
		json_string(bpf_program__section_name(prog));
		first = 0;
	}
	fputs("], \"maps\": [", stdout);
	first = 1;
	bpf_object__for_each_map(map, obj) {
		if (!first)
			fputs(", ", stdout);
		json_string(bpf_map__name(map));
		first = 0;
	}
	putchar(']');
}

static unsigned char packet[4096];
static size_t packet_len;

static int parse_hex(const char *hex)
{
	size_t n = strlen(hex);
	unsigned int byte;

	if (n % 2 || n / 2 > sizeof(packet))
		return -1;
	for (packet_len = 0; packet_len < n / 2; packet_len++) {
		if (sscanf(hex + 2 * packet_len, "%2x", &byte) != 1)
			return -1;
		packet[packet_len] = (unsigned char)byte;
	}
	return 0;
}

static void print_retvals(struct bpf_object *obj)
{
	unsigned char out[4096 + 512];
	struct bpf_program *prog;
	int first = 1;

	fputs(", \"retvals\": {", stdout);
	bpf_object__for_each_program(prog, obj) {
		LIBBPF_OPTS(bpf_test_run_opts, run,
			.data_in = packet, .data_size_in = (unsigned int)packet_len,
			.data_out = out, .data_size_out = sizeof(out), .repeat = 1);
		enum bpf_prog_type type = bpf_program__type(prog);

		if (type != BPF_PROG_TYPE_XDP && type != BPF_PROG_TYPE_SCHED_CLS &&
		    type != BPF_PROG_TYPE_SOCKET_FILTER)
			continue;
		if (bpf_program__fd(prog) < 0 || bpf_prog_test_run_opts(bpf_program__fd(prog), &run))
			continue;
		if (!first)
			fputs(", ", stdout);
		json_string(bpf_program__name(prog));
		printf(": %u", run.retval);
		first = 0;
	}
	putchar('}');
}

static void finish(int ok, const char *stage, int err, struct bpf_object *obj)
{
	char msg[256] = "";

	if (!ok) {
		libbpf_strerror(err, msg, sizeof(msg));
		snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), " (errno %d)", err < 0 ? -err : err);
	}
	fputs("{\"ok\": ", stdout);
	fputs(ok ? "true" : "false", stdout);
	fputs(", \"error\": ", stdout);
	json_string(msg);
	fputs(", \"stage\": ", stdout);
	json_string(stage);
	if (obj)
		print_names(obj);
	else
		fputs(", \"programs\": [], \"sections\": [], \"maps\": []", stdout);
	if (obj && ok && packet_len)
		print_retvals(obj);
	else
		fputs(", \"retvals\": {}", stdout);
	fputs(", \"log\": ", stdout);
	json_string(log_buf);
	fputs("}\n", stdout);
}

int main(int argc, char **argv)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts);
	struct bpf_object *obj;
	int err;

	if (argc < 2 || argc > 4 || (argc == 4 && parse_hex(argv[3]))) {
		fprintf(stderr, "usage: %s OBJECT [PIN_ROOT [PACKET_HEX]]\n", argv[0]);
		return 2;
	}
	libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
	libbpf_set_print(collect);
	if (argc >= 3 && argv[2][0])
		opts.pin_root_path = argv[2];

	obj = bpf_object__open_file(argv[1], &opts);
	err = libbpf_get_error(obj);
	if (err) {
		finish(0, "open", err, NULL);
		return 0;
	}
	err = bpf_object__load(obj);
	finish(!err, err ? "load" : "", err, obj);
	bpf_object__close(obj);
	return 0;
}
