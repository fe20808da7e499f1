/* window.c — models a program streaming through big buffers with only a few
 * alive at a time (a decoder keeping the last frames, a pipeline of I/O
 * chunks, a sliding window over a file): LIVE blocks (4 by default) of
 * 64 KiB .. 8 MiB (log-uniform); each step frees the oldest and allocates a
 * new one, every page of which is written once. With so few blocks live, what
 * the allocator does with a freed big block — unmap it, keep it mapped for
 * the next request, split or merge it — decides how many fresh pages (page
 * faults, zeroing) and system calls each replacement costs.
 *
 * usage: window REPLACEMENTS [LIVE]
 * One word per page is written with a value derived from the block's number
 * and the page's offset, and every one is checked before the block is freed;
 * a mismatch exits 1. ops = malloc/calloc calls made. */
#include "bench.h"

#define MIN_SIZE (64 * 1024)
#define MAX_SIZE (8 * 1024 * 1024)

/* A multiple of 16, so that the end word is never also a page's first word. */
static size_t random_size(bench_rng *rng) {
    return bench_log_range(rng, MIN_SIZE, MAX_SIZE) & ~(size_t)15;
}

int main(int argc, char **argv) {
    long replacements = bench_arg(argc, argv, 1, 2000);
    long live = bench_arg(argc, argv, 2, 4);

    bench_paged_block *window = bench_nonnull(calloc(live, sizeof *window), live * sizeof *window);
    bench_rng rng = {1978};
    uint64_t total_bytes = 0, ops = 1;
    for (long i = 0; i < live; i++) bench_paged_fill(&window[i], (uint64_t)i, random_size(&rng));
    ops += (uint64_t)live;
    for (long step = 0; step < replacements; step++) {
        /* The oldest block goes: blocks leave in the order they came. */
        bench_paged_block *oldest = &window[step % live];
        bench_paged_check_and_free(oldest);
        size_t size = random_size(&rng);
        bench_paged_fill(oldest, (uint64_t)(live + step), size);
        total_bytes += size;
        ops++;
    }
    for (long i = 0; i < live; i++) bench_paged_check_and_free(&window[i]);
    free(window);
    printf("window replacements=%ld live=%ld bytes=%llu ops=%llu\n", replacements, live,
           (unsigned long long)total_bytes, (unsigned long long)ops);
    return 0;
}
