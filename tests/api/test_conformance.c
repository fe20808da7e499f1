/* test_conformance.c — proves that bulwark's libc malloc family behaves as
 * glibc's does where programs can observe it:
 *  - malloc(0) gives unique, freeable pointers;
 *  - every request size 0..20000 (so every small class boundary and the
 *    first large sizes) gives a 16-byte aligned block whose usable size is at
 *    least the request, constant, and writable in full;
 *  - impossible sizes (SIZE_MAX, > PTRDIFF_MAX, calloc / reallocarray /
 *    pvalloc / alignment-rounding overflow) give NULL with errno ENOMEM;
 *  - calloc memory is zero even when it reuses dirty small blocks or cached
 *    large mappings;
 *  - posix_memalign validates alignments (EINVAL, *out untouched); memalign
 *    and aligned_alloc take any alignment as glibc 2.36 does (up to 16 is
 *    malloc, others round up to a power of two, EINVAL above SIZE_MAX/2+1);
 *    every power of two up to 64 MiB is honoured; valloc/pvalloc page-align;
 *  - free(NULL) is a no-op, free preserves errno, malloc_usable_size(NULL) is
 *    0; free_sized / free_aligned_sized accept the requested size and any size
 *    of the same class;
 *  - mallopt, mallinfo2, malloc_trim, malloc_stats, malloc_info exist and
 *    report sensibly; the glibc __libc_* aliases are bulwark's own functions;
 *  - large blocks up to 64 MiB keep their contents, and a malloc/free loop of
 *    64 KiB..1 MiB blocks is fast and does not grow the mapping count.
 * Runs statically linked and, as test_conformance.dyn, against libbulwark.so. */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* cmocka.h needs these first; a separate block keeps clang-format from
 * sorting it above them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "bw_test.h"

#define KiB  ((size_t)1 << 10)
#define MiB  ((size_t)1 << 20)
#define PAGE ((size_t)4096)

/* Blocks up to this size are written and checked in full; larger ones are
 * sampled (first and last page and a chunk per MiB), which proves they are
 * mapped read-write without committing hundreds of MiB. */
#define TOUCH_FULL_MAX (2 * MiB)

static void *const sentinel = (void *)(uintptr_t)0x5a5a5a5a5a5a5a50ull;

static size_t max_size(size_t a, size_t b) {
    return a > b ? a : b;
}

static size_t min_size(size_t a, size_t b) {
    return a < b ? a : b;
}

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Writes n bytes at p (all of them, or a sample for huge blocks) and reads
 * them back. */
static void touch_block(void *p, size_t n, uint64_t seed) {
    unsigned char *bytes = p;
    if (n <= TOUCH_FULL_MAX) {
        bw_fill(p, n, seed);
        BW_REQUIRE(bw_check(p, n, seed), "block %p of %zu bytes", p, n);
        return;
    }
    size_t chunk = 4096;
    for (size_t off = 0; off < n; off += MiB)
        bw_fill(bytes + off, min_size(chunk, n - off), seed + off);
    bw_fill(bytes + n - chunk, chunk, seed + 1);
    for (size_t off = 0; off < n; off += MiB) {
        size_t len = min_size(chunk, n - off);
        if (off + len > n - chunk) continue; /* overwritten by the last chunk */
        BW_REQUIRE(bw_check(bytes + off, len, seed + off), "block %p+%zu of %zu", p, off, n);
    }
    BW_REQUIRE(bw_check(bytes + n - chunk, chunk, seed + 1), "last page of %p (%zu)", p, n);
}

/* The common promise for every successful allocation: aligned (to at least
 * 16 bytes), usable size >= the request and stable, every usable byte
 * writable. Returns the usable size. */
static size_t check_block(void *p, size_t request, size_t alignment, const char *how) {
    BW_REQUIRE(p != NULL, "%s: request %zu, alignment %zu", how, request, alignment);
    size_t align = max_size(alignment, 16);
    BW_REQUIRE((uintptr_t)p % align == 0, "%s: %p for request %zu is not %zu-aligned", how, p,
               request, align);
    size_t usable = malloc_usable_size(p);
    BW_REQUIRE(usable >= request, "%s: usable %zu < request %zu", how, usable, request);
    touch_block(p, usable, request * 31 + alignment);
    BW_REQUIRE(malloc_usable_size(p) == usable, "%s: usable size of %p changed", how, p);
    return usable;
}

