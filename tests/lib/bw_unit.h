/* bw_unit.h — for the unit tests, which call a layer's internal functions
 * directly where bulwark's own entry points would: they need what every
 * entry point does first, the library initialised and the metadata write
 * window open. Without the second, a profile with BW_PKEY_METADATA on a CPU
 * with protection keys faults at the first metadata store the test makes
 * (bw_quarantine_flush, bw_large_alloc, bw_slab_slot_acquire...), which is
 * the protection working (security/test_metadata_pkey proves it), not a
 * bug in the layer under test.
 *
 * Call once from main, before the tests run. The window stays open for the
 * main thread: entry points the tests go through find it open and leave it
 * so (bw_meta_open's nesting rule). Threads a test starts use only the
 * public API, which opens and closes the window itself. */
#ifndef BW_UNIT_H
#define BW_UNIT_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "bw_internal.h"

static inline void bw_unit_enter_as_allocator(void) {
    if (!bw_ensure_init()) {
        fputs("bw_unit: bulwark did not initialise\n", stderr);
        exit(1);
    }
#if BW_PKEY_METADATA
    (void)bw_meta_open();
#endif
}

#endif
