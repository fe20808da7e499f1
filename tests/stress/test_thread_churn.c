/* test_thread_churn.c — proves that thread exit does not leak: 20,000 short
 * threads (4 at a time) each allocate ~50 blocks of mixed sizes plus one of
 * 64 KiB, free most of them, free a few blocks that earlier — by now exited —
 * threads left behind (cross-thread frees into abandoned heaps), and leave a
 * few of their own for later threads. The allocator's footprint (segments,
 * slabs, large bytes, RSS) sampled every 1,000 threads must stay flat: it
 * may not grow with the number of threads that have come and gone, and at
 * the end only a handful of segments may remain in use. A second run hands
 * blocks over without delay, 8 threads at a time, so that frees race with
 * the owner's exit. */
/* cmocka.h needs these first */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bulwark.h"
#include "bw_test.h"

#define CHURN_THREADS        20000u
#define CHURN_BATCH          4u /* threads alive at once */
#define CHURN_MAX_BATCH      8u
#define CHURN_RACE_THREADS   8000u
#define CHURN_SAMPLE_EVERY   1000u
#define CHURN_SAMPLES        (CHURN_THREADS / CHURN_SAMPLE_EVERY)
#define CHURN_SMALL_BLOCKS   50u
#define CHURN_SMALL_MIN      16u
#define CHURN_SMALL_MAX      4096u
#define CHURN_LARGE_SIZE     (64u * 1024u)
#define CHURN_LEFT_BEHIND    5u /* blocks each thread leaves for later threads */
/* Blocks stay in the hand-over queue until this many are queued, so by the
 * time a block is freed its owner exited ~40 threads earlier. */
#define CHURN_QUEUE_LAG      200u
#define CHURN_QUEUE_CAPACITY 1024u

/* Bounds. Growth is measured between the 5,000-thread and the 20,000-thread
 * samples: by 5,000 everything is warmed up, so a per-thread leak of even one
 * slab would show as 15,000 slabs (~940 MiB) of growth. Segments may grow by
 * a few without any slab more: slabs of up to 16 slots (the medium classes'
 * spans) come and go, and those in use spread over more segments (one fuzz
 * run went from 3 segments at 5,000 threads to 6 at 20,000 with 65 and then
 * 63 slabs); the slab, RSS and final-segment bounds catch a leak. */
#define CHURN_SEGMENT_GROWTH_SLACK 4u
#define CHURN_SLAB_GROWTH_SLACK    64u
#define CHURN_LARGE_GROWTH_SLACK   (4u << 20)
#define CHURN_RSS_GROWTH_SLACK     (16u << 20)
#define CHURN_FINAL_SEGMENTS_MAX   8u

typedef struct {
    void *ptr;
    size_t size;
    uint64_t seed;
} churn_block_t;

/* FIFO of blocks handed from thread to thread; a mutex is fine, it is taken
 * twice per thread. */
static struct {
    pthread_mutex_t lock;
    churn_block_t items[CHURN_QUEUE_CAPACITY];
    size_t head, count;
} handover = {.lock = PTHREAD_MUTEX_INITIALIZER};

static unsigned handover_lag = CHURN_QUEUE_LAG;
static atomic_ulong churn_failures;
static atomic_ulong cross_thread_frees;

static void churn_fail(const char *what, const void *ptr, size_t size) {
    if (atomic_fetch_add(&churn_failures, 1) < 10)
        fprintf(stderr, "churn: %s: block %p size %zu\n", what, ptr, size);
}

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void churn_block_free(churn_block_t *block) {
    if (!bw_check(block->ptr, block->size, block->seed))
        churn_fail("pattern damaged", block->ptr, block->size);
    free(block->ptr);
    block->ptr = NULL;
}

