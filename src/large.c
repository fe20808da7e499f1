/* large.c — allocations above the largest slab class (DESIGN.md layer
 * "large"). They are carved from regions: mappings of BW_LARGE_REGION_SIZE
 * bytes (or of one block's size, when it is larger than a quarter of that
 * or a region cannot be had), each cut into extents in address order:
 *
 *     region: [extent][extent] ... [extent][guard page]
 *     extent: [guard page][body pages ................]
 *
 * The first page of every extent, live or free, is a guard (bw_os_guard:
 * guard markers, which cost no VMA, or mprotect), and so is a region's last
 * page: every block's body has a guard on both sides, and never shares a
 * page with small blocks or another block. A live block's body is
 * accessible. A free extent's body is accessible in the profiles without a
 * large quarantine, so that reusing it costs no system call; with
 * BW_LARGE_QUARANTINE it is inaccessible whole (a use after free faults),
 * which also makes splitting and coalescing free extents cost nothing: one
 * mprotect makes a block's body inaccessible when it is freed, keeping its
 * pages ("kept"), and one opens the body of the next block carved there,
 * whose part that held an earlier owner's bytes (bw_extent_t's dirty
 * range) memset clears before it is handed out, so no byte of an earlier
 * owner is ever visible. Measured on this project's 2-core KVM machine,
 * that costs about 0.2 ms per 2 MiB block against 1.3-1.7 ms for guard
 * markers (which discard the pages) and faulting the pages in again; blocks
 * above 64 MiB (BW_LARGE_DEDICATED_MIN), and kept extents the decay reaches, are guarded by markers
 * instead, so their pages go back to the kernel.
 *
 * Live blocks are found in an open-addressing table keyed by the user
 * address (the ownership check of a free is O(1) and reads no user memory);
 * recently freed addresses are remembered so that freeing one again is
 * reported as a double free. Free extents sit in one array sorted by
 * address (best fit by a scan; neighbours by binary search), both in
 * guarded mappings of their own. Freed memory stays committed for reuse
 * until it has been free for BW_LARGE_DECAY_MS (then MADV_DONTNEED, and a
 * region free whole is unmapped), checked on the large malloc and free
 * paths with no thread of its own, or until malloc_trim(0). One lock
 * guards the table, the history, the extents and the regions; the system
 * calls on a block's own body are made outside it. */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "heap.h"
#include "hot.h"
#include "large.h"
#include "lock.h"
#include "os.h"
#include "report.h"
#include "sizeclass.h"

typedef struct bw_large_entry {
    uintptr_t user;     /* 0 = empty slot */
    uintptr_t ext_base; /* the extent: its leading guard page ... */
    size_t ext_size;    /* ... and its body, which a guard page follows */
    size_t requested;   /* size asked for (free_sized checks it; the canary follows it) */
    uint64_t canary;    /* this block's own canary value, random, no zero byte */
    unsigned node;      /* NUMA node of the region */
    bool right_aligned; /* ends at its trailing guard page (no canary) */
    bool lead_marker;   /* its leading guard page is a guard marker (bw_extent_t) */
} bw_large_entry_t;

/* A free extent (or one waiting in the large quarantine). */
typedef struct bw_extent {
    uintptr_t base; /* leading guard page */
    size_t size;    /* guard page and body */
    uint64_t freed_at_ms;
    unsigned node;
    /* The body may hold an earlier owner's bytes in resident pages: freed
     * and accessible (no quarantine), or guarded by mprotect (which keeps
     * them). Decay clears it; a guard marker or fresh pages never set it. */
    bool dirty;
    /* BW_LARGE_QUARANTINE: the body is inaccessible by mprotect, its pages
     * kept (bw_extent_seal), rather than guarded by markers. Such an extent
     * merges only with kept ones, and then `marked`: pages inside it may
     * carry the guard markers of the leading pages merged in, which
     * mprotect does not remove, and opening it costs a second system call.
     * `lead_marker`: the leading page may carry one (a kept extent cut
     * from another has a leading page that is merely inaccessible). */
    bool kept;
    bool marked;
    bool lead_marker;
    bool loose; /* kept, but by markers over accessible pages (out of mappings) */
    /* In the large quarantine: the freed block's address, which goes to
     * bw_freed_history only when the extent leaves (a double free of it is
     * told from an invalid free meanwhile by a scan of the quarantine).
     * Written at free, the history was a page a forked child's first free
     * copied besides the quarantine's own. 0 everywhere else. */
    uintptr_t user;
    /* Where dirty: the earlier owners' bytes lie in [dirty_lo, dirty_hi);
     * the rest of the extent reads as zeros. Kept extents merge with
     * discarded and never-used ones, so a body carved from one was mostly
     * pages that were not resident: 97% of those bench/window 400 cleared
     * whole (mincore before the first 100 clears), each faulted in only to
     * be zeroed twice. Only this range is cleared now. */
    uintptr_t dirty_lo, dirty_hi;
} bw_extent_t;

typedef struct bw_region {
    uintptr_t base;
    size_t size; /* its extents and its trailing guard page */
    /* Pages below are mapped read-write, a free one under a guard marker;
     * from here on the region is PROT_NONE and has no page table entries
     * (bw_region_open_to). base + size when opened whole. */
    uintptr_t open_end;
} bw_region_t;

/* Regions in page mode (the fuzz profile, where every block is carved
 * here): a fuzzer's forked execution that maps the first region guards it
 * whole with markers, and its exit tears them down again, both in
 * proportion to the region's size: with 256 MiB an AFL++ execution of a
 * target making 18 small mallocs took 4.3 ms (226 execs/s; libdislocator
 * 1,950). */
#define BW_PAGE_MODE_REGION_SIZE ((size_t)4 << 20)

static size_t bw_large_region_size(void) {
    return bw_page_mode() ? BW_PAGE_MODE_REGION_SIZE : BW_LARGE_REGION_SIZE;
}

#define BW_LARGE_DEDICATED_MIN (bw_large_region_size() / 4)

/* Large canary (BW_CANARY, unless the block is right-aligned onto its
 * guard page, which catches the same overflow by faulting): 8 random bytes
 * drawn per block, none of them zero (bw_large_canary_draw), so a byte of
 * any value written just past the usable size, a NUL included, changes it;
 * and a forked child's new blocks get canaries its parent never saw.
 * They sit in the last 8 bytes before the trailing guard, excluded from the
 * usable size (CONVENTIONS trap 10), or with BW_EXACT_SIZE right after the
 * bytes the program asked for (unaligned), the usable size being the
 * request. The mapping keeps room for them (BW_LARGE_CANARY_ROOM). */
#define BW_LARGE_CANARY_ROOM (BW_CANARY ? 8u : 0u)

/* End of the block's body: its trailing guard page starts there. */
static uintptr_t bw_large_region_end(const bw_large_entry_t *e) {
    return e->ext_base + e->ext_size;
}

static bool bw_large_has_canary(const bw_large_entry_t *e) {
    return BW_CANARY && !e->right_aligned;
}

/* The largest request the block can take in place (realloc). */
static size_t bw_large_capacity(const bw_large_entry_t *e) {
    return bw_large_region_end(e) - e->user - (bw_large_has_canary(e) ? 8u : 0u);
}

/* What malloc_usable_size reports: the request with BW_EXACT_SIZE, else
 * every byte up to the canary or the trailing guard. */
static size_t bw_large_usable(const bw_large_entry_t *e) {
    return BW_EXACT_SIZE ? e->requested : bw_large_capacity(e);
}

/* A random word for a canary: the calling thread's generator (large
 * allocations are a slow path; creating the heap here is fine), the
 * kernel's only when no heap can be had. */
static uint64_t bw_large_random(void) {
    bw_heap_t *heap = bw_heap_get_or_create();
    uint64_t r;
    if (heap) return bw_rng_next(&heap->rng);
    bw_random_bytes(&r, sizeof r);
    return r;
}

/* A canary with no zero byte: a zero byte is replaced by a random nonzero
 * one (255 values left per byte, 63.9 bits in all), so that a string
 * function's terminating NUL written one byte past the block never leaves
 * the canary as it was. */
static uint64_t bw_large_canary_draw(void) {
    uint64_t c = bw_large_random(), spare = bw_large_random();
    for (unsigned i = 0; i < 64; i += 8) {
        uint64_t byte = (c >> i) & 0xff;
        if (byte == 0) {
            byte = (spare & 0xff) % 255 + 1;
            c |= byte << i;
        }
        spare >>= 8;
    }
    return c;
}

/* Where the canary is (bw_large_has_canary). */
static char *bw_large_canary_at(const bw_large_entry_t *e) {
    return BW_EXACT_SIZE ? (char *)e->user + e->requested : (char *)bw_large_region_end(e) - 8;
}

/* A right-aligned block (BW_EXACT_SIZE) has no canary but up to 15 bytes
 * between its request and its guard page (its start keeps a 16-byte
 * alignment): they hold a pattern byte taken from its canary word. */
static uint8_t bw_large_slack_byte(const bw_large_entry_t *e) {
    return (uint8_t)(e->canary | 1);
}