static int compare_pointers(const void *a, const void *b) {
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

/* ------------------------------------------------------------ malloc */

static void test_malloc_zero_is_unique(void **state) {
    enum { COUNT = 1000 };
    static void *blocks[COUNT];
    static void *sorted[COUNT];
    for (size_t i = 0; i < COUNT; i++) {
        blocks[i] = malloc(0);
        BW_REQUIRE(blocks[i] != NULL, "malloc(0) #%zu", i);
        BW_REQUIRE((uintptr_t)blocks[i] % 16 == 0, "malloc(0) #%zu = %p", i, blocks[i]);
    }
    memcpy(sorted, blocks, sizeof sorted);
    qsort(sorted, COUNT, sizeof sorted[0], compare_pointers);
    for (size_t i = 1; i < COUNT; i++)
        BW_REQUIRE(sorted[i] != sorted[i - 1], "malloc(0) returned %p twice", sorted[i]);
    for (size_t i = 0; i < COUNT; i++) free(blocks[i]);
}

static void test_every_size_to_20000(void **state) {
    for (size_t size = 0; size <= 20000; size++) {
        void *p = malloc(size);
        check_block(p, size, 16, "malloc");
        free(p);
    }
}

/* The sizes slabs serve above 16 KiB (spans of 4 to 16 slots): every
 * request from 16 KiB to 128 KiB in steps of 61 bytes (and the ends) through
 * malloc, calloc (zeroed), realloc (contents kept, in place while the class
 * holds it), aligned_alloc and free_sized; malloc_usable_size is what the
 * class gives. */
static void test_medium_sizes(void **state) {
    void *kept = malloc(16);
    check_block(kept, 16, 16, "malloc");
    size_t kept_size = 16;
    for (size_t size = 16384; size <= BW_TEST_SMALL_MAX + 1;
         size += size < BW_TEST_SMALL_MAX - 61 ? 61 : 1) {
        void *p = malloc(size);
        size_t usable = check_block(p, size, 16, "malloc");
        if (bw_is_bulwark_loaded() && size <= BW_TEST_SMALL_MAX - BW_TEST_CANARY_BYTES)
            BW_REQUIRE(usable == BW_TEST_USABLE_FOR(size), "malloc(%zu): usable %zu", size, usable);
        free_sized(p, size);
        if (size % 7 == 0) {
            char *z = calloc(1, size);
            check_block(z, size, 16, "calloc");
            free(z);
            z = calloc(1, size); /* likely a block freed just now */
            BW_REQUIRE(z != NULL, "calloc(%zu)", size);
            for (size_t i = 0; i < size; i += 509)
                BW_REQUIRE(z[i] == 0, "calloc(%zu)[%zu]", size, i);
            BW_REQUIRE(z[size - 1] == 0, "calloc(%zu) last byte", size);
            free(z);
            void *a = aligned_alloc(4096, size);
            check_block(a, size, 4096, "aligned_alloc");
            free_aligned_sized(a, 4096, size);
        }
        bw_fill(kept, kept_size, 77);
        void *grown = realloc(kept, size);
        BW_REQUIRE(grown != NULL, "realloc to %zu", size);
        BW_REQUIRE(bw_check(grown, kept_size, 77), "realloc %zu -> %zu lost contents", kept_size,
                   size);
        kept = grown;
        kept_size = size;
    }
    for (size_t size = kept_size; size >= 16; size = size * 3 / 4) { /* and back down */
        bw_fill(kept, size, 78);
        void *shrunk = realloc(kept, size);
        BW_REQUIRE(shrunk != NULL && bw_check(shrunk, size, 78), "realloc down to %zu", size);
        kept = shrunk;
    }
    free(kept);
    void *a = aligned_alloc(65536, 65536);
    check_block(a, 65536, 65536, "aligned_alloc");
    free(a);
}

/* Blocks at every class boundary (class-1, class, class+1), all live at the
 * same time: none may overlap another. */
static void test_class_boundaries_do_not_overlap(void **state) {
    enum { MAX_BLOCKS = 3 * BW_TEST_CLASS_COUNT + 3 };
    void *blocks[MAX_BLOCKS];
    size_t sizes[MAX_BLOCKS];
    size_t count = 0;
    for (size_t i = 0; i < BW_TEST_CLASS_COUNT; i++) {
        size_t class_size = bw_test_class_size(i);
        for (size_t delta = 0; delta < 3; delta++) sizes[count++] = class_size - 1 + delta;
    }
    sizes[count++] = 0;
    sizes[count++] = 20000;
    sizes[count++] = 1;
    for (size_t i = 0; i < count; i++) {
        blocks[i] = malloc(sizes[i]);
        check_block(blocks[i], sizes[i], 16, "malloc");
        bw_fill(blocks[i], malloc_usable_size(blocks[i]), i + 1000);
    }
    for (size_t i = 0; i < count; i++) {
        BW_REQUIRE(bw_check(blocks[i], malloc_usable_size(blocks[i]), i + 1000),
                   "block of %zu bytes was overwritten by a neighbour", sizes[i]);
        free(blocks[i]);
    }
}

static void test_impossible_sizes(void **state) {
    const size_t sizes[] = {
        SIZE_MAX,
        SIZE_MAX - 1,
        SIZE_MAX - 15,           /* rounding up to 16 overflows */
        SIZE_MAX - PAGE + 1,     /* rounding up to a page overflows */
        SIZE_MAX - 2 * PAGE,     /* adding two guard pages overflows */
        (size_t)PTRDIFF_MAX + 1, /* glibc rejects anything above PTRDIFF_MAX */
        (size_t)PTRDIFF_MAX,
        (size_t)1 << 50, /* beyond the 47-bit user address space */
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        errno = 0;
        void *p = malloc(bw_opaque_size(sizes[i]));
        BW_REQUIRE(p == NULL, "malloc(%#zx) = %p", sizes[i], p);
        BW_REQUIRE(errno == ENOMEM, "malloc(%#zx): errno %d", sizes[i], errno);
    }
    /* The allocator still works afterwards. */
    void *p = malloc(100);
    check_block(p, 100, 16, "malloc after failures");
    free(p);
}

static void test_impossible_aligned_sizes(void **state) {
    const size_t sizes[] = {SIZE_MAX, SIZE_MAX - 100, SIZE_MAX - MiB, (size_t)PTRDIFF_MAX + 1};
    const size_t alignments[] = {16, 64, 4096, MiB, 64 * MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        for (size_t j = 0; j < sizeof alignments / sizeof alignments[0]; j++) {
            size_t size = bw_opaque_size(sizes[i]), alignment = alignments[j];
            void *out = sentinel;
            int ret = posix_memalign(&out, alignment, size);
            BW_REQUIRE(ret == ENOMEM, "posix_memalign(%zu, %#zx) = %d", alignment, size, ret);
            BW_REQUIRE(out == sentinel, "posix_memalign(%zu, %#zx) wrote *out", alignment, size);
            errno = 0;
            void *p = aligned_alloc(alignment, size);
            BW_REQUIRE(p == NULL && errno == ENOMEM, "aligned_alloc(%zu, %#zx) = %p errno %d",
                       alignment, size, p, errno);
            errno = 0;
            p = memalign(alignment, size);
            BW_REQUIRE(p == NULL && errno == ENOMEM, "memalign(%zu, %#zx) = %p errno %d", alignment,
                       size, p, errno);
        }
        errno = 0;
        void *p = valloc(bw_opaque_size(sizes[i]));
        BW_REQUIRE(p == NULL && errno == ENOMEM, "valloc(%#zx) = %p errno %d", sizes[i], p, errno);
    }
}

/* ------------------------------------------------------------ calloc */

static void test_calloc_overflow(void **state) {
    const size_t pairs[][2] = {
        {SIZE_MAX, 2},
        {2, SIZE_MAX},
        {SIZE_MAX / 2 + 1, 2},
        {(size_t)1 << 32, (size_t)1 << 32},
        {SIZE_MAX, SIZE_MAX},
        {(size_t)1 << 63, 3},
        {(size_t)PTRDIFF_MAX, 1}, /* no overflow, but impossible */
        {1, SIZE_MAX},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        errno = 0;
        void *p = calloc(bw_opaque_size(pairs[i][0]), bw_opaque_size(pairs[i][1]));
        BW_REQUIRE(p == NULL, "calloc(%#zx, %#zx) = %p", pairs[i][0], pairs[i][1], p);
        BW_REQUIRE(errno == ENOMEM, "calloc(%#zx, %#zx): errno %d", pairs[i][0], pairs[i][1],
                   errno);
    }
    /* Zero-sized products are fine: unique, freeable pointers. */
    void *a = calloc(0, 0), *b = calloc(0, 100), *c = calloc(100, 0);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_true(a != b && b != c && a != c);
    free(a);
    free(b);
    free(c);
}

/* Dirties `count` blocks of `dirty_size`, frees them, then callocs `count`
 * blocks of `clean_size` and requires every requested byte to be zero. */
static void dirty_then_calloc(size_t dirty_size, size_t clean_size, size_t count) {
    void **blocks = malloc(count * sizeof(void *));
    assert_non_null(blocks);
    for (size_t i = 0; i < count; i++) {
        blocks[i] = malloc(dirty_size);
        BW_REQUIRE(blocks[i] != NULL, "malloc(%zu)", dirty_size);
        memset(blocks[i], 0xAA, malloc_usable_size(blocks[i]));
    }
    for (size_t i = 0; i < count; i++) free(blocks[i]);
    for (size_t i = 0; i < count; i++) {
        blocks[i] = calloc(1, clean_size);
        BW_REQUIRE(blocks[i] != NULL, "calloc(1, %zu)", clean_size);
        BW_REQUIRE(bw_check_zero(blocks[i], clean_size),
                   "calloc(1, %zu) after freeing dirty %zu-byte blocks is not zero", clean_size,
                   dirty_size);
    }
    for (size_t i = 0; i < count; i++) free(blocks[i]);
    free(blocks);
}

static void test_calloc_zeroes_reused_memory(void **state) {
    const size_t sizes[] = {1,    16,    48,    100,   128,   1000,   1024,    4000,
                            4096, 10000, 16384, 16385, 65536, 100000, 1 * MiB, 2 * MiB + 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t size = sizes[i];
        /* Enough blocks to cycle through any quarantine, without holding
         * more than ~40 MiB at once. */
        size_t count = min_size(1024, max_size(8, 40 * MiB / size));

        /* The same size, one block at a time, many times (fewer for large
         * blocks, where each round costs megabytes of writes). */
        size_t rounds = size >= 64 * KiB ? 60 : 500;
        for (size_t round = 0; round < rounds; round++) {
            void *p = malloc(size);
            assert_non_null(p);
            memset(p, 0xAA, malloc_usable_size(p));
            free(p);
            void *q = calloc(1, size);
            assert_non_null(q);
            BW_REQUIRE(bw_check_zero(q, size), "calloc(1, %zu) round %zu", size, round);
            free(q);
        }
        /* Many dirty blocks, then many calloc'd ones: same size, a smaller
         * size that may share the class, and a larger one. */
        for (size_t round = 0; round < 3; round++) {
            dirty_then_calloc(size, size, count);
            dirty_then_calloc(size, size > 1 ? size - 1 : size, count);
            dirty_then_calloc(size + 1, size, count);
        }
    }
    /* calloc with a count and an element size. */
    for (size_t round = 0; round < 100; round++) {
        void *p = malloc(1000);
        memset(p, 0xAA, 1000);
        free(p);
        unsigned char *q = calloc(10, 100);
        assert_non_null(q);
        assert_true(bw_check_zero(q, 1000));
        free(q);
    }
}

/* ------------------------------------------------------------ reallocarray */

static void test_reallocarray_overflow(void **state) {
    const size_t originals[] = {64, 5000, MiB};
    const size_t pairs[][2] = {
        {SIZE_MAX, 2}, {2, SIZE_MAX}, {(size_t)1 << 32, (size_t)1 << 32}, {SIZE_MAX / 2 + 1, 2}};
    for (size_t i = 0; i < sizeof originals / sizeof originals[0]; i++) {
        size_t size = originals[i];
        void *p = malloc(size);
        assert_non_null(p);
        bw_fill(p, size, size);
        for (size_t j = 0; j < sizeof pairs / sizeof pairs[0]; j++) {
            errno = 0;
            /* Laundered: gcc cannot know the call fails and would flag the
             * later uses of p as use-after-realloc. */
            void *q = reallocarray(bw_launder(p), bw_opaque_size(pairs[j][0]),
                                   bw_opaque_size(pairs[j][1]));
            BW_REQUIRE(q == NULL && errno == ENOMEM, "reallocarray(%zu-byte block, %#zx, %#zx)",
                       size, pairs[j][0], pairs[j][1]);
            BW_REQUIRE(bw_check(p, size, size), "reallocarray failure changed the %zu-byte block",
                       size);
        }
        /* A valid reallocarray on the same block still works. */
        void *q = reallocarray(p, 3, size);
        assert_non_null(q);
        BW_REQUIRE(bw_check(q, size, size), "reallocarray(%zu-byte block, 3, %zu)", size, size);
        free(q);
    }
    errno = 0;
    assert_null(reallocarray(NULL, bw_opaque_size(SIZE_MAX), 2));
    assert_int_equal(errno, ENOMEM);
    void *fresh = reallocarray(NULL, 10, 10);
    check_block(fresh, 100, 16, "reallocarray(NULL, 10, 10)");
    free(fresh);
}

/* ------------------------------------------------------------ memalign family */

static void test_posix_memalign_rejects_bad_alignments(void **state) {
    const size_t alignments[] = {0,
                                 1,
                                 2,
                                 4,
                                 12,
                                 24,
                                 sizeof(void *) * 3,
                                 48,
                                 4095,
                                 4097,
                                 3 * 4096,
                                 SIZE_MAX,
                                 SIZE_MAX / 2 + 2};
    for (size_t i = 0; i < sizeof alignments / sizeof alignments[0]; i++) {
        void *out = sentinel;
        int ret = posix_memalign(&out, alignments[i], 64);
        BW_REQUIRE(ret == EINVAL, "posix_memalign(alignment %zu) returned %d", alignments[i], ret);
        BW_REQUIRE(out == sentinel, "posix_memalign(alignment %zu) wrote *out = %p", alignments[i],
                   out);
    }
}

static void test_posix_memalign_every_power_of_two(void **state) {
    for (size_t alignment = 8; alignment <= 64 * MiB; alignment *= 2) {
        const size_t sizes[] = {1, alignment - 1, alignment, alignment + 1, 3 * alignment};
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            void *p = sentinel;
            int ret = posix_memalign(&p, alignment, sizes[i]);
            BW_REQUIRE(ret == 0, "posix_memalign(%zu, %zu) = %d", alignment, sizes[i], ret);
            check_block(p, sizes[i], alignment, "posix_memalign");
            free(p);
        }
    }
}

