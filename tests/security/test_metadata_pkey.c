/* test_metadata_pkey.c — proves BW_PKEY_METADATA (strict, fuzz): on a CPU
 * with protection keys, bulwark's metadata carries a key of its own that is
 * write-disabled outside the allocator:
 *  - the mappings of the slab descriptors, the bitmaps, the heap and the
 *    large table show that key in /proc/self/smaps ("ProtectionKey:");
 *  - a write into a slab descriptor or the heap from the program (outside
 *    any bulwark call) dies of SIGSEGV with si_code SEGV_PKUERR, while a
 *    read of them works;
 *  - everything else still works with the key: threads that allocate and
 *    free each other's blocks (content checked), a thread that calls
 *    malloc_stats before it ever allocated, fork, a signal handler that
 *    allocates, realloc and the large path.
 * This machine's CPU may lack PKU (no "pku" flag in /proc/cpuinfo): the
 * tests that need a key then report themselves skipped, and
 * tests/vm/pkey.sh runs this program in a QEMU virtual machine whose
 * emulated CPU has PKU (make check does, in the profiles with the knob). */
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* cmocka.h needs these first; a separate block keeps clang-format from
 * sorting it above them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "bulwark.h"
#include "bw_internal.h"
#include "bw_test.h"

#ifndef SEGV_PKUERR
#define SEGV_PKUERR 4
#endif

/* Whether /proc/cpuinfo lists flag (a whole word). */
static bool cpu_has_flag(const char *flag) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return false;
    char line[4096];
    bool found = false;
    size_t n = strlen(flag);
    while (!found && fgets(line, sizeof line, f)) {
        if (strncmp(line, "flags", 5) != 0) continue;
        for (char *p = strstr(line, flag); p && !found; p = strstr(p + 1, flag))
            found = (p[-1] == ' ' || p[-1] == '\t') && (p[n] == ' ' || p[n] == '\n');
    }
    fclose(f);
    return found;
}

static void skip_without_key(void) {
    BW_SKIP_UNLESS(BW_PKEY_METADATA);
    assert_non_null(malloc(1)); /* initialised */
    if (bw_meta_pkey < 0) {
        /* A CPU and kernel with PKU must get a key: not getting one is a bug. */
        assert_false(cpu_has_flag("pku") && cpu_has_flag("ospke"));
        print_message("skipped: this CPU has no PKU (no pku/ospke in /proc/cpuinfo; "
                      "tests/vm/pkey.sh runs this test on an emulated CPU that has it)\n");
        skip();
    }
}

/* The ProtectionKey of the mapping that contains addr, -1 if none. */
static int smaps_key_of(const void *addr) {
    FILE *f = fopen("/proc/self/smaps", "r");
    assert_non_null(f);
    char line[512];
    bool inside = false;
    int key = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            inside = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
        } else if (inside && sscanf(line, "ProtectionKey: %d", &key) == 1) {
            break;
        }
    }
    fclose(f);
    return inside ? key : -1;
}

static void test_metadata_mappings_carry_the_key(void **state) {
    skip_without_key();
    void *small = malloc(64);
    void *large = malloc(1 << 20);
    assert_non_null(small);
    assert_non_null(large);
    const bw_slab_t *slab =
        &bw_layout.slabs[((uintptr_t)small - bw_layout.arena_base) >> BW_SLAB_SHIFT];
    const void *bits = bw_bits_group((uintptr_t)small - bw_layout.arena_base);
    print_message("metadata key %d; descriptors %d, bitmaps %d, heap %d; user block %d\n",
                  bw_meta_pkey, smaps_key_of(slab), smaps_key_of(bits), smaps_key_of(bw_tls_heap),
                  smaps_key_of(small));
    assert_int_equal(smaps_key_of(slab), bw_meta_pkey);
    assert_int_equal(smaps_key_of(bits), bw_meta_pkey);
    assert_int_equal(smaps_key_of(bw_tls_heap), bw_meta_pkey);
    assert_int_equal(smaps_key_of(small), 0); /* user memory keeps the default key */
    assert_int_equal(smaps_key_of(large), 0);
    free(small);
    free(large);
}

/* Child: a write to *target from outside bulwark must die of SEGV_PKUERR. */
static void on_segv(int sig, siginfo_t *info, void *context) {
    (void)sig;
    (void)context;
    _exit(info->si_code == SEGV_PKUERR ? 42 : 43);
}