static void bw_large_canary_write(const bw_large_entry_t *e) {
    if (bw_large_has_canary(e)) {
        __builtin_memcpy(bw_large_canary_at(e), &e->canary, 8);
    } else if (BW_EXACT_SIZE) {
        uint8_t pattern = bw_large_slack_byte(e);
        char *end = (char *)bw_large_region_end(e);
        for (char *p = (char *)e->user + e->requested; p < end; p++) *p = (char)pattern;
    }
}

static bool bw_large_canary_ok(const bw_large_entry_t *e) {
    if (bw_large_has_canary(e)) {
        uint64_t stored;
        __builtin_memcpy(&stored, bw_large_canary_at(e), 8);
        return stored == e->canary;
    }
    if (BW_EXACT_SIZE) {
        uint8_t pattern = bw_large_slack_byte(e);
        const char *end = (const char *)bw_large_region_end(e);
        for (const char *p = (const char *)e->user + e->requested; p < end; p++)
            if ((uint8_t)*p != pattern) return false;
    }
    return true;
}

/* Where the user part starts in a body that starts at `first`: right
 * there, or (`right`) as late as the alignment allows, so that the block
 * ends at the trailing guard and a one-byte overflow faults. Only within
 * the body's first page: pages left in front would be accessible and
 * unguarded. */
static void bw_large_place(bw_large_entry_t *e, uintptr_t first, size_t size, size_t alignment,
                           bool right) {
    size_t align = alignment > 16 ? alignment : 16;
    uintptr_t user = (bw_large_region_end(e) - (size ? size : 1)) & ~(uintptr_t)(align - 1);
    e->right_aligned = right && user >= first && user < first + BW_PAGE_SIZE;
    e->user = e->right_aligned ? user : first;
}
/* The scalars that every large malloc and free writes are on the locks'
 * page (bw_large_state_t in large.h, bw_hot in hot.h), not beside the
 * arrays of this file; these are their names here. */
#define bw_table              (bw_hot.large.table)
#define bw_table_capacity     (bw_hot.large.table_capacity)
#define bw_table_count        (bw_hot.large.table_count)
#define bw_large_in_use_bytes (bw_hot.large.in_use_bytes)
#define bw_freed_history_next (bw_hot.large.freed_history_next)
#define bw_free_bytes         (bw_hot.large.free_bytes)
#define bw_free               (bw_hot.large.free)
#define bw_free_count         (bw_hot.large.free_count)
#define bw_free_capacity      (bw_hot.large.free_capacity)
#define bw_extent_total       (bw_hot.large.extent_total)
#define bw_regions            (bw_hot.large.regions)
#define bw_region_count       (bw_hot.large.region_count)
#define bw_region_capacity    (bw_hot.large.region_capacity)
#define bw_decay_last_ms      (bw_hot.large.decay_last_ms)
#define bw_fifo_head          (bw_hot.large.fifo_head)
#define bw_fifo_count         (bw_hot.large.fifo_count)
#define bw_large_locked       (bw_hot.large.locked)

static uintptr_t bw_freed_history[BW_LARGE_FREED_HISTORY];

/* Bytes of free and quarantined extents: mapped, kept for reuse. */

/* The counters bw_large_stats reports (bw_table_count, bw_large_in_use_bytes,
 * bw_free_bytes) change only under bw_locks.large but are read without it:
 * statistics may be taken from a signal handler that interrupted the lock's
 * holder. A relaxed atomic store of the new value (a plain store on x86)
 * lets such a reader see each counter whole; the lock holder's own plain
 * read is ordered by the lock. */
static void bw_counter_set(size_t *counter, size_t value) {
    __atomic_store_n(counter, value, __ATOMIC_RELAXED);
}

static size_t bw_page_round(size_t size) {
    return (size + BW_PAGE_SIZE - 1) & ~(size_t)(BW_PAGE_SIZE - 1);
}

/* Fibonacci hashing (Knuth, TAOCP vol. 3, 6.4) of the 512 KiB group the
 * block starts in, plus its 8 KiB granule within the group: blocks side by
 * side get slots side by side. Page mode (the fuzz profile) carves runs of
 * 2-page extents (a guard and a body), and a forked child's first touch of
 * a table page costs a page fault: hashing each page on its own spread 17
 * blocks over 11 table pages, 22 of the 89 faults of a child that makes
 * them; a 256 KiB group and its pages left every other slot empty, so that
 * 20 blocks spanned 40 slots, about half the time two pages; now 20 slots.
 * Blocks of the other profiles are 33 pages or more, so a group holds at
 * most four, 16 slots apart, and the groups still spread evenly. */
static size_t bw_table_slot(uintptr_t user, size_t capacity) {
    size_t group = (size_t)(((user >> 19) * 0x9E3779B97F4A7C15ull) >> 32);
    return (group + ((user >> 13) & 63)) & (capacity - 1);
}

/* Metadata (the table, the extent and region arrays) in a mapping of its
 * own with guard pages: it never borders user pages without a guard in
 * between, and is behind the metadata protection key where there is one.
 * The key goes on the guard pages too, before their markers: one VMA per
 * mapping, not three (every VMA costs each fork a copy; with mprotect
 * guards it is three again). */
static void *bw_meta_map(size_t bytes) {
    bytes = bw_page_round(bytes);
    char *map = bw_os_map(bytes + 2 * BW_PAGE_SIZE);
    if (!map) return NULL;
    if (!bw_os_protect_meta(map, bytes + 2 * BW_PAGE_SIZE) || !bw_os_guard(map, BW_PAGE_SIZE) ||
        !bw_os_guard(map + BW_PAGE_SIZE + bytes, BW_PAGE_SIZE)) {
        bw_os_release(map, bytes + 2 * BW_PAGE_SIZE);
        return NULL;
    }
    return map + BW_PAGE_SIZE;
}

static void bw_meta_unmap(void *meta, size_t bytes) {
    bw_os_release((char *)meta - BW_PAGE_SIZE, bw_page_round(bytes) + 2 * BW_PAGE_SIZE);
}

/* Page mode (a fuzzer's forked executions, each of which puts its blocks
 * in the table its parent made) writes every page of a new table at once:
 * a child's first write of a page its parent never touched took two page
 * faults (the zero page its probe read mapped, then a copy), of one the
 * parent touched one. */
static bw_large_entry_t *bw_table_map(size_t capacity) {
    size_t bytes = capacity * sizeof(bw_large_entry_t);
    bw_large_entry_t *table = bw_meta_map(bytes);
    if (table && bw_page_mode())
        for (size_t at = 0; at < bytes; at += BW_PAGE_SIZE) ((volatile char *)table)[at] = 0;
    return table;
}

static void bw_table_unmap(bw_large_entry_t *table, size_t capacity) {
    bw_meta_unmap(table, capacity * sizeof(bw_large_entry_t));
}

static void bw_table_put(bw_large_entry_t *table, size_t capacity, const bw_large_entry_t *e) {
    size_t i = bw_table_slot(e->user, capacity);
    while (table[i].user) i = (i + 1) & (capacity - 1);
    table[i] = *e;
}

/* Keeps the load factor at or below 1/2. Called with the lock held. */
static bool bw_table_reserve_one(void) {
    if ((bw_table_count + 1) * 2 <= bw_table_capacity) return true;
    size_t capacity = bw_table_capacity ? bw_table_capacity * 2 : 1024;
    bw_large_entry_t *table = bw_table_map(capacity);
    if (!table) return false;
    for (size_t i = 0; i < bw_table_capacity; i++)
        if (bw_table[i].user) bw_table_put(table, capacity, &bw_table[i]);
    if (bw_table) bw_table_unmap(bw_table, bw_table_capacity);
    bw_table = table;
    bw_table_capacity = capacity;
    return true;
}

static bw_large_entry_t *bw_table_find(uintptr_t user) {
    if (!bw_table_capacity) return NULL;
    size_t i = bw_table_slot(user, bw_table_capacity);
    while (bw_table[i].user) {
        if (bw_table[i].user == user) return &bw_table[i];
        i = (i + 1) & (bw_table_capacity - 1);
    }
    return NULL;
}

/* Linear-probing deletion by backward shift: no tombstones. */
static void bw_table_erase(bw_large_entry_t *slot) {
    size_t mask = bw_table_capacity - 1;
    size_t hole = (size_t)(slot - bw_table);
    size_t i = hole;
    for (;;) {
        i = (i + 1) & mask;
        if (!bw_table[i].user) break;
        size_t home = bw_table_slot(bw_table[i].user, bw_table_capacity);
        /* Move entry i into the hole unless its home lies cyclically in (hole, i]. */
        bool stays = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (!stays) {
            bw_table[hole] = bw_table[i];
            hole = i;
        }
    }
    bw_table[hole].user = 0;
    bw_counter_set(&bw_table_count, bw_table_count - 1);
}

/* ----------------------------------------------------------------- extents */

/* Freed extents, guarded whole, oldest first (invariant 4): not reused and
 * not coalesced until they leave. */
#if BW_LARGE_QUARANTINE
/* Page mode (fuzz) parks 16 times as many: every block is a large one
 * there, and a use after free faults only while its block is parked; its
 * extents are guarded by markers and keep no pages, so a longer FIFO costs
 * address space only (3 pages per small block). */
