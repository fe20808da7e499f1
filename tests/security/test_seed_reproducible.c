/* test_seed_reproducible.c — proves that BULWARK_SEED (fuzz profile) makes
 * a crash report reproducible byte for byte, report lines print addresses
 * (issue 15 item 3):
 *  - a program run twice with the same seed writes the same report line for
 *    a double free after some allocations, a large block's overflow caught
 *    by its canary at free (a block realloc moved, left-aligned), and a use
 *    after free (a write into a freed 48-byte block, found when the block
 *    leaves the quarantine); and the same lines from two children it forks,
 *    which also print their first 16 malloc(40) addresses: the same from
 *    run to run, not the same for the two siblings (a child's choices
 *    follow from its parent's and its fork number);
 *  - another seed gives other addresses (arena base, large regions);
 *  - without a seed two runs give other addresses (the arena base is
 *    still random).
 * The program under test is this binary, executed again with the seed in
 * its environment (the seed is read at start-up, so a forked child of the
 * test would keep the test's own). Skipped (exit 77) in profiles that do
 * not read the seed (BW_SEED_FROM_ENV). Statically linked. */
#include <malloc.h>
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

#include "bw_internal.h"
#include "bw_test.h"

#define OUTPUT_MAX 4096

/* ------------------------------------------------------------ the program */

/* Some allocations and frees first, so that the bug's block is not the
 * first of its class. */
static void warm_up(void) {
    void *keep[60];
    for (int i = 0; i < 60; i++) keep[i] = malloc(16 + (size_t)i * 24);
    for (int i = 0; i < 60; i += 3) free(keep[i]);
}

static void double_free(void) {
    char *p = malloc(40);
    free(p);
    free(bw_launder(p));
}

static void large_overflow(void) {
    char *p = malloc(200000);
    p = realloc(p, 300000); /* moved: left-aligned, with a canary after the request */
    size_t usable = malloc_usable_size(p);
    memset(p, 'A', usable);
    /* A NUL one past the end: no canary byte is zero, so it is always
     * seen (a nonzero byte matches the canary's 1 time in 255). */
    p[usable] = 0;
    free(p);
}

static void use_after_free(void) {
    char *p = malloc(48);
    free(p);
    ((volatile char *)p)[5] = 1;
    /* Enough same-class traffic to push the block out of the quarantine. */
    for (int i = 0; i < 200000; i++) free(bw_launder(malloc(48)));
}

/* Two children, one after the other: each prints its first 16 malloc(40)
 * addresses, then frees a block twice. */
static void forked_children(void) {
    for (int c = 0; c < 2; c++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            char line[16 * 20 + 16];
            size_t at = (size_t)snprintf(line, sizeof line, "blocks:");
            for (int i = 0; i < 16; i++)
                at += (size_t)snprintf(line + at, sizeof line - at, " %p", malloc(40));
            printf("%s\n", line);
            fflush(stdout);
            double_free();
            _exit(0);
        }
        int status;
        waitpid(pid, &status, 0);
    }
}

static int run_program(const char *bug) {
    warm_up();
    if (strcmp(bug, "double-free") == 0) double_free();
    if (strcmp(bug, "large-overflow") == 0) large_overflow();
    if (strcmp(bug, "use-after-free") == 0) use_after_free();
    if (strcmp(bug, "fork") == 0) forked_children();
    return 0;
}

/* ------------------------------------------------------------ the test */

static const char *const bugs[] = {"double-free", "large-overflow", "use-after-free", "fork"};
#define BUG_COUNT (sizeof bugs / sizeof bugs[0])

/* Runs this binary on `bug` with BULWARK_SEED=seed (unset if NULL) and
 * returns the lines it wrote that contain "bulwark:" or "blocks:". */
static void run_with_seed(const char *bug, const char *seed, char *out) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        if (seed)
            setenv("BULWARK_SEED", seed, 1);
        else
            unsetenv("BULWARK_SEED");
        execl("/proc/self/exe", "test_seed_reproducible", "--program", bug, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char all[OUTPUT_MAX];
    size_t size = 0;
    ssize_t n;
    while (size < sizeof all - 1 && (n = read(fds[0], all + size, sizeof all - 1 - size)) > 0)
        size += (size_t)n;
    all[size] = 0;
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    out[0] = 0;
    for (char *line = strtok(all, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strstr(line, "bulwark:") && !strstr(line, "blocks:")) continue;
        strncat(out, line, OUTPUT_MAX - strlen(out) - 2);
        strcat(out, "\n");
    }
    BW_REQUIRE(strstr(out, "bulwark:") != NULL, "%s with seed %s: no report; output:\n%s", bug,
               seed ? seed : "(none)", all);
}

static void test_same_seed_same_report(void **state) {
    for (size_t b = 0; b < BUG_COUNT; b++) {
        char first[OUTPUT_MAX], second[OUTPUT_MAX];
        run_with_seed(bugs[b], "12345", first);
        run_with_seed(bugs[b], "12345", second);
        BW_REQUIRE(strcmp(first, second) == 0, "%s, seed 12345, two runs:\n%s---\n%s", bugs[b],
                   first, second);
        printf("%s", first);
    }
    /* The forked siblings did not make the same choices. */
    char out[OUTPUT_MAX];
    run_with_seed("fork", "12345", out);
    char *a = strstr(out, "blocks:");
    char *b = a ? strstr(a + 1, "blocks:") : NULL;
    BW_REQUIRE(a && b, "two children's blocks in:\n%s", out);
    BW_REQUIRE(strncmp(a, b, (size_t)(strchr(a, '\n') - a)) != 0,
               "siblings allocated the same 16 blocks:\n%s", out);
}

static void test_other_seed_other_addresses(void **state) {
    for (size_t b = 0; b < BUG_COUNT; b++) {
        char one[OUTPUT_MAX], two[OUTPUT_MAX];
        run_with_seed(bugs[b], "1", one);
        run_with_seed(bugs[b], "2", two);
        BW_REQUIRE(strcmp(one, two) != 0, "%s: seeds 1 and 2 gave the same lines:\n%s", bugs[b],
                   one);
    }
}

static void test_no_seed_random(void **state) {
    for (size_t b = 0; b < BUG_COUNT; b++) {
        char one[OUTPUT_MAX], two[OUTPUT_MAX];
        run_with_seed(bugs[b], NULL, one);
        run_with_seed(bugs[b], NULL, two);
        BW_REQUIRE(strcmp(one, two) != 0, "%s: two unseeded runs gave the same lines:\n%s", bugs[b],
                   one);
    }
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--program") == 0) return run_program(argv[2]);
#if !BW_SEED_FROM_ENV
    printf("skipped: BW_SEED_FROM_ENV is 0 in the %s profile (BULWARK_SEED is not read)\n",
           BW_PROFILE_NAME);
    return 77;
#endif
    bw_test_filters_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_seed_same_report),
        cmocka_unit_test(test_other_seed_other_addresses),
        cmocka_unit_test(test_no_seed_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
