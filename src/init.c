/* init.c — lazy initialisation, fork handlers (DESIGN.md "Threads, fork,
 * start-up"). Every entry point that needs the allocator's state calls
 * bw_ensure_init(); the constructor only does it early. Initialisation never
 * calls malloc, stdio or dlsym (invariant 8): it reserves address space,
 * reads sysfs with open/read, draws key material from libsodium and creates
 * a pthread key (a static slot). pthread_atfork, which may allocate, is
 * registered after the state is published, outside the init lock
 * (CONVENTIONS trap 1). */
#include <pthread.h>
#if defined(__has_include)
#if __has_include(<sys/single_threaded.h>)
#include <sys/single_threaded.h>
#define BW_HAVE_SINGLE_THREADED 1
#endif
#endif
#ifndef BW_HAVE_SINGLE_THREADED
#define BW_HAVE_SINGLE_THREADED 0
#endif

#include "bw_internal.h"

atomic_int bw_init_state;
/* hot.h: page-aligned, so that it is one page. */
bw_hot_t bw_hot __attribute__((aligned(4096))) = {.rng_generation = 1};
static atomic_int bw_atfork_registered;

/* Calls `action` on every lock (bw_locks, lock.h) in the one lock order
 * of the code: the only nesting is a segment pool's lock, then the arena's
 * (bw_segment_carve); every other lock is taken with none held. The one
 * list of them: taking, releasing and the child's reset all go through it. */
static void bw_locks_each(void (*action)(bw_lock_t *)) {
    action(&bw_locks.init);
    action(&bw_locks.heap_pool);
    action(&bw_locks.abandoned);
    for (unsigned i = 0; i < BW_MAX_NUMA_NODES; i++) action(&bw_locks.pools[i]);
    action(&bw_locks.arena);
    action(&bw_locks.large);
    action(&bw_locks.zero);
}

static void bw_lock_take(bw_lock_t *lock) {
    bw_lock(lock);
}

static void bw_lock_release(bw_lock_t *lock) {
    bw_unlock(lock); /* in taking order: unlocking order does not matter */
}

void bw_locks_take_all(void) {
    bw_locks_each(bw_lock_take);
}

void bw_locks_release_all(void) {
    bw_locks_each(bw_lock_release);
}

/* Whether another thread may exist: glibc's __libc_single_threaded is true
 * until the process first creates a thread, and stays false after. Without
 * it (another C library), assume threads. */
static bool bw_may_have_threads(void) {
#if BW_HAVE_SINGLE_THREADED
    return !__libc_single_threaded;
#else
    return true;
#endif
}

/* The fork handlers write metadata (locks, the child's new keys): each is
 * an entry point of its own (BW_META_OPEN).
 *
 * prepare takes every lock (bw_locks, lock.h), so that no other thread
 * holds one at the instant of fork: the child would inherit it held, with
 * nobody to release it. A process with one thread has nobody to hold one,
 * and then prepare takes none, as glibc's fork skips its own malloc's
 * locks: a fork server (AFL++'s, a pre-forking daemon) forks from one
 * thread, and the parent handler's unlocking, run while the child is
 * alive, copied the locks' page on every fork. The parent handler asks
 * the same question and gets the same answer (no thread can appear
 * between the two: the only one is forking). */
static void bw_fork_prepare(void) {
    BW_META_OPEN();
    if (bw_may_have_threads()) bw_locks_take_all();
    bw_random_fork_prepare();
    BW_META_CLOSE();
}

static void bw_fork_parent(void) {
    BW_META_OPEN();
    if (bw_may_have_threads()) bw_locks_release_all();
    BW_META_CLOSE();
}

static void bw_lock_free_in_child(bw_lock_t *lock) {
    if (atomic_load_explicit(&lock->state, memory_order_relaxed)) bw_lock_reset_in_child(lock);
}

/* The child has one thread: every lock is free again. A lock is reset only
 * if it reads as held, so that the child of a one-thread parent, which took
 * none, writes nothing to their page. The other threads' heaps stay as they
 * were (their blocks are still valid in the child). */
