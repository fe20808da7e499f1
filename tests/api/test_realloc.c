/* test_realloc.c — proves that realloc keeps contents and follows glibc's
 * edge cases across every size-class boundary up to 4 MiB:
 *  - from each size of a list (every class size and its neighbours, every
 *    power of two and its neighbours up to 4 MiB) to a sample of other sizes,
 *    growing and shrinking, small to large and back, the first min(old, new)
 *    bytes survive and the new block is aligned, big enough and writable;
 *  - bytes a program wrote into the usable slack (malloc_usable_size) survive
 *    too, as programs such as systemd rely on;
 *  - realloc(NULL, n) allocates; realloc(p, 0) frees p and returns NULL (a
 *    later free(p) is a double free); realloc to an impossible size returns
 *    NULL with ENOMEM and leaves the original intact and freeable;
 *  - shrinking in place, and reallocating calloc'd and memalign'd blocks, keep
 *    the contents;
 *  - a large buffer grown a few bytes at a time (the naive string builder)
 *    moves about once per 50% of growth, not once per page, and keeps its
 *    contents through every move; in default a medium buffer grown so
 *    moves about once per two size classes;
 *  - after a realloc that kept the block in place (shrinking or growing),
 *    free_sized accepts the new size and every size up to the usable size,
 *    small and large, also for a block from aligned_alloc (issue 15: an
 *    op-sequence fuzz found realloc(NULL, 25), realloc(p, 24) kept in place,
 *    free_sized(p, 24) reported as a free size mismatch); a size below a
 *    large block's new request is still one.
 * Runs statically linked and, as test_realloc.dyn, against libbulwark.so. */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs these first; a separate block keeps clang-format from
 * sorting it above them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "bw_test.h"

#define KiB     ((size_t)1 << 10)
#define MiB     ((size_t)1 << 20)
#define LARGEST (4 * MiB + 1)

static size_t min_size(size_t a, size_t b) {
    return a < b ? a : b;
}

/* ------------------------------------------------------------ size list */

static size_t sizes[3 * BW_TEST_CLASS_COUNT + 3 * 23 + 1];
static size_t size_count;

