/* tests/vm/numa_probe.c — NUMA placement on a real two-node machine (a
 * QEMU VM with two nodes of two CPUs each: tests/vm/numa.sh). Linked with
 * libbulwark.a, so every malloc here is bulwark's. It pins threads to a CPU
 * of each node, allocates and touches small, medium and large blocks, and
 * asks the kernel which node holds every page of them (move_pages with a
 * NULL node list only reports). Required:
 *
 *   local      each thread's pages are on its own node (>= 99%), for small
 *              (64 B to 128 KiB classes) and large (1 MiB) blocks;
 *   reuse      a node-1 thread allocating after a node-0 thread freed as
 *              much gets node-1 pages: freed memory of the other node is
 *              not handed to it (>= 99%; large blocks failed this and the
 *              local check before large.c stopped carving another node's
 *              free extents while a region could be made);
 *   migrate    a thread moved from node 0 to node 1 gets node-1 pages
 *              (>= 99%) for its large blocks at once and for its small ones
 *              after a set of blocks (its slow path looks at the node once
 *              per 16 calls; before, the slabs open when it moved served it
 *              until used up: 58% on the new node);
 *   full       a node-1 thread asking for more than node 1 holds is served
 *              from node 0 (MPOL_PREFERRED, not BIND): no NULL, no kill;
 *   stats      bw_get_stats reports 2 nodes.
 *
 * One line per check, "numa: PASS ..." or "numa: FAIL ...", and exit 1 on
 * any FAIL. Only raw syscalls: the VM has no libnuma. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bulwark.h"

#define PAGE             4096u
#define NODE0_CPU        0
#define NODE1_CPU        2
#define REQUIRED_PERCENT 99.0

/* The block sizes of the small and large checks: several classes, medium
 * ones (spans of several slots) included. */
static const size_t small_sizes[] = {64, 256, 1024, 4096, 20000, 65536, 131000};
#define SMALL_SIZES    (sizeof small_sizes / sizeof small_sizes[0])
#define SMALL_PER_SIZE 300
#define SMALL_BLOCKS   (SMALL_SIZES * SMALL_PER_SIZE)
#define LARGE_SIZE     (1u << 20)
#define LARGE_BLOCKS   24

static int failures;

struct blocks {
    char *small[SMALL_BLOCKS];
    char *large[LARGE_BLOCKS];
};

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
        printf("numa: FAIL cannot pin to CPU %d: %s\n", cpu, strerror(errno));
        exit(1);
    }
    sched_yield();
}

static char *alloc_touched(size_t size) {
    char *block = malloc(size);
    if (!block) {
        printf("numa: FAIL malloc(%zu) returned NULL\n", size);
        exit(1);
    }
    memset(block, 0x5a, size);
    return block;
}

/* Pages of [block, block + size) per node: counts[0], counts[1], and
 * counts[2] for anything else (not present, an error). */
static void count_pages(const char *block, size_t size, unsigned long counts[3]) {
    enum { BATCH = 64 };
    uintptr_t first = (uintptr_t)block & ~(uintptr_t)(PAGE - 1);
    uintptr_t end = (uintptr_t)block + size;
    void *pages[BATCH];
    int status[BATCH];
    while (first < end) {
        unsigned n = 0;
        for (; n < BATCH && first < end; n++, first += PAGE) pages[n] = (void *)first;
        if (syscall(SYS_move_pages, 0, (unsigned long)n, pages, NULL, status, 0) != 0) {
            printf("numa: FAIL move_pages: %s\n", strerror(errno));
            exit(1);
        }
        for (unsigned i = 0; i < n; i++) counts[status[i] == 0 || status[i] == 1 ? status[i] : 2]++;
    }
}

static void require_node(const char *check, char *const *blocks, size_t count, const size_t *sizes,
                         size_t size_stride, unsigned node) {
    unsigned long counts[3] = {0, 0, 0};
    char detail[256] = "";
    size_t used = 0;
    for (size_t i = 0; i < count; i++) {
        count_pages(blocks[i], sizes[size_stride ? i / size_stride : 0], counts);
        /* Per size, the pages not on the node: where a miss comes from. */
        if (size_stride && (i + 1) % size_stride == 0) {
            static unsigned long last_total, last_node;
            unsigned long total = counts[0] + counts[1] + counts[2];
            if (i + 1 == size_stride) last_total = last_node = 0;
            int n = snprintf(detail + used, sizeof detail - used, " %zu:%lu/%lu",
                             sizes[i / size_stride],
                             (total - last_total) - (counts[node] - last_node), total - last_total);
            if (n > 0 && (size_t)n < sizeof detail - used) used += (size_t)n;
            last_total = total;
            last_node = counts[node];
        }
    }
    unsigned long total = counts[0] + counts[1] + counts[2];
    double percent = total ? 100.0 * (double)counts[node] / (double)total : 0.0;
    printf("numa: %s %s: %lu pages, %.2f%% on node %u (node0 %lu, node1 %lu, other %lu)%s%s\n",
           percent >= REQUIRED_PERCENT ? "PASS" : "FAIL", check, total, percent, node, counts[0],
           counts[1], counts[2], used ? "; off-node/pages by size:" : "", detail);
    if (percent < REQUIRED_PERCENT) failures++;
}

