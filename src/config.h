/* config.h — what every layer of bulwark shares: the helper macros, the
 * address-space constants and the knobs a profile (policy/<profile>.h,
 * included first by the build) may leave out, with their defaults and the
 * combinations that make no sense.
 *
 * Address space (DESIGN.md "segments"): one arena reservation of
 * 2^BW_ARENA_SHIFT bytes at a random base, cut into 2^BW_SEGMENT_SHIFT
 * segments, each cut into 2^BW_SLAB_SHIFT slabs. A block's slab descriptor is
 * found from its address by arithmetic: (addr - arena_base) >> BW_SLAB_SHIFT
 * indexes an array of descriptors that lives in a separate metadata
 * reservation (invariant 1). Nothing here is exported. */
#ifndef BW_CONFIG_H
#define BW_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define bw_likely(x)   __builtin_expect(!!(x), 1)
#define bw_unlikely(x) __builtin_expect(!!(x), 0)
#define BW_HIDDEN      __attribute__((visibility("hidden")))
#define BW_NOINLINE    __attribute__((noinline))
#define BW_COLD        __attribute__((cold, noinline))
#define BW_INLINE      static inline __attribute__((always_inline))

#define BW_PAGE_SIZE         4096u
#define BW_ARENA_SIZE        ((uintptr_t)1 << BW_ARENA_SHIFT)
#define BW_SEGMENT_SIZE      ((uintptr_t)1 << BW_SEGMENT_SHIFT)
#define BW_SLAB_SIZE         ((uintptr_t)1 << BW_SLAB_SHIFT)
#define BW_SLABS_PER_SEGMENT (1u << (BW_SEGMENT_SHIFT - BW_SLAB_SHIFT))
#define BW_SEGMENT_COUNT     (1u << (BW_ARENA_SHIFT - BW_SEGMENT_SHIFT))
#define BW_SLAB_COUNT        ((size_t)1 << (BW_ARENA_SHIFT - BW_SLAB_SHIFT))

/* Size classes: see sizeclass.c for the table and its derivation. */
#define BW_CLASS_COUNT           49 /* class 0 is "no class"; 1..48 are real */
#define BW_SMALL_MAX             131072u
#define BW_MIN_BLOCK             16u
#define BW_MAX_BLOCKS_PER_SLAB   (BW_SLAB_SIZE / BW_MIN_BLOCK)
/* Bitmap words per slab slot: four per 1 KiB of arena (see bw_bits_group). */
#define BW_BITMAP_WORDS_PER_SLAB (4 * (BW_SLAB_SIZE >> 10))

#define BW_MAX_NUMA_NODES 64u

/* Knobs a profile may leave out default to "off". */
#ifndef BW_RANDOM_FREELIST
#define BW_RANDOM_FREELIST 0
#endif
#ifndef BW_ENCODE_LINKS
#define BW_ENCODE_LINKS 0
#endif
#ifndef BW_SLAB_GUARD
#define BW_SLAB_GUARD 0
#endif
#ifndef BW_CANARY
#define BW_CANARY 0
#endif
#ifndef BW_ZERO_ON_FREE
#define BW_ZERO_ON_FREE 0
#endif
#ifndef BW_WAF_CHECK_MAX
#define BW_WAF_CHECK_MAX 0
#endif
#ifndef BW_QUARANTINE_SLOTS
#define BW_QUARANTINE_SLOTS 0
#define BW_QUARANTINE_BYTES 0
#endif
/* A block the quarantine lets go waits in a small per-class stack of its
 * heap for the class's next malloc (quarantine.c), up to BW_READY_SLOTS
 * blocks of at most BW_READY_MAX_BLOCK bytes per class; others go back to
 * their slab's free list. */
