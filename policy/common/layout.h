/* policy/common/layout.h — address-space and memory-return knobs shared by
 * every profile (not a profile itself: `make PROFILE=` only accepts the
 * files directly in policy/). A profile that needs other values defines them before
 * including this file. */
#ifndef BW_POLICY_LAYOUT_H
#define BW_POLICY_LAYOUT_H

/* Address space reserved for small-object segments, as a power of two.
 * 2^36 = 64 GiB of virtual space (PROT_NONE until used): bounds how much small
 * memory a process can hold; costs only page-table space when touched. */
#ifndef BW_ARENA_SHIFT
#define BW_ARENA_SHIFT 36
#endif

/* Segment size (2^22 = 4 MiB, DESIGN.md start value): the unit of NUMA
 * binding and of pooling. Larger segments mean fewer pool operations, more
 * memory held per node. */
#ifndef BW_SEGMENT_SHIFT
#define BW_SEGMENT_SHIFT 22
#endif

/* Slab size (2^16 = 64 KiB): each slab serves one size class. Bounds the
 * bitmap (4096 bits for 16-byte blocks) and the largest slab class. */
#ifndef BW_SLAB_SHIFT
#define BW_SLAB_SHIFT 16
#endif

/* A slab's free list is extended lazily, one chunk of 2^this bytes at a
 * time, chunks in random order and the blocks of a chunk in random order
 * (slab.c); slabs of at most 16 blocks are always extended a block at a
 * time. The default, a whole slab, shuffles each slab as one permutation:
 * the next block is uniform over every fresh block of its slab. A smaller
 * chunk (the fast profile's 16 KiB) touches fewer pages of a slab a thread
 * barely uses; it also makes the next block's position more predictable
 * from the last one's, which profiles with random ways would have to make up
 * with more ways (ways.c sizes them per chunk) and more RSS: measured
 * on bench/server, default with 16 KiB chunks held 33 MiB, with whole slabs
 * 24 MiB. A whole slab costs a class's first use in a thread its 15 pages
 * (60 KiB; 16 KiB in fast). Linking it in two steps, one random 4 KiB piece
 * first and the rest once that is used up, was measured (2026-12-05): 4 KiB
 * per first use, peak RSS 6-13% lower on churn, falseshare and strings and
 * unchanged elsewhere (0.96 over the 11 small-object workloads). Not kept:
 * until its piece is used up, a class's next block is predictable to within
 * the piece (5.7 bits for the 80-byte blocks of malloc(64), not 9.6). */
#ifndef BW_FRESH_CHUNK_SHIFT
#define BW_FRESH_CHUNK_SHIFT BW_SLAB_SHIFT
#endif

/* Freed slab memory stays committed this long before MADV_DONTNEED returns it
 * to the kernel: avoids a page-fault storm on alloc/free cycles; costs up to
 * this many milliseconds of extra RSS. */
#ifndef BW_PURGE_DELAY_MS
#define BW_PURGE_DELAY_MS 250
#endif

/* Free slab slots still committed (per NUMA node's pool) above which the
 * purge takes those free for an eighth of BW_PURGE_DELAY_MS (segment.c):
 * 64 slots, 4 MiB. */
#ifndef BW_PURGE_DIRTY_MAX
#define BW_PURGE_DIRTY_MAX 64u
#endif

/* Large blocks are carved from regions of this much address space (large.c);
 * a block whose extent is above a quarter of it gets a region of its own,
 * which realloc moves with mremap instead of copying. Address space only
 * (MAP_NORESERVE; under RLIMIT_AS a region falls back to one block's size).
 * With 64 MiB, blocks of 16-32 MiB each had a mapping of their own, 5-6
 * system calls per block: bench/large (64 KiB-32 MiB) made 2.7 per block
 * in default, 2.0 with 256 MiB, and fast took 4.4 s there against 0.5 s. */
#ifndef BW_LARGE_REGION_SIZE
#define BW_LARGE_REGION_SIZE ((size_t)256 << 20)
#endif

/* Freed large memory stays committed for reuse this long, then MADV_DONTNEED
 * gives it back (checked on large malloc/free; malloc_trim(0) at once).
 * jemalloc's dirty_decay_ms defaults to 10 s; large pages are worth more
 * resident memory than a slab's, so 2 s: the RSS kept is what the program
 * freed in the last 2 s, and a workload that reuses its big buffers more
 * often than that faults no page in again. */
#ifndef BW_LARGE_DECAY_MS
#define BW_LARGE_DECAY_MS 2000u
#endif

/* With a large quarantine (default, strict, fuzz), a freed large block's
 * pages stay resident while it waits (mprotect, and the next block carved
 * there clears them: no page fault) only while the freed extents that keep
 * theirs hold at most this many bytes, or a BW_LARGE_KEPT_SHARE-th of the
 * live large bytes if that is more; the others are guarded by markers,
 * which give their pages back (large.c, bw_kept_room). */
#ifndef BW_LARGE_KEPT_MIN
#define BW_LARGE_KEPT_MIN ((size_t)4 << 20)
#endif
#ifndef BW_LARGE_KEPT_SHARE
#define BW_LARGE_KEPT_SHARE 4u
#endif

/* Rounds of large malloc/free the tests run to cycle freed blocks through
 * reuse (tests/lib/bw_workload.c, tests/security/test_info_leak.c). */
#ifndef BW_LARGE_CACHE_ENTRIES
#define BW_LARGE_CACHE_ENTRIES 16
#endif

/* Recently freed large blocks remembered so that freeing one again reports a
 * double free rather than an invalid free. Costs 8 bytes per entry. */
#ifndef BW_LARGE_FREED_HISTORY
#define BW_LARGE_FREED_HISTORY 4096
#endif

#endif