static int write_in_child(volatile uint8_t *target) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_sigaction = on_segv;
        action.sa_flags = SA_SIGINFO;
        sigaction(SIGSEGV, &action, NULL);
        uint8_t value = *target; /* reading is allowed */
        *target = (uint8_t)(value ^ 0xff);
        _exit(0); /* the write went through */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_writes_from_outside_fault(void **state) {
    skip_without_key();
    void *small = malloc(64);
    assert_non_null(small);
    bw_slab_t *slab = &bw_layout.slabs[((uintptr_t)small - bw_layout.arena_base) >> BW_SLAB_SHIFT];
    /* the free-list head and the owner: what a forged descriptor would change */
    BW_REQUIRE(write_in_child((volatile uint8_t *)&slab->free) == 42,
               "a write to a slab descriptor did not fault with SEGV_PKUERR");
    BW_REQUIRE(write_in_child((volatile uint8_t *)bw_bits_group((uintptr_t)small -
                                                                bw_layout.arena_base)) == 42,
               "a write to a bitmap did not fault with SEGV_PKUERR");
    BW_REQUIRE(write_in_child((volatile uint8_t *)&bw_tls_heap->ways[0]) == 42,
               "a write to the heap did not fault with SEGV_PKUERR");
    /* The same write to the user's own block is fine. */
    BW_REQUIRE(write_in_child((volatile uint8_t *)small) == 0, "a write to a block faulted");
    free(small);
}

/* --------------------------------------------------- still works with it */

#define THREADS 4
#define ROUNDS  20000
static void *_Atomic mailbox[THREADS];

static void *churn(void *arg) {
    size_t me = (size_t)arg;
    uint64_t x = me * 7919 + 1;
    for (int i = 0; i < ROUNDS; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        size_t size = 16 + (x >> 33) % 3000;
        unsigned char *p = malloc(size);
        assert_non_null(p);
        memcpy(p, &size, sizeof size);
        bw_fill(p + sizeof size, size - sizeof size, (uint64_t)size);
        /* swap with a neighbour's mailbox: frees cross threads */
        unsigned char *old = atomic_exchange(&mailbox[(me + 1) % THREADS], p);
        if (old) {
            size_t old_size;
            memcpy(&old_size, old, sizeof old_size);
            assert_true(old_size >= 16 && old_size < 3016);
            assert_true(bw_check(old + sizeof old_size, old_size - sizeof old_size, old_size));
            free(old);
        }
        if (i % 1000 == 0) {
            void *big = realloc(NULL, 100000 + (x >> 40) % 100000);
            assert_non_null(big);
            big = realloc(big, 300000);
            assert_non_null(big);
            free(big);
        }
    }
    return NULL;
}

static void *stats_first(void *arg) {
    (void)arg;
    struct bw_stats s;
    bw_get_stats(&s); /* before this thread ever allocated */
    return s.slabs_in_use ? (void *)1 : NULL;
}

static volatile sig_atomic_t handler_ok;
static void on_usr1(int sig) {
    (void)sig;
    void *p = malloc(100); /* not async-signal-safe in general; bulwark's must not fault */
    handler_ok = p != NULL;
    free(p);
}

static void test_allocator_works_with_the_key(void **state) {
    skip_without_key();
    pthread_t t[THREADS];
    for (size_t i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, churn, (void *)i), 0);
    for (size_t i = 0; i < THREADS; i++) assert_int_equal(pthread_join(t[i], NULL), 0);
    for (size_t i = 0; i < THREADS; i++) free(atomic_exchange(&mailbox[i], NULL));

    pthread_t s;
    void *had_slabs = NULL;
    assert_int_equal(pthread_create(&s, NULL, stats_first, NULL), 0);
    assert_int_equal(pthread_join(s, &had_slabs), 0);
    assert_non_null(had_slabs);

    signal(SIGUSR1, on_usr1);
    raise(SIGUSR1);
    assert_true(handler_ok);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        void *p = malloc(5000);
        free(p);
        p = malloc(1 << 20);
        _exit(p ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void) {
    bw_test_filters_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metadata_mappings_carry_the_key),
        cmocka_unit_test(test_writes_from_outside_fault),
        cmocka_unit_test(test_allocator_works_with_the_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
