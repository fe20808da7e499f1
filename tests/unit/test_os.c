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
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
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

int main(void) {
    bw_unit_enter_as_allocator();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mbind_sees_the_node),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