#define BW_FIFO_SLOTS (BW_PAGE_MODE ? 16 * BW_LARGE_QUARANTINE : BW_LARGE_QUARANTINE)
static bw_extent_t bw_fifo[BW_FIFO_SLOTS];

/* How many extents the FIFO holds now (also for the statistics). */
size_t bw_large_quarantine_slots(void) {
    return bw_page_mode() ? BW_FIFO_SLOTS : BW_LARGE_QUARANTINE;
}
#else
size_t bw_large_quarantine_slots(void) {
    return 0;
}
#endif
#if BW_LARGE_QUARANTINE

/* Whether a freed extent of `size` bytes may keep its pages through the
 * quarantine and until it is reused or decays (bw_extent_seal): only while
 * the free and quarantined extents that keep theirs hold at most
 * BW_LARGE_KEPT_MIN or a BW_LARGE_KEPT_SHARE-th of the live large bytes,
 * whichever is more. Keeping every freed extent held what the program
 * freed in the last 2 s: bench/window (4 live blocks of 64 KiB-8 MiB)
 * peaked at 91.6 MiB where the guard markers of the earlier design, which
 * kept nothing, peaked at 26.5. A scan of the quarantine and the free
 * extents, at each large free. Lock held. */
static bool bw_kept_room(size_t size) {
    size_t kept = size;
    for (size_t k = 0; k < bw_fifo_count; k++) {
        const bw_extent_t *q = &bw_fifo[(bw_fifo_head + k) % BW_FIFO_SLOTS];
        if (q->dirty) kept += q->size;
    }
    for (size_t i = 0; i < bw_free_count; i++)
        if (bw_free[i].dirty) kept += bw_free[i].size;
    size_t budget = bw_large_in_use_bytes / BW_LARGE_KEPT_SHARE;
    return kept <= (budget > BW_LARGE_KEPT_MIN ? budget : BW_LARGE_KEPT_MIN);
}
#endif

/* A metadata array grown to hold `need` elements (doubling, in a new
 * guarded mapping); NULL when it cannot be, and the old one stays. */
static void *bw_array_grow(void *array, size_t *capacity, size_t need, size_t elem) {
    if (need <= *capacity) return array;
    size_t grown_capacity = *capacity ? *capacity : 256;
    while (grown_capacity < need) grown_capacity *= 2;
    void *grown = bw_meta_map(grown_capacity * elem);
    if (!grown) return NULL;
    if (array) {
        memcpy(grown, array, *capacity * elem);
        bw_meta_unmap(array, *capacity * elem);
    }
    *capacity = grown_capacity;
    return grown;
}

/* Room for every extent there may be after a malloc (two splits and a new
 * region), so that a free never needs memory to put its extent back: free
 * extents are never more than all extents. Lock held. */
static bool bw_free_reserve(void) {
    bw_extent_t *grown =
        bw_array_grow(bw_free, &bw_free_capacity, bw_extent_total + 3, sizeof *bw_free);
    if (!grown) return false;
    bw_free = grown;
    return true;
}

/* The first free extent at or above addr. */
static size_t bw_free_search(uintptr_t addr) {
    size_t low = 0, high = bw_free_count;
    while (low < high) {
        size_t mid = low + (high - low) / 2;
        if (bw_free[mid].base < addr)
            low = mid + 1;
        else
            high = mid;
    }
    return low;
}

static void bw_free_insert_at(size_t i, const bw_extent_t *x) {
    memmove(&bw_free[i + 1], &bw_free[i], (bw_free_count - i) * sizeof *bw_free);
    bw_free[i] = *x;
    bw_free_count++;
    bw_counter_set(&bw_free_bytes, bw_free_bytes + x->size);
}

static bw_extent_t bw_free_remove_at(size_t i) {
    bw_extent_t x = bw_free[i];
    memmove(&bw_free[i], &bw_free[i + 1], (bw_free_count - i - 1) * sizeof *bw_free);
    bw_free_count--;
    bw_counter_set(&bw_free_bytes, bw_free_bytes - x.size);
    return x;
}

/* Where a body of `body` bytes aligned to `alignment` would start in a free
 * extent [base, base + size) after its leading guard page, or 0 if it does
 * not fit. */
static uintptr_t bw_fit_span(uintptr_t base, size_t size, size_t body, size_t alignment) {
    uintptr_t end = base + size;
    uintptr_t start = (base + BW_PAGE_SIZE + alignment - 1) & ~(uintptr_t)(alignment - 1);
    return start <= end && end - start >= body ? start : 0;
}

/* The whole extent may hold an earlier owner's bytes. */
static void bw_dirty_whole(bw_extent_t *x) {
    x->dirty = true;
    x->dirty_lo = x->base;
    x->dirty_hi = x->base + x->size;
}

/* [lo, hi) joins the dirty range (its bounding range: what lies between
 * is cleared too when the range is). */
static void bw_dirty_add(bw_extent_t *x, uintptr_t lo, uintptr_t hi) {
    if (!x->dirty) {
        x->dirty_lo = lo;
        x->dirty_hi = hi;
    }
    if (lo < x->dirty_lo) x->dirty_lo = lo;
    if (hi > x->dirty_hi) x->dirty_hi = hi;
    x->dirty = true;
}

/* A piece [from, to) of a dirty range's owner keeps the part of the range
 * inside it; none, and it is clean. */
static void bw_dirty_clip(bool *dirty, uintptr_t *lo, uintptr_t *hi, uintptr_t from, uintptr_t to) {
    if (!*dirty) return;
    if (*lo < from) *lo = from;
    if (*hi > to) *hi = to;
    *dirty = *lo < *hi;
}
static void bw_extent_clip_dirty(bw_extent_t *x) {
    bw_dirty_clip(&x->dirty, &x->dirty_lo, &x->dirty_hi, x->base, x->base + x->size);
}

/* Merge b, which follows a, into a. */
static void bw_extent_absorb(bw_extent_t *a, const bw_extent_t *b) {
    a->marked = a->marked || b->marked || (a->kept && b->lead_marker);
    a->size += b->size;
    if (b->dirty) bw_dirty_add(a, b->dirty_lo, b->dirty_hi);
    if (b->freed_at_ms > a->freed_at_ms) a->freed_at_ms = b->freed_at_ms;
    bw_extent_total--;
}

/* Whether two free extents, b right after a, merge by bookkeeping: with
 * BW_LARGE_QUARANTINE both are inaccessible whole, so the guard page
 * between them is like the rest; guarded by markers or both kept. */
static bool bw_extents_merge(const bw_extent_t *a, const bw_extent_t *b) {
    return BW_LARGE_QUARANTINE && a->kept == b->kept && !a->loose && !b->loose &&
           a->base + a->size == b->base;
}

/* Put a free extent back in address order; with `coalesce`, merged with
 * the free extents it touches where bw_extents_merge allows. Lock held;
 * bw_free_reserve made the room. */
static void bw_free_put(bw_extent_t x, bool coalesce) {
    size_t i = bw_free_search(x.base);
    if (coalesce) {
        if (i < bw_free_count && bw_extents_merge(&x, &bw_free[i])) {
            bw_extent_t next = bw_free_remove_at(i);
            bw_extent_absorb(&x, &next);
        }
        if (i > 0 && bw_extents_merge(&bw_free[i - 1], &x)) {
            bw_extent_t prev = bw_free_remove_at(--i);
            bw_extent_absorb(&prev, &x);
            x = prev;
        }
    }
    bw_free_insert_at(i, &x);
}

#if !BW_LARGE_QUARANTINE
/* Accessible free bodies: merging two free extents removes the guard page
 * between them, a system call. A request merges only the run it needs
 * (bw_free_merge_for); the decay merges every neighbour, touched or not,
 * so that a region free whole is one extent. Lock held. */
static bool bw_free_merge_all(void) {
    bool merged = false;
    size_t out = 0;
    for (size_t i = 0; i < bw_free_count; i++) {
        bw_extent_t x = bw_free[i];
        if (out > 0 && bw_free[out - 1].base + bw_free[out - 1].size == x.base) {
            bw_unguard_t back = bw_os_unguard((void *)x.base, BW_PAGE_SIZE);
            if (back != BW_UNGUARD_FAILED) {
                if (back == BW_UNGUARD_STALE) bw_dirty_add(&x, x.base, x.base + BW_PAGE_SIZE);
                bw_extent_absorb(&bw_free[out - 1], &x);
                merged = true;
                continue;
            }
        }
        bw_free[out++] = x;
    }
    bw_free_count = out;
    return merged;
}

/* When no single touched (dirty) free extent of `node` holds a body: the
 * run of adjacent touched extents that holds it and is smallest, merged.
 * Merging k extents removes the k - 1 guard pages between them, a system
 * call each, so only the run one request needs is merged (merging every
 * neighbour each time, bw_free_merge_all, made the window workload's
 * steady state 0.2 system calls per replacement; this, 0.07: strace, 2,000
 * and 20,000 replacements). Untouched extents are left out, so that a
 * merged extent's dirty flag still says its pages were used. Returns the
 * merged extent's index, or SIZE_MAX when no run holds the body. Lock
 * held. */
