/* server.c — models a threaded server in the shape of the Larson benchmark:
 * worker threads share one table of live blocks (think requests and
 * connection state handed between threads); each operation allocates a block
 * of random size, swaps it into a random slot of the table and frees the
 * block it displaced — which another thread usually allocated, at a random
 * time earlier. So most frees are cross-thread and lifetimes are random.
 *
 * usage: server OPS_PER_THREAD [THREADS] [SLOTS]
 * Blocks are 16..1024 bytes (log-uniform). Every block carries its size and
 * a tag naming the thread and operation that made it in its first words and
 * a check word derived from both in its last word,
 * and checked by whichever thread frees it; the slot exchange is an atomic
 * swap, so no block can be freed twice or lost. A bad tag exits 1.
 * ops = malloc/calloc calls made. */
#include <pthread.h>
#include <stdatomic.h>

#include "bench.h"

#define MIN_SIZE 16
#define MAX_SIZE 1024

/* A block carries its size and its id in its header so the freeing thread
 * (which knows neither) can check the tag. */
typedef struct {
    uint64_t id;
    uint64_t size;
} block_header;

static _Atomic(block_header *) *table;
static uint32_t slot_count;
static long ops_per_thread;

static block_header *make_block(uint64_t id, size_t size) {
    block_header *block = bench_nonnull(malloc(size), size);
    block->id = id;
    block->size = size;
    /* The tag goes in the last word, when the block has one past its
     * header (16-byte blocks are all header). */
    if (size >= sizeof *block + 8) {
        uint64_t tag = bench_tag_value(id, size);
        memcpy((char *)block + size - 8, &tag, 8);
    }
    return block;
}

static void check_and_free(block_header *block) {
    uint64_t tag;
    BENCH_CHECK(block->size >= MIN_SIZE && block->size <= MAX_SIZE,
                "block %p has a corrupt size %llu", (void *)block, (unsigned long long)block->size);
    if (block->size >= sizeof *block + 8) {
        memcpy(&tag, (char *)block + block->size - 8, 8);
        BENCH_CHECK(tag == bench_tag_value(block->id, block->size),
                    "block %p (id %llx) was overwritten", (void *)block,
                    (unsigned long long)block->id);
    }
    free(block);
}

static void *worker(void *arg) {
    uint64_t thread_index = (uint64_t)(uintptr_t)arg;
    bench_rng rng = {1000 + thread_index};
    for (long op = 0; op < ops_per_thread; op++) {
        size_t size = bench_log_range(&rng, MIN_SIZE, MAX_SIZE);
        block_header *fresh = make_block(thread_index << 40 | (uint64_t)op, size);
        uint32_t slot = (uint32_t)bench_range(&rng, 0, slot_count - 1);
        block_header *old = atomic_exchange_explicit(&table[slot], fresh, memory_order_acq_rel);
        if (old != NULL) check_and_free(old);
    }
    return NULL;
}

int main(int argc, char **argv) {
    ops_per_thread = bench_arg(argc, argv, 1, 2000000);
    long threads = bench_arg(argc, argv, 2, 2);
    slot_count = (uint32_t)bench_arg(argc, argv, 3, 20000);

    table = bench_nonnull(calloc(slot_count, sizeof *table), slot_count * sizeof *table);
    pthread_t *ids = bench_nonnull(malloc(threads * sizeof *ids), threads * sizeof *ids);
    for (long t = 0; t < threads; t++)
        BENCH_CHECK(pthread_create(&ids[t], NULL, worker, (void *)(uintptr_t)t) == 0,
                    "pthread_create");
    for (long t = 0; t < threads; t++) pthread_join(ids[t], NULL);

    long live = 0;
    for (uint32_t i = 0; i < slot_count; i++) {
        block_header *block = atomic_load(&table[i]);
        if (block != NULL) {
            live++;
            check_and_free(block);
        }
    }
    free(ids);
    free((void *)table);
    printf("server threads=%ld ops_per_thread=%ld slots=%u live_at_end=%ld ops=%llu\n", threads,
           ops_per_thread, slot_count, live,
           2 + (unsigned long long)threads * (unsigned long long)ops_per_thread);
    return 0;
}
