/* test_os.c — system-call wrappers of os.c that the rest of the suite
 * cannot reach on this machine:
 *  - mbind_sees_the_node: bw_os_mbind_preferred's mask reaches the kernel
 *    whole. Node 0 on a mapped range succeeds and get_mempolicy reads back
 *    MPOL_PREFERRED on node 0; the highest node the mask can name
 *    (BW_MAX_NUMA_NODES - 1), absent here, is refused with EINVAL, which
 *    proves the kernel read its bit: with maxnode = BW_MAX_NUMA_NODES, as
 *    it was, the kernel reads one bit less, sees an empty mask and takes
 *    it as "local allocation" without an error. (bw_os_bind_node itself
 *    returns at once on a one-node machine.)
 *  - lazy_space_pieces: in lazy space (what a finite RLIMIT_AS selects,
 *    switched on here for the test) a region is placed without a mapping,
 *    away from other placed regions; a piece committed is readable and
 *    writable, a piece someone already holds is BW_MAP_TAKEN and is left
 *    untouched, a fault piece is PROT_NONE, and uncommit unmaps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bw_internal.h"
#include "bw_test.h"
#include "bw_unit.h"

#ifndef MPOL_PREFERRED
#define MPOL_PREFERRED 1
#endif
#ifndef MPOL_F_ADDR
#define MPOL_F_ADDR (1 << 1)
#endif

static void test_mbind_sees_the_node(void **state) {
    (void)state;
    size_t size = 4 * BW_PAGE_SIZE;
    void *range = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(range != MAP_FAILED);
    assert_int_equal(bw_os_mbind_preferred(range, size, 0), 0);
    int mode = -1;
    unsigned long mask[(BW_MAX_NUMA_NODES + 63) / 64] = {0};
    assert_int_equal(syscall(SYS_get_mempolicy, &mode, mask, (unsigned long)BW_MAX_NUMA_NODES + 1,
                             range, (unsigned long)MPOL_F_ADDR),
                     0);
    assert_int_equal(mode, MPOL_PREFERRED);
    assert_int_equal(mask[0], 1ul);

    unsigned highest = BW_MAX_NUMA_NODES - 1;
    if (bw_os_node_count_sysfs() <= highest) {
        int err = bw_os_mbind_preferred(range, size, highest);
        print_message("mbind to absent node %u: errno %d\n", highest, err);
        assert_int_equal(err, EINVAL);
    } else {
        print_message("node %u exists here: its refusal is not checked\n", highest);
    }
    munmap(range, size);
}

/* Whether any page of [addr, addr + size) is mapped: mincore fails with
 * ENOMEM on unmapped pages, page by page. */
static bool any_page_mapped(const void *addr, size_t size) {
    unsigned char vec;
    for (size_t off = 0; off < size; off += BW_PAGE_SIZE)
        if (mincore((void *)((uintptr_t)addr + off), BW_PAGE_SIZE, &vec) == 0) return true;
    return false;
}

static void read_byte(void *p) {
    *(volatile char *)p;
}

/* A lazy placement picks a random range without looking at the mappings
 * (the commits find out: BW_MAP_TAKEN); this process also holds the
 * reservations of its own non-lazy start-up, 72 GiB in the same window, and
 * 2 of 300 runs placed a range over them. The pieces this test maps must be
 * free: another placement then. */
static char *place_clear(size_t size) {
    for (int attempt = 0; attempt < 16; attempt++) {
        char *p = bw_os_space_reserve(size, BW_SEGMENT_SIZE);
        assert_non_null(p);
        if (!any_page_mapped(p, BW_SEGMENT_SIZE + 2 * BW_PAGE_SIZE)) return p;
        bw_os_space_release(p, size);
    }
    fail_msg("no free range in 16 placements");
    return NULL;
}

static void test_lazy_space_pieces(void **state) {
    (void)state;
    bool was_lazy = bw_space_lazy;
    bw_space_lazy = true;
    const size_t size = 16 * BW_SEGMENT_SIZE;
    char *a = place_clear(size);
    char *b = place_clear(size);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal((uintptr_t)a % BW_SEGMENT_SIZE, 0);
    /* placed apart, with a gap, and nothing mapped yet */
    assert_true(a + size + BW_SEGMENT_SIZE <= b || b + size + BW_SEGMENT_SIZE <= a);
    assert_false(any_page_mapped(a, 64 * BW_PAGE_SIZE));

    assert_int_equal(bw_os_space_commit(a, BW_SEGMENT_SIZE, false), BW_MAP_OK);
    memset(a, 0x5a, BW_SEGMENT_SIZE);
    /* the pages are someone's now: a second commit must not replace them */
    assert_int_equal(bw_os_space_commit(a + BW_SEGMENT_SIZE - BW_PAGE_SIZE, 2 * BW_PAGE_SIZE, true),
                     BW_MAP_TAKEN);
    assert_int_equal(a[BW_SEGMENT_SIZE - 1], 0x5a);
    assert_false(any_page_mapped(a + BW_SEGMENT_SIZE, 2 * BW_PAGE_SIZE));

    /* a metadata piece right after: mapped, zero, writable */
    assert_int_equal(bw_os_space_commit(a + BW_SEGMENT_SIZE, BW_PAGE_SIZE, true), BW_MAP_OK);
    assert_int_equal(a[BW_SEGMENT_SIZE], 0);
    a[BW_SEGMENT_SIZE] = 1;

    /* a fault piece is mapped (it holds the addresses) but inaccessible */
    assert_int_equal(bw_os_space_fault(b, BW_PAGE_SIZE), BW_MAP_OK);
    assert_true(any_page_mapped(b, BW_PAGE_SIZE));
    bw_expect_fault_in(read_byte, b, b, b + 1);

    bw_os_space_uncommit(a, BW_SEGMENT_SIZE + BW_PAGE_SIZE);
    bw_os_space_uncommit(b, BW_PAGE_SIZE);
    assert_false(any_page_mapped(a, BW_SEGMENT_SIZE + BW_PAGE_SIZE));
    assert_false(any_page_mapped(b, BW_PAGE_SIZE));
    bw_os_space_release(a, size);
    bw_os_space_release(b, size);
    bw_space_lazy = was_lazy;
}

int main(void) {
    bw_unit_enter_as_allocator();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mbind_sees_the_node),
        cmocka_unit_test(test_lazy_space_pieces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
