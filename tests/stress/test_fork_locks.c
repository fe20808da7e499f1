/* test_fork_locks.c — proves that fork() never hands a child a bulwark lock
 * that some other thread of the parent held at the instant of the fork (the
 * child has no such thread, so nobody would ever release it):
 *  - fork_during_zero_size_churn (BW_ZERO_SIZE_FAULTS): one thread loops
 *    malloc(0)/free, which takes the zero-size lock every time, and another
 *    loops small and large malloc/free, while the main thread forks
 *    FORK_CHILDREN children one after the other. Every child calls
 *    malloc(0)/free and allocates, checks and frees small and large blocks,
 *    then exits 0;
 *  - fork_during_small_and_large_churn (every profile): the same with two
 *    threads looping small and large malloc/free, so the segment pools, the
 *    arena, the heap pool and the large table are all in use at the fork.
 *  - fork_from_one_thread_copies_no_lock (every profile, run first, while
 *    the process has one thread): with nobody else to hold a lock, fork
 *    takes none, so the parent's fork handler writes nothing to the locks'
 *    page while the child is alive (unlocking there made each fork a
 *    copy-on-write fault of that page, found measuring a fork server): the
 *    parent keeps its frame of the page (/proc/self/pagemap, as root;
 *    static build, which can name bw_locks), and the child still allocates and frees
 *    small, large and zero-size blocks;
 *  - child_large_malloc_copies_few_data_pages (static build, run second,
 *    still with one thread): a forked child's first large malloc and free
 *    copy at most 2 pages of the program's .data and .bss (/proc/self/
 *    pagemap), the locks' page with the scalars every large malloc and free
 *    writes (bw_hot, hot.h) and the large quarantine's; they sat on four
 *    (page mode: 3 more copies per child, with the history of freed
 *    addresses).
 * A child that does not exit within FORK_CHILD_TIMEOUT_MS is deadlocked: it
 * is killed and the test fails (instead of hanging); so does a child that
 * exits non-zero (its status says which step failed). */
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
#include <sys/single_threaded.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bw_test.h"
#ifndef BW_TEST_PRELOAD
#include <fcntl.h>

#include "hot.h" /* bw_locks */
#endif

/* 37 of 300 children hung when the zero-size lock was not taken across
 * fork: a few hundred make a miss very unlikely. */
#define FORK_CHILDREN         300
/* Generous: a healthy child needs milliseconds, even on a loaded 2-core box. */
#define FORK_CHILD_TIMEOUT_MS 20000u
#define CHURN_SMALL_MAX       16384u
#define CHURN_LARGE_MIN       (20u * 1024u)
#define CHURN_LARGE_SPAN      (1u << 20)
#define CHILD_LARGE           (1u << 20)
enum child_status {
    CHILD_OK = 0,
    CHILD_ZERO_NULL = 2,  /* malloc(0) returned NULL */
    CHILD_NULL = 3,       /* a small or large malloc returned NULL */
    CHILD_CORRUPT = 4,    /* a block did not keep its contents */
    CHILD_ZERO_USABLE = 5 /* malloc_usable_size of a zero-size block was not 0 */
};

static atomic_bool churn_stop;
static atomic_ulong churn_rounds;
static atomic_ulong churn_failures;

/* Worker threads must not call cmocka's assertions (they longjmp into the
 * main thread's runner): they count, the main thread asserts. */
static void churn_fail(const char *what, size_t size) {
    if (atomic_fetch_add(&churn_failures, 1) < 10)
        fprintf(stderr, "fork_locks: %s (size %zu)\n", what, size);
}

