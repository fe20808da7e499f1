/* falseshare.c — models threads that each keep allocating small private
 * objects and writing them hard (the shape of cache-scratch and
 * cache-thrash). If the allocator hands two threads blocks in the same cache
 * line, every write by one thread evicts the other's line: the program
 * slows down by an order of magnitude though it shares nothing.
 *
 * usage: falseshare ROUNDS_PER_THREAD [THREADS] [WRITES]
 * As in cache-scratch, the main thread first allocates one small block per
 * thread (so they are adjacent) and each thread starts by freeing the block
 * it was given — an allocator that recycles that block to the thread puts
 * the threads on one cache line. Then each thread repeatedly allocates an
 * 8..64-byte object, writes every byte of it WRITES times, checks the last
 * values and frees it. A wrong value exits 1. ops = malloc/calloc calls made. */
#include <pthread.h>

#include "bench.h"

static long rounds_per_thread, writes_per_object;

typedef struct {
    void *handed_block;
    uint64_t thread_index;
    uint64_t checksum;
} worker_state;

static void *worker(void *arg) {
    worker_state *state = arg;
    free(state->handed_block);
    bench_rng rng = {99 + state->thread_index};
    uint64_t checksum = 0;
    for (long round = 0; round < rounds_per_thread; round++) {
        size_t size = (size_t)bench_range(&rng, 8, 64);
        /* volatile: every write must reach memory, as the line ping-pong is
         * what this workload measures. */
        volatile unsigned char *object = bench_nonnull(malloc(size), size);
        for (long w = 0; w < writes_per_object; w++)
            for (size_t i = 0; i < size; i++) object[i] = (unsigned char)(object[i] * 0 + w + i);
        for (size_t i = 0; i < size; i++) {
            unsigned char expected = (unsigned char)(writes_per_object - 1 + i);
            BENCH_CHECK(object[i] == expected, "byte %zu of a %zu-byte object", i, size);
            checksum += object[i];
        }
        free((void *)object);
    }
    state->checksum = checksum;
    return NULL;
}

int main(int argc, char **argv) {
    rounds_per_thread = bench_arg(argc, argv, 1, 200000);
    long threads = bench_arg(argc, argv, 2, 2);
    writes_per_object = bench_arg(argc, argv, 3, 100);

    worker_state *states = bench_nonnull(calloc(threads, sizeof *states), threads * sizeof *states);
    pthread_t *ids = bench_nonnull(malloc(threads * sizeof *ids), threads * sizeof *ids);
    for (long t = 0; t < threads; t++) {
        states[t].thread_index = (uint64_t)t;
        states[t].handed_block = bench_nonnull(malloc(8), 8);
    }
    for (long t = 0; t < threads; t++)
        BENCH_CHECK(pthread_create(&ids[t], NULL, worker, &states[t]) == 0, "create");
    uint64_t checksum = 0;
    for (long t = 0; t < threads; t++) {
        pthread_join(ids[t], NULL);
        checksum += states[t].checksum;
    }
    free(ids);
    free(states);
    printf("falseshare threads=%ld rounds=%ld writes=%ld checksum=%llu ops=%llu\n", threads,
           rounds_per_thread, writes_per_object, (unsigned long long)checksum,
           2 + (unsigned long long)threads * (1 + (unsigned long long)rounds_per_thread));
    return 0;
}
