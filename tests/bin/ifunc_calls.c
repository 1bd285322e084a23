/* Test target for IFUNC probes: calls strlen N times and memcpy M times.
 *
 * usage: ifunc_calls N M
 *   waits for one byte on stdin first (read(2), no stdio: stdio calls memcpy
 *   and strlen itself), so a test can attach with pid= after the start-up,
 *   then makes exactly N strlen and M memcpy calls through volatile function
 *   pointers (no inlining, no constant folding) and leaves with _exit(2)
 *   (no exit handlers that could call them too).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

size_t (*volatile strlen_fn)(const char *) = strlen;
void *(*volatile memcpy_fn)(void *, const void *, size_t) = memcpy;

int main(int argc, char **argv)
{
	char go, src[64] = "pybpf ifunc target", dst[64];
	long n, m, total = 0;

	if (argc < 3)
		_exit(2);
	n = strtol(argv[1], NULL, 10);
	m = strtol(argv[2], NULL, 10);
	if (read(0, &go, 1) != 1)
		_exit(3);
	for (long i = 0; i < n; i++)
		total += strlen_fn(src);
	for (long i = 0; i < m; i++)
		memcpy_fn(dst, src, 1 + (i & 31));
	_exit(total == n * 18 ? 0 : 4);
}