static void test_aligned_alloc_and_memalign(void **state) {
    for (size_t alignment = 1; alignment <= 64 * MiB; alignment *= 2) {
        const size_t sizes[] = {1, alignment > 1 ? alignment - 1 : 0, alignment, alignment + 1,
                                3 * alignment};
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            void *p = aligned_alloc(alignment, sizes[i]);
            check_block(p, sizes[i], alignment, "aligned_alloc");
            free(p);
            p = memalign(alignment, sizes[i]);
            check_block(p, sizes[i], alignment, "memalign");
            free(p);
        }
    }
}

/* The power of two glibc rounds an alignment up to (2.36 _mid_memalign):
 * alignments up to 16 are malloc's own. */
static size_t glibc_alignment(size_t alignment) {
    size_t rounded = 16;
    while (rounded < alignment) rounded *= 2;
    return rounded;
}

/* memalign and aligned_alloc accept any alignment as this system's glibc
 * does (glibc 2.36, observed by a program run without bulwark; the commit
 * that added this test lists what it returned): 0 and anything up to 16 is malloc, an
 * alignment that is not a power of two is rounded up to the next one, one
 * above SIZE_MAX / 2 + 1 (no power of two is) fails with EINVAL, and a
 * power of two no mapping can honour, or an impossible size, with ENOMEM.
 * posix_memalign keeps POSIX's EINVAL for all of these
 * (test_posix_memalign_rejects_bad_alignments). */
