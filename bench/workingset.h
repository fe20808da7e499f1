/* workingset.h — the step of the working-set workload, shared by
 * workingset.c (timed) and icount_workingset.c (instruction count) so both
 * measure exactly the same thing: pick a random live block, check its tag,
 * free it, allocate a block of a random size 16..512 in its place, tag it. */
#ifndef WORKINGSET_H
#define WORKINGSET_H

#include "bench.h"

#define WS_MIN_SIZE 16
#define WS_MAX_SIZE 512

typedef struct {
    void *block;
    uint32_t size;
    uint32_t generation; /* how often this slot was refilled: part of the tag */
} ws_slot;

static inline void ws_fill(ws_slot *slot, uint64_t slot_index, size_t size) {
    slot->block = bench_nonnull(malloc(size), size);
    slot->size = (uint32_t)size;
    bench_tag(slot->block, size, slot_index << 32 | slot->generation);
}

static inline void ws_check(const ws_slot *slot, uint64_t slot_index) {
    BENCH_CHECK(bench_tag_ok(slot->block, slot->size, slot_index << 32 | slot->generation),
                "slot %llu (%u bytes, generation %u) was overwritten",
                (unsigned long long)slot_index, slot->size, slot->generation);
}

static inline __attribute__((always_inline)) void ws_steps(ws_slot *slots, uint32_t slot_count,
                                                           bench_rng *rng, long steps) {
    for (long i = 0; i < steps; i++) {
        uint32_t index = (uint32_t)bench_range(rng, 0, slot_count - 1);
        ws_slot *slot = &slots[index];
        ws_check(slot, index);
        free(slot->block);
        slot->generation++;
        ws_fill(slot, index, (size_t)bench_range(rng, WS_MIN_SIZE, WS_MAX_SIZE));
    }
}

#endif