static int compare_sizes(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

static void add_size(size_t size) {
    if (size <= LARGEST) sizes[size_count++] = size;
}

/* Every class size +-1 and every power of two +-1 up to 4 MiB, sorted, each
 * once. */
static int build_size_list(void **state) {
    size_count = 0;
    add_size(0);
    for (size_t i = 0; i < BW_TEST_CLASS_COUNT; i++) {
        size_t class_size = bw_test_class_size(i);
        add_size(class_size - 1);
        add_size(class_size);
        add_size(class_size + 1);
    }
    for (size_t power = 1; power <= 4 * MiB; power *= 2) {
        add_size(power - 1);
        add_size(power);
        add_size(power + 1);
    }
    qsort(sizes, size_count, sizeof sizes[0], compare_sizes);
    size_t unique = 0;
    for (size_t i = 0; i < size_count; i++) {
        if (unique == 0 || sizes[unique - 1] != sizes[i]) sizes[unique++] = sizes[i];
    }
    size_count = unique;
    return 0;
}

/* ------------------------------------------------------------ helpers */

/* realloc(old_size-block, new_size) with old contents seeded by seed; checks
 * the result and frees it. */
static void realloc_once(size_t old_size, size_t new_size, uint64_t seed) {
    void *p = malloc(old_size);
    BW_REQUIRE(p != NULL, "malloc(%zu)", old_size);
    bw_fill(p, old_size, seed);
    void *q = realloc(p, new_size);
    if (new_size == 0) {
        /* glibc semantics: the block is freed and NULL returned. */
        BW_REQUIRE(q == NULL, "realloc(%zu -> 0) = %p, expected NULL", old_size, q);
        return;
    }
    BW_REQUIRE(q != NULL, "realloc(%zu -> %zu)", old_size, new_size);
    BW_REQUIRE((uintptr_t)q % 16 == 0, "realloc(%zu -> %zu) = %p", old_size, new_size, q);
    BW_REQUIRE(malloc_usable_size(q) >= new_size, "realloc(%zu -> %zu): usable %zu", old_size,
               new_size, malloc_usable_size(q));
    BW_REQUIRE(bw_check(q, min_size(old_size, new_size), seed), "realloc(%zu -> %zu) lost contents",
               old_size, new_size);
    /* The whole new size is writable. */
    bw_fill(q, new_size, seed + 1);
    BW_REQUIRE(bw_check(q, new_size, seed + 1), "realloc(%zu -> %zu) not writable", old_size,
               new_size);
    free(q);
}

/* A cheap deterministic generator for picking sample sizes. */
static uint64_t next_random(uint64_t *state) {
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return *state >> 33;
}

/* ------------------------------------------------------------ tests */

static void test_realloc_between_sizes(void **state) {
    uint64_t rng = 12345;
    enum { RANDOM_TARGETS = 12 };
    for (size_t i = 0; i < size_count; i++) {
        size_t old_size = sizes[i];
        /* Neighbours in the list (the class boundary next door), the two
         * extremes, and a random sample of the rest. */
        if (i > 0) realloc_once(old_size, sizes[i - 1], i * 1000 + 1);
        if (i + 1 < size_count) realloc_once(old_size, sizes[i + 1], i * 1000 + 2);
        realloc_once(old_size, sizes[0], i * 1000 + 3);
        realloc_once(old_size, sizes[size_count - 1], i * 1000 + 4);
        realloc_once(old_size, old_size, i * 1000 + 5);
        for (size_t t = 0; t < RANDOM_TARGETS; t++) {
            size_t target = sizes[next_random(&rng) % size_count];
            realloc_once(old_size, target, i * 1000 + 10 + t);
        }
    }
}

/* One block walks up through every size and back down, each step checking
 * what the previous step wrote. */
static void test_realloc_chain_up_and_down(void **state) {
    void *p = NULL;
    size_t current = 0;
    for (size_t step = 0; step < 2 * size_count; step++) {
        size_t i = step < size_count ? step : 2 * size_count - 1 - step;
        size_t next = sizes[i];
        void *q = realloc(p, next);
        if (next == 0 && q == NULL) {
            /* realloc(p, 0) freed the block (glibc); start afresh. */
            p = NULL;
            current = 0;
            continue;
        }
        BW_REQUIRE(q != NULL, "realloc(%zu -> %zu)", current, next);
        BW_REQUIRE(bw_check(q, min_size(current, next), 77), "chain %zu -> %zu lost contents",
                   current, next);
        bw_fill(q, next, 77);
        p = q;
        current = next;
    }
    free(p);
}

/* Bytes written into the slack between the request and the usable size are
 * part of the block: realloc must carry min(usable, new size) of them. */
static void test_realloc_preserves_usable_slack(void **state) {
    for (size_t i = 0; i < size_count; i++) {
        size_t old_size = sizes[i];
        void *p = malloc(old_size);
        assert_non_null(p);
        size_t usable = malloc_usable_size(p);
        bw_fill(p, usable, old_size);
        const size_t targets[] = {usable + 1, usable * 2 + 100, usable / 2};
        for (size_t t = 0; t < 3; t++) {
            size_t new_size = targets[t];
            if (new_size == 0) /* malloc(0) may have usable size 0; realloc(p, 0) frees */
                continue;
            void *q = realloc(p, new_size);
            BW_REQUIRE(q != NULL, "realloc(%zu -> %zu)", old_size, new_size);
            BW_REQUIRE(bw_check(q, min_size(usable, new_size), old_size),
                       "realloc of a %zu-byte block (usable %zu, slack written) to %zu lost "
                       "slack bytes",
                       old_size, usable, new_size);
            p = q;
            usable = malloc_usable_size(p);
            bw_fill(p, usable, old_size);
        }
        free(p);
    }
}

static void test_realloc_null_is_malloc(void **state) {
    const size_t requests[] = {0, 1, 100, 16384, 16385, 20000, MiB};
    for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) {
        void *p = realloc(NULL, requests[i]);
        BW_REQUIRE(p != NULL, "realloc(NULL, %zu)", requests[i]);
        BW_REQUIRE((uintptr_t)p % 16 == 0, "realloc(NULL, %zu) = %p", requests[i], p);
        size_t usable = malloc_usable_size(p);
        BW_REQUIRE(usable >= requests[i], "realloc(NULL, %zu): usable %zu", requests[i], usable);
        bw_fill(p, usable, i);
        assert_true(bw_check(p, usable, i));
        free(p);
    }
}