static void *churn_thread(void *arg) {
    uint64_t id = (uint64_t)(uintptr_t)arg;
    uint64_t rng = mix64(id + 1);
    churn_block_t blocks[CHURN_SMALL_BLOCKS + 1];

    for (unsigned i = 0; i < CHURN_SMALL_BLOCKS + 1; i++) {
        rng = mix64(rng);
        size_t size = i == CHURN_SMALL_BLOCKS
                          ? CHURN_LARGE_SIZE
                          : CHURN_SMALL_MIN + rng % (CHURN_SMALL_MAX - CHURN_SMALL_MIN + 1);
        blocks[i].ptr = malloc(size);
        if (blocks[i].ptr == NULL) {
            churn_fail("malloc returned NULL", NULL, size);
            return NULL;
        }
        blocks[i].size = size;
        blocks[i].seed = rng ^ id;
        bw_fill(blocks[i].ptr, size, blocks[i].seed);
    }

    /* Keep CHURN_LEFT_BEHIND blocks: four small ones, and the 64 KiB one in
     * every tenth thread (else a fifth small one), so large blocks also get
     * freed by a thread other than their owner. */
    churn_block_t keep[CHURN_LEFT_BEHIND];
    unsigned kept = 0;
    for (unsigned i = 0; i < CHURN_SMALL_BLOCKS + 1; i++) {
        bool keep_large = id % 10 == 0;
        bool keep_this =
            i == CHURN_SMALL_BLOCKS ? keep_large : (i % 10 == 3 && (i < 40 || !keep_large));
        if (keep_this && kept < CHURN_LEFT_BEHIND)
            keep[kept++] = blocks[i];
        else
            churn_block_free(&blocks[i]);
    }

    /* Free what earlier threads left, then leave ours. */
    churn_block_t inherited[CHURN_LEFT_BEHIND];
    unsigned taken = 0;
    pthread_mutex_lock(&handover.lock);
    while (taken < CHURN_LEFT_BEHIND && handover.count > handover_lag) {
        inherited[taken++] = handover.items[handover.head];
        handover.head = (handover.head + 1) % CHURN_QUEUE_CAPACITY;
        handover.count--;
    }
    for (unsigned i = 0; i < kept && handover.count < CHURN_QUEUE_CAPACITY; i++) {
        handover.items[(handover.head + handover.count) % CHURN_QUEUE_CAPACITY] = keep[i];
        handover.count++;
        keep[i].ptr = NULL;
    }
    pthread_mutex_unlock(&handover.lock);
    for (unsigned i = 0; i < taken; i++) churn_block_free(&inherited[i]);
    atomic_fetch_add(&cross_thread_frees, taken);
    for (unsigned i = 0; i < kept; i++) /* only if the queue was full */
        if (keep[i].ptr != NULL) churn_block_free(&keep[i]);
    return NULL;
}

typedef struct {
    unsigned threads;
    struct bw_stats stats;
    size_t rss;
    size_t maps;
} churn_sample_t;

static void take_sample(churn_sample_t *sample, unsigned threads) {
    sample->threads = threads;
    bw_get_stats(&sample->stats);
    sample->rss = bw_test_rss_bytes();
    sample->maps = bw_test_map_count();
}

static void print_sample(const churn_sample_t *s) {
    print_message("%6u threads: segments=%zu slabs=%zu abandoned=%zu heaps=%zu large_in_use=%zu "
                  "large_cached=%zu rss=%zu KiB maps=%zu\n",
                  s->threads, s->stats.segments_in_use, s->stats.slabs_in_use,
                  s->stats.slabs_abandoned, s->stats.heaps_live, s->stats.large_in_use_bytes,
                  s->stats.large_cached_bytes, s->rss >> 10, s->maps);
}

/* Runs thread_count threads, batch at a time, sampling every
 * CHURN_SAMPLE_EVERY threads into samples[1..]; then the main thread frees
 * whatever is still queued (blocks of long-gone threads), so that no block of
 * the run is live, and samples into *drained. Returns the time taken in ms. */