/* memalign and aligned_alloc both fail with NULL and this errno. */
static void expect_memalign_fails(size_t alignment, size_t size, int error) {
    errno = 0;
    void *p = memalign(bw_opaque_size(alignment), size);
    BW_REQUIRE(p == NULL && errno == error, "memalign(%#zx, %#zx) = %p errno %d", alignment, size,
               p, errno);
    errno = 0;
    p = aligned_alloc(bw_opaque_size(alignment), size);
    BW_REQUIRE(p == NULL && errno == error, "aligned_alloc(%#zx, %#zx) = %p errno %d", alignment,
               size, p, errno);
}

static void test_memalign_takes_any_alignment_like_glibc(void **state) {
    const size_t alignments[] = {0,  1,   2,    3,    4,    8,        12,       16,    24,     33,
                                 48, 100, 1000, 4095, 4097, 3 * 4096, 5 * 4096, 65537, 3 * MiB};
    const size_t sizes[] = {0, 1, 24, 64, 5000, 16384, 100000};
    for (size_t i = 0; i < sizeof alignments / sizeof alignments[0]; i++) {
        size_t alignment = alignments[i], expected = glibc_alignment(alignment);
        for (size_t j = 0; j < sizeof sizes / sizeof sizes[0]; j++) {
            errno = 0;
            void *p = memalign(alignment, sizes[j]);
            BW_REQUIRE(p != NULL, "memalign(%zu, %zu): errno %d", alignment, sizes[j], errno);
            check_block(p, sizes[j], expected, "memalign");
            free(p);
            p = aligned_alloc(alignment, sizes[j]);
            BW_REQUIRE(p != NULL, "aligned_alloc(%zu, %zu): errno %d", alignment, sizes[j], errno);
            check_block(p, sizes[j], expected, "aligned_alloc");
            free(p);
        }
    }
    /* No power of two above SIZE_MAX / 2 + 1: EINVAL, whatever the size. */
    const size_t invalid[] = {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX / 2 + 2, SIZE_MAX / 2 + 4097};
    /* A power of two (or one rounded up to 2^63) too large for any mapping. */
    const size_t unmappable[] = {(size_t)1 << 62, ((size_t)1 << 62) + 1, SIZE_MAX / 2,
                                 SIZE_MAX / 2 + 1};
    const size_t any_sizes[] = {0, 64, 100000, (size_t)PTRDIFF_MAX + 1, SIZE_MAX};
    for (size_t j = 0; j < sizeof any_sizes / sizeof any_sizes[0]; j++) {
        size_t size = bw_opaque_size(any_sizes[j]);
        for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++)
            expect_memalign_fails(invalid[i], size, EINVAL);
        for (size_t i = 0; i < sizeof unmappable / sizeof unmappable[0]; i++)
            expect_memalign_fails(unmappable[i], size, ENOMEM);
    }
    /* Impossible sizes with the alignments glibc rounds or treats as
     * malloc's: ENOMEM. */
    const size_t impossible[] = {(size_t)PTRDIFF_MAX + 1, SIZE_MAX - 4096, SIZE_MAX};
    const size_t odd[] = {0, 1, 3, 24, 48, 4095, 4097};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        for (size_t j = 0; j < sizeof impossible / sizeof impossible[0]; j++) {
            size_t size = bw_opaque_size(impossible[j]);
            errno = 0;
            void *p = memalign(odd[i], size);
            BW_REQUIRE(p == NULL && errno == ENOMEM, "memalign(%zu, %#zx) = %p errno %d", odd[i],
                       size, p, errno);
            errno = 0;
            p = aligned_alloc(odd[i], size);
            BW_REQUIRE(p == NULL && errno == ENOMEM, "aligned_alloc(%zu, %#zx) = %p errno %d",
                       odd[i], size, p, errno);
        }
    }
    /* posix_memalign of an unmappable power of two: ENOMEM, *out untouched. */
    void *out = sentinel;
    assert_int_equal(posix_memalign(&out, bw_opaque_size((size_t)1 << 62), 64), ENOMEM);
    assert_ptr_equal(out, sentinel);
    assert_int_equal(posix_memalign(&out, bw_opaque_size(SIZE_MAX / 2 + 1), 64), ENOMEM);
    assert_ptr_equal(out, sentinel);
}