static void test_realloc_to_zero_frees(void **state) {
    const size_t originals[] = {0, 16, 64, 1000, 16384, 16385, MiB};
    for (size_t round = 0; round < 200; round++) {
        for (size_t i = 0; i < sizeof originals / sizeof originals[0]; i++) {
            void *p = malloc(originals[i]);
            assert_non_null(p);
            bw_fill(p, originals[i], round);
            void *q = realloc(p, 0);
            BW_REQUIRE(q == NULL, "realloc(%zu-byte block, 0) = %p, expected NULL (glibc)",
                       originals[i], q);
        }
    }
    /* The freed blocks come back in later allocations without any complaint
     * (no double free, no corruption). */
    for (size_t i = 0; i < sizeof originals / sizeof originals[0]; i++) {
        void *blocks[256];
        for (size_t j = 0; j < 256; j++) {
            blocks[j] = malloc(originals[i]);
            assert_non_null(blocks[j]);
            bw_fill(blocks[j], originals[i], j);
        }
        for (size_t j = 0; j < 256; j++) {
            assert_true(bw_check(blocks[j], originals[i], j));
            free(blocks[j]);
        }
    }
}

/* realloc(p, 0) really freed p: freeing p afterwards is a double free. */
static void realloc_zero_then_free(void *arg) {
    void *p = arg;
    void *q = realloc(p, 0);
    if (q != NULL) return; /* the parent sees a clean exit and reports it */
    free(bw_launder(p));
}

static void test_realloc_to_zero_then_free_is_double_free(void **state) {
    void *small = malloc(64);
    assert_non_null(small);
    bw_expect_death_at(realloc_zero_then_free, small, "double free", "free", small);
    void *large = malloc(MiB);
    assert_non_null(large);
    bw_expect_death_at(realloc_zero_then_free, large, "double free", "free", large);
    free(small);
    free(large);
}

static void test_realloc_impossible_keeps_original(void **state) {
    const size_t originals[] = {0, 64, 5000, 16384, 16385, MiB};
    const size_t impossible[] = {SIZE_MAX, SIZE_MAX - 15, SIZE_MAX - 4095, (size_t)PTRDIFF_MAX + 1,
                                 (size_t)1 << 50};
    for (size_t i = 0; i < sizeof originals / sizeof originals[0]; i++) {
        size_t size = originals[i];
        void *p = malloc(size);
        assert_non_null(p);
        bw_fill(p, size, size + 5);
        for (size_t j = 0; j < sizeof impossible / sizeof impossible[0]; j++) {
            errno = 0;
            /* Laundered: gcc would flag the later uses of p otherwise. */
            void *q = realloc(bw_launder(p), bw_opaque_size(impossible[j]));
            BW_REQUIRE(q == NULL, "realloc(%zu-byte block, %#zx) = %p", size, impossible[j], q);
            BW_REQUIRE(errno == ENOMEM, "realloc(%zu-byte block, %#zx): errno %d", size,
                       impossible[j], errno);
            BW_REQUIRE(bw_check(p, size, size + 5),
                       "failed realloc(%#zx) changed the %zu-byte block", impossible[j], size);
            BW_REQUIRE(malloc_usable_size(p) >= size, "usable size of the kept %zu-byte block",
                       size);
        }
        /* The original is still a live block: it can grow, and be freed. */
        void *q = realloc(p, size + 100);
        assert_non_null(q);
        assert_true(bw_check(q, size, size + 5));
        free(q);
    }
}