static void alloc_set(struct blocks *set) {
    for (size_t i = 0; i < SMALL_BLOCKS; i++)
        set->small[i] = alloc_touched(small_sizes[i / SMALL_PER_SIZE]);
    for (size_t i = 0; i < LARGE_BLOCKS; i++) set->large[i] = alloc_touched(LARGE_SIZE);
}

static void free_set(struct blocks *set) {
    for (size_t i = 0; i < SMALL_BLOCKS; i++) free(set->small[i]);
    for (size_t i = 0; i < LARGE_BLOCKS; i++) free(set->large[i]);
}

static void check_set(const char *what, struct blocks *set, unsigned node) {
    static const size_t large_size[] = {LARGE_SIZE};
    char check[64];
    snprintf(check, sizeof check, "%s small", what);
    require_node(check, set->small, SMALL_BLOCKS, small_sizes, SMALL_PER_SIZE, node);
    snprintf(check, sizeof check, "%s large", what);
    require_node(check, set->large, LARGE_BLOCKS, large_size, 0, node);
}

static struct blocks node0_set, node1_set, reuse_set, moved_set;

/* Allocates on node 0, checks, and frees it all itself before it exits. */
static void *node0_thread(void *arg) {
    (void)arg;
    pin(NODE0_CPU);
    alloc_set(&node0_set);
    check_set("local node-0 thread", &node0_set, 0);
    free_set(&node0_set);
    return NULL;
}

static void *node1_thread(void *arg) {
    (void)arg;
    pin(NODE1_CPU);
    alloc_set(&node1_set);
    check_set("local node-1 thread", &node1_set, 1);
    return NULL;
}

/* Runs after the node-0 thread freed its whole set. */
static void *reuse_thread(void *arg) {
    (void)arg;
    pin(NODE1_CPU);
    alloc_set(&reuse_set);
    check_set("reuse after a node-0 free", &reuse_set, 1);
    free_set(&reuse_set);
    return NULL;
}

static void *migrating_thread(void *arg) {
    (void)arg;
    pin(NODE0_CPU);
    struct blocks *before = malloc(sizeof *before);
    alloc_set(before);
    check_set("before migrating", before, 0);
    pin(NODE1_CPU);
    /* Twice the set: the first one takes the slow path the 16 times it
     * needs to notice the move. */
    struct blocks *drain = malloc(sizeof *drain);
    alloc_set(drain);
    alloc_set(&moved_set);
    check_set("after migrating", &moved_set, 1);
    free_set(&moved_set);
    free_set(drain);
    free_set(before);
    free(drain);
    free(before);
    return NULL;
}

/* More than node 1's 1 GiB from a node-1 thread, touched. */
#define FULL_BYTES (1280ul << 20)
static void *full_node_thread(void *arg) {
    (void)arg;
    pin(NODE1_CPU);
    size_t count = FULL_BYTES / LARGE_SIZE;
    char **blocks = malloc(count * sizeof *blocks);
    unsigned long counts[3] = {0, 0, 0};
    for (size_t i = 0; i < count; i++) blocks[i] = alloc_touched(LARGE_SIZE);
    for (size_t i = 0; i < count; i++) count_pages(blocks[i], LARGE_SIZE, counts);
    bool spilled = counts[0] > 0 && counts[1] > 0;
    printf("numa: %s full node 1: %zu MiB allocated and touched, node0 %lu pages, node1 %lu, "
           "other %lu\n",
           spilled ? "PASS" : "FAIL", count, counts[0], counts[1], counts[2]);
    if (!spilled) failures++;
    for (size_t i = 0; i < count; i++) free(blocks[i]);
    free(blocks);
    return NULL;
}

static void run(void *(*body)(void *)) {
    pthread_t thread;
    if (pthread_create(&thread, NULL, body, NULL) != 0 || pthread_join(thread, NULL) != 0) {
        printf("numa: FAIL pthread\n");
        exit(1);
    }
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 4) {
        printf("numa: FAIL %ld CPUs online, the VM needs 4 (2 per node)\n", cpus);
        return 1;
    }
    struct bw_stats stats;
    bw_get_stats(&stats);
    printf("numa: %s bulwark reports %zu NUMA nodes\n", stats.numa_nodes == 2 ? "PASS" : "FAIL",
           stats.numa_nodes);
    if (stats.numa_nodes != 2) failures++;

    run(node1_thread);
    run(node0_thread);
    run(reuse_thread);
    free_set(&node1_set);
    run(migrating_thread);
    run(full_node_thread);

    printf("numa: %s\n", failures ? "FAILED" : "ALL PASSED");
    return failures ? 1 : 0;
}
