/* test_oversubscribed.c — proves that bulwark keeps making progress when a
 * program runs many more threads than there are CPUs, so that a thread
 * holding one of bulwark's locks is often not running:
 *  - many_more_threads_than_cpus: THREADS_PER_CPU threads per online CPU
 *    (at least MIN_THREADS, at most MAX_THREADS) start at once; each runs
 *    ROUNDS rounds of allocating small blocks of every class and, one
 *    allocation in 32, a large block of 64 KiB to 8 MiB, until its share of
 *    TOTAL_LIVE is live, every byte written, then checks and frees them in
 *    random order (some grown by realloc first). Every block must keep its
 *    contents and every allocation must succeed.
 * The work runs in a forked child; a child still running after
 * HANG_LIMIT_S is killed and fails the test, so a livelock (waiters that
 * spin or yield in a loop while the holder waits for a CPU, a lock held
 * across system calls that wait for the mm lock) fails instead of hanging
 * `make check`. It takes a few seconds on 2 CPUs. */
/* cmocka.h needs these first */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bw_test.h"

#define MiB             ((size_t)1 << 20)
#define THREADS_PER_CPU 12u
#define MIN_THREADS     16u
#define MAX_THREADS     96u
#define TOTAL_LIVE      (256 * MiB) /* shared by all threads */
#define ROUNDS          8u
#define LARGE_MIN       ((size_t)64 << 10)
#define LARGE_MAX       (8 * MiB)
#define SMALL_MAX       16384u
#define HANG_LIMIT_S    120u
#define MAX_LIVE_BLOCKS 8192u /* per thread and round */
#define EDGE            4096u /* bytes of pattern at each end of a large block */

typedef struct {
    unsigned char *ptr;
    size_t size;
    uint64_t seed;
} block_t;

static size_t live_per_thread;
static atomic_ulong failures;
static atomic_ulong blocks_done;