static long run_churn(unsigned thread_count, unsigned batch, unsigned lag, churn_sample_t *samples,
                      churn_sample_t *drained) {
    struct timespec t0, t1;
    pthread_t threads[CHURN_MAX_BATCH];

    assert_true(batch <= CHURN_MAX_BATCH && thread_count % batch == 0);
    handover_lag = lag; /* read by threads created below: pthread_create orders it */
    atomic_store(&churn_failures, 0);
    atomic_store(&cross_thread_frees, 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    take_sample(&samples[0], 0);
    for (unsigned started = 0; started < thread_count; started += batch) {
        for (unsigned i = 0; i < batch; i++)
            assert_int_equal(
                pthread_create(&threads[i], NULL, churn_thread, (void *)(uintptr_t)(started + i)),
                0);
        for (unsigned i = 0; i < batch; i++) assert_int_equal(pthread_join(threads[i], NULL), 0);
        unsigned done = started + batch;
        if (done % CHURN_SAMPLE_EVERY == 0) take_sample(&samples[done / CHURN_SAMPLE_EVERY], done);
    }
    while (handover.count > 0) {
        churn_block_free(&handover.items[handover.head]);
        handover.head = (handover.head + 1) % CHURN_QUEUE_CAPACITY;
        handover.count--;
    }
    take_sample(drained, thread_count);
    clock_gettime(CLOCK_MONOTONIC, &t1);

    for (unsigned i = 0; i <= thread_count / CHURN_SAMPLE_EVERY; i++) print_sample(&samples[i]);
    print_message("after draining the hand-over queue:\n");
    print_sample(drained);
    long ms = (long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
    print_message("%u threads (%u at a time, hand-over lag %u blocks), %lu cross-thread frees, "
                  "%ld ms\n",
                  thread_count, batch, lag, atomic_load(&cross_thread_frees), ms);
    return ms;
}

static void thread_churn(void **state) {
    static churn_sample_t samples[CHURN_SAMPLES + 1];
    churn_sample_t drained;

    run_churn(CHURN_THREADS, CHURN_BATCH, CHURN_QUEUE_LAG, samples, &drained);
    assert_int_equal(atomic_load(&churn_failures), 0);
    assert_true(atomic_load(&cross_thread_frees) > CHURN_THREADS);

    const churn_sample_t *at5k = &samples[5000 / CHURN_SAMPLE_EVERY];
    const churn_sample_t *at20k = &samples[CHURN_SAMPLES];
    assert_true(at20k->stats.segments_in_use <=
                at5k->stats.segments_in_use + CHURN_SEGMENT_GROWTH_SLACK);
    assert_true(at20k->stats.slabs_in_use <= at5k->stats.slabs_in_use + CHURN_SLAB_GROWTH_SLACK);
    assert_true(at20k->stats.large_in_use_bytes <=
                at5k->stats.large_in_use_bytes + CHURN_LARGE_GROWTH_SLACK);
    assert_true(at20k->rss <= at5k->rss + CHURN_RSS_GROWTH_SLACK);
    assert_true(drained.stats.segments_in_use <= CHURN_FINAL_SEGMENTS_MAX);
}

/* No lag and more threads at once: a block is usually freed while the thread
 * that allocated it is still running or in the middle of exiting, so remote
 * frees race with heap abandonment. */
static void thread_churn_racing_exit(void **state) {
    static churn_sample_t samples[CHURN_RACE_THREADS / CHURN_SAMPLE_EVERY + 1];
    churn_sample_t drained;

    run_churn(CHURN_RACE_THREADS, CHURN_MAX_BATCH, 0, samples, &drained);
    assert_int_equal(atomic_load(&churn_failures), 0);
    assert_true(atomic_load(&cross_thread_frees) > CHURN_RACE_THREADS);
    assert_true(drained.stats.segments_in_use <= CHURN_FINAL_SEGMENTS_MAX);
}

int main(void) {
    if (!bw_is_bulwark_loaded()) {
        fprintf(stderr, "test_thread_churn: malloc is not bulwark's; refusing to test glibc\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(thread_churn),
        cmocka_unit_test(thread_churn_racing_exit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
