/* init.c — lazy initialisation, fork handlers (DESIGN.md "Threads, fork,
 * start-up"). Every entry point that needs the allocator's state calls
 * bw_ensure_init(); the constructor only does it early. Initialisation never
 * calls malloc, stdio or dlsym (invariant 8): it reserves address space,
 * reads sysfs with open/read, draws key material from libsodium and creates
 * a pthread key (a static slot). pthread_atfork, which may allocate, is
 * registered after the state is published, outside the init lock
 * (CONVENTIONS trap 1). */
#include <pthread.h>

#include "bw_internal.h"

atomic_int bw_init_state;
static bw_lock_t bw_init_lock;
static atomic_int bw_atfork_registered;

/* The fork handlers write metadata (locks, the child's new keys): each is
 * an entry point of its own (BW_META_OPEN).
 *
 * prepare takes every bw_lock_t bulwark has, so that no other thread holds
 * one at the instant of fork (the child would inherit it held, with nobody
 * to release it): init, heap pool, abandoned slabs, segment pools, arena,
 * large table, zero-size bitmap. The order is the one lock order of the
 * code: the only nesting is a segment pool's lock, then the arena's
 * (bw_segment_carve); every other lock is taken with none held. A lock added
 * anywhere must be added here too. */
static void bw_fork_prepare(void) {
    BW_META_OPEN();
    bw_lock(&bw_init_lock);
    bw_heaps_fork_prepare();
    bw_segments_fork_prepare();
    bw_large_fork_prepare();
    bw_zero_fork_prepare();
    bw_random_fork_prepare();
    BW_META_CLOSE();
}

static void bw_fork_parent(void) {
    BW_META_OPEN();
    bw_zero_fork_parent();
    bw_large_fork_parent();
    bw_segments_fork_parent();
    bw_heaps_fork_parent();
    bw_unlock(&bw_init_lock);
    BW_META_CLOSE();
}

/* The child has one thread: every lock is free again. The other threads'
 * heaps stay as they were (their blocks are still valid in the child). */
static void bw_fork_child(void) {
    BW_META_OPEN();
    bw_zero_fork_child();
    bw_large_fork_child();
    bw_segments_fork_child();
    bw_heaps_fork_child();
    bw_random_fork_child();
    bw_lock_reset_in_child(&bw_init_lock);
    BW_META_CLOSE();
}

/* The regions, in either kind of space (os.c, "lazy space"); a step that
 * fails undoes the ones before it. */
static bool bw_space_init(void) {
    if (!bw_segments_init()) return false;
    if (!bw_heaps_init()) {
        bw_segments_release();
        return false;
    }
    if (!bw_zero_init()) { /* cleans up after itself */
        bw_heaps_release();
        bw_segments_release();
        return false;
    }
    return true;
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
    bw_lock(&bw_init_lock);
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
    bw_unlock(&bw_init_lock);
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