static uint64_t next_random(uint64_t *state) {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

static void worker_fail(const char *what, const void *ptr, size_t size) {
    if (atomic_fetch_add(&failures, 1) < 10)
        fprintf(stderr, "oversubscribed: %s: %p, %zu bytes\n", what, ptr, size);
}

/* Small blocks carry the pattern everywhere; large ones are written in
 * full (so their pages are really faulted in, as a program's would be) and
 * carry it at both ends. */
static void write_block(const block_t *b) {
    if (b->size <= SMALL_MAX) {
        bw_fill(b->ptr, b->size, b->seed);
        return;
    }
    memset(b->ptr + EDGE, (int)(b->seed & 0xff), b->size - 2 * EDGE);
    bw_fill(b->ptr, EDGE, b->seed);
    bw_fill(b->ptr + b->size - EDGE, EDGE, b->seed + 1);
}

static bool block_intact(const block_t *b) {
    if (b->size <= SMALL_MAX) return bw_check(b->ptr, b->size, b->seed);
    return bw_check(b->ptr, EDGE, b->seed) &&
           bw_check(b->ptr + b->size - EDGE, EDGE, b->seed + 1) &&
           b->ptr[b->size / 2] == (unsigned char)(b->seed & 0xff);
}

static size_t random_size(uint64_t *state) {
    if (next_random(state) % 32 == 0) {
        size_t span = (live_per_thread / 2 < LARGE_MAX ? live_per_thread / 2 : LARGE_MAX);
        return LARGE_MIN + next_random(state) % (span - LARGE_MIN + 1);
    }
    /* Every class: a class size, one byte less, or anything up to it. */
    size_t class_size = bw_test_class_size(next_random(state) % BW_TEST_CLASS_COUNT);
    switch (next_random(state) % 3) {
    case 0:
        return class_size;
    case 1:
        return class_size - 1;
    default:
        return 1 + next_random(state) % class_size;
    }
}

static void *churn_thread(void *arg) {
    uint64_t state = 0x2545F4914F6CDD1Dull * ((uintptr_t)arg + 1);
    block_t *live = calloc(MAX_LIVE_BLOCKS, sizeof *live);
    if (!live) {
        worker_fail("calloc of the block table", NULL, MAX_LIVE_BLOCKS);
        return NULL;
    }
    for (unsigned round = 0; round < ROUNDS; round++) {
        size_t count = 0, bytes = 0;
        while (bytes < live_per_thread && count < MAX_LIVE_BLOCKS) {
            block_t b = {NULL, random_size(&state), next_random(&state)};
            if (b.size > live_per_thread - bytes && b.size > SMALL_MAX) continue;
            b.ptr = malloc(b.size);
            if (!b.ptr) {
                worker_fail("malloc returned NULL", NULL, b.size);
                break;
            }
            if ((uintptr_t)b.ptr % 16 || malloc_usable_size(b.ptr) < b.size)
                worker_fail("misaligned or short block", b.ptr, b.size);
            write_block(&b);
            live[count++] = b;
            bytes += b.size;
        }
        for (size_t i = count; i > 1; i--) { /* free in random order */
            size_t j = next_random(&state) % i;
            block_t t = live[i - 1];
            live[i - 1] = live[j];
            live[j] = t;
        }
        for (size_t i = 0; i < count; i++) {
            block_t *b = &live[i];
            if (!block_intact(b)) worker_fail("block lost its contents", b->ptr, b->size);
            if (i % 8 == 0 && b->size <= SMALL_MAX) { /* some move: small to large */
                unsigned char *grown = realloc(b->ptr, LARGE_MIN + b->size);
                if (!grown) {
                    worker_fail("realloc returned NULL", b->ptr, LARGE_MIN + b->size);
                } else {
                    b->ptr = grown;
                    if (!bw_check(b->ptr, b->size, b->seed))
                        worker_fail("realloc lost the contents", b->ptr, b->size);
                }
            }
            free(b->ptr);
            atomic_fetch_add_explicit(&blocks_done, 1, memory_order_relaxed);
        }
    }
    free(live);
    return NULL;
}

/* The forked child: starts every thread at once and joins them. Exit 0 if
 * every block was allocated and kept its contents. */
static int run_threads(unsigned thread_count) {
    static pthread_t threads[MAX_THREADS];
    uint64_t start = bw_test_now_ms();
    for (unsigned i = 0; i < thread_count; i++) {
        if (pthread_create(&threads[i], NULL, churn_thread, (void *)(uintptr_t)i) != 0) {
            fprintf(stderr, "oversubscribed: pthread_create #%u failed\n", i);
            return 3;
        }
    }
    for (unsigned i = 0; i < thread_count; i++) pthread_join(threads[i], NULL);
    printf("%u threads, %zu KiB live each, %u rounds: %lu blocks in %llu ms\n", thread_count,
           live_per_thread >> 10, ROUNDS, atomic_load(&blocks_done),
           (unsigned long long)(bw_test_now_ms() - start));
    fflush(stdout);
    return atomic_load(&failures) == 0 ? 0 : 2;
}

static void many_more_threads_than_cpus(void **state) {
    (void)state;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned thread_count = cpus > 0 ? (unsigned)cpus * THREADS_PER_CPU : MIN_THREADS;
    if (thread_count < MIN_THREADS) thread_count = MIN_THREADS;
    if (thread_count > MAX_THREADS) thread_count = MAX_THREADS;
    live_per_thread = TOTAL_LIVE / thread_count;
    print_message("%ld CPUs online: %u threads\n", cpus, thread_count);

    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) _exit(run_threads(thread_count));
    assert_true(pid > 0);
    uint64_t deadline = bw_test_now_ms() + HANG_LIMIT_S * 1000u;
    int status = 0;
    pid_t done;
    while ((done = waitpid(pid, &status, WNOHANG)) == 0 && bw_test_now_ms() < deadline)
        usleep(10000);
    if (done == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fail_msg("%u threads did not finish within %u s: livelock, killed", thread_count,
                 HANG_LIMIT_S);
    }
    assert_int_equal(done, pid);
    BW_REQUIRE(WIFEXITED(status), "the child died of signal %d",
               WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    BW_REQUIRE(WEXITSTATUS(status) == 0,
               "the child exited %d (2: a block was lost or damaged, 3: no thread)",
               WEXITSTATUS(status));
}

int main(void) {
    if (!bw_is_bulwark_loaded()) {
        fprintf(stderr, "test_oversubscribed: malloc is not bulwark's; refusing to test glibc\n");
        return 1;
    }
    bw_test_filters_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(many_more_threads_than_cpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