static void test_valloc_and_pvalloc(void **state) {
    const size_t sizes[] = {0, 1, 100, 4095, 4096, 4097, 16384, 20000, MiB, MiB + 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = valloc(sizes[i]);
        check_block(p, sizes[i], PAGE, "valloc");
        free(p);

        size_t rounded = (sizes[i] + PAGE - 1) / PAGE * PAGE;
        p = pvalloc(sizes[i]);
        size_t usable = check_block(p, rounded, PAGE, "pvalloc");
        BW_REQUIRE(usable >= rounded, "pvalloc(%zu): usable %zu < %zu", sizes[i], usable, rounded);
        free(p);
    }
    const size_t impossible[] = {SIZE_MAX, SIZE_MAX - PAGE + 2, SIZE_MAX - 1,
                                 (size_t)PTRDIFF_MAX + 1};
    for (size_t i = 0; i < sizeof impossible / sizeof impossible[0]; i++) {
        errno = 0;
        void *p = pvalloc(bw_opaque_size(impossible[i]));
        BW_REQUIRE(p == NULL && errno == ENOMEM, "pvalloc(%#zx) = %p errno %d", impossible[i], p,
                   errno);
    }
}

/* ------------------------------------------------------------ free */

static void test_free_null_and_errno(void **state) {
    errno = 1234;
    free(NULL);
    assert_int_equal(errno, 1234);
    free_sized(NULL, 0);
    free_sized(NULL, 100);
    free_aligned_sized(NULL, 64, 100);
    assert_int_equal(errno, 1234);

    const size_t sizes[] = {0, 16, 100, 1000, 16384, 16385, 100000, MiB, 8 * MiB, 64 * MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = malloc(sizes[i]);
        assert_non_null(p);
        errno = 1234;
        free(p);
        BW_REQUIRE(errno == 1234, "free of a %zu-byte block changed errno to %d", sizes[i], errno);
        p = malloc(sizes[i]);
        assert_non_null(p);
        errno = 1234;
        free_sized(p, sizes[i]);
        BW_REQUIRE(errno == 1234, "free_sized of %zu bytes changed errno to %d", sizes[i], errno);
        p = memalign(4096, sizes[i]);
        assert_non_null(p);
        errno = 1234;
        free(p);
        BW_REQUIRE(errno == 1234, "free of memalign(4096, %zu) changed errno to %d", sizes[i],
                   errno);
    }
    /* More large blocks than any cache keeps, so some frees really unmap. */
    enum { LARGE = 100 };
    static void *blocks[LARGE];
    for (size_t i = 0; i < LARGE; i++) {
        blocks[i] = malloc(MiB + i * PAGE);
        assert_non_null(blocks[i]);
    }
    for (size_t i = 0; i < LARGE; i++) {
        errno = 1234;
        free(blocks[i]);
        BW_REQUIRE(errno == 1234, "free of large block #%zu changed errno to %d", i, errno);
    }
}

static void test_malloc_usable_size(void **state) {
    assert_int_equal(malloc_usable_size(NULL), 0);
    const size_t sizes[] = {0, 1, 17, 200, 5000, 16384, 16385, 70000, MiB + 3};
    void *blocks[sizeof sizes / sizeof sizes[0]];
    size_t usable[sizeof sizes / sizeof sizes[0]];
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        blocks[i] = malloc(sizes[i]);
        usable[i] = check_block(blocks[i], sizes[i], 16, "malloc");
    }
    /* Constant for the block's life, whatever else happens meanwhile. */
    for (size_t round = 0; round < 3; round++) {
        void *noise[64];
        for (size_t j = 0; j < 64; j++) noise[j] = malloc(j * 97);
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
            BW_REQUIRE(malloc_usable_size(blocks[i]) == usable[i],
                       "usable size of a %zu-byte block changed", sizes[i]);
        for (size_t j = 0; j < 64; j++) free(noise[j]);
    }
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) free(blocks[i]);
}