static void test_shrink_keeps_contents(void **state) {
    const size_t pairs[][2] = {
        {100, 97},                           /* same class */
        {112, 100},                          /* same class, from the top */
        {16384, 15000},                      /* largest small class */
        {MiB, 512 * KiB},                    /* large, halved */
        {MiB, MiB - 100},                    /* large, within the last page */
        {MiB, MiB - 4096}, {4 * MiB, 16385}, /* still large */
        {4 * MiB, 100},                      /* large to small */
        {16385, 16384},                      /* large to the largest small class */
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        size_t from = pairs[i][0], to = pairs[i][1];
        void *p = malloc(from);
        assert_non_null(p);
        bw_fill(p, from, i);
        void *q = realloc(p, to);
        BW_REQUIRE(q != NULL, "realloc(%zu -> %zu)", from, to);
        BW_REQUIRE(bw_check(q, to, i), "shrink %zu -> %zu lost contents", from, to);
        BW_REQUIRE(malloc_usable_size(q) >= to, "shrink %zu -> %zu: usable %zu", from, to,
                   malloc_usable_size(q));
        /* And growing back keeps the kept part. */
        void *r = realloc(q, from);
        BW_REQUIRE(r != NULL, "realloc(%zu -> %zu)", to, from);
        BW_REQUIRE(bw_check(r, to, i), "regrow %zu -> %zu lost contents", to, from);
        free(r);
    }
}

/* free_sized(q, size) for the new size, the usable size and one between,
 * each on a fresh realloc(realloc(first(old), new)) chain; counts how often
 * the chain stayed in place so the caller can tell the case was met. */
static void free_sized_after_realloc(size_t old_size, size_t new_size, size_t alignment,
                                     size_t *kept) {
    for (int pick = 0; pick < 3; pick++) {
        void *p = alignment ? aligned_alloc(alignment, old_size) : realloc(NULL, old_size);
        BW_REQUIRE(p != NULL, "allocation of %zu bytes", old_size);
        bw_fill(p, old_size, old_size);
        void *q = realloc(p, new_size);
        BW_REQUIRE(q != NULL, "realloc(%zu -> %zu)", old_size, new_size);
        if (q == p) (*kept)++;
        size_t usable = malloc_usable_size(q);
        BW_REQUIRE(usable >= new_size, "realloc(%zu -> %zu): usable %zu", old_size, new_size,
                   usable);
        size_t size = pick == 0   ? new_size
                      : pick == 1 ? usable
                                  : new_size + (usable - new_size) / 2;
        free_sized(q, size);
    }
}

static void test_free_sized_after_realloc_in_place(void **state) {
    /* The sequence the fuzzer found. */
    void *p = realloc(NULL, 25);
    assert_non_null(p);
    void *q = realloc(p, 24);
    assert_non_null(q);
    free_sized(q, 24);

    size_t kept_shrink = 0, kept_grow = 0;
    for (size_t i = 0; i < size_count; i++) {
        size_t old_size = sizes[i];
        if (old_size < 2) continue;
        /* Shrinks that stay within the block (more than half of it) and a
         * few that do not; growth by a byte, a granule, an eighth. */
        const size_t shrinks[] = {old_size - 1, old_size - old_size / 8, old_size / 2 + 1};
        const size_t grows[] = {old_size + 1, old_size + 7, old_size + old_size / 8};
        for (size_t s = 0; s < 3; s++) {
            free_sized_after_realloc(old_size, shrinks[s], 0, &kept_shrink);
            if (grows[s] <= LARGEST) free_sized_after_realloc(old_size, grows[s], 0, &kept_grow);
        }
    }
    BW_REQUIRE(kept_shrink > 0 && kept_grow > 0, "in place: %zu shrinks, %zu growths", kept_shrink,
               kept_grow);

    /* aligned_alloc's block: free_aligned_sized with every size from the
     * request to the usable size, and after an in-place realloc free_sized
     * with the new size (a realloc result is freed as malloc's is). */
    size_t kept_aligned = 0;
    for (size_t alignment = 32; alignment <= 64 * KiB; alignment *= 8) {
        const size_t requests[] = {1,        24, 100, alignment - 1, alignment + 1, 3 * alignment,
                                   200 * KiB};
        for (size_t r = 0; r < sizeof requests / sizeof requests[0]; r++) {
            size_t request = requests[r];
            void *a = aligned_alloc(alignment, request);
            assert_non_null(a);
            size_t usable = malloc_usable_size(a);
            free_aligned_sized(a, alignment, request);
            for (size_t size = request; size <= usable; size += (usable - request) / 5 + 1) {
                a = aligned_alloc(alignment, request);
                assert_non_null(a);
                free_aligned_sized(a, alignment, size);
            }
            a = aligned_alloc(alignment, request);
            assert_non_null(a);
            free_aligned_sized(a, alignment, malloc_usable_size(a));
            if (request > 1)
                free_sized_after_realloc(request, request - request / 8, alignment, &kept_aligned);
        }
    }
    BW_REQUIRE(kept_aligned > 0, "no aligned block was kept in place");
}

