/* policy/default.h — the default hardening profile.
 *
 * Every knob is a compile-time constant; `make PROFILE=default` includes this
 * file before every translation unit. Each line says what the knob stops and
 * what it costs. */
#ifndef BW_POLICY_H
#define BW_POLICY_H

#define BW_PROFILE_NAME "default"

/* Arena, segment and slab sizes, purge delay, large-block cache. */
#include "common/layout.h"

/* ---- hardening (DESIGN.md invariants 3, 4, 5) ---- */

/* Free lists start as a random permutation of the slab and every link kept
 * in user memory is encoded with per-slab secrets and validated when
 * decoded. Stops free-list poisoning and makes adjacent allocations
 * unpredictable. Costs ~6 instructions per malloc, a shuffle per new slab. */
#define BW_RANDOM_FREELIST 1
#define BW_ENCODE_LINKS    1

/* The last page of every 64 KiB slab is a guard page: a linear overflow off
 * the end of a slab faults. Costs 1/16 of the arena's address space, no
 * RSS, no VMA with MADV_GUARD_INSTALL. */
#define BW_SLAB_GUARD 1

/* 8-byte secret canary at the end of every small block (room reserved in
 * the size class), checked on free and realloc: stops silent heap overflows
 * across block boundaries. Costs 8 bytes per block and 2 instructions. */
#define BW_CANARY 1

/* Byte-exact overflow detection (strict and fuzz have it): off here, so a
 * write into the class's slack past the request goes unseen. On, it costs
 * this profile 68 more instructions per malloc(32)+free pair (callgrind,
 * 328 -> 396, 2026-12-03): filling and checking the slack, the tag. */
#define BW_EXACT_SIZE 0

/* Freed small blocks are zeroed, all of them: no data of an earlier owner
 * is ever handed out, and use-after-free reads see zeros. Costs a memset
 * per free. */
#define BW_ZERO_ON_FREE 1

/* On reuse, the first BW_WAF_CHECK_MAX bytes of a block must still be zero,
 * else "write after free" (requires BW_ZERO_ON_FREE). Costs a read of up to
 * that many bytes per malloc. */
#define BW_WAF_CHECK_MAX 256

/* Per-thread quarantine of freed small blocks: at most this many blocks and
 * bytes wait before reuse, and leave in random order. Stops immediate reuse
 * after free (use-after-free exploitation). Costs the held memory. */
#define BW_QUARANTINE_SLOTS 512
#define BW_QUARANTINE_BYTES (256u << 10)

/* Freed large mappings are made inaccessible (guard markers over the whole
 * range) and kept in a FIFO this long before their address space is reused:
 * a use after free of a large block faults. */
#define BW_LARGE_QUARANTINE 16

/* Large blocks end exactly at their trailing guard page (strict/fuzz). */
#define BW_LARGE_RIGHT_ALIGN 0

/* BULWARK_SEED from the environment fixes the random state (fuzz only; never
 * honoured in a set-uid process). */
#define BW_SEED_FROM_ENV 0

/* malloc(0) returns a unique pointer into never-accessible address space:
 * any read or write through it faults. Costs a lock per malloc(0). */
#define BW_ZERO_SIZE_FAULTS 1

/* Placement entropy (Guarder's metric): each malloc picks one of several
 * open slabs at random so that it lands among at least 2^bits candidate
 * blocks (10 bits up to 256 bytes, 8 above, as Guarder's default). Stops
 * heap feng shui that relies on predictable neighbours. Costs a random byte
 * per malloc and more open slabs per size class (RSS). */
#define BW_ENTROPY_BITS_SMALL 10
#define BW_ENTROPY_BITS_LARGE 8

#endif
