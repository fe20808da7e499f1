/* test_free_list_corruption.c — proves that free-list poisoning does not
 * work: an attacker who can read and write a freed block's first 8 bytes
 * (where a free list keeps its link) can neither make malloc return an
 * address of their choosing nor hand out a block twice.
 *
 * Without the keys (BW_ENCODE_LINKS): a forged link fails its tag or its
 * shape check when it is decoded, and is fatal with
 *     bulwark: free-list corruption of 0x<block> (<class>-byte class) in malloc
 * and SIGABRT, before anything it names is handed out. Shown for
 *  - blind forgeries: a pointer to a global, a raw pointer to another free
 *    block of the same slab, zero;
 *  - "leak a link and forge the next": a link whose plaintext the attacker
 *    knows (a list's end) is read through the dangling pointer and then
 *    rewritten knowing the format: its offset bits pointed at a live block
 *    with the tag kept, the target XORed in (what breaks an XOR-masked
 *    pointer), and the leaked link replayed in another freed block.
 * With the keys (an attacker who broke them, played by the test calling
 * bulwark's own link encoder): the link decodes, but the block it names
 * must be free by the bitmaps before it is handed out, so a link to a live
 * block, or to one waiting in the quarantine (BW_QUARANTINE_SLOTS), is
 * "free-list corruption of 0x<that block>"; and a forged link on a slab's
 * remote list (blocks other threads freed) naming a live block is reported
 * when the owner collects the list.
 * A write into a block while it waits in the quarantine
 * (BW_QUARANTINE_SLOTS) is a "write after free" when the block leaves it:
 * freed blocks are wiped whole and their first word is checked then.
 * Each bug runs in a forked child, which makes its blocks itself (a forked
 * child never allocates from slabs it inherited) and records the address
 * the report must name. malloc_trim(0) empties the calling thread's
 * quarantine, which is how a block reaches its slab's local free list at a
 * known moment, as that list's last (its link names no next block). */
#include <malloc.h>
#include <pthread.h>
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
#include "link.h"

#define REQUEST       100
#define MALLOC_ROUNDS 65536       /* more than the free blocks of the class */
#define LINK_OFFSETS  0x1ffff0ull /* link.h: the offset field */

/* The target of the poisoning: aligned like a block, so alignment alone
 * does not give the forgery away. */
static char target[4096] __attribute__((aligned(4096)));

enum {
    FORGE_GLOBAL,
    FORGE_RAW_NEIGHBOUR,
    FORGE_ZERO,
    FORGE_OFFSET_TO_LIVE, /* leaked link, offset bits rewritten, tag kept */
    FORGE_XOR_LIVE,       /* leaked link XOR target (its plaintext was NULL) */
    FORGE_REPLAY,         /* leaked link copied into another freed block */
};

/* Blocks of the class in one slab, made in the child: [0] an anchor that
 * stays live (the slab is never released), [1] the block whose link is
 * poisoned, [2] a live target, [3] another block. */
static void child_blocks(void **out) {
    bw_test_malloc_in_one_slab(REQUEST, 4, out);
}

/* malloc until the class is exhausted many times over; returning the
 * target or the live block is the worst outcome (exit 5); returning nothing
 * wrong means the forged link was never followed (exit 4). */
static void malloc_rounds(const void *live) {
    for (size_t i = 0; i < MALLOC_ROUNDS; i++) {
        char *p = malloc(REQUEST);
        if (!p) _exit(2);
        if ((p >= target && p < target + sizeof target) || p == live) _exit(5);
    }
    _exit(4);
}

static uint64_t read_link(const void *block) {
    uint64_t link;
    memcpy(&link, bw_launder(block), sizeof link);
    return link;
}

static void write_link(void *block, uint64_t link) {
    memcpy(bw_launder(block), &link, sizeof link);
}

/* Offset of a block from the start of its slab's span. */
static uint64_t span_offset(const void *block) {
    return (uintptr_t)block & (bw_test_span_bytes(BW_TEST_CLASS_FOR(REQUEST)) - 1);
}

static void do_poison(void *arg) {
    int forgery = *(const int *)arg;
    void *b[4];
    child_blocks(b);
    char *block = b[1], *live = b[2], *other = b[3];
    free(block);
    malloc_trim(0); /* block: on its slab's local free list, its link the list's end */
    uint64_t leaked = read_link(block);
    switch (forgery) {
    case FORGE_GLOBAL:
        write_link(block, (uintptr_t)target);
        break;
    case FORGE_RAW_NEIGHBOUR:
        free(other);
        malloc_trim(0); /* other: the list's head, its link names block */
        write_link(other, (uintptr_t)block);
        block = other;
        break;
    case FORGE_ZERO:
        write_link(block, 0);
        break;
    case FORGE_OFFSET_TO_LIVE:
        write_link(block, (leaked & ~LINK_OFFSETS) | span_offset(live));
        break;
    case FORGE_XOR_LIVE:
        write_link(block, leaked ^ (uintptr_t)live);
        break;
    case FORGE_REPLAY:
        free(other);
        malloc_trim(0);
        write_link(other, leaked); /* valid at block's address, not at other's */
        block = other;
        break;
    }
    bw_test_record_address(block);
    malloc_rounds(live);
}

static void expect_corruption(int forgery) {
    char info[64];
    bw_expect_report_recorded(do_poison, &forgery, "free-list corruption",
                              bw_info_class(info, sizeof info, BW_TEST_CLASS_FOR(REQUEST)),
                              "malloc");
}

static void test_forged_link_to_global_is_reported(void **state) {
    BW_SKIP_UNLESS(BW_ENCODE_LINKS);
    expect_corruption(FORGE_GLOBAL);
}