/* A large block shrunk by realloc (in place in fast and default; strict and
 * fuzz move it to keep it against its guard) is named by its new request:
 * one byte less is a size mismatch, as before the realloc. */
typedef struct {
    void *block;
    size_t size;
} sized_free_t;

static void do_free_sized(void *arg) {
    sized_free_t *op = arg;
    free_sized(bw_launder(op->block), op->size);
}

static void test_free_sized_below_new_request_after_realloc(void **state) {
    void *p = malloc(MiB);
    assert_non_null(p);
    void *q = realloc(p, MiB - 100);
    assert_non_null(q);
    sized_free_t op = {q, MiB - 101};
    bw_expect_death_at(do_free_sized, &op, "free size mismatch", "free_sized", q);
    free_sized(q, MiB - 100);
}

/* The naive builder: a block of `first` bytes (pattern `seed`) grown by
 * realloc `step` bytes at a time while it stays at most `until`. Every
 * realloc must give at least the new size; every move must keep the first
 * bytes and the last step written; each step's new bytes are written, and
 * all of them checked at the end. Returns the moves; *block and *size are
 * the block and its size at the end. */
static size_t grow_in_steps(unsigned char **block, size_t *size, size_t step, size_t until,
                            uint64_t seed) {
    size_t first = *size;
    unsigned char *p = *block;
    size_t moves = 0;
    while (*size + step <= until) {
        size_t old = *size, grown = old + step;
        unsigned char *q = realloc(p, grown);
        BW_REQUIRE(q != NULL, "realloc(%zu -> %zu)", old, grown);
        BW_REQUIRE(malloc_usable_size(q) >= grown, "usable %zu < %zu", malloc_usable_size(q),
                   grown);
        if (q != p) {
            moves++;
            BW_REQUIRE(bw_check(q, first, seed), "move %zu (%zu -> %zu bytes) lost contents", moves,
                       old, grown);
            BW_REQUIRE(old == first || bw_check(q + old - step, step, (uint64_t)(old - step)),
                       "move %zu (%zu -> %zu bytes) lost the last bytes", moves, old, grown);
        }
        bw_fill(q + old, step, (uint64_t)old); /* the new bytes; checked at the end */
        p = q;
        *size = grown;
    }
    for (size_t at = first; at + step <= *size; at += step)
        BW_REQUIRE(bw_check(p + at, step, (uint64_t)at), "bytes %zu..%zu lost", at, at + step);
    *block = p;
    return moves;
}

/* 16 KiB + 1 to 4 MiB in 64-byte steps: 65,000 reallocs. A block that had
 * to move gets half as much room again (large.c), so the growth moves
 * log(4 MiB / 16 KiB) / log(1.5) ~ 14 times; moving once per page would be
 * about 1,000. */
static void test_large_growth_moves_rarely(void **state) {
    size_t size = 16 * KiB + 1;
    unsigned char *p = malloc(size);
    assert_non_null(p);
    bw_fill(p, size, 7);
    size_t moves = grow_in_steps(&p, &size, 64, 4 * MiB + 63, 7);
    print_message("grown 16 KiB -> 4 MiB in 64-byte steps: %zu moves\n", moves);
    BW_REQUIRE(moves <= 24, "%zu moves for 65,000 small growths", moves);
    free(p);
}