/* Requests map to classes after the profile's canary room
 * (BW_TEST_CANARY_BYTES) is added, and malloc(0) has a class of its own when
 * zero-size blocks fault: the smallest request of the first class is then 1. */
static size_t smallest_sized_request(void) {
#if defined(BW_ZERO_SIZE_FAULTS) && BW_ZERO_SIZE_FAULTS
    return 1;
#else
    return 0;
#endif
}

static void test_free_sized_accepts_same_class(void **state) {
    const size_t canary = BW_TEST_CANARY_BYTES;
    size_t class_floor = smallest_sized_request(); /* smallest request of the current class */
    for (size_t i = 0; i < BW_TEST_CLASS_COUNT; i++) {
        size_t class_size = bw_test_class_size(i) - canary;
        if (class_size < class_floor) continue;
        size_t middle = (class_floor + class_size) / 2;
        const size_t requests[] = {class_floor, middle, class_size};
        for (size_t r = 0; r < 3; r++) {
            size_t request = requests[r];
            /* The exact size. */
            void *p = malloc(request);
            assert_non_null(p);
            free_sized(p, request);
            /* Any other size of the same class, and the usable size. */
            const size_t others[] = {class_floor, middle, class_size};
            for (size_t o = 0; o < 3; o++) {
                p = malloc(request);
                assert_non_null(p);
                free_sized(p, others[o]);
            }
            p = malloc(request);
            assert_non_null(p);
            free_sized(p, malloc_usable_size(p));
        }
        class_floor = class_size + 1;
    }
    /* Large blocks: the exact size and the usable size. */
    const size_t large[] = {16385, 20000, 65536, 100001, MiB, MiB + 1, 8 * MiB + 123};
    for (size_t i = 0; i < sizeof large / sizeof large[0]; i++) {
        void *p = malloc(large[i]);
        assert_non_null(p);
        free_sized(p, large[i]);
        p = malloc(large[i]);
        assert_non_null(p);
        free_sized(p, malloc_usable_size(p));
    }
    /* A large block that reuses a slightly bigger cached mapping: its usable
     * size is that mapping's, and still belongs to the block. */
    for (size_t i = 0; i < sizeof large / sizeof large[0]; i++) {
        size_t request = large[i] < 65536 ? 65536 : large[i];
        free(malloc(request + 2 * 4096));
        void *p = malloc(request + 1);
        assert_non_null(p);
        size_t usable = malloc_usable_size(p);
        BW_REQUIRE(usable >= request + 1, "usable %zu", usable);
        free_sized(p, usable);
    }
    /* calloc's block is freed with the product. */
    void *p = calloc(10, 100);
    assert_non_null(p);
    free_sized(p, 1000);
}

static void test_free_aligned_sized_accepts_same_class(void **state) {
    for (size_t alignment = 16; alignment <= 4 * MiB; alignment *= 4) {
        const size_t sizes[] = {1, 100, alignment - 1, alignment, alignment + 1, 3 * alignment};
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t size = sizes[i];
            void *p = aligned_alloc(alignment, size);
            check_block(p, size, alignment, "aligned_alloc");
            free_aligned_sized(p, alignment, size);

            p = memalign(alignment, size);
            check_block(p, size, alignment, "memalign");
            size_t usable = malloc_usable_size(p);
            free_aligned_sized(p, alignment, usable);

            /* Every size between the request and the usable size belongs to
             * the block as much as the request does. */
            p = aligned_alloc(alignment, size);
            assert_non_null(p);
            usable = malloc_usable_size(p);
            free_aligned_sized(p, alignment, size + (usable - size) / 2);
        }
    }
    /* At the natural alignment the class rule is that of free_sized. */
    const size_t canary = BW_TEST_CANARY_BYTES;
    size_t class_floor = smallest_sized_request();
    for (size_t i = 0; i < BW_TEST_CLASS_COUNT; i++) {
        size_t class_size = bw_test_class_size(i) - canary;
        if (class_size < class_floor) continue;
        void *p = aligned_alloc(16, class_size);
        assert_non_null(p);
        free_aligned_sized(p, 16, class_floor);
        p = aligned_alloc(16, class_floor);
        assert_non_null(p);
        free_aligned_sized(p, 16, class_size);
        class_floor = class_size + 1;
    }
}

/* ------------------------------------------------------------ introspection */

static void test_mallopt(void **state) {
    assert_int_equal(mallopt(M_MMAP_THRESHOLD, 256 * 1024), 1);
    /* Other parameters: any int, but the call must return. */
    (void)mallopt(M_ARENA_MAX, 1);
    (void)mallopt(M_TRIM_THRESHOLD, 128 * 1024);
    void *p = malloc(300 * 1024);
    check_block(p, 300 * 1024, 16, "malloc after mallopt");
    free(p);
}

enum { INFO_SMALL_COUNT = 10240, INFO_LARGE_COUNT = 10 };

static void test_mallinfo2_tracks_use(void **state) {
    static void *small[INFO_SMALL_COUNT];
    static void *large[INFO_LARGE_COUNT];
    for (size_t i = 0; i < INFO_SMALL_COUNT; i++) {
        small[i] = malloc(1024);
        assert_non_null(small[i]);
    }
    for (size_t i = 0; i < INFO_LARGE_COUNT; i++) {
        large[i] = malloc(MiB);
        assert_non_null(large[i]);
    }
    struct mallinfo2 during = mallinfo2();
    BW_REQUIRE(during.uordblks >= 20 * MiB, "uordblks %zu with 20 MiB live", during.uordblks);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    struct mallinfo legacy = mallinfo();
#pragma GCC diagnostic pop
    BW_REQUIRE((size_t)legacy.uordblks >= 20 * MiB, "mallinfo().uordblks %d", legacy.uordblks);

    for (size_t i = 0; i < INFO_SMALL_COUNT; i++) free(small[i]);
    for (size_t i = 0; i < INFO_LARGE_COUNT; i++) free(large[i]);
    struct mallinfo2 after = mallinfo2();
    /* Quarantine may hold some small blocks back, but not 10 MiB of them. */
    BW_REQUIRE(after.uordblks + 10 * MiB <= during.uordblks,
               "uordblks %zu after freeing 20 MiB (was %zu)", after.uordblks, during.uordblks);
}