static size_t bw_free_merge_for(size_t body, size_t alignment, unsigned node) {
    size_t best_first = SIZE_MAX, best_last = 0, best_size = SIZE_MAX;
    for (size_t first = 0; first < bw_free_count; first++) {
        const bw_extent_t *x = &bw_free[first];
        if (!x->dirty || x->node != node) continue;
        size_t size = x->size, last = first;
        while (!bw_fit_span(x->base, size, body, alignment) && last + 1 < bw_free_count &&
               bw_free[last + 1].dirty &&
               bw_free[last].base + bw_free[last].size == bw_free[last + 1].base) {
            last++;
            size += bw_free[last].size;
        }
        if (last > first && size < best_size && bw_fit_span(x->base, size, body, alignment)) {
            best_first = first;
            best_last = last;
            best_size = size;
        }
    }
    if (best_first == SIZE_MAX) return SIZE_MAX;
    bw_extent_t merged = bw_free[best_first];
    size_t next = best_first + 1;
    for (; next <= best_last; next++) {
        bw_unguard_t back = bw_os_unguard((void *)bw_free[next].base, BW_PAGE_SIZE);
        if (back == BW_UNGUARD_FAILED) break;
        bw_extent_absorb(&merged, &bw_free[next]);
    }
    bw_free[best_first] = merged;
    memmove(&bw_free[best_first + 1], &bw_free[next], (bw_free_count - next) * sizeof *bw_free);
    bw_free_count -= next - best_first - 1;
    return best_first;
}
#else
/* Turn kept free extents (all, or those free for BW_LARGE_DECAY_MS) into
 * extents guarded whole by markers, which discard their pages, and merge
 * what then touches: two system calls each. Done when no free extent fits
 * a request and by the decay. Returns the bytes given back. Lock held. */
static size_t bw_free_unkeep(uint64_t now, bool all) {
    size_t released = 0, out = 0;
    for (size_t i = 0; i < bw_free_count; i++) {
        bw_extent_t x = bw_free[i];
        if (x.kept && (all || now - x.freed_at_ms >= BW_LARGE_DECAY_MS) &&
            bw_os_guard((void *)x.base, x.size)) {
            if (!bw_os_has_guard_madvise()) {
                /* Markers refused meanwhile: bw_os_guard used mprotect,
                 * which keeps the pages; bw_os_unguard undoes any guard. */
                x.kept = x.marked = x.loose = false;
            } else {
                if (x.dirty) released += x.size - BW_PAGE_SIZE;
                x.dirty = false;
                x.lead_marker = true;
                /* Out of mappings: still kept (inaccessible by mprotect),
                 * with markers inside, opened by both calls. */
                x.marked = !bw_os_commit((void *)x.base, x.size);
                x.kept = x.marked;
                x.loose = false;
            }
        }
        if (out > 0 && bw_extents_merge(&bw_free[out - 1], &x)) {
            bw_extent_absorb(&bw_free[out - 1], &x);
            continue;
        }
        bw_free[out++] = x;
    }
    bw_free_count = out;
    return released;
}
#endif

/* ----------------------------------------------------------------- regions */

/* The region that starts at base, or bw_region_count. */
static size_t bw_region_at(uintptr_t base) {
    size_t low = 0, high = bw_region_count;
    while (low < high) {
        size_t mid = low + (high - low) / 2;
        if (bw_regions[mid].base < base)
            low = mid + 1;
        else
            high = mid;
    }
    return low < bw_region_count && bw_regions[low].base == base ? low : bw_region_count;
}

/* Whether a free extent is a whole region (its last page is the region's
 * trailing guard). */
static size_t bw_region_of_whole(const bw_extent_t *x) {
    size_t r = bw_region_at(x->base);
    return r < bw_region_count && bw_regions[r].size == x->size + BW_PAGE_SIZE ? r
                                                                               : bw_region_count;
}

/* The region holding address addr (which lies in one). */
static bw_region_t *bw_region_containing(uintptr_t addr) {
    size_t low = 0, high = bw_region_count;
    while (high - low > 1) {
        size_t mid = low + (high - low) / 2;
        if (bw_regions[mid].base <= addr)
            low = mid;
        else
            high = mid;
    }
    return &bw_regions[low];
}

/* Before the pages below `end` of the region holding addr are carved: open
 * what is still PROT_NONE there, in steps of a 256th of a region (at least
 * 64 KiB, 1 MiB for 256 MiB regions; 256 KiB in page mode, whose forked
 * executions each opened their own 64 KiB steps: about 2 per forkloop
 * child, 4 system calls that took about 25 us of its 370-430, against 0.2
 * now; each fork copies the up to 64 guard marker entries opened ahead),
 * into the state every free page of
 * the profiles with a large quarantine is in: read-write under a guard
 * marker (installed first, so that no page is ever accessible unguarded).
 * Two system calls per step; the page table entries follow what carving
 * reached, as the pages of any allocator's heap do. Without guard markers
 * (an old kernel, locked memory, seccomp) the guards are PROT_NONE, which
 * the unopened pages already are: the region counts as open. Lock held. */
static bool bw_region_open_to(uintptr_t addr, uintptr_t end) {
    bw_region_t *g = bw_region_containing(addr);
    if (end <= g->open_end) return true;
    uintptr_t region_end = g->base + g->size;
    size_t step = bw_large_region_size() / 256;
    size_t min_step = (size_t)(bw_page_mode() ? 256 : 64) << 10;
    if (step < min_step) step = min_step;
    uintptr_t to = g->open_end + (end - g->open_end + step - 1) / step * step;
    if (to > region_end) to = region_end;
    if (bw_os_has_guard_madvise()) {
        if (!bw_os_guard((void *)g->open_end, to - g->open_end)) return false;
        /* The markers were refused meanwhile: the guard is PROT_NONE. */
        if (bw_os_has_guard_madvise() && !bw_os_commit((void *)g->open_end, to - g->open_end))
            return false;
    }
    g->open_end = bw_os_has_guard_madvise() ? to : region_end;
    return true;
}

static void bw_region_release(size_t r) {
    bw_os_release((void *)bw_regions[r].base, bw_regions[r].size);
    memmove(&bw_regions[r], &bw_regions[r + 1], (bw_region_count - r - 1) * sizeof *bw_regions);
    bw_region_count--;
}

/* A new region that holds an extent of ext_bytes (guard page, body and
 * alignment slack), preferring the given node: BW_LARGE_REGION_SIZE, or
 * just the extent when it is larger than a quarter of that, when
 * `dedicated`, or when the address space for a whole region cannot be had
 * (RLIMIT_AS). Its one extent goes to the free array, guarded whole with a
 * large quarantine, else at its two ends. Returns the extent's base, 0 on
 * failure. Lock held. */

static uintptr_t bw_region_new(size_t ext_bytes, unsigned node, bool dedicated) {
    bw_region_t *grown =
        bw_array_grow(bw_regions, &bw_region_capacity, bw_region_count + 1, sizeof *bw_regions);
    if (!grown) return 0;
    bw_regions = grown;
    size_t size = bw_large_region_size();
    char *map = NULL;
    if (!dedicated && !bw_large_locked && ext_bytes <= BW_LARGE_DEDICATED_MIN) {
        /* A process that locks its future mappings (mlockall MCL_FUTURE)
         * would get every region populated and locked whole: 256 MiB
         * resident for one 200 KiB block (with 64 MiB regions mlockall.sh's
         * runs took 37 s, not 17), or no region at all under a lower
         * RLIMIT_MEMLOCK. A one-page probe tells, before the region is
         * mapped; from then on each region holds just its block, as a
         * mapping per block did before regions. */
        if (bw_os_future_locked())
            bw_large_locked = true;
        else
            map = BW_LARGE_QUARANTINE ? bw_os_map_none(size) : bw_os_map(size);
    }
    /* With a large quarantine every free page is inaccessible. A whole
     * region under guard markers was 65,536 page table entries that every
     * fork copied: fork() of a default process that had made one large
     * block took 3.4-3.8 ms, not 0.1 ms (test_large_fork). PROT_NONE
     * instead, opened as carving reaches it (bw_region_open_to). A region
     * of one block is opened whole at once, as before. */
    bool lazy = map != NULL && BW_LARGE_QUARANTINE > 0;
    if (!map) {
        size = ext_bytes + BW_PAGE_SIZE;
        map = bw_os_map(size);
    }
    if (!map) return 0;
    bw_os_bind_node(map, size, node);
    bool guarded =
        lazy || (BW_LARGE_QUARANTINE ? bw_os_guard(map, size)
                                     : bw_os_guard(map, BW_PAGE_SIZE) &&
                                           bw_os_guard(map + size - BW_PAGE_SIZE, BW_PAGE_SIZE));
    if (!guarded) {
        bw_os_release(map, size);
        return 0;
    }
    size_t r = bw_region_count;
    while (r > 0 && bw_regions[r - 1].base > (uintptr_t)map) r--;
    memmove(&bw_regions[r + 1], &bw_regions[r], (bw_region_count - r) * sizeof *bw_regions);
    bw_regions[r] = (bw_region_t){(uintptr_t)map, size, (uintptr_t)map + (lazy ? 0 : size)};
    bw_region_count++;
    bw_extent_t whole = {.base = (uintptr_t)map,
                         .size = size - BW_PAGE_SIZE,
                         .freed_at_ms = bw_os_now_ms(),
                         .node = node,
                         .lead_marker = true};
    bw_extent_total++;
    bw_free_put(whole, false);
    return (uintptr_t)map;
}

