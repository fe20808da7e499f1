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

/* Address space reserved for small-object segments, as a power of two.
 * 2^36 = 64 GiB of virtual space (PROT_NONE until used): bounds how much small
 * memory a process can hold; costs only page-table space when touched. */
#define BW_ARENA_SHIFT 36

/* Segment size (2^22 = 4 MiB, DESIGN.md start value): the unit of NUMA
 * binding and of pooling. Larger segments mean fewer pool operations, more
 * memory held per node. */
#define BW_SEGMENT_SHIFT 22

/* Slab size (2^16 = 64 KiB): each slab serves one size class. Bounds the
 * bitmap (4096 bits for 16-byte blocks) and the largest slab class. */
#define BW_SLAB_SHIFT 16

/* Freed slab memory stays committed this long before MADV_DONTNEED returns it
 * to the kernel: avoids a page-fault storm on alloc/free cycles; costs up to
 * this many milliseconds of extra RSS. */
#define BW_PURGE_DELAY_MS 250

/* Freed large mappings kept for reuse: stops a malloc/free loop of 64 KiB-
 * 1 MiB blocks from costing an mmap+munmap per call; costs up to this much
 * resident memory until purged. */
#define BW_LARGE_CACHE_ENTRIES 16
#define BW_LARGE_CACHE_BYTES   (64u << 20)

/* Recently freed large blocks remembered so that freeing one again reports a
 * double free rather than an invalid free. Costs 8 bytes per entry. */
#define BW_LARGE_FREED_HISTORY 4096

/* ---- hardening: only what invariants 1-3 require ---- */

/* Random free-list order and encoded, validated links: stops free-list
 * poisoning; costs ~6 instructions per malloc. */
#define BW_RANDOM_FREELIST 1
#define BW_ENCODE_LINKS    1

/* Off here (see policy/default.h for what each stops): slab guard pages,
 * canaries, zero-on-free, write-after-free check, quarantines. */
#define BW_SLAB_GUARD        0
#define BW_CANARY            0
#define BW_ZERO_ON_FREE      0
#define BW_WAF_CHECK_MAX     0
#define BW_QUARANTINE_SLOTS  0
#define BW_QUARANTINE_BYTES  0
#define BW_LARGE_QUARANTINE  0
#define BW_LARGE_RIGHT_ALIGN 0
#define BW_SEED_FROM_ENV     0
#define BW_ZERO_SIZE_FAULTS  0

#endif
