/* test_threads.c — proves that bulwark stays correct when several threads use
 * it at once:
 *  - random_ops: 4 threads each run 200,000 random malloc/free/realloc
 *    operations on blocks of 1..2048 bytes (and now and then up to 256 KiB);
 *    every live block carries a seeded pattern that must be intact before it
 *    is freed or reallocated and must survive realloc (no block is handed to
 *    two owners, no block is corrupted by another thread's metadata work);
 *  - random_ops_with_trim: the same while a fifth thread calls malloc_trim(0)
 *    in a loop, so purging races with reuse of the slabs and mappings purged;
 *  - producer_consumer: 1,000,000 blocks allocated by one thread are checked
 *    and freed by another (remote frees), and afterwards the slabs they used
 *    are given back, not stranded on the exited producer's heap;
 *  - fork_while_threads_allocate: 50 forks while 4 threads hammer the
 *    allocator; every child can allocate (small, large, from a new thread),
 *    sees the blocks it inherited intact, and exits 0 — a lock left held
 *    across fork shows up as a child that does not exit within 20 s, which
 *    fails the test instead of hanging it. */
/* cmocka.h needs these first */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bulwark.h"
#include "bw_test.h"

/* ------------------------------------------------------------- helpers */

/* xorshift64*: cheap per-thread randomness, deterministic per seed so a
 * failing run can be replayed. */
typedef struct {
    uint64_t state;
} rng_t;