/* Give back what has been free for BW_LARGE_DECAY_MS (everything with
 * `all`): a region free whole is unmapped, a dirty body is decommitted
 * (it stays mapped and reads as zeros). Returns the bytes given back. Lock
 * held. */
static size_t bw_large_decay(uint64_t now, bool all) {
    size_t released = 0;
    bw_decay_last_ms = now;
#if !BW_LARGE_QUARANTINE
    /* Free extents are merged lazily: merge them first, so that a region
     * free whole is one extent. Only when something is due. */
    bool due = all;
    for (size_t i = 0; i < bw_free_count && !due; i++)
        due = now - bw_free[i].freed_at_ms >= BW_LARGE_DECAY_MS;
    if (due) bw_free_merge_all();
#else
    released += bw_free_unkeep(now, all);
    /* Quarantined bodies kept resident: their pages go too (they stay
     * inaccessible and read as zeros once carved again). */
    for (size_t k = 0; k < bw_fifo_count; k++) {
        bw_extent_t *q = &bw_fifo[(bw_fifo_head + k) % BW_FIFO_SLOTS];
        if (q->dirty && (all || now - q->freed_at_ms >= BW_LARGE_DECAY_MS) &&
            bw_os_decommit((void *)q->base, q->size)) {
            q->dirty = false;
            released += q->size - BW_PAGE_SIZE;
        }
    }
#endif
    for (size_t i = 0; i < bw_free_count;) {
        bw_extent_t *x = &bw_free[i];
        if (!all && now - x->freed_at_ms < BW_LARGE_DECAY_MS) {
            i++;
            continue;
        }
        size_t r = bw_region_of_whole(x);
        if (r < bw_region_count) {
            released += bw_regions[r].size;
            bw_free_remove_at(i);
            bw_extent_total--;
            bw_region_release(r);
            continue;
        }
        /* The leading page too: a kept extent's may hold bytes from when
         * it was part of a body, and becomes one again when merged. */
        if (x->dirty && bw_os_decommit((void *)x->base, x->size)) {
            x->dirty = false;
            released += x->size - BW_PAGE_SIZE;
        }
        i++;
    }
    return released;
}

/* Decay, at most four times per BW_LARGE_DECAY_MS; lock held. */
static void bw_large_decay_maybe(void) {
    uint64_t now = bw_os_now_ms();
    if (now - bw_decay_last_ms >= BW_LARGE_DECAY_MS / 4) bw_large_decay(now, false);
}

/* ----------------------------------------------------------------- carving */

typedef struct {
    uintptr_t ext_base; /* guard page */
    size_t ext_size;
    uintptr_t body; /* aligned start of the body */
    unsigned node;
    bool dirty;
    bool kept;
    bool marked;
    bool lead_marker;
    bool loose;
    bool clear_lead;              /* opening removes the leading page's markers too */
    uintptr_t dirty_lo, dirty_hi; /* as in bw_extent_t */
} bw_carved_t;

/* bw_fit_span of free extent i. */
static uintptr_t bw_fit(size_t i, size_t body, size_t alignment) {
    return bw_fit_span(bw_free[i].base, bw_free[i].size, body, alignment);
}

/* Cut an extent for a body out of free extent i (bw_fit says where): the
 * alignment slack in front and the rest behind stay free extents. With a
 * large quarantine every free page is guarded already; otherwise each cut
 * guards the page that becomes a leading guard, and a rest no larger than
 * the body stays with the block: no system call, and its pages cost memory
 * only if the program writes them. With a quarter instead, the window
 * workload (4 live blocks of 64 KiB-8 MiB, 20,000 replacements) made
 * 11,720 system calls and peaked at 68 MB; with the body, 632 and 65 MB:
 * cut and merged extents kept being cut and merged again. Lock held. */
static bool bw_carve_from(size_t i, size_t body, size_t alignment, bw_carved_t *out) {
    uintptr_t start = bw_fit(i, body, alignment);
    if (BW_LARGE_QUARANTINE && !bw_region_open_to(bw_free[i].base, start + body)) return false;
    bw_extent_t x = bw_free_remove_at(i);
    uintptr_t lead = start - BW_PAGE_SIZE, end = x.base + x.size, block_end = start + body;
    if (lead > x.base) {
        if (!BW_LARGE_QUARANTINE && !bw_os_guard((void *)lead, BW_PAGE_SIZE)) {
            bw_free_put(x, false);
            return false;
        }
        bw_extent_t front = x;
        front.size = lead - x.base;
        bw_extent_clip_dirty(&front);
        bw_free_put(front, false);
        bw_extent_total++;
    }
    size_t rest = end - block_end;
    bool split = BW_LARGE_QUARANTINE ? rest != 0 : rest >= 2 * BW_PAGE_SIZE && rest > body;
    if (split && !BW_LARGE_QUARANTINE && !bw_os_guard((void *)block_end, BW_PAGE_SIZE))
        split = false;
    if (split) {
        bw_extent_t back = x;
        back.base = block_end;
        back.size = rest;
        back.lead_marker = !x.kept || x.marked;
        bw_extent_clip_dirty(&back);
        bw_free_put(back, false);
        bw_extent_total++;
    } else {
        block_end = end;
    }
    /* Every page of an extent guarded by markers carries one; a kept
     * extent's own leading page may (lead_marker), the others only if it
     * is marked. Opening clears the new leading page's marker too (it
     * stays inaccessible: every page of a kept extent is, but a loose
     * one's), once, so that markers do not spread from extent to extent
     * and cost a system call each time. */
    bool had_marker = lead == x.base ? x.lead_marker : x.marked;
    bool clear_lead = x.kept && !x.loose && had_marker;
    bool lead_marker = !x.kept || x.loose;
    *out = (bw_carved_t){lead,     block_end - lead, start,   x.node,     x.dirty,    x.kept,
                         x.marked, lead_marker,      x.loose, clear_lead, x.dirty_lo, x.dirty_hi};
    bw_dirty_clip(&out->dirty, &out->dirty_lo, &out->dirty_hi, lead, block_end);
    return true;
}

/* Best fit among the free extents of the caller's node (bw_os_bind_node
 * bound their region there), or with `any_node` among all of them, the
 * caller's first; with `touched_only`, among dirty ones only (pages a
 * block used, still committed). Lock held. */
static bool bw_carve(size_t body, size_t alignment, unsigned node, bool any_node, bool touched_only,
                     bw_carved_t *out) {
    size_t best = SIZE_MAX, best_waste = SIZE_MAX;
    bool best_local = false;
    for (size_t i = 0; i < bw_free_count; i++) {
        bool local = bw_free[i].node == node;
        if ((!local && !any_node) || (touched_only && !bw_free[i].dirty) ||
            !bw_fit(i, body, alignment))
            continue;
        size_t waste = bw_free[i].size - body;
        if (best == SIZE_MAX || (local && !best_local) ||
            (local == best_local && waste < best_waste)) {
            best = i;
            best_waste = waste;
            best_local = local;
            if (local && waste == BW_PAGE_SIZE) break; /* exact */
        }
    }
    return best != SIZE_MAX && bw_carve_from(best, body, alignment, out);
}

/* An extent from the free ones of the caller's node, from merged ones,
 * from a new region bound to that node, and only when no region can be
 * had, from another node's free extents; with `dedicated`, always a region
 * of its own. A free extent of another node is not taken while a region
 * can be made: its pages, touched or not, would be placed on that node
 * (on a two-node VM, tests/vm/numa.sh, a node-0 thread got 0% of its large
 * pages on node 0 after a node-1 thread had opened a region). On one node
 * every extent is local. Lock held. */
static bool bw_extent_get(size_t body, size_t alignment, unsigned node, bool dedicated,
                          bw_carved_t *out) {
    if (!bw_free_reserve()) return false;
    if (!dedicated) {
#if !BW_LARGE_QUARANTINE
        /* Pages blocks used first, merged if no single extent fits, and
         * only then fresh space (a region's untouched rest, decayed
         * extents): a fresh page costs a page fault and its zeroing, a
         * merge one system call for the guard page between. Carving fresh
         * space whenever some untouched extent fitted (a region's rest
         * always does, so extents were never merged) made the window
         * workload (4 live blocks of 64 KiB-8 MiB, 2,000 replacements)
         * touch 72 MB where 4 blocks of at most 8 MiB are live: 17,951
         * page faults, mimalloc 10,416 (GNU time, bench/window.c). */
        if (bw_carve(body, alignment, node, false, true, out)) return true;
        size_t merged = bw_free_merge_for(body, alignment, node);
        if (merged != SIZE_MAX && bw_fit(merged, body, alignment))
            return bw_carve_from(merged, body, alignment, out);
        if (bw_carve(body, alignment, node, false, false, out)) return true;
#else
        if (bw_carve(body, alignment, node, false, false, out)) return true;
        bw_free_unkeep(0, true);
        if (bw_carve(body, alignment, node, false, false, out)) return true;
#endif
    }
    size_t ext_bytes = BW_PAGE_SIZE + body + (alignment > BW_PAGE_SIZE ? alignment : 0);
    uintptr_t base = bw_region_new(ext_bytes, node, dedicated);
    if (!base) {
        /* Out of address space or mappings: regions free whole may be in
         * the way. */
        bw_large_decay(bw_os_now_ms(), true);
        base = bw_region_new(ext_bytes, node, dedicated);
    }
    if (!base) return !dedicated && bw_carve(body, alignment, node, true, false, out);
    return bw_carve_from(bw_free_search(base), body, alignment, out);
}

