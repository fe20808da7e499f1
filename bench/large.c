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
#define PAGE     4096

typedef struct {
    uint64_t *block;
    size_t size;
    uint64_t id;
} large_slot;

static void fill(large_slot *slot, uint64_t id, size_t size) {
    slot->block = bench_nonnull(malloc(size), size);
    slot->size = size;
    slot->id = id;
    for (size_t offset = 0; offset + 8 <= size; offset += PAGE)
        slot->block[offset / 8] = bench_tag_value(id, offset);
    /* and the very last word, which is rarely on a page boundary */
    slot->block[size / 8 - 1] = bench_tag_value(id, size);
}

static void check_and_free(large_slot *slot) {
    for (size_t offset = 0; offset + 8 <= slot->size; offset += PAGE)
        BENCH_CHECK(slot->block[offset / 8] == bench_tag_value(slot->id, offset),
                    "block %llu (%zu bytes) changed at offset %zu", (unsigned long long)slot->id,
                    slot->size, offset);
    BENCH_CHECK(slot->block[slot->size / 8 - 1] == bench_tag_value(slot->id, slot->size),
                "block %llu (%zu bytes) changed at its end", (unsigned long long)slot->id,
                slot->size);
    free(slot->block);
}

/* A multiple of 16, so that the end word is never also a page's first word. */
static size_t random_size(bench_rng *rng) {
    return bench_log_range(rng, MIN_SIZE, MAX_SIZE) & ~(size_t)15;
}

int main(int argc, char **argv) {
    long steps = bench_arg(argc, argv, 1, 2000);
    long slot_count = bench_arg(argc, argv, 2, 8);

    large_slot *slots =
        bench_nonnull(calloc(slot_count, sizeof *slots), slot_count * sizeof *slots);
    bench_rng rng = {31337};
    uint64_t total_bytes = 0;
    for (long i = 0; i < slot_count; i++) fill(&slots[i], (uint64_t)i, random_size(&rng));
    for (long step = 0; step < steps; step++) {
        large_slot *slot = &slots[bench_range(&rng, 0, slot_count - 1)];
        check_and_free(slot);
        size_t size = random_size(&rng);
        fill(slot, (uint64_t)(slot_count + step), size);
        total_bytes += size;
    }
    for (long i = 0; i < slot_count; i++) check_and_free(&slots[i]);
    free(slots);
    printf("large steps=%ld slots=%ld bytes=%llu ops=%llu\n", steps, slot_count,
           (unsigned long long)total_bytes,
           1 + (unsigned long long)slot_count + (unsigned long long)steps);
    return 0;
}
