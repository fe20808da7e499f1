/* large.c — allocations above the largest slab class (DESIGN.md layer
 * "large"). Each gets its own mapping:
 *
 *     [guard page][user pages ............][guard page]
 *
 * so it never shares a page with small blocks and an overflow or underflow
 * faults. Live allocations are found in an open-addressing table keyed by
 * the user address (the ownership check of a free is O(1) and reads no user
 * memory); recently freed addresses are remembered so that freeing one again
 * is reported as a double free. Freed mappings of similar size are cached so
 * that a malloc/free loop of 64 KiB - 1 MiB does not mmap and munmap each
 * time. One lock guards the table, the history and the cache; system calls
 * are made outside it where the order allows. */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "bw_internal.h"

typedef struct {
    uintptr_t user;     /* 0 = empty slot */
    uintptr_t map_base; /* whole mapping, guards included */
    size_t map_size;
    size_t requested;   /* size asked for (free_sized checks it; the canary follows it) */
    uint64_t canary;    /* this block's own canary value, random */
    bool right_aligned; /* ends at its trailing guard page (no canary) */
} bw_large_entry_t;

typedef struct {
    uintptr_t map_base;
    size_t map_size;
    uint64_t freed_at_ms;
    bool zeroed; /* contents known to be zero (came out of quarantine, pages not locked) */
} bw_large_cached_t;

/* Freed mappings made inaccessible, oldest first (invariant 4). */
#if BW_LARGE_QUARANTINE
static bw_large_cached_t bw_fifo[BW_LARGE_QUARANTINE];
static size_t bw_fifo_head, bw_fifo_count;
#endif

/* Large canary (BW_CANARY, unless the block is right-aligned onto its
 * guard page, which catches the same overflow by faulting): 8 random bytes
 * drawn per block, so none is fixed (a NUL written past the block changes
 * it) and a forked child's new blocks get canaries its parent never saw.
 * They sit in the last 8 bytes before the trailing guard, excluded from the
 * usable size (CONVENTIONS trap 10), or with BW_EXACT_SIZE right after the
 * bytes the program asked for (unaligned), the usable size being the
 * request. The mapping keeps room for them (BW_LARGE_CANARY_ROOM). */
#define BW_LARGE_CANARY_ROOM (BW_CANARY ? 8u : 0u)