/* Give back an extent that was carved but not handed out; lock held. */
static void bw_extent_unget(const bw_carved_t *c) {
    bw_extent_t x = {c->ext_base, c->ext_size, bw_os_now_ms(), c->node,
                     c->dirty,    c->kept,     c->marked,      c->lead_marker,
                     c->loose,    0,           c->dirty_lo,    c->dirty_hi};
    bw_free_put(x, BW_LARGE_QUARANTINE);
}

static unsigned bw_large_node(void) {
    return bw_topology.node_count > 1 ? bw_topology.current_node() : 0;
}

#if BW_LARGE_QUARANTINE
/* Make a freed extent's body inaccessible: one system call. mprotect keeps
 * its pages (kept: the next owner's malloc makes them accessible and
 * clears them, no page fault), which guard markers would not: they cost no
 * VMA but discard the pages, and the next owner then faults every one in
 * again, five times the cost (bw_os_protect_none). A kept extent's leading
 * page may be a marker or merely inaccessible, so kept extents merge only
 * with each other. Out of mappings, markers instead (or, failing those,
 * the bytes are cleared: no later owner sees them, though a use after free
 * goes unnoticed), still opened as a kept extent, `marked`. Where markers
 * were refused (locked memory, seccomp), every guard is an mprotect and
 * bw_os_unguard undoes any of them. */
static void bw_extent_seal(bw_extent_t *x, bool keep) {
    void *body = (void *)(x->base + BW_PAGE_SIZE);
    size_t size = x->size - BW_PAGE_SIZE;
    bw_dirty_whole(x);
    x->kept = x->marked = x->loose = false;
    if (!bw_os_has_guard_madvise()) {
        if (!bw_os_guard(body, size)) memset(body, 0, size);
        return;
    }
    /* Page mode (fuzz): markers over the whole extent, as over a fresh
     * region, so that it merges with free neighbours and costs no VMA. Kept
     * by mprotect, each freed block split the region's mapping: 5,000 live
     * blocks of page mode took 10,026 mappings (test_page_mode), within
     * reach of vm.max_map_count as libdislocator's mapping per block. Its
     * pages go (one or two each; faulting them in again is cheap). */
    if (bw_page_mode() && bw_os_guard((void *)x->base, x->size)) {
        x->dirty = false;
        x->lead_marker = true;
        return;
    }
    /* The whole extent, its leading page too: every page of a kept extent
     * is inaccessible without its markers (bw_carve_from's clear_lead).
     * Not a block above BW_LARGE_DEDICATED_MIN: keeping hundreds of MiB
     * resident through the quarantine costs more than faulting them in;
     * those are "loose": markers over the body, which discard its pages,
     * and one system call again to open it. An extent the budget of kept
     * bytes has no room for (bw_kept_room) is made inaccessible the same
     * way as a kept one, so that it still merges with its kept neighbours,
     * but by a fresh PROT_NONE mapping over it, which discards its pages
     * (and the leading page's marker) in the same call. Guard markers
     * would too, but a loose extent merges with nothing: on bench/window
     * 400 (default) that took 1,402 system calls (free extents fitting no
     * request were turned into marked ones, two calls each); mprotect and
     * then MADV_DONTNEED took 1,358; this 989, all at 30-33 MiB peak RSS. */
    x->kept = true;
    if (x->size <= BW_LARGE_DEDICATED_MIN) {
        if (keep && bw_os_protect_none((void *)x->base, x->size)) return;
        if (!keep && bw_os_protect_none_fresh((void *)x->base, x->size)) {
            bw_os_bind_node((void *)x->base, x->size, x->node);
            x->dirty = x->lead_marker = false;
            return;
        }
    }
    x->marked = x->loose = true;
    if (bw_os_guard(body, size))
        x->dirty = !bw_os_has_guard_madvise();
    else
        memset(body, 0, size);
}

/* Make a carved body accessible: at most two system calls, one unless the
 * extent was kept and merged (then its markers go first). A kept body
 * holds its earlier owner's bytes (BW_UNGUARD_STALE: the caller clears
 * them); guard markers leave zeros; locked pages guarded by mprotect may
 * keep an earlier owner's bytes (BW_UNGUARD_STALE too). */
static bw_unguard_t bw_extent_open(const bw_carved_t *c) {
    void *body = (void *)c->body;
    size_t size = c->ext_base + c->ext_size - c->body;
    /* A loose body is accessible under its markers (bw_extent_seal): the
     * markers go and that is all. */
    if (!c->kept || c->loose) return bw_os_unguard(body, size);
    if ((c->marked || c->clear_lead) &&
        bw_os_unguard(c->clear_lead ? (void *)c->ext_base : body,
                      c->clear_lead ? c->ext_size : size) == BW_UNGUARD_FAILED)
        return BW_UNGUARD_FAILED;
    if (!bw_os_commit(body, size)) return BW_UNGUARD_FAILED;
    return c->dirty ? BW_UNGUARD_STALE : BW_UNGUARD_ZERO;
}
#endif

/* ------------------------------------------------------------------ blocks */

/* A block of `size` bytes; `capacity` > size asks for room to grow in place
 * (realloc), which also keeps the block left-aligned with a canary. */
static void *bw_large_alloc_room(size_t size, size_t capacity, size_t alignment, bool zero) {
    size_t user_alignment = alignment;
    if (alignment < BW_PAGE_SIZE) alignment = BW_PAGE_SIZE;
    if (capacity < size) capacity = size;
    /* No mapping can be aligned to 2^62 or more (and PTRDIFF_MAX - 3 pages
     * - 2^63 would wrap around below). */
    if (alignment > PTRDIFF_MAX / 2 || capacity > PTRDIFF_MAX - 3 * BW_PAGE_SIZE - alignment) {
        errno = ENOMEM;
        return NULL;
    }
    /* Right-aligned blocks need no canary room (their guard is the check):
     * every block of strict and fuzz (BW_LARGE_RIGHT_ALIGN) that is not to
     * grow and is aligned to a page at most, and in every profile a request
     * of whole pages that is not to grow, which then ends exactly at its
     * guard. */
    bool whole_pages = size != 0 && size % BW_PAGE_SIZE == 0;
    bool right =
        capacity == size && ((BW_LARGE_RIGHT_ALIGN && alignment == BW_PAGE_SIZE) || whole_pages);
    size_t body = bw_page_round((capacity ? capacity : 1) + (right ? 0 : BW_LARGE_CANARY_ROOM));
    bool dedicated = BW_PAGE_SIZE + body > BW_LARGE_DEDICATED_MIN;
    unsigned node = bw_large_node();
    bw_carved_t c;

    bw_lock(&bw_locks.large);
    bool ok = bw_extent_get(body, alignment, node, dedicated, &c);
    bw_large_decay_maybe();
    bw_unlock(&bw_locks.large);
    if (!ok) {
        errno = ENOMEM;
        return NULL;
    }
    uintptr_t end = c.ext_base + c.ext_size;
    bool zeroed = !c.dirty;
#if BW_LARGE_QUARANTINE
    /* The body was inaccessible: make it accessible. A kept body has its
     * earlier owner's bytes (cleared below); guard markers leave zeros;
     * locked pages guarded by mprotect may keep an earlier owner's bytes
     * (BW_UNGUARD_STALE, cleared below). */
    bw_unguard_t back = bw_extent_open(&c);
    if (back == BW_UNGUARD_FAILED) {
        bw_lock(&bw_locks.large);
        bw_extent_unget(&c);
        bw_unlock(&bw_locks.large);
        errno = ENOMEM;
        return NULL;
    }
    zeroed = back == BW_UNGUARD_ZERO;
#endif
    bw_large_entry_t entry = {0, c.ext_base, c.ext_size, size, 0, c.node, false, c.lead_marker};
    bw_large_place(&entry, c.body, size, user_alignment, right);
    /* calloc needs zeros; the hardened profiles never hand out a freed
     * block's bytes. Where they come from the extent's dirty range alone
     * (not from pages a locked mapping kept under an mprotect guard),
     * only that range is cleared. */
    uintptr_t clear_from = c.body, clear_to = end;
#if BW_LARGE_QUARANTINE
    bool stale_is_dirty = c.kept && !c.loose;
#else
    bool stale_is_dirty = true;
#endif
    if (stale_is_dirty && c.dirty) {
        if (c.dirty_lo > clear_from) clear_from = c.dirty_lo;
        if (c.dirty_hi < clear_to) clear_to = c.dirty_hi;
    }
    /* (clear_from != 0: a body never starts at address 0; clang-tidy's
     * analyzer cannot tell.) */
    if (!zeroed && (zero || BW_LARGE_QUARANTINE) && clear_from != 0 && clear_from < clear_to)
        memset((void *)clear_from, 0, clear_to - clear_from);
    entry.canary = BW_CANARY ? bw_large_canary_draw() : 0;
    bw_large_canary_write(&entry);

    bw_lock(&bw_locks.large);
    if (!bw_table_reserve_one()) {
        bw_extent_t x = {
            .base = c.ext_base, .size = c.ext_size, .node = c.node, .lead_marker = c.lead_marker};
        bw_dirty_whole(&x);
#if BW_LARGE_QUARANTINE
        bw_extent_seal(&x, true);
#endif
        c.dirty = x.dirty;
        c.dirty_lo = x.dirty_lo;
        c.dirty_hi = x.dirty_hi;
        c.kept = x.kept;
        bw_extent_unget(&c);
        bw_unlock(&bw_locks.large);
        errno = ENOMEM;
        return NULL;
    }
    bw_table_put(bw_table, bw_table_capacity, &entry);
    bw_counter_set(&bw_table_count, bw_table_count + 1);
    bw_counter_set(&bw_large_in_use_bytes, bw_large_in_use_bytes + entry.ext_size);
    bw_unlock(&bw_locks.large);
    return (void *)entry.user;
}

