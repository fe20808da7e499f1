/* bulwark — a hardened, security-focused memory allocator.
 *
 * The libc names (malloc, free, ...) are exported by the library itself; this
 * header declares the same operations under the bw_ prefix so programs can
 * call bulwark explicitly, plus the few extensions that have no libc name. */
#ifndef BULWARK_H
#define BULWARK_H

#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define BW_API __attribute__((visibility("default")))
#else
#define BW_API
#endif

BW_API void *bw_malloc(size_t size);
BW_API void bw_free(void *ptr);
BW_API void *bw_calloc(size_t count, size_t size);
BW_API void *bw_realloc(void *ptr, size_t size);
BW_API void *bw_reallocarray(void *ptr, size_t count, size_t size);
BW_API int bw_posix_memalign(void **out, size_t alignment, size_t size);
BW_API void *bw_aligned_alloc(size_t alignment, size_t size);
BW_API void *bw_memalign(size_t alignment, size_t size);
BW_API void *bw_valloc(size_t size);
BW_API void *bw_pvalloc(size_t size);
BW_API size_t bw_malloc_usable_size(const void *ptr);
/* C23: free with the size (and alignment) the block was requested with; a
 * size that cannot belong to the block is a fatal "free size mismatch". */
BW_API void bw_free_sized(void *ptr, size_t size);
BW_API void bw_free_aligned_sized(void *ptr, size_t alignment, size_t size);
/* Returns every empty slab and cached mapping to the kernel; 1 if memory was
 * released, 0 otherwise (glibc semantics). */
BW_API int bw_malloc_trim(size_t pad);
BW_API void bw_malloc_stats(void);
BW_API int bw_malloc_info(int options, FILE *stream);

/* A consistent-enough snapshot of the allocator's counters. */
struct bw_stats {
    size_t small_in_use_bytes;    /* bytes in small blocks handed out (class size) */
    size_t small_committed_bytes; /* slab memory in use by live slabs */
    size_t large_in_use_bytes;    /* bytes of live large mappings (whole mapping) */
    size_t large_cached_bytes;    /* freed large mappings kept for reuse */
    size_t large_count;           /* live large allocations */
    size_t segments_in_use;       /* segments carved from the arena */
    size_t slabs_in_use;          /* slabs serving a size class */
    size_t slabs_abandoned;       /* slabs of exited threads not yet adopted */
    size_t heaps_live;            /* thread heaps in use */
    size_t numa_nodes;            /* NUMA nodes seen at start-up */
    /* Of the small figures above, the part in "medium" classes (above
     * 8 KiB), whose slabs span several 64 KiB slots. */
    size_t medium_in_use_bytes;
    size_t medium_committed_bytes;
    size_t quarantine_blocks;       /* freed small blocks waiting in thread quarantines */
    size_t quarantine_bytes;        /* ... and their bytes (class sizes) */
    size_t large_free_extents;      /* large cache: free extents kept for reuse */
    size_t large_quarantined;       /* freed large blocks in the large quarantine */
    size_t large_regions;           /* mappings large blocks are carved from */
    size_t guard_pages_slabs;       /* guard pages at slab ends now */
    size_t guard_pages_by_madvise;  /* pages guarded since start-up by MADV_GUARD_INSTALL */
    size_t guard_pages_by_mprotect; /* ... and by mprotect(PROT_NONE) */
    int metadata_pkey;              /* protection key of the metadata, -1: none */
    int reserved_space;             /* 1: regions reserved whole; 0: lazy (finite RLIMIT_AS) */
};
/* Fills the first `size` bytes of *out (a struct bw_stats of this header or
 * of an older one: fields are only ever added at the end). Call it through
 * bw_get_stats, which passes the size of the caller's struct, so a program
 * built against an older header is never written past its struct. */
BW_API void bw_get_stats_sized(struct bw_stats *out, size_t size);
/* The symbol bw_get_stats, as programs built before bw_get_stats_sized
 * call it, fills the ten fields up to numa_nodes and no more. */
BW_API void bw_get_stats(struct bw_stats *out);
#define bw_get_stats(out) bw_get_stats_sized((out), sizeof *(out))
/* Writes a human-readable statistics report to a file descriptor without
 * allocating (safe from signal handlers and atexit). */
BW_API void bw_print_stats(int fd);
/* The same as one JSON object on one line (docs/OPERATIONS.md lists its
 * fields), also without allocating. */
BW_API void bw_print_stats_json(int fd);
/* The hardening profile this library was built with: "fast", "default",
 * "strict" or "fuzz". */
BW_API const char *bw_profile(void);
/* How guard pages are made in this process: "MADV_GUARD_INSTALL" or an
 * "mprotect (...)" text saying why not. */
BW_API const char *bw_guard_method(void);

#ifdef __cplusplus
}
#endif
#endif /* BULWARK_H */
