static __attribute__((noinline)) int helper(int x) { return x * 2; }
int call_b(int x) { return helper(x); }