static void test_malloc_trim(void **state) {
    enum { COUNT = 64 * 1024 };
    static void *blocks[COUNT];
    int ret = malloc_trim(0);
    BW_REQUIRE(ret == 0 || ret == 1, "malloc_trim(0) = %d", ret);

    /* 64 MiB of touched small blocks, then freed: trimming must give most
     * of it back and say so. */
    for (size_t i = 0; i < COUNT; i++) {
        blocks[i] = malloc(1024);
        assert_non_null(blocks[i]);
        memset(blocks[i], 0x55, 1024);
    }
    size_t rss_full = bw_test_rss_bytes();
    for (size_t i = 0; i < COUNT; i++) free(blocks[i]);
    ret = malloc_trim(0);
    size_t rss_trimmed = bw_test_rss_bytes();
    BW_REQUIRE(ret == 1, "malloc_trim(0) = %d after freeing 64 MiB", ret);
    BW_REQUIRE(rss_trimmed + 32 * MiB <= rss_full, "RSS %zu KiB before, %zu KiB after trim",
               rss_full / KiB, rss_trimmed / KiB);
    ret = malloc_trim(0);
    BW_REQUIRE(ret == 0 || ret == 1, "second malloc_trim(0) = %d", ret);
}

/* Reads an open file from the start into buf; returns the length. */
static size_t slurp(FILE *f, char *buf, size_t capacity) {
    fflush(f);
    rewind(f);
    size_t len = fread(buf, 1, capacity - 1, f);
    buf[len] = '\0';
    return len;
}

static void test_malloc_stats_writes_to_stderr(void **state) {
    FILE *capture = tmpfile();
    assert_non_null(capture);
    fflush(stderr);
    int saved_stderr = dup(STDERR_FILENO);
    assert_true(saved_stderr >= 0);
    assert_true(dup2(fileno(capture), STDERR_FILENO) >= 0);
    void *p = malloc(1000); /* something to report */
    malloc_stats();
    fflush(stderr);
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    free(p);
    static char text[65536];
    size_t len = slurp(capture, text, sizeof text);
    fclose(capture);
    BW_REQUIRE(len > 0, "malloc_stats wrote %zu bytes", len);
}

static void test_malloc_info_writes_xml(void **state) {
    FILE *out = tmpfile();
    assert_non_null(out);
    void *p = malloc(1000);
    assert_int_equal(malloc_info(0, out), 0);
    free(p);
    static char text[1 << 20];
    size_t len = slurp(out, text, sizeof text);
    fclose(out);
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' ' || text[len - 1] == '\t'))
        text[--len] = '\0';
    BW_REQUIRE(strncmp(text, "<malloc", 7) == 0, "malloc_info starts with \"%.40s\"", text);
    BW_REQUIRE(len >= 9 && strcmp(text + len - 9, "</malloc>") == 0, "malloc_info ends with \"%s\"",
               len > 40 ? text + len - 40 : text);
}

/* ------------------------------------------------------------ glibc aliases */

/* Resolves a symbol and requires it to come from bulwark, not from libc.so:
 * a program that calls __libc_malloc and frees with free would otherwise
 * hand a glibc chunk to bulwark. */
static void *resolve_bulwark_symbol(const char *name) {
    void *sym = dlsym(RTLD_DEFAULT, name);
    BW_REQUIRE(sym != NULL, "dlsym(\"%s\")", name);
    Dl_info info;
    BW_REQUIRE(dladdr(sym, &info) != 0, "dladdr(%s)", name);
    BW_REQUIRE(info.dli_fname == NULL || strstr(info.dli_fname, "libc.so") == NULL,
               "%s resolves to %s, not to bulwark", name, info.dli_fname);
    return sym;
}

int __posix_memalign(void **out, size_t alignment, size_t size);

static void test_libc_aliases(void **state) {
    void *(*libc_malloc)(size_t) = (void *(*)(size_t))resolve_bulwark_symbol("__libc_malloc");
    void (*libc_free)(void *) = (void (*)(void *))resolve_bulwark_symbol("__libc_free");
    void *(*libc_calloc)(size_t, size_t) =
        (void *(*)(size_t, size_t))resolve_bulwark_symbol("__libc_calloc");
    void *(*libc_realloc)(void *, size_t) =
        (void *(*)(void *, size_t))resolve_bulwark_symbol("__libc_realloc");
    void *(*libc_memalign)(size_t, size_t) =
        (void *(*)(size_t, size_t))resolve_bulwark_symbol("__libc_memalign");
#ifdef BW_TEST_PRELOAD
    int (*posix_memalign_alias)(void **, size_t, size_t) =
        (int (*)(void **, size_t, size_t))resolve_bulwark_symbol("__posix_memalign");
#else
    /* glibc 2.36 does not export __posix_memalign, so a statically linked
     * executable does not export bulwark's either and dlsym cannot see it;
     * the direct reference proves the library defines it. */
    int (*posix_memalign_alias)(void **, size_t, size_t) = __posix_memalign;
#endif

    /* Each works, and mixes freely with the plain names. */
    void *p = libc_malloc(100);
    check_block(p, 100, 16, "__libc_malloc");
    bw_fill(p, 100, 1);
    p = libc_realloc(p, 5000);
    assert_non_null(p);
    assert_true(bw_check(p, 100, 1));
    check_block(p, 5000, 16, "__libc_realloc");
    free(p);

    p = malloc(200);
    bw_fill(p, 200, 2);
    p = libc_realloc(p, 100000);
    assert_non_null(p);
    assert_true(bw_check(p, 200, 2));
    libc_free(p);

    unsigned char *z = libc_calloc(10, 100);
    assert_non_null(z);
    assert_true(bw_check_zero(z, 1000));
    free(z);

    p = libc_memalign(4096, 100);
    check_block(p, 100, 4096, "__libc_memalign");
    libc_free(p);

    p = sentinel;
    assert_int_equal(posix_memalign_alias(&p, 256, 1000), 0);
    check_block(p, 1000, 256, "__posix_memalign");
    libc_free(p);
    p = sentinel;
    assert_int_equal(posix_memalign_alias(&p, 24, 1000), EINVAL);
    assert_ptr_equal(p, sentinel);
}

