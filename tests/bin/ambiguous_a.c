/* Two files with a static function of the same name (see ambiguous_b.c). */
static __attribute__((noinline)) int helper(int x) { return x + 1; }
int call_a(int x) { return helper(x); }
int call_b(int x);
int main(int argc, char **argv) { (void)argv; return call_a(argc) + call_b(argc); }
