/* test_memory_return.c — proves that bulwark gives memory back to the kernel
 * and does not fragment the address space into many mappings:
 *  - trim_returns_memory: 512 MiB of small blocks, touched, then freed; after
 *    malloc_trim(0) the resident set is below 64 MiB again;
 *  - purge_without_trim: the same without malloc_trim: empty slabs are
 *    decommitted on their own (after BW_PURGE_DELAY_MS, 250 ms) once the
 *    allocator's slow paths run, so RSS drops below 64 MiB within seconds;
 *  - one_gib_few_mappings: 1 GiB of live 64-byte blocks (16M blocks) lives in
 *    fewer than 200 mappings (guard pages must not split the heap into one
 *    VMA per slab: vm.max_map_count is 65,530).
 * The pointer arrays are mmap'ed directly so that they are neither in the
 * heap under test nor counted as its memory. */
/* cmocka.h needs these first */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "bulwark.h"
#include "bw_test.h"

#define MiB              ((size_t)1 << 20)
#define RETURN_TOTAL     (512 * MiB) /* requested bytes, before class rounding */
#define RETURN_MIN_SIZE  64u
#define RETURN_MAX_SIZE  1024u
#define RETURN_RSS_FULL  (400 * MiB) /* what the touched blocks must show as RSS */
#define RETURN_RSS_EMPTY (64 * MiB)  /* what may remain after they are freed */
#define PURGE_RETRY_MS   5000u       /* purge delay is 250 ms; allow for a busy box */
#define GIB_BLOCK        64u
#define GIB_COUNT        ((size_t)16 << 20) /* 16M x 64 B = 1 GiB */
#define GIB_MAPS_MAX     200u

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A pointer array outside the heap: anonymous, lazily committed. */
static void **map_pointer_array(size_t count) {
    void *array = mmap(NULL, count * sizeof(void *), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    assert_true(array != MAP_FAILED);
    return array;
}

static void unmap_pointer_array(void **array, size_t count) {
    assert_int_equal(munmap(array, count * sizeof(void *)), 0);
}

/* Allocates small blocks of random sizes until RETURN_TOTAL bytes were
 * requested, writes every byte of each, and returns how many there are. */
static size_t fill_heap(void **blocks, size_t capacity) {
    uint64_t rng = 0x5DEECE66DULL;
    size_t count = 0, total = 0;
    while (total < RETURN_TOTAL) {
        assert_true(count < capacity);
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t size =
            RETURN_MIN_SIZE + (size_t)(rng >> 33) % (RETURN_MAX_SIZE - RETURN_MIN_SIZE + 1);
        void *p = malloc(size);
        assert_non_null(p);
        memset(p, 0xA5, size);
        blocks[count++] = p;
        total += size;
    }
    return count;
}

static void free_heap(void **blocks, size_t count) {
    for (size_t i = 0; i < count; i++) free(blocks[i]);
}

static void print_rss(const char *label) {
    struct bw_stats s;
    bw_get_stats(&s);
    print_message("%-34s rss=%zu MiB slabs=%zu segments=%zu small_committed=%zu MiB maps=%zu\n",
                  label, bw_test_rss_bytes() / MiB, s.slabs_in_use, s.segments_in_use,
                  s.small_committed_bytes / MiB, bw_test_map_count());
}

static void trim_returns_memory(void **state) {
    size_t capacity = RETURN_TOTAL / RETURN_MIN_SIZE;
    void **blocks = map_pointer_array(capacity);

    print_rss("trim: start");
    size_t count = fill_heap(blocks, capacity);
    print_message("trim: %zu blocks hold 512 MiB\n", count);
    print_rss("trim: all live");
    assert_true(bw_test_rss_bytes() > RETURN_RSS_FULL);

    free_heap(blocks, count);
    unmap_pointer_array(blocks, capacity);
    print_rss("trim: freed, before malloc_trim");
    int released = malloc_trim(0);
    print_message("trim: malloc_trim(0) = %d\n", released);
    print_rss("trim: after malloc_trim");
    assert_int_equal(released, 1);
    assert_true(bw_test_rss_bytes() < RETURN_RSS_EMPTY);
}

/* Touches every size class a few times so the slow paths, where purging of
 * slabs whose delay has expired is paced, get to run. */
/* Light on purpose: it only has to run the allocator's slow paths (where
 * the delayed purge, the quarantine's time bound and the aging of open
 * slabs happen). A heavy churn legitimately keeps up to BW_QUARANTINE_BYTES
 * of blocks in quarantine (16 MiB in fuzz), each pinning its slab's pages. */
static void churn_all_classes(void) {
    enum { PER_CLASS = 4 };
    static void *held[PER_CLASS];
    for (size_t size = 16; size <= 16384; size += size < 1024 ? 16 : 128) {
        for (unsigned i = 0; i < PER_CLASS; i++) {
            held[i] = malloc(size);
            assert_non_null(held[i]);
            memset(held[i], 1, size < 64 ? size : 64);
        }
        for (unsigned i = 0; i < PER_CLASS; i++) free(held[i]);
    }
}

static void purge_without_trim(void **state) {
    size_t capacity = RETURN_TOTAL / RETURN_MIN_SIZE;
    void **blocks = map_pointer_array(capacity);

    print_rss("purge: start");
    size_t count = fill_heap(blocks, capacity);
    print_rss("purge: all live");
    assert_true(bw_test_rss_bytes() > RETURN_RSS_FULL);

    free_heap(blocks, count);
    unmap_pointer_array(blocks, capacity);
    print_rss("purge: freed");
    sleep(1); /* longer than the 250 ms purge delay */

    uint64_t start = now_ms();
    unsigned rounds = 0;
    size_t rss;
    /* One light churn over every class runs the slow paths; later rounds
     * only nudge them (a few small pairs reach the aging scan), so the test
     * does not itself keep opening slabs in the profiles with random ways
     * and a large quarantine while it waits for the delayed purge. */
    churn_all_classes();
    do {
        rounds++;
        rss = bw_test_rss_bytes();
        if (rss < RETURN_RSS_EMPTY) break;
        usleep(50 * 1000);
        for (int i = 0; i < 16; i++) free(malloc(16));
    } while (now_ms() - start < PURGE_RETRY_MS);
    print_message("purge: rss %zu MiB after %u churn rounds, %llu ms\n", rss / MiB, rounds,
                  (unsigned long long)(now_ms() - start));
    print_rss("purge: after churn");
    assert_true(rss < RETURN_RSS_EMPTY);
}

static void one_gib_few_mappings(void **state) {
    void **blocks = map_pointer_array(GIB_COUNT);
    uint64_t start = now_ms();

    size_t maps_before = bw_test_map_count();
    for (size_t i = 0; i < GIB_COUNT; i++) {
        void *p = malloc(GIB_BLOCK);
        assert_non_null(p);
        memset(p, (int)(i & 0xFF), GIB_BLOCK);
        blocks[i] = p;
    }
    size_t maps_live = bw_test_map_count();
    print_message("1 GiB: %zu x %u B allocated in %llu ms\n", (size_t)GIB_COUNT, GIB_BLOCK,
                  (unsigned long long)(now_ms() - start));
    print_message("1 GiB: /proc/self/maps lines: %zu before, %zu with 1 GiB live\n", maps_before,
                  maps_live);
    print_rss("1 GiB: all live");

    /* A sample of blocks still holds what was written (no overlap). */
    for (size_t i = 0; i < GIB_COUNT; i += 4099)
        assert_int_equal(((unsigned char *)blocks[i])[GIB_BLOCK - 1], i & 0xFF);

    free_heap(blocks, GIB_COUNT);
    unmap_pointer_array(blocks, GIB_COUNT);
    int released = malloc_trim(0);
    print_message("1 GiB: freed, malloc_trim(0) = %d, %llu ms in all\n", released,
                  (unsigned long long)(now_ms() - start));
    print_rss("1 GiB: after free and trim");
    assert_true(maps_live < GIB_MAPS_MAX);
    assert_true(bw_test_rss_bytes() < RETURN_RSS_EMPTY);
}

int main(void) {
    if (!bw_is_bulwark_loaded()) {
        fprintf(stderr, "test_memory_return: malloc is not bulwark's; refusing to test glibc\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(trim_returns_memory),
        cmocka_unit_test(purge_without_trim),
        cmocka_unit_test(one_gib_few_mappings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
