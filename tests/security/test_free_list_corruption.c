/* test_free_list_corruption.c — proves that free-list poisoning does not
 * work: an attacker who can write a freed block's first 8 bytes (where the
 * free list keeps its link) cannot make malloc return an address of their
 * choosing (here a global):
 *  - a forged link in a block on a free list is decoded with the slab's
 *    secret when that block is handed out, lands off every block boundary
 *    of the slab, and is fatal (BW_ENCODE_LINKS) with
 *        bulwark: free-list corruption of 0x<block> (<class>-byte class) in malloc
 *    and SIGABRT; the global is never returned before that. Shown for a
 *    pointer to a global, a raw (unencoded) pointer to another free block
 *    of the same slab, and zero;
 *  - a forged link written while the block still sits in the quarantine
 *    (BW_QUARANTINE_SLOTS) is overwritten when the block leaves it: malloc
 *    goes on handing out real blocks, the poisoned block among them, never
 *    the global, and nothing is reported.
 * malloc_trim(0) empties the calling thread's quarantine, which is how the
 * tests put the block on its slab's free list at a known moment. */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* cmocka.h needs these first; a separate block keeps clang-format from
 * sorting it above them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "bw_test.h"

#define REQUEST       100
#define MALLOC_ROUNDS 65536 /* more than the free blocks of the class */

/* The target of the poisoning: aligned like a block, so alignment alone
 * does not give the forgery away. */
static char target[4096] __attribute__((aligned(4096)));

enum { FORGE_GLOBAL, FORGE_RAW_NEIGHBOUR, FORGE_ZERO };

struct poison {
    char *block;
    char *neighbour; /* another block of the same slab, freed too */
    int forgery;
};

static uint64_t forged_link(const struct poison *op) {
    switch (op->forgery) {
    case FORGE_GLOBAL:
        return (uint64_t)(uintptr_t)target;
    case FORGE_RAW_NEIGHBOUR:
        return (uint64_t)(uintptr_t)op->neighbour;
    default:
        return 0;
    }
}

/* A block and a neighbour in the same slab, plus an anchor there that
 * stays live so the slab is never released while the test runs. */
static void allocate_in_one_slab(char **block, char **neighbour, void **anchor) {
    void *three[3];
    bw_test_malloc_in_one_slab(REQUEST, 3, three);
    *anchor = three[0];
    *block = three[1];
    *neighbour = three[2];
}

/* malloc until the class is exhausted many times over; returning the
 * target is the worst outcome (exit 5), returning nothing wrong but never
 * seeing the poisoned block again means the test proved nothing (exit 4). */
static void malloc_rounds(const struct poison *op, bool expect_block_back) {
    bool block_seen = false;
    for (size_t i = 0; i < MALLOC_ROUNDS; i++) {
        char *p = malloc(REQUEST);
        if (!p) _exit(2);
        if (p >= target && p < target + sizeof target) _exit(5);
        if (p == op->block) block_seen = true;
    }
    if (expect_block_back && !block_seen) _exit(4);
}

/* Poison a block that is on its slab's free list. */
static void do_poison_free_list(void *arg) {
    const struct poison *op = arg;
    free(op->neighbour);
    free(op->block);
    malloc_trim(0); /* both leave the quarantine for the free list */
    uint64_t link = forged_link(op);
    memcpy(bw_launder(op->block), &link, sizeof link);
    malloc_rounds(op, false);
    _exit(4); /* the forged link was never followed */
}

static void expect_corruption_reported(int forgery) {
    char info[64];
    char *block, *neighbour;
    void *anchor;
    allocate_in_one_slab(&block, &neighbour, &anchor);
    struct poison op = {block, neighbour, forgery};
    bw_expect_report(do_poison_free_list, &op, "free-list corruption", block,
                     bw_info_class(info, sizeof info, BW_TEST_CLASS_FOR(REQUEST)), "malloc");
    free(block);
    free(neighbour);
    free(anchor);
}

static void test_forged_link_to_global_is_reported(void **state) {
    BW_SKIP_UNLESS(BW_ENCODE_LINKS);
    expect_corruption_reported(FORGE_GLOBAL);
}

static void test_raw_link_to_free_neighbour_is_reported(void **state) {
    BW_SKIP_UNLESS(BW_ENCODE_LINKS);
    expect_corruption_reported(FORGE_RAW_NEIGHBOUR);
}

/* Zero would read as "end of list" if links were stored in the clear. */
static void test_zeroed_link_is_reported(void **state) {
    BW_SKIP_UNLESS(BW_ENCODE_LINKS);
    expect_corruption_reported(FORGE_ZERO);
}

/* Poison a block while it sits in the quarantine: malloc_trim(0) first
 * empties the quarantine, so the block is the only one in it. */
static void do_poison_in_quarantine(void *arg) {
    const struct poison *op = arg;
    malloc_trim(0);
    free(op->block);
    uint64_t link = forged_link(op);
    memcpy(bw_launder(op->block), &link, sizeof link);
    malloc_trim(0); /* the block leaves the quarantine: its link is written */
    malloc_rounds(op, true);
}

static void test_forged_link_in_quarantine_is_overwritten(void **state) {
    BW_SKIP_UNLESS(BW_QUARANTINE_SLOTS);
    char *block, *neighbour;
    void *anchor;
    allocate_in_one_slab(&block, &neighbour, &anchor);
    struct poison op = {block, neighbour, FORGE_GLOBAL};
    bw_expect_no_report(do_poison_in_quarantine, &op);
    free(block);
    free(neighbour);
    free(anchor);
}

int main(void) {
    if (!bw_is_bulwark_loaded()) {
        fprintf(stderr,
                "test_free_list_corruption: malloc is not bulwark's; refusing to test glibc\n");
        return 1;
    }
    bw_test_filters_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forged_link_to_global_is_reported),
        cmocka_unit_test(test_raw_link_to_free_neighbour_is_reported),
        cmocka_unit_test(test_zeroed_link_is_reported),
        cmocka_unit_test(test_forged_link_in_quarantine_is_overwritten),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