static uint64_t next_random(uint64_t *state) {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

/* malloc(0)/free as fast as possible: with BW_ZERO_SIZE_FAULTS both take
 * the zero-size lock, so at a random instant this thread often holds it. */
static void *zero_size_thread(void *arg) {
    (void)arg;
    while (!atomic_load_explicit(&churn_stop, memory_order_relaxed)) {
        void *p = malloc(bw_opaque_size(0));
        if (p == NULL) churn_fail("malloc(0) returned NULL", 0);
        free(p);
        atomic_fetch_add_explicit(&churn_rounds, 1, memory_order_relaxed);
    }
    return NULL;
}

/* Small blocks of every class, and every 16th round a large one, filled
 * and checked: the slab slow paths (segment pools, the arena, abandoned
 * slabs) and the large table and cache are busy at the fork. */
static void *small_and_large_thread(void *arg) {
    uint64_t state = 0x9E3779B97F4A7C15ull + (uintptr_t)arg;
    enum { LIVE = 32 };
    void *live[LIVE] = {0};
    size_t sizes[LIVE] = {0};
    for (unsigned round = 0; !atomic_load_explicit(&churn_stop, memory_order_relaxed); round++) {
        unsigned slot = (unsigned)(next_random(&state) % LIVE);
        if (live[slot]) {
            if (!bw_check(live[slot], sizes[slot], slot + sizes[slot]))
                churn_fail("block lost its contents", sizes[slot]);
            free(live[slot]);
            live[slot] = NULL;
            continue;
        }
        size_t size = round % 16 == 0 ? CHURN_LARGE_MIN + next_random(&state) % CHURN_LARGE_SPAN
                                      : 1 + next_random(&state) % CHURN_SMALL_MAX;
        live[slot] = malloc(size);
        if (live[slot] == NULL) {
            churn_fail("malloc returned NULL", size);
            continue;
        }
        sizes[slot] = size;
        bw_fill(live[slot], size, slot + size);
        atomic_fetch_add_explicit(&churn_rounds, 1, memory_order_relaxed);
    }
    for (unsigned i = 0; i < LIVE; i++) free(live[i]);
    return NULL;
}

/* The forked child: the only thread left. Every lock it needs must be free. */
static int child_work(void) {
    static const size_t small[] = {1, 24, 100, 480, 1000, 4000, 9000, 16000};
    void *zero = malloc(bw_opaque_size(0));
    if (zero == NULL) return CHILD_ZERO_NULL;
#if defined(BW_ZERO_SIZE_FAULTS) && BW_ZERO_SIZE_FAULTS
    if (malloc_usable_size(zero) != 0) return CHILD_ZERO_USABLE;
#endif
    free(zero);
    void *blocks[sizeof small / sizeof small[0]];
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
        blocks[i] = malloc(small[i]);
        if (blocks[i] == NULL) return CHILD_NULL;
        bw_fill(blocks[i], small[i], i);
    }
    void *large = malloc(CHILD_LARGE);
    if (large == NULL) return CHILD_NULL;
    bw_fill(large, CHILD_LARGE, 77);
    zero = malloc(bw_opaque_size(0)); /* a second time, after the others */
    if (zero == NULL) return CHILD_ZERO_NULL;
    free(zero);
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
        if (!bw_check(blocks[i], small[i], i)) return CHILD_CORRUPT;
        free(blocks[i]);
    }
    if (!bw_check(large, CHILD_LARGE, 77)) return CHILD_CORRUPT;
    free(large);
    return CHILD_OK;
}

/* The child's raw wait status, or -1 after killing a child that outlived
 * timeout_ms (it is reaped either way). */
static int reap_within(pid_t pid, unsigned timeout_ms) {
    uint64_t deadline = bw_test_now_ms() + timeout_ms;
    for (;;) {
        int status = 0;
        pid_t done = waitpid(pid, &status, WNOHANG);
        if (done == pid) return status;
        if (done < 0 && errno != EINTR) return -2;
        if (bw_test_now_ms() >= deadline) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) continue;
            return -1;
        }
        usleep(500);
    }
}

/* Starts the workers, forks FORK_CHILDREN children one at a time and
 * fails on the first child that hangs or exits non-zero. */
static void fork_while(void *(*workers[])(void *), size_t worker_count) {
    pthread_t threads[4];
    assert_true(worker_count <= 4);
    atomic_store(&churn_stop, false);
    atomic_store(&churn_rounds, 0);
    atomic_store(&churn_failures, 0);
    for (size_t i = 0; i < worker_count; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, workers[i], (void *)i), 0);
    while (atomic_load(&churn_rounds) < 1000) usleep(100); /* the workers are in their loops */

    uint64_t start = bw_test_now_ms(), slowest = 0;
    int failed_at = -1, failed_status = 0;
    for (int n = 0; n < FORK_CHILDREN; n++) {
        uint64_t forked_at = bw_test_now_ms();
        pid_t pid = fork();
        if (pid == 0) _exit(child_work());
        if (pid < 0) {
            failed_at = n;
            failed_status = -2;
            break;
        }
        int status = reap_within(pid, FORK_CHILD_TIMEOUT_MS);
        if (bw_test_now_ms() - forked_at > slowest) slowest = bw_test_now_ms() - forked_at;
        if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != CHILD_OK) {
            failed_at = n;
            failed_status = status;
            break; /* one deadlock proves it; do not wait out the rest */
        }
    }
    atomic_store(&churn_stop, true);
    for (size_t i = 0; i < worker_count; i++) assert_int_equal(pthread_join(threads[i], NULL), 0);

    print_message("%d children in %llu ms (slowest %llu ms), %lu worker rounds\n",
                  failed_at < 0 ? FORK_CHILDREN : failed_at,
                  (unsigned long long)(bw_test_now_ms() - start), (unsigned long long)slowest,
                  atomic_load(&churn_rounds));
    if (failed_status == -1)
        print_message("child %d did not exit within %u ms: deadlocked on a lock held at fork; "
                      "killed\n",
                      failed_at, FORK_CHILD_TIMEOUT_MS);
    else if (failed_status == -2)
        print_message("child %d: fork or waitpid failed: %s\n", failed_at, strerror(errno));
    else if (failed_at >= 0 && WIFSIGNALED(failed_status))
        print_message("child %d died of signal %d\n", failed_at, WTERMSIG(failed_status));
    else if (failed_at >= 0)
        print_message("child %d exited %d (2: malloc(0) NULL, 3: malloc NULL, 4: corrupt, "
                      "5: zero-size usable size)\n",
                      failed_at, WEXITSTATUS(failed_status));
    assert_int_equal(failed_at, -1);
    assert_int_equal(atomic_load(&churn_failures), 0);
}