static uint64_t rng_next(rng_t *rng) {
    uint64_t x = rng->state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng->state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static size_t rng_below(rng_t *rng, size_t bound) {
    return (size_t)(rng_next(rng) % bound);
}

static rng_t rng_seeded(uint64_t seed) {
    /* splitmix64 step so that small consecutive seeds give unrelated streams */
    uint64_t z = seed + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    rng_t rng = {z ? z : 1};
    return rng;
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* cmocka's assertions must not run outside the main thread (they longjmp into
 * the test runner), so worker threads count failures here and the main
 * thread asserts the count is zero after joining them. */
static atomic_ulong worker_failures;

static void worker_fail(const char *what, const void *ptr, size_t size) {
    /* Only the first few are printed: one corruption usually causes many. */
    if (atomic_fetch_add(&worker_failures, 1) < 10)
        fprintf(stderr, "stress: %s: block %p size %zu\n", what, ptr, size);
}

static bool aligned16(const void *p) {
    return ((uintptr_t)p & 15u) == 0;
}

/* ------------------------------------------------------------- random ops */

#define OPS_THREADS      4
#define OPS_PER_THREAD   200000
#define OPS_SLOTS        512 /* live blocks per thread at most */
#define OPS_SMALL_MAX    2048
#define OPS_LARGE_MAX    (256u * 1024u)
#define OPS_LARGE_ONE_IN 200 /* share of large requests */

typedef struct {
    unsigned char *ptr;
    size_t size;
    uint64_t seed;
} live_block_t;

static size_t random_op_size(rng_t *rng) {
    if (rng_below(rng, OPS_LARGE_ONE_IN) == 0)
        return BW_TEST_SMALL_MAX + 1 + rng_below(rng, OPS_LARGE_MAX - BW_TEST_SMALL_MAX);
    return 1 + rng_below(rng, OPS_SMALL_MAX);
}

static void live_block_alloc(live_block_t *slot, rng_t *rng) {
    size_t size = random_op_size(rng);
    unsigned char *p = malloc(size);
    if (p == NULL) {
        worker_fail("malloc returned NULL", NULL, size);
        return;
    }
    if (!aligned16(p) || malloc_usable_size(p) < size)
        worker_fail("malloc: misaligned or short block", p, size);
    /* The seed mixes in the address the block was born at; the pattern itself
     * depends only on the offset, so it survives a move by realloc. */
    slot->ptr = p;
    slot->size = size;
    slot->seed = rng_next(rng) ^ (uint64_t)(uintptr_t)p;
    bw_fill(p, size, slot->seed);
}

static void live_block_free(live_block_t *slot) {
    if (!bw_check(slot->ptr, slot->size, slot->seed))
        worker_fail("pattern damaged before free", slot->ptr, slot->size);
    free(slot->ptr);
    slot->ptr = NULL;
}

static void live_block_realloc(live_block_t *slot, rng_t *rng) {
    size_t new_size = random_op_size(rng);
    if (!bw_check(slot->ptr, slot->size, slot->seed))
        worker_fail("pattern damaged before realloc", slot->ptr, slot->size);
    unsigned char *q = realloc(slot->ptr, new_size);
    if (q == NULL) {
        worker_fail("realloc returned NULL", slot->ptr, new_size);
        return; /* the old block is still live and intact */
    }
    if (!aligned16(q) || malloc_usable_size(q) < new_size)
        worker_fail("realloc: misaligned or short block", q, new_size);
    size_t kept = slot->size < new_size ? slot->size : new_size;
    if (!bw_check(q, kept, slot->seed)) worker_fail("realloc lost the contents", q, kept);
    bw_fill(q, new_size, slot->seed);
    slot->ptr = q;
    slot->size = new_size;
}

static void *random_ops_thread(void *arg) {
    rng_t rng = rng_seeded((uint64_t)(uintptr_t)arg * 7919u + 1u);
    live_block_t *slots = calloc(OPS_SLOTS, sizeof(*slots));
    if (slots == NULL) {
        worker_fail("calloc of the slot table failed", NULL, OPS_SLOTS);
        return NULL;
    }
    for (unsigned op = 0; op < OPS_PER_THREAD; op++) {
        live_block_t *slot = &slots[rng_below(&rng, OPS_SLOTS)];
        if (slot->ptr == NULL)
            live_block_alloc(slot, &rng);
        else if (rng_below(&rng, 3) == 0)
            live_block_realloc(slot, &rng);
        else
            live_block_free(slot);
    }
    for (unsigned i = 0; i < OPS_SLOTS; i++)
        if (slots[i].ptr != NULL) live_block_free(&slots[i]);
    free(slots);
    return NULL;
}

static atomic_bool trimmer_stop;
static atomic_ulong trims_done;

/* Calls malloc_trim(0) over and over: purging and decommitting empty slabs and
 * cached large mappings must not race with other threads reusing them. */
static void *trimmer_thread(void *arg) {
    while (!atomic_load_explicit(&trimmer_stop, memory_order_relaxed)) {
        malloc_trim(0);
        atomic_fetch_add_explicit(&trims_done, 1, memory_order_relaxed);
        usleep(200);
    }
    return NULL;
}

static void run_random_ops(bool with_trimmer) {
    pthread_t threads[OPS_THREADS], trimmer;
    uint64_t start = now_ms();
    atomic_store(&worker_failures, 0);
    atomic_store(&trimmer_stop, false);
    atomic_store(&trims_done, 0);
    if (with_trimmer) assert_int_equal(pthread_create(&trimmer, NULL, trimmer_thread, NULL), 0);
    for (uintptr_t i = 0; i < OPS_THREADS; i++)
        assert_int_equal(
            pthread_create(&threads[i], NULL, random_ops_thread, (void *)(i + with_trimmer * 100)),
            0);
    for (unsigned i = 0; i < OPS_THREADS; i++) assert_int_equal(pthread_join(threads[i], NULL), 0);
    atomic_store(&trimmer_stop, true);
    if (with_trimmer) assert_int_equal(pthread_join(trimmer, NULL), 0);
    print_message("random_ops: %d threads x %d ops in %llu ms", OPS_THREADS, OPS_PER_THREAD,
                  (unsigned long long)(now_ms() - start));
    if (with_trimmer)
        print_message(", %lu concurrent malloc_trim(0) calls", atomic_load(&trims_done));
    print_message("\n");
    assert_int_equal(atomic_load(&worker_failures), 0);
}

static void random_ops(void **state) {
    run_random_ops(false);
}

/* The same with a fifth thread trimming all the time. */
static void random_ops_with_trim(void **state) {
    run_random_ops(true);
}

/* ------------------------------------------------------------- producer/consumer */

#define PC_BLOCKS                1000000u
#define PC_QUEUE                 4096u /* power of two: index by mask */
#define PC_MIN_SIZE              8u
#define PC_MAX_SIZE              512u
/* Slabs that may legitimately stay in use after the run: blocks parked in a
 * quarantine, partly used current slabs of the two exited heaps (one per size
 * class each). 64 slabs = 4 MiB, against 1,000,000 blocks (~250 MiB) that
 * passed through; a slab leak from remote frees would show thousands. */
#define PC_SLAB_SLACK_AFTER_TRIM 64u
#define PC_SLAB_SLACK            256u

typedef struct {
    void *ptr;
    size_t size;
    uint64_t seed;
} pc_item_t;

/* Single-producer single-consumer ring: the producer alone writes tail, the
 * consumer alone writes head; release/acquire orders the item contents. */
static pc_item_t pc_ring[PC_QUEUE];
static atomic_size_t pc_head, pc_tail;

static void pc_wait(unsigned *spins) {
    if (++*spins > 64) {
        sched_yield(); /* two cores, two threads plus the rest of the box */
        *spins = 0;
    }
}

static void *producer_thread(void *arg) {
    rng_t rng = rng_seeded(0xC0FFEE);
    for (size_t n = 0; n < PC_BLOCKS; n++) {
        size_t size = PC_MIN_SIZE + rng_below(&rng, PC_MAX_SIZE - PC_MIN_SIZE + 1);
        void *p = malloc(size);
        if (p == NULL) {
            worker_fail("producer: malloc returned NULL", NULL, size);
            size = 0; /* still hand over an item so the consumer terminates */
        } else {
            bw_fill(p, size, (uint64_t)(uintptr_t)p ^ n);
        }
        size_t tail = atomic_load_explicit(&pc_tail, memory_order_relaxed);
        unsigned spins = 0;
        while (tail - atomic_load_explicit(&pc_head, memory_order_acquire) == PC_QUEUE)
            pc_wait(&spins);
        pc_ring[tail & (PC_QUEUE - 1)] = (pc_item_t){p, size, (uint64_t)(uintptr_t)p ^ n};
        atomic_store_explicit(&pc_tail, tail + 1, memory_order_release);
    }
    return NULL;
}

static void *consumer_thread(void *arg) {
    for (size_t n = 0; n < PC_BLOCKS; n++) {
        size_t head = atomic_load_explicit(&pc_head, memory_order_relaxed);
        unsigned spins = 0;
        while (atomic_load_explicit(&pc_tail, memory_order_acquire) == head) pc_wait(&spins);
        pc_item_t item = pc_ring[head & (PC_QUEUE - 1)];
        atomic_store_explicit(&pc_head, head + 1, memory_order_release);
        if (item.ptr == NULL) continue;
        if (!bw_check(item.ptr, item.size, item.seed))
            worker_fail("consumer: pattern damaged", item.ptr, item.size);
        free(item.ptr);
    }
    return NULL;
}

static void print_stats_line(const char *label, const struct bw_stats *s) {
    print_message("%-24s slabs_in_use=%zu slabs_abandoned=%zu segments_in_use=%zu "
                  "heaps_live=%zu small_in_use=%zu small_committed=%zu large_in_use=%zu\n",
                  label, s->slabs_in_use, s->slabs_abandoned, s->segments_in_use, s->heaps_live,
                  s->small_in_use_bytes, s->small_committed_bytes, s->large_in_use_bytes);
}

static void producer_consumer(void **state) {
    struct bw_stats before, after, trimmed;
    pthread_t producer, consumer;
    uint64_t start = now_ms();

    atomic_store(&worker_failures, 0);
    atomic_store(&pc_head, 0);
    atomic_store(&pc_tail, 0);
    bw_get_stats(&before);
    assert_int_equal(pthread_create(&consumer, NULL, consumer_thread, NULL), 0);
    assert_int_equal(pthread_create(&producer, NULL, producer_thread, NULL), 0);
    assert_int_equal(pthread_join(producer, NULL), 0);
    assert_int_equal(pthread_join(consumer, NULL), 0);
    bw_get_stats(&after);
    int trim_result = malloc_trim(0);
    bw_get_stats(&trimmed);

    print_message("producer_consumer: %u blocks in %llu ms, malloc_trim(0)=%d\n", PC_BLOCKS,
                  (unsigned long long)(now_ms() - start), trim_result);
    print_stats_line("before:", &before);
    print_stats_line("after join:", &after);
    print_stats_line("after malloc_trim(0):", &trimmed);
    assert_int_equal(atomic_load(&worker_failures), 0);
    assert_true(after.slabs_in_use <= before.slabs_in_use + PC_SLAB_SLACK);
    assert_true(trimmed.slabs_in_use <= before.slabs_in_use + PC_SLAB_SLACK_AFTER_TRIM);
}

/* ------------------------------------------------------------- fork */

#define FORK_HAMMER_THREADS   4
#define FORK_COUNT            50
#define FORK_CHILD_TIMEOUT_MS 20000u
#define FORK_INHERITED        8
#define CHILD_LARGE           (1u << 20)

static atomic_bool hammer_stop;
/* Set while a child runs: what matters is that the hammers are busy at the
 * instant of fork; afterwards they only steal the child's CPU on 2 cores. */
static atomic_bool hammer_pause;
static atomic_ulong hammer_rounds;

/* Allocates and frees as fast as it can, so that at the moment of fork some
 * thread is very likely inside malloc or free, holding whatever lock the
 * slow path takes. */
static void *hammer_thread(void *arg) {
    enum { LIVE = 64 };
    live_block_t live[LIVE] = {{0}};
    rng_t rng = rng_seeded((uint64_t)(uintptr_t)arg + 1000u);
    while (!atomic_load_explicit(&hammer_stop, memory_order_relaxed)) {
        if (atomic_load_explicit(&hammer_pause, memory_order_relaxed)) {
            usleep(500);
            continue;
        }
        live_block_t *slot = &live[rng_below(&rng, LIVE)];
        if (slot->ptr != NULL) {
            live_block_free(slot);
            continue;
        }
        /* mostly small, 1 in 64 large so the large cache's lock is hit too */
        size_t size =
            rng_below(&rng, 64) == 0 ? 20000 + rng_below(&rng, 500000) : 1 + rng_below(&rng, 4096);
        slot->ptr = malloc(size);
        if (slot->ptr == NULL) {
            worker_fail("hammer: malloc returned NULL", NULL, size);
            continue;
        }
        slot->size = size;
        slot->seed = rng_next(&rng);
        bw_fill(slot->ptr, size, slot->seed);
        atomic_fetch_add_explicit(&hammer_rounds, 1, memory_order_relaxed);
    }
    for (unsigned i = 0; i < LIVE; i++)
        if (live[i].ptr != NULL) live_block_free(&live[i]);
    return NULL;
}

enum child_status {
    CHILD_OK = 0,
    CHILD_NULL = 2,    /* an allocation failed */
    CHILD_CORRUPT = 3, /* a pattern did not survive */
    CHILD_THREAD = 4,  /* could not start or run a thread */
};

static void *child_thread(void *arg) {
    for (unsigned i = 0; i < 200; i++) {
        size_t size = 16u + (i * 97u) % 3000u;
        void *p = malloc(size);
        if (p == NULL) return (void *)1;
        bw_fill(p, size, i);
        if (!bw_check(p, size, i)) return (void *)1;
        free(p);
    }
    return NULL;
}

/* Runs in the forked child: only this thread exists, the others vanished
 * wherever they were. Exit status tells the parent what went wrong. */
static int child_work(live_block_t *inherited, unsigned inherited_count) {
    static const size_t sizes[] = {1, 16, 24, 100, 256, 1000, 3000, 8192, 16384};
    enum { PER_SIZE = 250, COUNT = PER_SIZE * (sizeof(sizes) / sizeof(sizes[0])) };
    static live_block_t blocks[COUNT]; /* static: fork copied it; no stack blow-up */

    for (unsigned i = 0; i < inherited_count; i++) {
        if (!bw_check(inherited[i].ptr, inherited[i].size, inherited[i].seed)) return CHILD_CORRUPT;
        free(inherited[i].ptr);
    }
    for (unsigned i = 0; i < COUNT; i++) {
        size_t size = sizes[i % (sizeof(sizes) / sizeof(sizes[0]))];
        blocks[i].ptr = malloc(size);
        if (blocks[i].ptr == NULL) return CHILD_NULL;
        blocks[i].size = size;
        blocks[i].seed = i * 31u + 7u;
        bw_fill(blocks[i].ptr, size, blocks[i].seed);
    }
    void *large = malloc(CHILD_LARGE);
    if (large == NULL) return CHILD_NULL;
    bw_fill(large, CHILD_LARGE, 99);
    for (unsigned i = 0; i < COUNT; i++) {
        if (!bw_check(blocks[i].ptr, blocks[i].size, blocks[i].seed)) return CHILD_CORRUPT;
        free(blocks[i].ptr);
    }
    if (!bw_check(large, CHILD_LARGE, 99)) return CHILD_CORRUPT;
    free(large);

    /* A new thread needs a fresh heap: the heap pool's lock must be usable. */
    pthread_t thread;
    void *thread_result = (void *)1;
    if (pthread_create(&thread, NULL, child_thread, NULL) != 0 ||
        pthread_join(thread, &thread_result) != 0 || thread_result != NULL)
        return CHILD_THREAD;
    return CHILD_OK;
}

/* Waits for the child at most timeout_ms; on timeout kills it and returns -1,
 * else the raw wait status. */
static int wait_child_with_timeout(pid_t pid, unsigned timeout_ms) {
    uint64_t deadline = now_ms() + timeout_ms;
    int status = 0;
    for (;;) {
        pid_t done = waitpid(pid, &status, WNOHANG);
        if (done == pid) return status;
        if (done < 0 && errno != EINTR) return -2;
        if (now_ms() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        usleep(1000);
    }
}

static void fork_while_threads_allocate(void **state) {
    pthread_t threads[FORK_HAMMER_THREADS];
    live_block_t inherited[FORK_INHERITED];
    static const size_t inherited_sizes[FORK_INHERITED] = {8,    64,    200,   1024,
                                                           4000, 16384, 40000, 1u << 20};
    int failed_status = 0, failed_at = -1;
    uint64_t start = now_ms(), slowest_child_ms = 0;

    for (unsigned i = 0; i < FORK_INHERITED; i++) {
        inherited[i].size = inherited_sizes[i];
        inherited[i].ptr = malloc(inherited_sizes[i]);
        assert_non_null(inherited[i].ptr);
        inherited[i].seed = 0xF0F0u + i;
        bw_fill(inherited[i].ptr, inherited[i].size, inherited[i].seed);
    }
    atomic_store(&worker_failures, 0);
    atomic_store(&hammer_stop, false);
    atomic_store(&hammer_pause, false);
    for (uintptr_t i = 0; i < FORK_HAMMER_THREADS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, hammer_thread, (void *)i), 0);

    for (int n = 0; n < FORK_COUNT; n++) {
        atomic_store(&hammer_pause, false);
        usleep(2000); /* let the hammers get deep into their loops */
        uint64_t forked_at = now_ms();
        pid_t pid = fork();
        if (pid == 0) _exit(child_work(inherited, FORK_INHERITED));
        atomic_store(&hammer_pause, true);
        if (pid < 0) {
            failed_status = -3;
            failed_at = n;
            break;
        }
        int status = wait_child_with_timeout(pid, FORK_CHILD_TIMEOUT_MS);
        uint64_t took = now_ms() - forked_at;
        if (took > slowest_child_ms) slowest_child_ms = took;
        if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            failed_status = status;
            failed_at = n;
            break; /* one stuck child is enough; do not wait 20 s fifty times */
        }
    }

    atomic_store(&hammer_stop, true);
    atomic_store(&hammer_pause, false);
    for (unsigned i = 0; i < FORK_HAMMER_THREADS; i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    for (unsigned i = 0; i < FORK_INHERITED; i++) {
        assert_true(bw_check(inherited[i].ptr, inherited[i].size, inherited[i].seed));
        free(inherited[i].ptr);
    }

    print_message("fork: %d forks in %llu ms, slowest child %llu ms, hammer rounds %lu\n",
                  failed_at < 0 ? FORK_COUNT : failed_at, (unsigned long long)(now_ms() - start),
                  (unsigned long long)slowest_child_ms, atomic_load(&hammer_rounds));
    if (failed_at >= 0) {
        if (failed_status == -1)
            print_message("fork %d: child did not exit within %u ms (deadlock?), killed\n",
                          failed_at, FORK_CHILD_TIMEOUT_MS);
        else if (failed_status < 0)
            print_message("fork %d: fork/waitpid failed: %s\n", failed_at, strerror(errno));
        else if (WIFSIGNALED(failed_status))
            print_message("fork %d: child killed by signal %d\n", failed_at,
                          WTERMSIG(failed_status));
        else
            print_message("fork %d: child exit status %d (2 NULL, 3 corrupt, 4 thread)\n",
                          failed_at, WEXITSTATUS(failed_status));
    }
    assert_int_equal(failed_at, -1);
    assert_int_equal(atomic_load(&worker_failures), 0);
}

int main(void) {
    if (!bw_is_bulwark_loaded()) {
        fprintf(stderr, "test_threads: malloc is not bulwark's; refusing to test glibc\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(random_ops),
        cmocka_unit_test(random_ops_with_trim),
        cmocka_unit_test(producer_consumer),
        cmocka_unit_test(fork_while_threads_allocate),
    };
    bw_test_filters_from_env(); /* tests/stress/mlockall.sh runs one test alone */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
