/* api.c — the public bw_* functions (DESIGN.md layer "api"). Argument
 * checking and errno only; the allocator logic is in alloc.h/alloc.c and
 * below. The libc names are in override.c. Every function here is an entry
 * point: it opens the metadata for writing while it runs (BW_META_OPEN,
 * BW_PKEY_METADATA) around a body that returns in one place. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "bulwark.h"
#include "bw_internal.h"

void *bw_realloc_impl(void *ptr, size_t size);

/* Requests above PTRDIFF_MAX can never be satisfied (pointer differences
 * would overflow); refuse them up front like glibc. */
static void *bw_enomem(void) {
    errno = ENOMEM;
    return NULL;
}

void *bw_malloc(size_t size) {
    BW_META_OPEN();
    void *block = bw_alloc_inline(size);
    BW_META_CLOSE();
    return block;
}

void bw_free(void *ptr) {
    BW_META_OPEN();
    bw_free_inline(ptr, "free");
    BW_META_CLOSE();
}

static void *bw_calloc_body(size_t count, size_t size) {
    size_t total;
    if (__builtin_mul_overflow(count, size, &total) || total > PTRDIFF_MAX) return bw_enomem();
    if (!bw_request_is_small(total))
        return bw_malloc_slow(total, true); /* large: bulwark knows when it is zero */
    if (bw_page_mode() && total != 0) return bw_large_alloc(total, 0, true);
    void *block = bw_alloc_inline(total);
    /* Zero-on-free plus the reuse check already proved the first
     * BW_WAF_CHECK_MAX bytes zero. */
    if (block && total > BW_KNOWN_ZERO_BYTES) memset(block, 0, total);
    return block;
}

void *bw_calloc(size_t count, size_t size) {
    BW_META_OPEN();
    void *block = bw_calloc_body(count, size);
    BW_META_CLOSE();
    return block;
}

void *bw_realloc(void *ptr, size_t size) {
    if (size > PTRDIFF_MAX) return bw_enomem();
    BW_META_OPEN();
    void *block = bw_realloc_impl(ptr, size);
    BW_META_CLOSE();
    return block;
}

void *bw_reallocarray(void *ptr, size_t count, size_t size) {
    size_t total;
    if (__builtin_mul_overflow(count, size, &total) || total > PTRDIFF_MAX) return bw_enomem();
    BW_META_OPEN();
    void *block = bw_realloc_impl(ptr, total);
    BW_META_CLOSE();
    return block;
}

static bool bw_is_pow2(size_t x) {
    return x && !(x & (x - 1));
}

/* POSIX: EINVAL unless a power of two multiple of sizeof(void *); *out is
 * left untouched on any error (CONVENTIONS trap 6). */
int bw_posix_memalign(void **out, size_t alignment, size_t size) {
    if (!bw_is_pow2(alignment) || alignment % sizeof(void *) != 0) return EINVAL;
    if (size > PTRDIFF_MAX) return ENOMEM;
    int saved_errno = errno;
    BW_META_OPEN();
    void *block = bw_alloc_aligned(alignment, size);
    BW_META_CLOSE();
    if (!block) {
        errno = saved_errno;
        return ENOMEM;
    }
    *out = block;
    return 0;
}

/* memalign and aligned_alloc take any alignment, as glibc's do (2.36, whose
 * aligned_alloc is its memalign; programs written against it pass 0, 24 or
 * 4097 and expect a block): up to 16, the alignment malloc gives anyway (0
 * included), it is malloc; an alignment that is not a power of two is
 * rounded up to the next one; one above SIZE_MAX / 2 + 1, where no power of
 * two lies, is EINVAL; a power of two no mapping can honour (2^63) is
 * ENOMEM, like a size no mapping can hold. */
void *bw_aligned_alloc(size_t alignment, size_t size) {
    if (alignment <= 16) return bw_malloc(size);
    if (alignment > SIZE_MAX / 2 + 1) {
        errno = EINVAL;
        return NULL;
    }
    if (!bw_is_pow2(alignment)) alignment = (size_t)1 << (64 - __builtin_clzll(alignment));
    if (size > PTRDIFF_MAX) return bw_enomem();
    BW_META_OPEN();
    void *block = bw_alloc_aligned(alignment, size);
    BW_META_CLOSE();
    return block;
}

void *bw_memalign(size_t alignment, size_t size) {
    return bw_aligned_alloc(alignment, size);
}

void *bw_valloc(size_t size) {
    return bw_aligned_alloc(BW_PAGE_SIZE, size);
}

void *bw_pvalloc(size_t size) {
    size_t rounded;
    if (__builtin_add_overflow(size, BW_PAGE_SIZE - 1, &rounded)) return bw_enomem();
    rounded &= ~(size_t)(BW_PAGE_SIZE - 1);
    return bw_aligned_alloc(BW_PAGE_SIZE, rounded ? rounded : BW_PAGE_SIZE);
}

size_t bw_malloc_usable_size(const void *ptr) {
    if (!ptr) return 0;
    BW_META_OPEN();
    size_t usable = bw_usable_size_checked(ptr, "malloc_usable_size");
    BW_META_CLOSE();
    return usable;
}

/* Checked frees, also for the C++ sized and aligned deletes (which name
 * their operator in reports). */
void bw_free_checked_entry(void *ptr, size_t size, size_t alignment, const char *function);
void bw_free_checked_entry(void *ptr, size_t size, size_t alignment, const char *function) {
    BW_META_OPEN();
    bw_free_checked(ptr, size, alignment, function);
    BW_META_CLOSE();
}

void bw_free_sized(void *ptr, size_t size) {
    bw_free_checked_entry(ptr, size, 0, "free_sized");
}

void bw_free_aligned_sized(void *ptr, size_t alignment, size_t size) {
    if (ptr && !bw_is_pow2(alignment))
        bw_fatal("free alignment mismatch", ptr, BW_INFO_NONE, 0, "free_aligned_sized");
    bw_free_checked_entry(ptr, size, alignment, "free_aligned_sized");
}

int bw_malloc_trim(size_t pad) {
    (void)pad;
    if (atomic_load_explicit(&bw_init_state, memory_order_acquire) != 2) return 0;
    BW_META_OPEN();
    size_t released = bw_heap_trim_current();
    released += bw_segments_purge(true);
    released += bw_large_trim();
    BW_META_CLOSE();
    return released != 0;
}
