/* workingset.c — models a long-running program holding a steady working set
 * of small objects (a cache, a parse tree being edited, a connection table):
 * SLOTS live blocks (10,000 by default) of random size 16..512 bytes, one
 * replaced at random per step. Unlike pairs, the freed block is rarely the
 * next one handed out, so this measures free lists under a realistic mix of
 * size classes and a working set bigger than the L1 cache.
 *
 * usage: workingset STEPS [SLOTS]
 * Every block is tagged with its slot and generation and checked before it is
 * freed and at the end; a mismatch exits 1. ops = malloc/calloc calls made. */
#include "workingset.h"

int main(int argc, char **argv) {
    long steps = bench_arg(argc, argv, 1, 10000000);
    uint32_t slot_count = (uint32_t)bench_arg(argc, argv, 2, 10000);

    ws_slot *slots = bench_nonnull(calloc(slot_count, sizeof *slots), slot_count * sizeof *slots);
    bench_rng rng = {42};
    for (uint32_t i = 0; i < slot_count; i++)
        ws_fill(&slots[i], i, (size_t)bench_range(&rng, WS_MIN_SIZE, WS_MAX_SIZE));

    ws_steps(slots, slot_count, &rng, steps);

    uint64_t live_bytes = 0;
    for (uint32_t i = 0; i < slot_count; i++) {
        ws_check(&slots[i], i);
        live_bytes += slots[i].size;
        free(slots[i].block);
    }
    free(slots);
    printf("workingset steps=%ld slots=%u final_live_bytes=%llu ops=%llu\n", steps, slot_count,
           (unsigned long long)live_bytes,
           1 + (unsigned long long)slot_count + (unsigned long long)steps);
    return 0;
}
