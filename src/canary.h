/* canary.h — what a small block keeps past the bytes the program asked for
 * (BW_CANARY, BW_EXACT_SIZE), written when the block is handed out and
 * checked when it is freed or reallocated.
 *
 * BW_CANARY: every block's last 8 bytes (room the size class reserves, not
 * part of malloc_usable_size) hold a canary derived from the slab's secret
 * and the block's address. 63 of its 64 bits are secret and its first byte
 * is never zero: a byte of any value written past the usable size, a C
 * string's NUL included, changes it (but for a stray byte equal to the
 * canary's, one time in 256).
 *
 * BW_EXACT_SIZE adds byte-exact detection: the canary also records the size
 * the program requested,
 *
 *     bits  0..39  tag = top 40 bits of (slab canary ^ address ^ request) * canary_mul
 *     bits 40..63  the requested size (below 2^24)
 *
 * and the bytes between the request and the canary (the class's slack) hold
 * a pattern byte drawn per slab (never zero). At free the request is read
 * back, its tag checked and every slack byte compared, so a write of any
 * byte past the request is reported, the off-by-one of a malloc(strlen(s))
 * copy included; malloc_usable_size returns the request. The size sits in
 * the canary's high bytes so that an overflow reaching the canary (when the
 * slack is empty) changes the tag first. A pattern byte written over itself
 * goes unseen: one value in 255 for a single stray byte, never for a NUL.
 *
 * Every canary of a small block is written and checked here; the room a
 * class reserves for it (BW_CANARY_BYTES) is in config.h, where the size
 * classes see it, its report in report.c (bw_report_overflow), and large
 * blocks keep canaries of their own (large.c). */
#ifndef BW_CANARY_H
#define BW_CANARY_H

#include "random.h"
#include "report.h"
#include "slab.h"

#define BW_REQUEST_SHIFT 40

BW_INLINE uint64_t *bw_canary_slot(const bw_slab_t *slab, void *block) {
    return (uint64_t *)(void *)((char *)block + slab->block_size - 8);
}

/* The canary of a block holding a request of `requested` bytes. Its first
 * byte (the one an off-by-one NUL lands on when there is no slack) has bit
 * 0 set, so it is never zero: a secret byte would be zero one time in 256
 * and the NUL would go unseen. That costs one bit of the 64 (or of the 40
 * bits of tag). */
#define BW_CANARY_NONZERO 1u
BW_INLINE uint64_t bw_canary_value(const bw_slab_t *slab, const void *block, uint64_t requested) {
#if BW_EXACT_SIZE
    uint64_t h = (slab->canary ^ (uintptr_t)block ^ requested) * bw_secrets.canary_mul;
    return h >> (64 - BW_REQUEST_SHIFT) | requested << BW_REQUEST_SHIFT | BW_CANARY_NONZERO;
#else
    (void)requested;
    return (slab->canary ^ (uintptr_t)block) | BW_CANARY_NONZERO;
#endif
}

#if BW_EXACT_SIZE
BW_INLINE uint64_t bw_slack_pattern(const bw_slab_t *slab) {
    return ((slab->canary >> 56) | 1) * 0x0101010101010101ull;
}

/* [from, to) is filled with the pattern, or compared with it, 8 bytes at a
 * time; the last word overlaps the one before when the length is not a
 * multiple of 8. */
BW_INLINE void bw_slack_fill(char *from, char *to, uint64_t pattern) {
    if (to - from >= 8) {
        for (; from + 8 < to; from += 8) __builtin_memcpy(from, &pattern, 8);
        __builtin_memcpy(to - 8, &pattern, 8);
    } else {
        for (; from < to; from++) *from = (char)pattern;
    }
}

BW_INLINE bool bw_slack_intact(const char *from, const char *to, uint64_t pattern) {
    uint64_t diff = 0, word;
    if (to - from >= 8) {
        for (; from + 8 < to; from += 8) {
            __builtin_memcpy(&word, from, 8);
            diff |= word ^ pattern;
        }
        __builtin_memcpy(&word, to - 8, 8);
        diff |= word ^ pattern;
    } else {
        for (; from < to; from++) diff |= (uint8_t)(*from ^ (char)pattern);
    }
    return diff == 0;
}
#endif

/* A block being handed out for a request of `requested` bytes. */
BW_INLINE void bw_block_arm(const bw_slab_t *slab, void *block, size_t requested) {
#if BW_EXACT_SIZE
    char *canary = (char *)bw_canary_slot(slab, block);
    bw_slack_fill((char *)block + requested, canary, bw_slack_pattern(slab));
#endif
#if BW_CANARY
    *bw_canary_slot(slab, block) = bw_canary_value(slab, block, requested);
#endif
    (void)slab;
    (void)block;
    (void)requested;
}

/* A live block's canary (and slack) must be intact: returns the bytes the
 * program may use (its request with BW_EXACT_SIZE, else the class size less
 * the canary room); a damaged one is a fatal "heap overflow" in function. */
BW_INLINE size_t bw_block_verify(const bw_slab_t *slab, void *block, const char *function) {
#if BW_EXACT_SIZE
    uint64_t canary = *bw_canary_slot(slab, block);
    uint64_t requested = canary >> BW_REQUEST_SHIFT;
    if (bw_unlikely(requested > slab->block_size - 8u ||
                    canary != bw_canary_value(slab, block, requested) ||
                    !bw_slack_intact((const char *)block + requested,
                                     (const char *)bw_canary_slot(slab, block),
                                     bw_slack_pattern(slab))))
        bw_report_overflow(block, slab, function);
    return (size_t)requested;
#elif BW_CANARY
    if (bw_unlikely(*bw_canary_slot(slab, block) != bw_canary_value(slab, block, 0)))
        bw_report_overflow(block, slab, function);
    return slab->block_size - 8u;
#else
    (void)block;
    (void)function;
    return slab->block_size;
#endif
}

#endif