#ifndef BW_READY_SLOTS
#define BW_READY_SLOTS 8
#endif
#ifndef BW_READY_MAX_BLOCK
#define BW_READY_MAX_BLOCK 2048u
#endif
/* Other heaps' blocks a thread freed (in the profiles with a quarantine,
 * once they left it) wait in a per-class ring of its own heap, up to
 * BW_FOREIGN_SLOTS of at most BW_READY_MAX_BLOCK bytes, for its next
 * malloc of the class (foreign.h) instead of going back to their owner
 * (0: always back to the owner). A power of two, at most 128. */
#ifndef BW_FOREIGN_SLOTS
#define BW_FOREIGN_SLOTS 8
#endif
#if BW_FOREIGN_SLOTS & (BW_FOREIGN_SLOTS - 1) || BW_FOREIGN_SLOTS > 128
#error "BW_FOREIGN_SLOTS must be a power of two, at most 128"
#endif
/* Mallocs the ready stacks and foreign rings serve between two slow paths, which do the
 * periodic work (aging, purging, following the NUMA node): a malloc/free
 * loop would otherwise be served from them forever. */
#ifndef BW_READY_RUN
#define BW_READY_RUN 128u
#endif
#ifndef BW_LARGE_QUARANTINE
#define BW_LARGE_QUARANTINE 0
#endif
#ifndef BW_LARGE_RIGHT_ALIGN
#define BW_LARGE_RIGHT_ALIGN 0
#endif
#ifndef BW_SEED_FROM_ENV
#define BW_SEED_FROM_ENV 0
#endif
#ifndef BW_PAGE_MODE
#define BW_PAGE_MODE 0
#endif
#ifndef BW_ZERO_SIZE_FAULTS
#define BW_ZERO_SIZE_FAULTS 0
#endif
#ifndef BW_PKEY_METADATA
#define BW_PKEY_METADATA 0
#endif
#ifndef BW_EXACT_SIZE
#define BW_EXACT_SIZE 0
#endif
#ifndef BW_ENTROPY_BITS_SMALL
#define BW_ENTROPY_BITS_SMALL 0
#define BW_ENTROPY_BITS_LARGE 0
#endif
#if BW_WAF_CHECK_MAX && !BW_ZERO_ON_FREE
#error "BW_WAF_CHECK_MAX (write-after-free check) requires BW_ZERO_ON_FREE"
#endif
#if BW_LARGE_RIGHT_ALIGN && !BW_LARGE_QUARANTINE
#error "BW_LARGE_RIGHT_ALIGN needs BW_LARGE_QUARANTINE (parking unguards the pages it guards)"
#endif
#if BW_QUARANTINE_SLOTS & (BW_QUARANTINE_SLOTS - 1)
#error "BW_QUARANTINE_SLOTS must be a power of two"
#endif
#if BW_EXACT_SIZE && !BW_CANARY
#error "BW_EXACT_SIZE keeps the requested size in the canary: it needs BW_CANARY"
#endif

/* Bytes a slab can carve (the guard page is not usable) and the canary room
 * every small block reserves. */
#define BW_SLAB_USABLE  (BW_SLAB_SIZE - (BW_SLAB_GUARD ? BW_PAGE_SIZE : 0))
#define BW_CANARY_BYTES (BW_CANARY ? 8u : 0u)

_Static_assert(BW_SLABS_PER_SEGMENT <= 64, "segment slot bitmap is one word");
_Static_assert(BW_SEGMENT_SHIFT > BW_SLAB_SHIFT, "a segment holds several slabs");
/* The largest span (bw_class_span_slots) is 16 slots and holds at least 7
 * of the largest class; link.h's offsets cover it. */
#define BW_SPAN_SLOTS_MAX 16u
#define BW_SPAN_MAX_BYTES (BW_SPAN_SLOTS_MAX * BW_SLAB_SIZE)
_Static_assert(BW_SLABS_PER_SEGMENT >= BW_SPAN_SLOTS_MAX, "a segment holds the largest span");
_Static_assert((BW_SPAN_SLOTS_MAX * BW_SLAB_SIZE - BW_PAGE_SIZE) / BW_SMALL_MAX >= 7,
               "the largest span holds at least 7 of the largest class");

#endif