static void bw_fork_child(void) {
    BW_META_OPEN();
    bw_locks_each(bw_lock_free_in_child);
    bw_heaps_fork_child();
    bw_random_fork_child();
    BW_META_CLOSE();
}

/* The regions, in either kind of space (os.c, "lazy space"); a step that
 * fails undoes the ones before it.
 *
 * The metadata zone: the fixed metadata regions (the zero-size bitmaps, the
 * heap pool, the slab metadata) are pieces of one reservation at one random
 * base, in that order; each piece has guard pages at its own ends, so the
 * pieces simply follow each other. Why one reservation: fork() copies a
 * process's page tables, and every populated range at an address of its
 * own costs the child a page-table page at each level (three, which it also
 * frees again at exit). The three regions at bases of their own cost a
 * forked child nine; in the zone, the zero-size summary and the first heaps
 * lie within a few hundred KiB of each other and share all three. The
 * blocks' regions (arena, zero-size slots, large regions) keep bases of
 * their own: a block's address says nothing of where metadata lies. */
static bool bw_space_init(void) {
    const size_t zero_bytes = bw_zero_meta_bytes(), heap_bytes = bw_heaps_region_bytes();
    const size_t zone_bytes = zero_bytes + heap_bytes + bw_segments_meta_bytes();
    char *zone = bw_os_space_reserve(zone_bytes, BW_PAGE_SIZE);
    if (!zone) return false;
    if (!bw_segments_init(zone + zero_bytes + heap_bytes)) goto fail;
    bw_heaps_init(zone + zero_bytes);
    if (!bw_zero_init(zone)) { /* unmaps what it mapped itself */
        bw_heaps_release();
        bw_segments_release();
        goto fail;
    }
    return true;
fail:
    bw_os_space_release(zone, zone_bytes);
    return false;
}

/* Reserved space unless RLIMIT_AS is finite (the reservations, about
 * 67 GiB, would not fit under any usual limit, and the program may lower
 * the limit later) or the reservations fail anyway (vm.overcommit or
 * vm.max_map_count settings, an address space crowded by the program):
 * then lazy space. A start-up that fails even so (lazy space maps the
 * zero-size region's first 16 MiB at once) is final: state 3, every later
 * call returns NULL with ENOMEM at once, without a system call, rather
 * than trying the whole start-up again on every malloc; what it made is
 * gone (regions unmapped, the protection key freed), and one "bulwark:
 * cannot start" line on stderr names the limit (os.c). */
static BW_NOINLINE bool bw_init_slow(void) {
    bw_lock(&bw_locks.init);
    int state = atomic_load_explicit(&bw_init_state, memory_order_acquire);
    if (state == 0) {
        atomic_store_explicit(&bw_init_state, 1, memory_order_relaxed);
        bw_os_init();
        bw_os_meta_key_init(); /* before any metadata is committed */
        bw_random_init();
        bw_ways_init();
        bw_space_lazy = bw_os_space_limited();
        bool ok = bw_space_init();
        if (!ok && !bw_space_lazy) {
            bw_space_lazy = true;
            ok = bw_space_init();
        }
        if (ok) {
            bw_secrets_seal();
            if (bw_page_mode()) bw_large_warm();
            state = 2;
        } else {
            bw_os_meta_key_release();
            bw_os_report_no_space("cannot start");
            state = 3;
        }
        atomic_store_explicit(&bw_init_state, state, memory_order_release);
    }
    bw_unlock(&bw_locks.init);
    if (state == 2 && !atomic_exchange(&bw_atfork_registered, 1))
        pthread_atfork(bw_fork_prepare, bw_fork_parent, bw_fork_child);
    return state == 2;
}

bool bw_ensure_init(void) {
    if (bw_likely(atomic_load_explicit(&bw_init_state, memory_order_acquire) == 2)) return true;
    return bw_init_slow();
}

__attribute__((constructor)) static void bw_constructor(void) {
    BW_META_OPEN();
    bw_ensure_init();
    BW_META_CLOSE();
}