void *bw_large_alloc(size_t size, size_t alignment, bool zero) {
    return bw_large_alloc_room(size, size, alignment, zero);
}

/* realloc moving a block to `size`: half as much again of room, so a
 * buffer grown a few bytes at a time moves about once per 50% of growth
 * (the room is address space; its pages are touched only when used). */
void *bw_large_alloc_for_growth(size_t size) {
    size_t room = size / 2;
    void *block = bw_large_alloc_room(size, size <= SIZE_MAX - room ? size + room : size, 0, false);
    /* The room may not fit under RLIMIT_AS when the block itself does. */
    return block ? block : bw_large_alloc(size, 0, false);
}

/* Freed recently: in the large quarantine, or among the last
 * BW_LARGE_FREED_HISTORY addresses freed before (error paths only). */
static bool bw_freed_recently(uintptr_t user) {
#if BW_LARGE_QUARANTINE
    for (size_t k = 0; k < bw_fifo_count; k++)
        if (bw_fifo[(bw_fifo_head + k) % BW_FIFO_SLOTS].user == user) return true;
#endif
    for (size_t i = 0; i < BW_LARGE_FREED_HISTORY; i++)
        if (bw_freed_history[i] == user) return true;
    return false;
}

static void bw_freed_remember(uintptr_t user) {
    bw_freed_history[bw_freed_history_next] = user;
    bw_freed_history_next = (bw_freed_history_next + 1) % BW_LARGE_FREED_HISTORY;
}

/* Report a pointer that is not a live large allocation; lock held. */
__attribute__((noreturn)) static void bw_large_bad_pointer(uintptr_t user, const char *freed_class,
                                                           const char *invalid_class,
                                                           const char *function) {
    bool twice = bw_freed_recently(user);
    bw_unlock(&bw_locks.large);
    bw_fatal(twice ? freed_class : invalid_class, (void *)user, BW_INFO_NONE, 0, function);
}

/* A freed extent goes back: with a large quarantine (its body guarded by
 * the caller) into the FIFO, whose oldest extent becomes free; otherwise
 * free at once, accessible and dirty. Lock held. */
static void bw_extent_release(bw_extent_t x) {
    x.freed_at_ms = bw_os_now_ms();
#if BW_LARGE_QUARANTINE
    bw_counter_set(&bw_free_bytes, bw_free_bytes + x.size);
    if (bw_fifo_count < bw_large_quarantine_slots()) {
        bw_fifo[(bw_fifo_head + bw_fifo_count++) % BW_FIFO_SLOTS] = x;
        return;
    }
    bw_extent_t oldest = bw_fifo[bw_fifo_head];
    bw_fifo_head = (bw_fifo_head + 1) % BW_FIFO_SLOTS;
    bw_fifo[(bw_fifo_head + bw_fifo_count - 1) % BW_FIFO_SLOTS] = x;
    if (oldest.user) bw_freed_remember(oldest.user);
    oldest.user = 0;
    bw_counter_set(&bw_free_bytes, bw_free_bytes - oldest.size);
    bw_free_put(oldest, true);
#else
    bw_free_put(x, false);
#endif
}

/* Free a large block, checking the size and alignment a sized or aligned
 * free passed (0 = not given). Returns false if ptr is not a large block
 * bulwark knows of and was not freed recently (the caller reports it). */
bool bw_large_free(void *ptr, size_t size, size_t alignment, const char *function) {
    uintptr_t user = (uintptr_t)ptr;
    bw_lock(&bw_locks.large);
    bw_large_entry_t *slot = bw_table_find(user);
    if (!slot) {
        if (bw_freed_recently(user)) { /* error path only: a linear scan is fine */
            bw_unlock(&bw_locks.large);
            bw_fatal("double free", ptr, BW_INFO_NONE, 0, function);
        }
        bw_unlock(&bw_locks.large);
        return false;
    }
    bw_large_entry_t entry = *slot;
    if (alignment && (user & (alignment - 1))) {
        bw_unlock(&bw_locks.large);
        bw_fatal("free alignment mismatch", ptr, BW_INFO_MAPPING, entry.ext_size + BW_PAGE_SIZE,
                 function);
    }
    /* A sized free must name the request (which an in-place realloc
     * updates, so also the size of the last realloc, C23) or a size up to
     * the usable size (jemalloc's sdallocx contract, for programs that use
     * malloc_usable_size): never less than the request, whatever page
     * rounding leaves room for. */
    size_t usable = bw_large_usable(&entry);
    if (size && (size < entry.requested || size > usable)) {
        bw_unlock(&bw_locks.large);
        bw_fatal("free size mismatch", ptr, BW_INFO_MAPPING, entry.ext_size + BW_PAGE_SIZE,
                 function);
    }
    if (!bw_large_canary_ok(&entry)) {
        bw_unlock(&bw_locks.large);
        bw_fatal("heap overflow", ptr, BW_INFO_MAPPING, entry.ext_size + BW_PAGE_SIZE, function);
    }
    bw_table_erase(slot);
    bw_counter_set(&bw_large_in_use_bytes, bw_large_in_use_bytes - entry.ext_size);
    if (!BW_LARGE_QUARANTINE) bw_freed_remember(user); /* else when it leaves the quarantine */
    bw_extent_t x = {.base = entry.ext_base,
                     .size = entry.ext_size,
                     .node = entry.node,
                     .lead_marker = entry.lead_marker,
                     .user = BW_LARGE_QUARANTINE ? user : 0};
    bw_dirty_whole(&x);
#if BW_LARGE_QUARANTINE
    bool keep = !bw_page_mode() && bw_kept_room(x.size); /* page mode keeps none */
    bw_unlock(&bw_locks.large);
    bw_extent_seal(&x, keep);
    bw_lock(&bw_locks.large);
#endif
    bw_extent_release(x);
#if !BW_LARGE_QUARANTINE
    /* A region of a block's own goes at once, as glibc unmaps a chunk it
     * mapped: hundreds of MiB are not kept for the decay. */
    size_t r = bw_region_of_whole(&x);
    if (r < bw_region_count && bw_regions[r].size != bw_large_region_size()) {
        bw_free_remove_at(bw_free_search(x.base));
        bw_extent_total--;
        bw_region_release(r);
    }
#endif
    bw_large_decay_maybe();
    bw_unlock(&bw_locks.large);
    return true;
}

/* Usable bytes of a live large block. */
size_t bw_large_usable_size(const void *ptr, const char *function) {
    uintptr_t user = (uintptr_t)ptr;
    bw_lock(&bw_locks.large);
    bw_large_entry_t *slot = bw_table_find(user);
    if (!slot) bw_large_bad_pointer(user, "use after free", "invalid pointer", function);
    size_t usable = bw_large_usable(slot);
    bw_unlock(&bw_locks.large);
    return usable;
}

/* Grow a block in place into the free extent right after it: its body
 * takes the extent's guard page and as many pages as the new size and
 * half as much again of room need (or what there is), and the trailing
 * guard moves to the new end: one system call with a large quarantine
 * (unguard the pages taken; the rest was guarded), one or two otherwise.
 * Lock held. */
