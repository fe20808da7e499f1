/* test_lock.c — bulwark's lock (bw_lock_t) and what may happen while one is
 * held, for programs with many more threads than CPUs (a thread holding a
 * lock is then often not running):
 *  - lock_excludes: four threads take and release one lock 50,000 times
 *    each around an unprotected counter and a "someone is inside" flag: the
 *    counter ends exact and no thread ever finds the flag set;
 *  - waiters_sleep: while the main thread holds a lock, four threads that
 *    want it must end up asleep (state S in /proc/self/task/<tid>/stat),
 *    not spinning or yielding in a loop that keeps them runnable (state R)
 *    and takes the CPU (or the virtual CPU) the holder needs; then they all
 *    get the lock in turn once it is released;
 *  - pool_free_while_carving: a thread that carves a new segment is stopped
 *    inside the first system call of the carve (mprotect or pkey_mprotect,
 *    held by a seccomp user-notification filter installed on that thread
 *    alone); meanwhile another thread must be able to release a slab slot
 *    to the same node's pool and take one: the pool lock is not held across
 *    the carve's system calls;
 *  - pool_free_while_purging: the same with a thread stopped in the
 *    purge's madvise(MADV_DONTNEED).
 * "Must be able" has a bound of WAIT_LIMIT_MS, far above the microseconds
 * it takes, so a thread stuck behind the stopped one fails the test instead
 * of hanging it. Without seccomp user notifications (Linux < 5.5) the last
 * two skip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bw_internal.h"
#include "bw_test.h"
#include "bw_unit.h"

#define WAIT_LIMIT_MS  20000u
#define EXCLUDE_ROUNDS 50000u
#define THREADS        4u
#define FILL_MAX       4096u /* slots the fill may take before the pool is empty */

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Threads that call bulwark's internals open the metadata window as an
 * entry point would (bw_unit.h). */
static void enter_as_allocator(void) {
#if BW_PKEY_METADATA
    (void)bw_meta_open();
#endif
}

/* ------------------------------------------------------------ exclusion */

static bw_lock_t shared_lock;
static unsigned long shared_counter; /* guarded by shared_lock only */
static atomic_int inside;
static atomic_ulong overlaps;

static void *exclude_thread(void *arg) {
    (void)arg;
    for (unsigned i = 0; i < EXCLUDE_ROUNDS; i++) {
        bw_lock(&shared_lock);
        if (atomic_exchange_explicit(&inside, 1, memory_order_relaxed))
            atomic_fetch_add(&overlaps, 1);
        shared_counter++;
        atomic_store_explicit(&inside, 0, memory_order_relaxed);
        bw_unlock(&shared_lock);
    }
    return NULL;
}

static void lock_excludes(void **state) {
    (void)state;
    pthread_t threads[THREADS];
    shared_counter = 0;
    for (unsigned i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, exclude_thread, NULL), 0);
    for (unsigned i = 0; i < THREADS; i++) assert_int_equal(pthread_join(threads[i], NULL), 0);
    assert_int_equal(atomic_load(&overlaps), 0);
    assert_int_equal(shared_counter, (unsigned long)THREADS * EXCLUDE_ROUNDS);
}

/* ------------------------------------------------------------ waiters sleep */

static atomic_int waiter_tids[THREADS];
static atomic_uint waiters_through;

static void *waiter_thread(void *arg) {
    unsigned index = (unsigned)(uintptr_t)arg;
    atomic_store(&waiter_tids[index], (int)gettid()); /* from here on it only waits */
    bw_lock(&shared_lock);
    atomic_fetch_add(&waiters_through, 1);
    bw_unlock(&shared_lock);
    return NULL;
}

/* The state letter of a thread of this process ('R' running or runnable,
 * 'S' asleep...), or '?' if it cannot be read. */