#ifndef BW_TEST_PRELOAD
/* The page frame holding addr (pagemap bits 0-54), 0 if it is not present
 * or the frame is hidden (without CAP_SYS_ADMIN the kernel shows 0). */
static uint64_t page_frame(const void *addr) {
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    uint64_t entry = 0;
    ssize_t got = pread(fd, &entry, sizeof entry, (off_t)((uintptr_t)addr / 4096 * sizeof entry));
    close(fd);
    if (got != (ssize_t)sizeof entry || !(entry >> 63 & 1)) return 0;
    return entry & (((uint64_t)1 << 55) - 1);
}
#endif

static void fork_from_one_thread_copies_no_lock(void **state) {
    (void)state;
    if (!__libc_single_threaded) skip(); /* run alone or first: no thread made yet */
    /* Every layer used once: each has taken its lock, so the page is there. */
    assert_int_equal(child_work(), CHILD_OK);
    int go[2];
    assert_int_equal(pipe(go), 0);
#ifndef BW_TEST_PRELOAD
    uint64_t frame_before = page_frame(&bw_locks);
#endif
    pid_t pid = fork();
    if (pid == 0) {
        char byte;
        _exit(read(go[0], &byte, 1) == 1 ? child_work() : 9);
    }
    assert_true(pid > 0);
#ifndef BW_TEST_PRELOAD
    /* A write by the parent to the page while the child shares it copies
     * it: the parent's frame changes. (Whether the page is still shared is
     * no test: the child's own fork handler bumps the fork generation on
     * that page, by design, and may run before this line; it then keeps the
     * copy, and 5 of 40 runs failed that way under load.) */
    uint64_t frame_after = page_frame(&bw_locks);
    if (frame_before == 0)
        print_message("page frames are hidden (no CAP_SYS_ADMIN): the copy is not checked\n");
    else
        BW_REQUIRE(frame_after == frame_before,
                   "the parent's fork copied the locks' page (frame %#jx, then %#jx)",
                   (uintmax_t)frame_before, (uintmax_t)frame_after);
#endif
    assert_int_equal(write(go[1], "x", 1), 1);
    int status = reap_within(pid, FORK_CHILD_TIMEOUT_MS);
    close(go[0]);
    close(go[1]);
    assert_true(status >= 0 && WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), CHILD_OK);
}

#ifndef BW_TEST_PRELOAD
extern char __data_start[], _end[]; /* the C library's and the linker's */

/* Pages of .data and .bss that this process alone maps (copied since the
 * fork), -1 if pagemap cannot be read. */
static int exclusive_data_pages(void) {
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int pages = 0;
    for (uintptr_t page = (uintptr_t)__data_start / 4096; page <= ((uintptr_t)_end - 1) / 4096;
         page++) {
        uint64_t entry = 0;
        if (pread(fd, &entry, sizeof entry, (off_t)(page * sizeof entry)) !=
            (ssize_t)sizeof entry) {
            pages = -1;
            break;
        }
        pages += (entry >> 63 & 1) && (entry >> 56 & 1);
    }
    close(fd);
    return pages;
}

static void child_large_malloc_copies_few_data_pages(void **state) {
    (void)state;
    if (!__libc_single_threaded) skip(); /* run before the churn: no thread yet */
    free(malloc(200000));                /* the parent has taken every path once */
    pid_t pid = fork();
    if (pid == 0) {
        int before = exclusive_data_pages();
        void *block = malloc(200000);
        free(block);
        int after = exclusive_data_pages();
        _exit(before < 0 || after < 0 || block == NULL ? 255 : after - before);
    }
    assert_true(pid > 0);
    int status = reap_within(pid, FORK_CHILD_TIMEOUT_MS);
    assert_true(status >= 0 && WIFEXITED(status));
    print_message(
        "a forked child's first large malloc and free copied %d pages of .data and .bss\n",
        WEXITSTATUS(status));
    assert_true(WEXITSTATUS(status) <= 2);
}
#endif

static void fork_during_zero_size_churn(void **state) {
    (void)state;
    BW_SKIP_UNLESS(BW_ZERO_SIZE_FAULTS);
    void *(*workers[])(void *) = {zero_size_thread, small_and_large_thread};
    fork_while(workers, 2);
}

static void fork_during_small_and_large_churn(void **state) {
    (void)state;
    void *(*workers[])(void *) = {small_and_large_thread, small_and_large_thread};
    fork_while(workers, 2);
}

int main(void) {
    if (!bw_is_bulwark_loaded()) {
        fprintf(stderr, "test_fork_locks: malloc is not bulwark's; refusing to test glibc\n");
        return 1;
    }
    bw_test_filters_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fork_from_one_thread_copies_no_lock), /* first: no thread yet */
#ifndef BW_TEST_PRELOAD
        cmocka_unit_test(child_large_malloc_copies_few_data_pages), /* before any thread */
#endif
        cmocka_unit_test(fork_during_zero_size_churn),
        cmocka_unit_test(fork_during_small_and_large_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
