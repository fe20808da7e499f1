/* lock.h — the allocator's one lock type; its slow half (the futex calls)
 * is in os.c, with the other system calls. */
#ifndef BW_LOCK_H
#define BW_LOCK_H

#include "config.h"

/* ------------------------------------------------------------------ locks */
/* A futex mutex: U. Drepper, "Futexes Are Tricky" (2011), mutex 2. state is
 * 0 free, 1 held, 2 held and some thread may sleep on it. A waiter spins
 * briefly, then sleeps in FUTEX_WAIT until the holder's unlock wakes one;
 * an uncontended lock and unlock make no system call. Sleeping, not
 * yielding, matters when threads outnumber CPUs: a holder preempted (or
 * its virtual CPU descheduled by the host) gets the CPU back instead of
 * competing with every waiter's sched_yield loop. Never taken on the fast
 * path. Fork-safe: the child has no other thread, so no waiter either, and
 * resets every lock to 0 (bw_lock_reset_in_child). */
typedef struct {
    atomic_int state;
} bw_lock_t;

void bw_lock_acquire_slow(bw_lock_t *lock);
void bw_lock_wake_one(bw_lock_t *lock);
BW_INLINE void bw_lock(bw_lock_t *lock) {
    int expected = 0;
    if (bw_likely(atomic_compare_exchange_strong_explicit(
            &lock->state, &expected, 1, memory_order_acquire, memory_order_relaxed)))
        return;
    bw_lock_acquire_slow(lock);
}
BW_INLINE void bw_unlock(bw_lock_t *lock) {
    if (bw_unlikely(atomic_exchange_explicit(&lock->state, 0, memory_order_release) == 2))
        bw_lock_wake_one(lock);
}
/* fork child: whoever held the lock in the parent does not exist here. */
BW_INLINE void bw_lock_reset_in_child(bw_lock_t *lock) {
    atomic_store_explicit(&lock->state, 0, memory_order_relaxed);
}

/* Every lock bulwark has, on one page (bw_hot in hot.h, defined in init.c,
 * whose fork handlers take them all), whose rest holds only the scalars
 * that every large malloc and free writes: a forked child's first large
 * malloc copies them with the locks. Why one page: in a process with threads
 * the parent's fork handler releases every lock while the child is alive,
 * so each page holding a lock is a copy-on-write copy per fork; the locks
 * used to sit on three pages of .bss, next to their layers' data (4 page
 * faults in the parent per fork where glibc's fork takes 1; now 2; a
 * process with one thread takes no lock at fork at all, init.c). The
 * singletons get a cache line each (two threads taking different locks do
 * not share a line); the per-node segment pool locks, taken only to carve
 * or return a segment, share lines. A lock added anywhere is added here
 * and to bw_locks_each (init.c), the one list every fork handler uses. */
typedef struct {
    _Alignas(64) bw_lock_t init;                     /* start-up (init.c) */
    _Alignas(64) bw_lock_t heap_pool;                /* the heap pool (heap.c) */
    _Alignas(64) bw_lock_t abandoned;                /* abandoned slabs (heap.c) */
    _Alignas(64) bw_lock_t arena;                    /* bw_segments_carved (segment.c) */
    _Alignas(64) bw_lock_t large;                    /* the large layer (large.c) */
    _Alignas(64) bw_lock_t zero;                     /* zero-size blocks (zero_size.c) */
    _Alignas(64) bw_lock_t pools[BW_MAX_NUMA_NODES]; /* segment pools (segment.c) */
} bw_locks_t;
_Static_assert(sizeof(bw_locks_t) <= 4096, "the locks fit their page");
/* bw_locks: hot.h. */

#endif