static char thread_state(int tid) {
    char path[64], text[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    FILE *file = fopen(path, "r");
    if (!file) return '?';
    size_t n = fread(text, 1, sizeof text - 1, file);
    fclose(file);
    text[n] = 0;
    const char *after_name = strrchr(text, ')'); /* the name may hold spaces */
    return after_name && after_name[1] == ' ' ? after_name[2] : '?';
}

static void waiters_sleep(void **state) {
    (void)state;
    pthread_t threads[THREADS];
    atomic_store(&waiters_through, 0);
    bw_lock(&shared_lock);
    for (unsigned i = 0; i < THREADS; i++) {
        atomic_store(&waiter_tids[i], 0);
        assert_int_equal(pthread_create(&threads[i], NULL, waiter_thread, (void *)(uintptr_t)i), 0);
    }
    uint64_t deadline = now_ms() + WAIT_LIMIT_MS;
    unsigned asleep = 0;
    char states[THREADS + 1] = {0};
    while (now_ms() < deadline) {
        asleep = 0;
        for (unsigned i = 0; i < THREADS; i++) {
            int tid = atomic_load(&waiter_tids[i]);
            states[i] = tid ? thread_state(tid) : '-';
            asleep += states[i] == 'S';
        }
        if (asleep == THREADS) break;
        usleep(1000);
    }
    print_message("waiter states with the lock held: %s\n", states);
    assert_int_equal(atomic_load(&waiters_through), 0); /* nobody got in meanwhile */
    bw_unlock(&shared_lock);
    for (unsigned i = 0; i < THREADS; i++) assert_int_equal(pthread_join(threads[i], NULL), 0);
    assert_int_equal(atomic_load(&waiters_through), THREADS);
    BW_REQUIRE(asleep == THREADS, "%u of %u waiters asleep after %u ms (states %s)", asleep,
               THREADS, WAIT_LIMIT_MS, states);
}

/* ------------------------------------------------------------ pool vs. syscalls */

/* A seccomp filter for the calling thread only: mprotect, pkey_mprotect
 * and madvise wait for the listener's answer (the fd returned), everything
 * else runs. -1 with errno if the kernel cannot do it. */
static int trap_memory_calls_of_this_thread(void) {
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mprotect, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_pkey_mprotect, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_madvise, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
    };
    struct sock_fprog program = {sizeof filter / sizeof filter[0], filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER,
                        &program);
}

static bool user_notifications_available(void) {
    unsigned action = SECCOMP_RET_USER_NOTIF;
    return syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) == 0;
}

typedef enum { WORK_CARVE, WORK_PURGE } stopped_work_t;

static struct {
    stopped_work_t work;
    atomic_int listener; /* -1 until the stopped thread has its filter */
    int filter_errno;
    bw_slab_t *carved;   /* WORK_CARVE: the slot the stopped thread got */
    bw_slab_t *released; /* the slot the other thread gives back first */
    bw_slab_t *taken;    /* ... and the slot it gets */
    atomic_bool other_done;
    atomic_bool stopped_done; /* the stopped thread finished its work */
} stop;

/* The thread stopped inside the carve or the purge. */
static void *stopped_thread(void *arg) {
    (void)arg;
    enter_as_allocator();
    int fd = trap_memory_calls_of_this_thread();
    stop.filter_errno = fd < 0 ? errno : 0;
    atomic_store(&stop.listener, fd < 0 ? -2 : fd);
    if (fd < 0) return NULL;
    if (stop.work == WORK_CARVE)
        stop.carved = bw_slab_slot_acquire(0);
    else
        bw_segments_purge(true);
    atomic_store(&stop.stopped_done, true);
    return NULL;
}

/* The thread that needs node 0's pool meanwhile. */
static void *other_thread(void *arg) {
    (void)arg;
    enter_as_allocator();
    if (stop.released) bw_slab_slot_release(stop.released);
    stop.taken = bw_slab_slot_acquire(0);
    atomic_store(&stop.other_done, true);
    return NULL;
}

/* Answers every trapped call with "go on" until the stopped thread is
 * through with bulwark. The caller then closes the listener: a trapped call
 * after that (glibc's madvise of the stack at thread exit) fails with
 * ENOSYS instead of waiting, which glibc ignores. */
static void release_stopped_thread(int listener, const struct seccomp_notif *first) {
    struct seccomp_notif_resp answer;
    memset(&answer, 0, sizeof answer);
    answer.id = first->id;
    answer.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &answer);
    while (!atomic_load(&stop.stopped_done)) {
        struct pollfd p = {listener, POLLIN, 0};
        if (poll(&p, 1, 10) < 0 && errno != EINTR) break;
        if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) break;
        if (!(p.revents & POLLIN)) continue;
        struct seccomp_notif request;
        memset(&request, 0, sizeof request);
        if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &request) != 0) continue;
        memset(&answer, 0, sizeof answer);
        answer.id = request.id;
        answer.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &answer);
    }
}

/* Stops a thread in its first trapped call of `work`, runs other_thread
 * meanwhile, and requires it to finish before the stopped thread goes on. */
