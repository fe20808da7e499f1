/* policy/fast.h — the fast profile: invariants 1-3 only (out-of-line metadata, checked
 * frees, randomized encoded free lists); no guard pages per slab, no
 * quarantine, no canaries, no zero-on-free. For builders whose speed budget
 * is mimalloc's.
 *
 * Every knob is a compile-time constant; `make PROFILE=default` includes this
 * file before every translation unit. Each line says what the knob stops and
 * what it costs. */
#ifndef BW_POLICY_H
#define BW_POLICY_H

#define BW_PROFILE_NAME "fast"

/* Free lists are extended and shuffled 16 KiB of a slab at a time, not
 * the whole slab: a class a thread uses for a few blocks touches 16 KiB,
 * and a malloc/free loop stays in fewer cache lines. Costs placement
 * entropy: the next block is uniform over its chunk, not its slab. */
#define BW_FRESH_CHUNK_SHIFT 14

/* Arena, segment and slab sizes, purge delay, large-block cache. */
#include "common/layout.h"

/* ---- hardening: only what invariants 1-3 require ---- */

/* Random free-list order and encoded, validated links: stops free-list
 * poisoning; costs ~6 instructions per malloc. */
#define BW_RANDOM_FREELIST 1
#define BW_ENCODE_LINKS    1

/* Off here (see policy/default.h for what each stops): slab guard pages,
 * canaries, zero-on-free, write-after-free check, quarantines. */
#define BW_SLAB_GUARD        0
#define BW_CANARY            0
#define BW_EXACT_SIZE        0
#define BW_ZERO_ON_FREE      0
#define BW_WAF_CHECK_MAX     0
#define BW_QUARANTINE_SLOTS  0
#define BW_QUARANTINE_BYTES  0
#define BW_LARGE_QUARANTINE  0
#define BW_LARGE_RIGHT_ALIGN 0
#define BW_SEED_FROM_ENV     0
#define BW_ZERO_SIZE_FAULTS  0

#endif