static bool bw_large_grow_in_place(bw_large_entry_t *e, size_t size) {
    uintptr_t end = bw_large_region_end(e);
    size_t i = bw_free_search(end);
    if (i == bw_free_count || bw_free[i].base != end) return false;
    uintptr_t x_end = bw_free[i].base + bw_free[i].size;
    size_t room = size / 2;
    if (size > x_end - e->user) return false;
    uintptr_t need_end = bw_page_round(e->user + size + BW_LARGE_CANARY_ROOM);
    if (need_end > x_end) return false;
    /* Room as bw_large_alloc_for_growth gives, where there is as much. */
    uintptr_t new_end = room <= x_end - need_end
                            ? bw_page_round(e->user + size + room + BW_LARGE_CANARY_ROOM)
                            : x_end;
    if (new_end > x_end) new_end = x_end;
    size_t rest = x_end - new_end;
    bool split = BW_LARGE_QUARANTINE
                     ? rest != 0
                     : rest >= 2 * BW_PAGE_SIZE && rest > (new_end - e->ext_base) / 4;
    if (!split) new_end = x_end;
#if BW_LARGE_QUARANTINE
    if (!bw_region_open_to(end, new_end)) return false;
    /* A kept extent: its leading page may be a guard marker, its body is
     * inaccessible by mprotect. */
    bw_unguard_t back = bw_os_unguard(
        (void *)end, bw_free[i].kept && !bw_free[i].marked ? BW_PAGE_SIZE : new_end - end);
    if (back != BW_UNGUARD_FAILED && bw_free[i].kept)
        back = bw_os_commit((void *)end, new_end - end)
                   ? (bw_free[i].dirty ? BW_UNGUARD_STALE : back)
                   : BW_UNGUARD_FAILED;
    if (back == BW_UNGUARD_FAILED) return false;
    if (back == BW_UNGUARD_STALE) memset((void *)end, 0, new_end - end);
#else
    if (bw_os_unguard((void *)end, BW_PAGE_SIZE) == BW_UNGUARD_FAILED) return false;
    if (split && !bw_os_guard((void *)new_end, BW_PAGE_SIZE)) {
        split = false;
        new_end = x_end;
    }
#endif
    bw_extent_t x = bw_free_remove_at(i);
    if (split) {
        x.lead_marker = !x.kept || x.marked;
        x.base = new_end;
        x.size = x_end - new_end;
        bw_extent_clip_dirty(&x);
        bw_free_put(x, false);
    } else {
        bw_extent_total--;
    }
    bw_counter_set(&bw_large_in_use_bytes, bw_large_in_use_bytes + (new_end - end));
    e->ext_size = new_end - e->ext_base;
    e->requested = size;
    bw_large_canary_write(e);
    return true;
}

/* Move a big block by moving its pages: mremap into a region of its own
 * (so the moved pages, a VMA of their own, go when it is freed), then
 * fresh pages mapped back over the old body, or the old region unmapped if
 * the block had it to itself. No byte is copied and no page faulted in.
 * Returns the new address, NULL to copy instead. Lock held. */
static void *bw_large_move(bw_large_entry_t *slot, size_t size) {
    bw_large_entry_t e = *slot;
    uintptr_t old_body = e.ext_base + BW_PAGE_SIZE;
    size_t old_len = e.ext_size - BW_PAGE_SIZE, offset = e.user - old_body;
    size_t room = size / 2;
    if (offset >= BW_PAGE_SIZE || size > PTRDIFF_MAX / 2 || !bw_table_reserve_one()) return NULL;
    size_t body = bw_page_round(offset + size + room + BW_LARGE_CANARY_ROOM);
    bw_carved_t c;
    if (body <= old_len || !bw_extent_get(body, BW_PAGE_SIZE, bw_large_node(), true, &c))
        return NULL;
#if BW_LARGE_QUARANTINE
    /* The pages past the moved ones were guarded with the rest. */
    size_t tail = c.ext_base + c.ext_size - c.body - old_len;
    if (bw_os_unguard((void *)(c.body + old_len), tail) == BW_UNGUARD_FAILED) {
        bw_extent_unget(&c);
        return NULL;
    }
#endif
    bw_extent_t old = {
        .base = e.ext_base, .size = e.ext_size, .node = e.node, .lead_marker = e.lead_marker};
    size_t old_region = bw_region_of_whole(&old);
    bool alone = old_region < bw_region_count;
    if (!bw_os_move_pages((void *)old_body, old_len, (void *)c.body, !alone)) {
#if BW_LARGE_QUARANTINE
        bw_os_guard((void *)(c.body + old_len), tail);
#endif
        bw_extent_unget(&c);
        return NULL;
    }
    bw_table_erase(slot);
    bw_freed_remember(e.user);
    bw_counter_set(&bw_large_in_use_bytes, bw_large_in_use_bytes - e.ext_size + c.ext_size);
    e.user = c.body + offset;
    e.ext_base = c.ext_base;
    e.ext_size = c.ext_size;
    e.node = c.node;
    e.lead_marker = c.lead_marker;
    e.right_aligned = false;
    e.requested = size;
    bw_large_canary_write(&e);
    bw_table_put(bw_table, bw_table_capacity, &e);
    bw_counter_set(&bw_table_count, bw_table_count + 1);
    if (alone) {
        bw_region_release(old_region);
        bw_extent_total--;
    } else {
        /* Fresh zero pages now, sealed like any freed body. */
#if BW_LARGE_QUARANTINE
        bw_extent_seal(&old, bw_kept_room(old.size));
#endif
        bw_extent_release(old);
    }
    return (void *)e.user;
}

/* realloc of a large block without copying where it can be: in place when
 * the new size fits and still fills at least half of the body (a
 * right-aligned block cannot grow: its end is the guard), grown into the
 * free extent that follows, or moved by mremap when the new size needs a
 * region of its own. Returns the block's address, NULL to have the caller
 * move it by copying. */
void *bw_large_realloc(void *ptr, size_t size) {
    uintptr_t user = (uintptr_t)ptr;
    bw_lock(&bw_locks.large);
    bw_large_entry_t *slot = bw_table_find(user);
    if (!slot) bw_large_bad_pointer(user, "double free", "invalid free", "realloc");
    if (!bw_large_canary_ok(slot)) {
        bw_unlock(&bw_locks.large);
        bw_fatal("heap overflow", ptr, BW_INFO_MAPPING, slot->ext_size + BW_PAGE_SIZE, "realloc");
    }
    size_t capacity = bw_large_capacity(slot);
    void *result = NULL;
    /* A right-aligned block keeps its end at the guard: it only shrinks in
     * place, and with BW_EXACT_SIZE only within its 16-byte alignment (the
     * bytes a shrink frees are a checked pattern, not pages of it). */
    bool fits = slot->right_aligned
                    ? size <= slot->requested && (!BW_EXACT_SIZE || capacity - size < 16)
                    : size <= capacity;
    if (bw_request_is_small(size)) {
        /* moves to a slab */
    } else if (fits && size > capacity / 2) {
        slot->requested = size;
        bw_large_canary_write(slot); /* after the new end */
        result = ptr;
    } else if (size > capacity && !slot->right_aligned && bw_free_reserve() &&
               bw_large_grow_in_place(slot, size)) {
        result = ptr;
    } else if (size > capacity &&
               BW_PAGE_SIZE + bw_page_round(size + size / 2) > BW_LARGE_DEDICATED_MIN) {
        result = bw_large_move(slot, size);
    }
    bw_unlock(&bw_locks.large);
    return result;
}

/* Give back every free or quarantined extent's pages and every region free
 * whole (the quarantine keeps its extents); returns the bytes. */
size_t bw_large_trim(void) {
    bw_lock(&bw_locks.large);
    size_t released = bw_large_decay(bw_os_now_ms(), true);
    bw_unlock(&bw_locks.large);
    return released;
}

/* Takes no lock (async-signal safe): each counter is read whole, the three
 * together may be from moments a free or malloc apart. */
void bw_large_stats(size_t *in_use, size_t *cached, size_t *count) {
    *in_use = __atomic_load_n(&bw_large_in_use_bytes, __ATOMIC_RELAXED);
    *cached = __atomic_load_n(&bw_free_bytes, __ATOMIC_RELAXED);
    *count = __atomic_load_n(&bw_table_count, __ATOMIC_RELAXED);
}

/* The large cache for operators: free extents, extents in the large
 * quarantine, regions. Takes no lock either; these counts are written
 * plainly under the lock, and a word-sized load sees each whole (x86-64):
 * a snapshot, approximate while other threads run. */
void bw_large_cache_stats(size_t *free_extents, size_t *quarantined, size_t *regions) {
    *free_extents = __atomic_load_n(&bw_free_count, __ATOMIC_RELAXED);
#if BW_LARGE_QUARANTINE
    *quarantined = __atomic_load_n(&bw_fifo_count, __ATOMIC_RELAXED);
#else
    *quarantined = 0;
#endif
    *regions = __atomic_load_n(&bw_region_count, __ATOMIC_RELAXED);
}

/* Page mode: the first region, mapped and guarded at start-up, so that a
 * fuzzer's forkserver hands it to every execution it forks instead of each
 * mapping and guarding one of its own. Best effort (a failure leaves it to
 * the first malloc). */
void bw_large_warm(void) {
    bw_lock(&bw_locks.large);
    if (bw_region_count == 0 && bw_free_reserve())
        (void)bw_region_new(2 * BW_PAGE_SIZE, bw_large_node(), false);
    bw_unlock(&bw_locks.large);
}
