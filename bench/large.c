/* large.c — models programs that allocate big buffers for a short time (I/O
 * buffers, decoded images, temporary matrices): blocks of 64 KiB .. 32 MiB
 * (log-uniform) in a small pool of 8 live slots, one replaced at random per
 * step. Every page of a new block is touched, as a program filling a buffer
 * would, so the cost of fresh mappings (page faults, zeroing) and the benefit
 * of reusing cached memory both show.
 *
 * usage: large STEPS [SLOTS]
 * One word per page is written with a value derived from the block's id and
 * page index and checked before the block is freed; a mismatch exits 1.
 * ops = malloc/calloc calls made. */
#include "bench.h"

#define MIN_SIZE (64 * 1024)
#define MAX_SIZE (32 * 1024 * 1024)

/* A multiple of 16, so that the end word is never also a page's first word. */
static size_t random_size(bench_rng *rng) {
    return bench_log_range(rng, MIN_SIZE, MAX_SIZE) & ~(size_t)15;
}

int main(int argc, char **argv) {
    long steps = bench_arg(argc, argv, 1, 2000);
    long slot_count = bench_arg(argc, argv, 2, 8);

    bench_paged_block *slots =
        bench_nonnull(calloc(slot_count, sizeof *slots), slot_count * sizeof *slots);
    bench_rng rng = {31337};
    uint64_t total_bytes = 0;
    for (long i = 0; i < slot_count; i++)
        bench_paged_fill(&slots[i], (uint64_t)i, random_size(&rng));
    for (long step = 0; step < steps; step++) {
        bench_paged_block *slot = &slots[bench_range(&rng, 0, slot_count - 1)];
        bench_paged_check_and_free(slot);
        size_t size = random_size(&rng);
        bench_paged_fill(slot, (uint64_t)(slot_count + step), size);
        total_bytes += size;
    }
    for (long i = 0; i < slot_count; i++) bench_paged_check_and_free(&slots[i]);
    free(slots);
    printf("large steps=%ld slots=%ld bytes=%llu ops=%llu\n", steps, slot_count,
           (unsigned long long)total_bytes,
           1 + (unsigned long long)slot_count + (unsigned long long)steps);
    return 0;
}
