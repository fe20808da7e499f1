/* wipe.h — zero-on-free (BW_ZERO_ON_FREE) and the write-after-free check
 * at reuse (BW_WAF_CHECK_MAX) of small blocks.
 *
 * free wipes a block whole (bw_block_wipe, from alloc.h's bw_free_local and
 * slab.c's remote free) before it waits in a quarantine or on a free list;
 * the quarantine checks the first word when the block leaves (quarantine.c:
 * the link is written over it then), and malloc checks the rest when it
 * hands the block out again (bw_block_still_zero, from block.h's
 * bw_slab_pop). A write through a dangling pointer in between is reported
 * as "write after free" (report.c). */
#ifndef BW_WIPE_H
#define BW_WIPE_H

#include "config.h"
#include "slab.h"

/* A block handed out is proven zero over this many leading bytes: zeroed at
 * free and checked at reuse. calloc skips its memset below it. */
#if BW_ZERO_ON_FREE && BW_WAF_CHECK_MAX
#define BW_KNOWN_ZERO_BYTES BW_WAF_CHECK_MAX
#else
#define BW_KNOWN_ZERO_BYTES 0
#endif

/* 16-byte lanes (SSE2, the x86-64 baseline; GCC vector extensions, so
 * other targets get the same code in general registers) for the zeroing
 * and the write-after-free check of small blocks. Blocks are 16-byte
 * aligned. */
typedef uint64_t bw_u64x2 __attribute__((vector_size(16)));

/* The write-after-free check (BW_WAF_CHECK_MAX): a block handed out again
 * must still be all zero, as zero-on-free left it (its first word holds the
 * link while it is on a free list, and is zeroed before the check; a write
 * there while it waited in a quarantine is caught when it leaves,
 * bw_block_first_word_zero). The first min(size, BW_WAF_CHECK_MAX) bytes are ORed together 64
 * at a time; the last window overlaps the one before when the size is not
 * a multiple of 64 (an OR does not mind), so no tail loop. */
#if BW_WAF_CHECK_MAX
BW_INLINE bool bw_block_still_zero(const void *block, uint32_t block_size) {
    const bw_u64x2 *lane = (const bw_u64x2 *)block;
    size_t bytes = block_size < BW_WAF_CHECK_MAX ? block_size : BW_WAF_CHECK_MAX;
    bw_u64x2 seen = lane[0];
    if (bw_likely(bytes >= 64)) {
        const bw_u64x2 *last = lane + (bytes - 64) / 16;
        for (; lane < last; lane += 4) seen |= lane[0] | lane[1] | lane[2] | lane[3];
        seen |= last[0] | last[1] | last[2] | last[3];
    } else {
        if (bytes > 16) seen |= lane[1];
        if (bytes > 32) seen |= lane[2];
    }
    return (seen[0] | seen[1]) == 0;
}
#endif

/* Zero-on-free: wipes a freed block whole, its first word too (a dangling
 * pointer must not read what it held, often a pointer, while the block
 * waits in a quarantine; the link is written over it only when the block
 * leaves). Up to 256 bytes inline (a call to memset costs more than the
 * stores), memset's wide stores above. The empty asm hides the trip count,
 * or gcc turns the loop into `rep stos`, whose start-up costs tens of
 * cycles for a few 16-byte stores. */
BW_INLINE void bw_block_wipe(const bw_slab_t *slab, void *block) {
#if BW_ZERO_ON_FREE
    uint32_t size = slab->block_size;
    if (size <= 256) {
        /* The first and last lanes first: that is all of a 16- or 32-byte
         * block, the commonest, with no loop compare between the stores. */
        bw_u64x2 *lane = (bw_u64x2 *)block;
        bw_u64x2 *last = (bw_u64x2 *)(void *)((char *)block + size) - 1;
        lane[0] = (bw_u64x2){0, 0};
        *last = (bw_u64x2){0, 0};
        for (lane++; lane < last; lane++) {
            *lane = (bw_u64x2){0, 0};
            __asm__("" : "+r"(lane));
        }
    } else {
        __builtin_memset(block, 0, size);
    }
#endif
    (void)slab;
    (void)block;
}

/* A block leaving a quarantine (quarantine.c) must still be zero in its
 * first word, which bw_block_still_zero cannot see at reuse: the free-list
 * link is written over it first. */
BW_INLINE bool bw_block_first_word_zero(const void *block) {
    return *(const uint64_t *)block == 0;
}

#endif