static void run_beside_stopped_thread(stopped_work_t work) {
    pthread_t stopped, other;
    stop.work = work;
    stop.carved = stop.taken = NULL;
    atomic_store(&stop.listener, -1);
    atomic_store(&stop.other_done, false);
    atomic_store(&stop.stopped_done, false);
    assert_int_equal(pthread_create(&stopped, NULL, stopped_thread, NULL), 0);
    while (atomic_load(&stop.listener) == -1) usleep(100);
    int listener = atomic_load(&stop.listener);
    if (listener < 0) {
        assert_int_equal(pthread_join(stopped, NULL), 0);
        fail_msg("seccomp filter: %s", strerror(stop.filter_errno));
    }
    /* The stopped thread's first mprotect/madvise arrives here; it waits. */
    struct pollfd p = {listener, POLLIN, 0};
    BW_REQUIRE(poll(&p, 1, WAIT_LIMIT_MS) == 1 && (p.revents & POLLIN),
               "the %s made no mprotect or madvise call", work == WORK_CARVE ? "carve" : "purge");
    struct seccomp_notif first;
    memset(&first, 0, sizeof first);
    assert_int_equal(ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &first), 0);

    assert_int_equal(pthread_create(&other, NULL, other_thread, NULL), 0);
    uint64_t deadline = now_ms() + WAIT_LIMIT_MS;
    while (!atomic_load(&stop.other_done) && now_ms() < deadline) usleep(1000);
    bool done_while_stopped = atomic_load(&stop.other_done);
    print_message("%s stopped in syscall %d: the other thread %s\n",
                  work == WORK_CARVE ? "carve" : "purge", first.data.nr,
                  done_while_stopped ? "released and took a slot meanwhile"
                                     : "was still waiting for the pool");

    release_stopped_thread(listener, &first);
    close(listener);
    assert_int_equal(pthread_join(stopped, NULL), 0);
    assert_int_equal(pthread_join(other, NULL), 0);
    BW_REQUIRE(done_while_stopped, "the pool was locked while a thread was stopped in the %s",
               work == WORK_CARVE ? "carve" : "purge");
    assert_non_null(stop.taken);
    bw_slab_slot_release(stop.taken);
    if (stop.carved) bw_slab_slot_release(stop.carved);
}

static void pool_free_while_carving(void **state) {
    (void)state;
    BW_SKIP_WHEN(!user_notifications_available(), "seccomp user notifications: %s",
                 "not supported by this kernel");
    /* Empty node 0's pool (taking slots until a segment is carved and then
     * the rest of that one), so that the stopped thread has to carve. */
    static bw_slab_t *filled[FILL_MAX];
    size_t count = 0, carved_before = bw_segments_in_use();
    while (bw_segments_in_use() == carved_before) {
        assert_true(count < FILL_MAX);
        filled[count] = bw_slab_slot_acquire(0);
        assert_non_null(filled[count++]);
    }
    for (unsigned i = 1; i < BW_SLABS_PER_SEGMENT; i++) {
        filled[count] = bw_slab_slot_acquire(0);
        assert_non_null(filled[count++]);
    }
    carved_before = bw_segments_in_use();
    stop.released = filled[--count]; /* the other thread gives this one back */
    run_beside_stopped_thread(WORK_CARVE);
    assert_int_equal(bw_segments_in_use(), carved_before + 1); /* the stopped carve finished */
    while (count) bw_slab_slot_release(filled[--count]);
}

static void pool_free_while_purging(void **state) {
    (void)state;
    BW_SKIP_WHEN(!user_notifications_available(), "seccomp user notifications: %s",
                 "not supported by this kernel");
    /* Dirty slots for the purge to decommit. */
    enum { DIRTY = 8 };
    bw_slab_t *dirty[DIRTY];
    for (unsigned i = 0; i < DIRTY; i++) {
        dirty[i] = bw_slab_slot_acquire(0);
        assert_non_null(dirty[i]);
        memset((void *)bw_slab_start(dirty[i]), 0x5a, BW_PAGE_SIZE); /* committed for real */
    }
    for (unsigned i = 0; i < DIRTY; i++) bw_slab_slot_release(dirty[i]);
    stop.released = NULL;
    run_beside_stopped_thread(WORK_PURGE);
}

int main(void) {
    bw_unit_enter_as_allocator();
    bw_test_filters_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lock_excludes),
        cmocka_unit_test(waiters_sleep),
        cmocka_unit_test(pool_free_while_carving),
        cmocka_unit_test(pool_free_while_purging),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