/* 1,100 bytes to 120,000 in 48-byte appends, through 27 medium classes.
 * Where a move costs a wipe as well as a copy and sizes are not byte-exact
 * (default), a block moved to grow by a small step gets a quarter of room,
 * so it moves about once per two classes; elsewhere once per class.
 * Contents survive every move, and free_sized takes the last request. A
 * block doubled (geometric growth) gets the class of its size, no room. */
static void test_small_appends_move_once_per_two_classes(void **state) {
    size_t size = 1100;
    unsigned char *p = malloc(size);
    assert_non_null(p);
    bw_fill(p, size, 11);
    size_t moves = grow_in_steps(&p, &size, 48, 120000, 11);
    print_message("grown 1,100 -> %zu bytes in 48-byte steps: %zu moves\n", size, moves);
    if (BW_ZERO_ON_FREE && !BW_EXACT_SIZE)
        BW_REQUIRE(moves <= 16, "%zu moves through 27 classes", moves);
    else
        BW_REQUIRE(moves >= 26 && moves <= 27, "%zu moves through 27 classes", moves);
    free_sized(p, size);

    p = malloc(3000);
    assert_non_null(p);
    p = realloc(p, 6000);
    assert_non_null(p);
    assert_int_equal(malloc_usable_size(p), BW_TEST_USABLE_FOR(6000));
    free(p);
}

static void test_realloc_of_calloc_and_memalign_blocks(void **state) {
    unsigned char *z = calloc(100, 10);
    assert_non_null(z);
    z = realloc(z, 5000);
    assert_non_null(z);
    assert_true(bw_check_zero(z, 1000));
    free(z);

    const size_t alignments[] = {32, 64, 4096, 65536, MiB};
    for (size_t i = 0; i < sizeof alignments / sizeof alignments[0]; i++) {
        const size_t new_sizes[] = {50, 100, 10000, 100000, 3 * MiB};
        for (size_t j = 0; j < sizeof new_sizes / sizeof new_sizes[0]; j++) {
            void *p = memalign(alignments[i], 100);
            BW_REQUIRE(p != NULL && (uintptr_t)p % alignments[i] == 0, "memalign(%zu, 100)",
                       alignments[i]);
            bw_fill(p, 100, i);
            void *q = realloc(p, new_sizes[j]);
            BW_REQUIRE(q != NULL, "realloc(memalign(%zu, 100), %zu)", alignments[i], new_sizes[j]);
            BW_REQUIRE(bw_check(q, min_size(100, new_sizes[j]), i),
                       "realloc(memalign(%zu, 100), %zu) lost contents", alignments[i],
                       new_sizes[j]);
            free(q);
        }
    }
}

int main(void) {
    if (!bw_is_bulwark_loaded()) {
        fprintf(stderr, "test_realloc: malloc is not bulwark's; refusing to test glibc\n");
        return 1;
    }
    bw_test_filters_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_realloc_between_sizes),
        cmocka_unit_test(test_realloc_chain_up_and_down),
        cmocka_unit_test(test_realloc_preserves_usable_slack),
        cmocka_unit_test(test_realloc_null_is_malloc),
        cmocka_unit_test(test_realloc_to_zero_frees),
        cmocka_unit_test(test_realloc_to_zero_then_free_is_double_free),
        cmocka_unit_test(test_realloc_impossible_keeps_original),
        cmocka_unit_test(test_shrink_keeps_contents),
        cmocka_unit_test(test_realloc_of_calloc_and_memalign_blocks),
        cmocka_unit_test(test_large_growth_moves_rarely),
        cmocka_unit_test(test_small_appends_move_once_per_two_classes),
        cmocka_unit_test(test_free_sized_after_realloc_in_place),
        cmocka_unit_test(test_free_sized_below_new_request_after_realloc),
    };
    return cmocka_run_group_tests(tests, build_size_list, NULL);
}