static void test_libc_valloc_aliases(void **state) {
    void *(*libc_valloc)(size_t) = (void *(*)(size_t))resolve_bulwark_symbol("__libc_valloc");
    void *(*libc_pvalloc)(size_t) = (void *(*)(size_t))resolve_bulwark_symbol("__libc_pvalloc");
    void *p = libc_valloc(100);
    check_block(p, 100, PAGE, "__libc_valloc");
    free(p);
    p = libc_pvalloc(100);
    check_block(p, PAGE, PAGE, "__libc_pvalloc");
    free(p);
}

/* ------------------------------------------------------------ large blocks */

static void test_large_blocks_keep_contents(void **state) {
    const size_t sizes[] = {16385, 16384 + 4096, 20000,   65536,    100000,
                            MiB,   MiB + 1,      4 * MiB, 16 * MiB, 64 * MiB};
    enum { COUNT = sizeof sizes / sizeof sizes[0] };
    void *blocks[COUNT];
    for (size_t round = 0; round < 5; round++) {
        /* All live at once, each filled in full, then all checked: no block
         * overlaps another or loses its contents. */
        for (size_t i = 0; i < COUNT; i++) {
            blocks[i] = malloc(sizes[i]);
            BW_REQUIRE(blocks[i] != NULL, "malloc(%zu)", sizes[i]);
            BW_REQUIRE((uintptr_t)blocks[i] % 16 == 0, "malloc(%zu) = %p", sizes[i], blocks[i]);
            BW_REQUIRE(malloc_usable_size(blocks[i]) >= sizes[i], "usable of %zu", sizes[i]);
            bw_fill(blocks[i], sizes[i], round * 100 + i);
        }
        for (size_t i = 0; i < COUNT; i++) {
            BW_REQUIRE(bw_check(blocks[i], sizes[i], round * 100 + i),
                       "large block of %zu bytes lost its contents", sizes[i]);
            free(blocks[i]);
        }
    }
}

static void test_large_malloc_free_loop_is_fast(void **state) {
    size_t maps_before = bw_test_map_count();
    size_t rss_before = bw_test_rss_bytes();
    int64_t start = now_ns();
    for (size_t i = 0; i < 1000; i++) {
        /* Sizes spread over 64 KiB .. 1 MiB. */
        size_t size = 64 * KiB + (i * 7919 * 64) % (MiB - 64 * KiB + 1);
        unsigned char *p = malloc(size);
        BW_REQUIRE(p != NULL, "malloc(%zu)", size);
        p[0] = 1;
        p[size / 2] = 2;
        p[size - 1] = 3;
        free(p);
    }
    double seconds = (double)(now_ns() - start) / 1e9;
    size_t maps_after = bw_test_map_count();
    size_t rss_after = bw_test_rss_bytes();
    BW_REQUIRE(seconds < 2.0, "1000 large malloc/free pairs took %.3f s", seconds);
    BW_REQUIRE(maps_after <= maps_before + 64, "mappings grew from %zu to %zu", maps_before,
               maps_after);
    BW_REQUIRE(rss_after <= rss_before + 96 * MiB, "RSS grew from %zu KiB to %zu KiB",
               rss_before / KiB, rss_after / KiB);
}

int main(void) {
    if (!bw_is_bulwark_loaded()) {
        fprintf(stderr, "test_conformance: malloc is not bulwark's; refusing to test glibc\n");
        return 1;
    }
    bw_test_filters_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malloc_zero_is_unique),
        cmocka_unit_test(test_every_size_to_20000),
        cmocka_unit_test(test_medium_sizes),
        cmocka_unit_test(test_class_boundaries_do_not_overlap),
        cmocka_unit_test(test_impossible_sizes),
        cmocka_unit_test(test_impossible_aligned_sizes),
        cmocka_unit_test(test_calloc_overflow),
        cmocka_unit_test(test_calloc_zeroes_reused_memory),
        cmocka_unit_test(test_reallocarray_overflow),
        cmocka_unit_test(test_posix_memalign_rejects_bad_alignments),
        cmocka_unit_test(test_posix_memalign_every_power_of_two),
        cmocka_unit_test(test_aligned_alloc_and_memalign),
        cmocka_unit_test(test_memalign_takes_any_alignment_like_glibc),
        cmocka_unit_test(test_valloc_and_pvalloc),
        cmocka_unit_test(test_free_null_and_errno),
        cmocka_unit_test(test_malloc_usable_size),
        cmocka_unit_test(test_free_sized_accepts_same_class),
        cmocka_unit_test(test_free_aligned_sized_accepts_same_class),
        cmocka_unit_test(test_mallopt),
        cmocka_unit_test(test_mallinfo2_tracks_use),
        cmocka_unit_test(test_malloc_trim),
        cmocka_unit_test(test_malloc_stats_writes_to_stderr),
        cmocka_unit_test(test_malloc_info_writes_xml),
        cmocka_unit_test(test_libc_aliases),
        cmocka_unit_test(test_libc_valloc_aliases),
        cmocka_unit_test(test_large_blocks_keep_contents),
        cmocka_unit_test(test_large_malloc_free_loop_is_fast),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
