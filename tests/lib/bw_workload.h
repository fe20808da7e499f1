/* bw_workload.h — a pass over every path of bulwark that installs or
 * removes guard pages and gives memory back to the kernel, with content
 * checks, for tests that change what the kernel allows (mlockall, a seccomp
 * policy) and then expect bulwark to behave exactly as before.
 *
 * Meant to run in a forked child (bw_expect_no_report): a check that fails
 * is described on stderr and the function returns false; a crash ends the
 * child, which fails the test just the same. */
#ifndef BW_WORKLOAD_H
#define BW_WORKLOAD_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every small class, the two-slot span classes above 8 KiB included, three
 * slabs' worth of blocks at a time: fresh slabs (the span's inner guard page
 * gives way), malloc_trim(0) (empty slabs released, their guards put back,
 * the purge decommits them) and reuse of those slots by other classes, with
 * malloc and calloc. Every block is filled and checked; calloc's are zero. */
bool bw_workload_small_classes(void);

/* Large blocks of 20 KiB to 1 MiB, page-aligned and 64 KiB-aligned, a few
 * live at a time, freed three times as often as the large quarantine and
 * cache hold (so parked mappings come back and are handed out again),
 * grown and shrunk by realloc; malloc_trim(0) and once more. Every block is
 * filled and checked; calloc's are zero. */
bool bw_workload_large_blocks(void);

#ifdef __cplusplus
}
#endif

#endif /* BW_WORKLOAD_H */
