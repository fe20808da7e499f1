/* icount_pair.c — the program `make bench-icount` and the callgrind
 * regression test run: warms the allocator up, then performs ITERS pairs of
 * malloc(SIZE)+free on the fast path inside bw_icount_loop, so that
 * callgrind's inclusive count of that function divided by ITERS is the
 * instructions per pair. Linked against nothing special: run it with
 * LD_PRELOAD to measure any allocator. */
#include <stdio.h>
#include <stdlib.h>

#define ITERS 100000

/* Keep the compiler from eliding the pair. */
static void *volatile bw_sink;

__attribute__((noinline)) void bw_icount_loop(size_t size, long iters);
__attribute__((noinline)) void bw_icount_loop(size_t size, long iters) {
    for (long i = 0; i < iters; i++) {
        void *p = malloc(size);
        bw_sink = p;
        free(p);
    }
}

int main(int argc, char **argv) {
    size_t size = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 32;
    bw_icount_loop(size, 1000); /* warm-up: first-use slow paths */
    bw_icount_loop(size, ITERS);
    printf("%zu\n", size);
    return 0;
}