static uintptr_t bw_large_region_end(const bw_large_entry_t *e) {
    return e->map_base + e->map_size - BW_PAGE_SIZE;
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
    bw_os_random(&r, sizeof r);
    return r;
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

/* Where the user part starts in a mapping whose usable pages start at
 * `first`: right there, or (`right`) as late as the alignment allows, so
 * the block ends at the trailing guard and a one-byte overflow faults. */
static void bw_large_place(bw_large_entry_t *e, uintptr_t first, size_t size, size_t alignment,
                           bool right) {
    size_t align = alignment > 16 ? alignment : 16;
    uintptr_t user = (bw_large_region_end(e) - (size ? size : 1)) & ~(uintptr_t)(align - 1);
    e->right_aligned = right && user >= first;
#if !BW_LARGE_QUARANTINE
    /* Pages left in front could not be guarded (nothing would unguard them
     * when the mapping is cached again): start at the front instead. */
    if (user >= first + BW_PAGE_SIZE) e->right_aligned = false;
#endif
    e->user = e->right_aligned ? user : first;
}

static bw_lock_t bw_large_lock;
static bw_large_entry_t *bw_table; /* own mapping with guard pages */
static size_t bw_table_capacity;   /* power of two */
static size_t bw_table_count;
static size_t bw_large_in_use_bytes;

static uintptr_t bw_freed_history[BW_LARGE_FREED_HISTORY];
static size_t bw_freed_history_next;

static bw_large_cached_t bw_cache[BW_LARGE_CACHE_ENTRIES];
static size_t bw_cache_count;
static size_t bw_cache_bytes;

/* The counters bw_large_stats reports (bw_table_count, bw_large_in_use_bytes,
 * bw_cache_bytes) change only under bw_large_lock but are read without it:
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

/* Fibonacci hashing of the page number (Knuth, TAOCP vol. 3, 6.4). */
static size_t bw_table_slot(uintptr_t user, size_t capacity) {
    return (size_t)(((user >> 12) * 0x9E3779B97F4A7C15ull) >> 32) & (capacity - 1);
}

/* A table in its own guarded mapping: metadata never borders user pages
 * without a guard in between. */
static bw_large_entry_t *bw_table_map(size_t capacity) {
    size_t bytes = bw_page_round(capacity * sizeof(bw_large_entry_t));
    char *map = bw_os_map(bytes + 2 * BW_PAGE_SIZE);
    if (!map) return NULL;
    if (!bw_os_guard(map, BW_PAGE_SIZE) || !bw_os_guard(map + BW_PAGE_SIZE + bytes, BW_PAGE_SIZE) ||
        !bw_os_protect_meta(map + BW_PAGE_SIZE, bytes)) {
        bw_os_release(map, bytes + 2 * BW_PAGE_SIZE);
        return NULL;
    }
    return (bw_large_entry_t *)(void *)(map + BW_PAGE_SIZE);
}

static void bw_table_unmap(bw_large_entry_t *table, size_t capacity) {
    size_t bytes = bw_page_round(capacity * sizeof(bw_large_entry_t));
    bw_os_release((char *)table - BW_PAGE_SIZE, bytes + 2 * BW_PAGE_SIZE);
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

/* ---------------------------------------------------------------- mappings */

/* Map a guarded region whose user part starts at a multiple of alignment. */
static bool bw_large_map(size_t user_bytes, size_t alignment, bw_large_entry_t *out) {
    size_t extra = alignment > BW_PAGE_SIZE ? alignment : 0;
    size_t total;
    if (__builtin_add_overflow(user_bytes, 2 * BW_PAGE_SIZE + extra, &total)) return false;
    char *map = bw_os_map(total);
    if (!map) return false;
    uintptr_t user = (uintptr_t)map + BW_PAGE_SIZE;
    if (extra) {
        user = (user + alignment - 1) & ~(uintptr_t)(alignment - 1);
        uintptr_t base = user - BW_PAGE_SIZE;
        uintptr_t end = user + user_bytes + BW_PAGE_SIZE;
        if (base > (uintptr_t)map) bw_os_release(map, base - (uintptr_t)map);
        if ((uintptr_t)map + total > end) bw_os_release((void *)end, (uintptr_t)map + total - end);
        map = (char *)base;
        total = end - base;
    }
    if (!bw_os_guard(map, BW_PAGE_SIZE) || !bw_os_guard(map + total - BW_PAGE_SIZE, BW_PAGE_SIZE)) {
        bw_os_release(map, total);
        return false;
    }
    out->map_base = (uintptr_t)map;
    out->map_size = total;
    out->user = user;
    return true;
}

/* Take a cached mapping whose user part holds `user_bytes` without wasting
 * more than a quarter; lock held. */
static bool bw_cache_take(size_t user_bytes, size_t alignment, bw_large_entry_t *out,
                          bool *zeroed) {
    size_t best = (size_t)-1;
    for (size_t i = 0; i < bw_cache_count; i++) {
        size_t usable = bw_cache[i].map_size - 2 * BW_PAGE_SIZE;
        uintptr_t user = bw_cache[i].map_base + BW_PAGE_SIZE;
        if (usable < user_bytes || usable - user_bytes > user_bytes / 4 ||
            (user & (alignment - 1)) != 0)
            continue;
        if (best == (size_t)-1 || usable < bw_cache[best].map_size - 2 * BW_PAGE_SIZE) best = i;
    }
    if (best == (size_t)-1) return false;
    out->map_base = bw_cache[best].map_base;
    out->map_size = bw_cache[best].map_size;
    out->user = out->map_base + BW_PAGE_SIZE;
    *zeroed = bw_cache[best].zeroed;
    bw_counter_set(&bw_cache_bytes, bw_cache_bytes - out->map_size);
    bw_cache[best] = bw_cache[--bw_cache_count];
    return true;
}

/* A block of `size` bytes; `capacity` > size asks for room to grow in place
 * (realloc), which also keeps the block left-aligned with a canary. */
static void *bw_large_alloc_room(size_t size, size_t capacity, size_t alignment, bool zero) {
    size_t user_alignment = alignment;
    if (alignment < BW_PAGE_SIZE) alignment = BW_PAGE_SIZE;
    if (capacity < size) capacity = size;
    /* No mapping can be aligned to 2^62 or more (and PTRDIFF_MAX - 2 pages
     * - 2^63 would wrap around below). */
    if (alignment > PTRDIFF_MAX / 2 || capacity > PTRDIFF_MAX - 2 * BW_PAGE_SIZE - alignment) {
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
    size_t user_bytes =
        bw_page_round((capacity ? capacity : 1) + (right ? 0 : BW_LARGE_CANARY_ROOM));
    bw_large_entry_t entry;
    bool from_cache, zeroed = true;

    bw_lock(&bw_large_lock);
    from_cache = bw_cache_take(user_bytes, alignment, &entry, &zeroed);
    bw_unlock(&bw_large_lock);
    if (!from_cache && !bw_large_map(user_bytes, alignment, &entry)) {
        /* Out of address space or mappings: cached memory may be in the way. */
        bw_large_trim();
        if (!bw_large_map(user_bytes, alignment, &entry)) {
            errno = ENOMEM;
            return NULL;
        }
    }
    entry.requested = size;
    /* A block aligned beyond a page starts where bw_large_map put it, on
     * its alignment; it ends at the guard if its size is whole pages. */
    entry.right_aligned = right;
    if (alignment <= BW_PAGE_SIZE) {
#if BW_LARGE_QUARANTINE
        /* A larger cached mapping: the block takes its last pages, so that
         * it still ends at the trailing guard. */
        uintptr_t first = bw_large_region_end(&entry) - user_bytes;
#else
        uintptr_t first = entry.map_base + BW_PAGE_SIZE;
#endif
        bw_large_place(&entry, first, size, user_alignment, right);
    }
#if BW_LARGE_QUARANTINE
    /* ... and the pages in front of it become guards too, so an underflow
     * still faults at once. (A parked mapping is guarded whole and
     * unguarded whole, so they go with it.) */
    uintptr_t first_page = entry.user & ~(uintptr_t)(BW_PAGE_SIZE - 1);
    if (first_page > entry.map_base + BW_PAGE_SIZE &&
        !bw_os_guard((void *)(entry.map_base + BW_PAGE_SIZE),
                     first_page - entry.map_base - BW_PAGE_SIZE)) {
        bw_os_release((void *)entry.map_base, entry.map_size);
        errno = ENOMEM;
        return NULL;
    }
#endif
    /* calloc needs zeros. The hardened profiles never hand out a freed
     * block's bytes (their cached mappings all came out of the quarantine):
     * a parked mapping of locked memory keeps them (bw_os_unguard could not
     * discard its pages), so it is cleared from the block's first page. */
    if (!zeroed && (zero || BW_LARGE_QUARANTINE)) {
        uintptr_t from = entry.user & ~(uintptr_t)(BW_PAGE_SIZE - 1);
        memset((void *)from, 0, bw_large_region_end(&entry) - from);
    }
    entry.canary = BW_CANARY ? bw_large_random() : 0;
    bw_large_canary_write(&entry);

    bw_lock(&bw_large_lock);
    if (!bw_table_reserve_one()) {
        bw_unlock(&bw_large_lock);
        bw_os_release((void *)entry.map_base, entry.map_size);
        errno = ENOMEM;
        return NULL;
    }
    bw_table_put(bw_table, bw_table_capacity, &entry);
    bw_counter_set(&bw_table_count, bw_table_count + 1);
    bw_counter_set(&bw_large_in_use_bytes, bw_large_in_use_bytes + entry.map_size);
    bw_unlock(&bw_large_lock);

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

static bool bw_freed_recently(uintptr_t user) {
    for (size_t i = 0; i < BW_LARGE_FREED_HISTORY; i++)
        if (bw_freed_history[i] == user) return true;
    return false;
}

/* Report a pointer that is not a live large allocation; lock held. */
__attribute__((noreturn)) static void bw_large_bad_pointer(uintptr_t user, const char *freed_class,
                                                           const char *invalid_class,
                                                           const char *function) {
    bool twice = bw_freed_recently(user);
    bw_unlock(&bw_large_lock);
    bw_fatal(twice ? freed_class : invalid_class, (void *)user, BW_INFO_NONE, 0, function);
}

/* Free a large block, checking the size and alignment a sized or aligned
 * free passed (0 = not given). Returns false if ptr is not a large block
 * bulwark knows of and was not freed recently (the caller reports it). */
bool bw_large_free(void *ptr, size_t size, size_t alignment, const char *function) {
    uintptr_t user = (uintptr_t)ptr;
    bw_lock(&bw_large_lock);
    bw_large_entry_t *slot = bw_table_find(user);
    if (!slot) {
        if (bw_freed_recently(user)) { /* error path only: a linear scan is fine */
            bw_unlock(&bw_large_lock);
            bw_fatal("double free", ptr, BW_INFO_NONE, 0, function);
        }
        bw_unlock(&bw_large_lock);
        return false;
    }
    bw_large_entry_t entry = *slot;
    if (alignment && (user & (alignment - 1))) {
        bw_unlock(&bw_large_lock);
        bw_fatal("free alignment mismatch", ptr, BW_INFO_MAPPING, entry.map_size, function);
    }
    /* A sized free may name anything from the request (rounded to its page)
     * up to the usable size, which a reused cached mapping can make larger
     * (CONVENTIONS trap 16: allow for page rounding). */
    size_t usable = bw_large_usable(&entry);
    if (size && (size > usable ||
                 bw_page_round(size) < bw_page_round(entry.requested ? entry.requested : 1))) {
        bw_unlock(&bw_large_lock);
        bw_fatal("free size mismatch", ptr, BW_INFO_MAPPING, entry.map_size, function);
    }
    if (!bw_large_canary_ok(&entry)) {
        bw_unlock(&bw_large_lock);
        bw_fatal("heap overflow", ptr, BW_INFO_MAPPING, entry.map_size, function);
    }
    bw_table_erase(slot);
    bw_counter_set(&bw_large_in_use_bytes, bw_large_in_use_bytes - entry.map_size);
    bw_freed_history[bw_freed_history_next] = user;
    bw_freed_history_next = (bw_freed_history_next + 1) % BW_LARGE_FREED_HISTORY;

    bool zeroed = false;
#if BW_LARGE_QUARANTINE
    /* Make the freed block inaccessible and park it; the oldest parked
     * mapping comes back (guards removed, contents zero unless the pages
     * are locked) into the cache. */
    bw_unlock(&bw_large_lock);
    if (!bw_os_guard((void *)(entry.map_base + BW_PAGE_SIZE), entry.map_size - 2 * BW_PAGE_SIZE)) {
        bw_os_release((void *)entry.map_base, entry.map_size);
        return true;
    }
    bw_lock(&bw_large_lock);
    bw_large_cached_t parked = {entry.map_base, entry.map_size, 0, true};
    bool have_oldest = bw_fifo_count == BW_LARGE_QUARANTINE;
    bw_large_cached_t from_fifo = bw_fifo[bw_fifo_head];
    bw_fifo[(bw_fifo_head + bw_fifo_count) % BW_LARGE_QUARANTINE] = parked;
    if (have_oldest)
        bw_fifo_head = (bw_fifo_head + 1) % BW_LARGE_QUARANTINE;
    else
        bw_fifo_count++;
    bw_unlock(&bw_large_lock);
    if (!have_oldest) return true;
    bw_unguard_t back = bw_os_unguard((void *)(from_fifo.map_base + BW_PAGE_SIZE),
                                      from_fifo.map_size - 2 * BW_PAGE_SIZE);
    if (back == BW_UNGUARD_FAILED) {
        bw_os_release((void *)from_fifo.map_base, from_fifo.map_size);
        return true;
    }
    entry.map_base = from_fifo.map_base;
    entry.map_size = from_fifo.map_size;
    entry.user = from_fifo.map_base + BW_PAGE_SIZE;
    zeroed = back == BW_UNGUARD_ZERO;
    bw_lock(&bw_large_lock);
#endif
    /* Cache the mapping; evict the oldest entry if the cache is full. */
    bw_large_cached_t evicted = {0, 0, 0, false};
    bool cached = false;
    if (entry.map_size <= BW_LARGE_CACHE_BYTES / 4 && (entry.map_base & (BW_PAGE_SIZE - 1)) == 0) {
        if (bw_cache_count == BW_LARGE_CACHE_ENTRIES ||
            bw_cache_bytes + entry.map_size > BW_LARGE_CACHE_BYTES) {
            size_t oldest = 0;
            for (size_t i = 1; i < bw_cache_count; i++)
                if (bw_cache[i].freed_at_ms < bw_cache[oldest].freed_at_ms) oldest = i;
            if (bw_cache_count) {
                evicted = bw_cache[oldest];
                bw_counter_set(&bw_cache_bytes, bw_cache_bytes - evicted.map_size);
                bw_cache[oldest] = bw_cache[--bw_cache_count];
            }
        }
        if (bw_cache_count < BW_LARGE_CACHE_ENTRIES &&
            bw_cache_bytes + entry.map_size <= BW_LARGE_CACHE_BYTES) {
            bw_cache[bw_cache_count++] =
                (bw_large_cached_t){entry.map_base, entry.map_size, bw_os_now_ms(), zeroed};
            bw_counter_set(&bw_cache_bytes, bw_cache_bytes + entry.map_size);
            cached = true;
        }
    }
    bw_unlock(&bw_large_lock);
    if (evicted.map_size) bw_os_release((void *)evicted.map_base, evicted.map_size);
    if (!cached) bw_os_release((void *)entry.map_base, entry.map_size);
    return true;
}

/* Usable bytes of a live large block: the whole user part of the mapping. */
size_t bw_large_usable_size(const void *ptr, const char *function) {
    uintptr_t user = (uintptr_t)ptr;
    bw_lock(&bw_large_lock);
    bw_large_entry_t *slot = bw_table_find(user);
    if (!slot) bw_large_bad_pointer(user, "use after free", "invalid pointer", function);
    size_t usable = bw_large_usable(slot);
    bw_unlock(&bw_large_lock);
    return usable;
}

/* In-place realloc when the new size fits and still fills at least half of
 * the mapping (a right-aligned block cannot grow: its end is the guard);
 * NULL means "move it" (the caller copies). */
void *bw_large_realloc(void *ptr, size_t size) {
    uintptr_t user = (uintptr_t)ptr;
    bw_lock(&bw_large_lock);
    bw_large_entry_t *slot = bw_table_find(user);
    if (!slot) bw_large_bad_pointer(user, "double free", "invalid free", "realloc");
    if (!bw_large_canary_ok(slot)) {
        bw_unlock(&bw_large_lock);
        bw_fatal("heap overflow", ptr, BW_INFO_MAPPING, slot->map_size, "realloc");
    }
    size_t capacity = bw_large_capacity(slot);
    void *result = NULL;
    /* A right-aligned block keeps its end at the guard: it only shrinks in
     * place, and with BW_EXACT_SIZE only within its 16-byte alignment (the
     * bytes a shrink frees are a checked pattern, not pages of it). */
    bool fits = slot->right_aligned
                    ? size <= slot->requested && (!BW_EXACT_SIZE || capacity - size < 16)
                    : size <= capacity;
    if (fits && size > capacity / 2 && size > BW_SMALL_MAX) {
        slot->requested = size;
        bw_large_canary_write(slot); /* after the new end */
        result = ptr;
    }
    bw_unlock(&bw_large_lock);
    return result;
}

/* Unmap every cached mapping; returns the bytes released. */
size_t bw_large_trim(void) {
    bw_large_cached_t victims[BW_LARGE_CACHE_ENTRIES];
    size_t count, bytes = 0;
    bw_lock(&bw_large_lock);
    count = bw_cache_count;
    memcpy(victims, bw_cache, count * sizeof victims[0]);
    bw_cache_count = 0;
    bw_counter_set(&bw_cache_bytes, 0);
    bw_unlock(&bw_large_lock);
    for (size_t i = 0; i < count; i++) {
        bw_os_release((void *)victims[i].map_base, victims[i].map_size);
        bytes += victims[i].map_size;
    }
    return bytes;
}

/* Takes no lock (async-signal safe): each counter is read whole, the three
 * together may be from moments a free or malloc apart. */
void bw_large_stats(size_t *in_use, size_t *cached, size_t *count) {
    *in_use = __atomic_load_n(&bw_large_in_use_bytes, __ATOMIC_RELAXED);
    *cached = __atomic_load_n(&bw_cache_bytes, __ATOMIC_RELAXED);
    *count = __atomic_load_n(&bw_table_count, __ATOMIC_RELAXED);
}

void bw_large_fork_prepare(void) {
    bw_lock(&bw_large_lock);
}
void bw_large_fork_parent(void) {
    bw_unlock(&bw_large_lock);
}
void bw_large_fork_child(void) {
    bw_lock_reset_in_child(&bw_large_lock);
}