static void test_raw_link_to_free_neighbour_is_reported(void **state) {
    BW_SKIP_UNLESS(BW_ENCODE_LINKS);
    expect_corruption(FORGE_RAW_NEIGHBOUR);
}

/* Zero would read as "end of list" if links were stored in the clear. */
static void test_zeroed_link_is_reported(void **state) {
    BW_SKIP_UNLESS(BW_ENCODE_LINKS);
    expect_corruption(FORGE_ZERO);
}

/* The attacker knows the link format and one link's plaintext. */
static void test_leaked_link_with_offset_rewritten_is_reported(void **state) {
    BW_SKIP_UNLESS(BW_ENCODE_LINKS);
    expect_corruption(FORGE_OFFSET_TO_LIVE);
}

static void test_leaked_link_xored_with_target_is_reported(void **state) {
    BW_SKIP_UNLESS(BW_ENCODE_LINKS);
    expect_corruption(FORGE_XOR_LIVE);
}

static void test_leaked_link_replayed_elsewhere_is_reported(void **state) {
    BW_SKIP_UNLESS(BW_ENCODE_LINKS);
    expect_corruption(FORGE_REPLAY);
}

/* ------------------------------------------------------------ with the keys */

/* Writes a link that decodes: bulwark's own encoder with the slab's key. */
static void forge_valid_link(void *slot, void *next) {
    uintptr_t offset = (uintptr_t)slot - bw_layout.arena_base;
    bw_link_store(bw_slab_at(offset), slot, next);
}

enum { TARGET_LIVE, TARGET_QUARANTINED };

static void do_forge_with_keys(void *arg) {
    int kind = *(const int *)arg;
    void *b[4];
    child_blocks(b);
    char *block = b[1], *live = b[2], *quarantined = b[3];
    free(block);
    malloc_trim(0); /* block: on its slab's local free list */
    char *victim = live;
    if (kind == TARGET_QUARANTINED) {
        free(quarantined); /* waits in the quarantine: freed, but not free */
        victim = quarantined;
    }
    forge_valid_link(block, victim);
    /* And the victim's own first word a valid end of list (the program may
     * write a live block as it likes), so that only the victim's state can
     * give the forgery away. */
    forge_valid_link(victim, NULL);
    bw_test_record_address(victim);
    malloc_rounds(live);
}

static void expect_not_free_reported(int kind) {
    char info[64];
    bw_expect_report_recorded(do_forge_with_keys, &kind, "free-list corruption",
                              bw_info_class(info, sizeof info, BW_TEST_CLASS_FOR(REQUEST)),
                              "malloc");
}

static void test_valid_link_to_live_block_is_reported(void **state) {
    BW_SKIP_UNLESS(BW_ENCODE_LINKS);
    expect_not_free_reported(TARGET_LIVE);
}

static void test_valid_link_to_quarantined_block_is_reported(void **state) {
    BW_SKIP_UNLESS(BW_ENCODE_LINKS);
    BW_SKIP_UNLESS(BW_QUARANTINE_SLOTS);
    expect_not_free_reported(TARGET_QUARANTINED);
}

/* The remote list: another thread frees a block of ours and exits (its
 * quarantine, if any, is flushed onto the slab's remote list); the link in
 * that block is rewritten, validly, to name a live block; collecting the
 * list must refuse to free the live block. */
static void *thread_free(void *block) {
    free(block);
    return NULL;
}

static void do_forge_remote_link(void *arg) {
    (void)arg;
    void *b[4];
    child_blocks(b);
    char *block = b[1], *live = b[2];
    pthread_t thread;
    if (pthread_create(&thread, NULL, thread_free, block) != 0 || pthread_join(thread, NULL) != 0)
        _exit(112);
    forge_valid_link(block, live); /* it was the remote list's only block: its end */
    forge_valid_link(live, NULL);  /* ... and live now looks like the list's end */
    bw_test_record_address(live);
    malloc_trim(0); /* collects the remote list */
    malloc_rounds(live);
}

static void test_valid_link_on_remote_list_to_live_block_is_reported(void **state) {
    BW_SKIP_UNLESS(BW_ENCODE_LINKS);
    char info[64];
    bw_expect_report_recorded(do_forge_remote_link, NULL, "free-list corruption",
                              bw_info_class(info, sizeof info, BW_TEST_CLASS_FOR(REQUEST)),
                              "malloc");
}

/* ------------------------------------------------------------ quarantine */

/* Poison a block while it sits in the quarantine: its first word must still
 * be zero when it leaves. */
static void do_poison_in_quarantine(void *arg) {
    (void)arg;
    void *b[4];
    child_blocks(b);
    char *block = b[1];
    malloc_trim(0);
    free(block);
    write_link(block, (uintptr_t)target);
    bw_test_record_address(block);
    malloc_trim(0); /* the block leaves the quarantine */
    malloc_rounds(b[2]);
}

static void test_forged_link_in_quarantine_is_reported(void **state) {
    BW_SKIP_UNLESS(BW_QUARANTINE_SLOTS);
    char info[64];
    bw_expect_report_recorded(do_poison_in_quarantine, NULL, "write after free",
                              bw_info_class(info, sizeof info, BW_TEST_CLASS_FOR(REQUEST)),
                              "malloc_trim");
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
        cmocka_unit_test(test_leaked_link_with_offset_rewritten_is_reported),
        cmocka_unit_test(test_leaked_link_xored_with_target_is_reported),
        cmocka_unit_test(test_leaked_link_replayed_elsewhere_is_reported),
        cmocka_unit_test(test_valid_link_to_live_block_is_reported),
        cmocka_unit_test(test_valid_link_to_quarantined_block_is_reported),
        cmocka_unit_test(test_valid_link_on_remote_list_to_live_block_is_reported),
        cmocka_unit_test(test_forged_link_in_quarantine_is_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
