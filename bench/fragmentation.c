/* fragmentation.c — models a program whose allocation pattern changes over
 * time (load a data set, transform it, move on to the next stage): phases
 * that each allocate MiB of blocks from one size mix and then free a random
 * 90% of them, leaving scattered survivors that pin the memory around them.
 * A later phase can only reuse that memory if the allocator can put its
 * (different) sizes there. Measures memory, not speed: the result line
 * reports peak RSS, RSS at the end with the survivors still live, and the
 * bytes actually live, so the overhead is final_rss_kb / live_kb.
 *
 * usage: fragmentation MIB_PER_PHASE [ROUNDS]
 * Phases per round: small (16..128 B), medium (256 B..4 KiB), big
 * (8..64 KiB), small again. After the last phase the program sleeps 300 ms
 * and then does a short burst of mixed allocations, so that allocators that
 * return memory after a delay, or on their next slow path, get to do so
 * before the final RSS is read. Every block is tagged and checked before it
 * is freed; a bad tag exits 1. ops = malloc/realloc calls made. */
#include <time.h>

#include "bench.h"

typedef struct {
    void *block;
    size_t size;
    uint64_t id;
} live_block;

static live_block *survivors;
static size_t survivor_count, survivor_capacity;
static uint64_t next_id, live_bytes;
static uint64_t allocation_calls; /* malloc/realloc calls, for ops= */

static void keep(live_block kept) {
    if (survivor_count == survivor_capacity) {
        survivor_capacity = survivor_capacity ? survivor_capacity * 2 : 4096;
        survivors = bench_nonnull(realloc(survivors, survivor_capacity * sizeof *survivors),
                                  survivor_capacity * sizeof *survivors);
        allocation_calls++;
    }
    survivors[survivor_count++] = kept;
}

static void check_and_free(live_block *entry) {
    BENCH_CHECK(bench_tag_ok(entry->block, entry->size, entry->id),
                "block %llu (%zu bytes) was overwritten", (unsigned long long)entry->id,
                entry->size);
    free(entry->block);
}

/* Allocates phase_bytes of blocks of min_size..max_size (log-uniform),
 * touches each, then frees all but a random keep_percent of them. */
static void phase(bench_rng *rng, size_t phase_bytes, size_t min_size, size_t max_size,
                  unsigned keep_percent) {
    size_t capacity = phase_bytes / min_size + 1, count = 0, allocated = 0;
    live_block *blocks =
        bench_nonnull(malloc(capacity * sizeof *blocks), capacity * sizeof *blocks);
    allocation_calls++;
    while (allocated < phase_bytes && count < capacity) {
        size_t size = bench_log_range(rng, min_size, max_size);
        live_block entry = {bench_nonnull(malloc(size), size), size, next_id++};
        allocation_calls++;
        bench_tag(entry.block, size, entry.id);
        /* Touch the whole block: a program fills what it allocates. */
        if (size > 32) memset((char *)entry.block + 8, (int)(entry.id & 0xff), size - 16);
        blocks[count++] = entry;
        allocated += size;
    }
    for (size_t i = 0; i < count; i++) {
        if (bench_range(rng, 0, 99) < keep_percent) {
            keep(blocks[i]);
            live_bytes += blocks[i].size;
        } else {
            check_and_free(&blocks[i]);
        }
    }
    free(blocks);
}

int main(int argc, char **argv) {
    size_t phase_bytes = (size_t)bench_arg(argc, argv, 1, 64) << 20;
    long rounds = bench_arg(argc, argv, 2, 1);

    bench_rng rng = {555};
    for (long round = 0; round < rounds; round++) {
        phase(&rng, phase_bytes, 16, 128, 10);
        phase(&rng, phase_bytes, 256, 4096, 10);
        phase(&rng, phase_bytes, 8192, 65536, 10);
        phase(&rng, phase_bytes, 16, 128, 10);
    }

    struct timespec settle = {0, 300 * 1000 * 1000};
    nanosleep(&settle, NULL);
    for (int i = 0; i < 1000; i++) {
        size_t size = bench_log_range(&rng, 16, 65536);
        void *block = bench_nonnull(malloc(size), size);
        allocation_calls++;
        memset(block, 1, size);
        free(block);
    }

    long final_rss_kb = bench_status_kb("VmRSS");
    long peak_rss_kb = bench_status_kb("VmHWM");
    for (size_t i = 0; i < survivor_count; i++) check_and_free(&survivors[i]);
    free(survivors);
    printf("fragmentation mib_per_phase=%zu rounds=%ld peak_rss_kb=%ld final_rss_kb=%ld "
           "live_kb=%llu ops=%llu\n",
           phase_bytes >> 20, rounds, peak_rss_kb, final_rss_kb,
           (unsigned long long)(live_bytes >> 10), (unsigned long long)allocation_calls);
    return 0;
}
