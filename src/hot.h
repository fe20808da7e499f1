/* hot.h — the page a forked child writes first: every lock (lock.h), the
 * scalars that every large malloc and free writes (large.h's state, os.h's
 * guard counters) and the fork generation (random.c), one struct defined in
 * init.c. Beside large.c's 72 KiB of arrays and in .data they sat on four
 * pages, which a page-mode child's first large malloc and free copied; a
 * section of their own was laid out in link order, two pages in some
 * static links; one struct is one page whatever the order. */
#ifndef BW_HOT_H
#define BW_HOT_H

#include "config.h"
#include "large.h"
#include "lock.h"
#include "os.h"

typedef struct {
    bw_locks_t locks;                        /* first: each lock's own cache line */
    _Alignas(64) bw_large_state_t large;     /* under bw_locks.large (large.c) */
    _Alignas(64) bw_guard_counts_t guards;   /* added to outside the large lock */
    _Alignas(64) atomic_uint rng_generation; /* bumped in every forked child */
} bw_hot_t;
_Static_assert(sizeof(bw_hot_t) <= 4096, "the hot data fit one page");
extern BW_HIDDEN bw_hot_t bw_hot;

#define bw_locks          (bw_hot.locks)
#define bw_rng_generation (bw_hot.rng_generation)

#endif
