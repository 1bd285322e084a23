/* A shared library with two versions of one function, for symbol-version tests.
 * Built by tests/test_symbols.py with -Wl,--version-script=versioned_lib.map. */

__attribute__((noinline)) int vfunc_old(int x) { return x + 1; }
__attribute__((noinline)) int vfunc_new(int x) { return x + 2; }
__attribute__((noinline)) int plain_func(int x) { return x * 3; }

__asm__(".symver vfunc_old, vfunc@PYBPF_1");
__asm__(".symver vfunc_new, vfunc@@PYBPF_2");
