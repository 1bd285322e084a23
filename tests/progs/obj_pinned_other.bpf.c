// The map of obj_pinned.bpf.c with another max_entries: incompatible with its pin.
#define PINNED_MAX 32
#include "obj_pinned.bpf.c"
