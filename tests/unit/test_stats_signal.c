/* test_stats_signal.c — statistics are async-signal safe (README): a signal
 * handler that interrupts a thread holding the allocator's locks — here
 * every one of them, taken the way the fork `prepare` handler takes them —
 * can call bw_print_stats, bw_get_stats, mallinfo2 and malloc_stats and
 * gets its answer instead of waiting forever for a lock:
 *  - print_stats_in_handler_with_locks_held: bw_print_stats writes its
 *    report ("bulwark <profile> statistics", the live large bytes as
 *    bw_get_stats gave them before) into a pipe from the handler;
 *  - print_stats_json_in_handler_with_locks_held: the same for
 *    bw_print_stats_json (the profile, the live large block's bytes and
 *    count, one line);
 *  - get_stats_and_mallinfo2_in_handler_with_locks_held: bw_get_stats,
 *    mallinfo2 and malloc_stats in the handler report the live large block
 *    and the small ones.
 * And get_stats_writes_only_the_callers_struct: a program built against
 * the first header (ten fields) calls the symbol bw_get_stats, which must
 * not write past those; bw_get_stats_sized writes `size` bytes, no more.
 * The signal tests run in a forked child with an alarm: a handler that hangs kills the
 * child with SIGALRM after ALARM_SECONDS, which fails the test rather than
 * hanging make check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bulwark.h"
#include "bw_internal.h"
#include "bw_test.h"
#include "bw_unit.h"

#define ALARM_SECONDS 10u
#define LARGE_BYTES   ((size_t)300 << 10)

/* What the handler saw, for the child to check after it returned. */
static int handler_fd = -1;
static volatile sig_atomic_t handler_done;
static struct bw_stats handler_stats;
static struct mallinfo2 handler_info;

static void print_stats_handler(int signal_number) {
    (void)signal_number;
    bw_print_stats(handler_fd);
    handler_done = 1;
}

static void print_stats_json_handler(int signal_number) {
    (void)signal_number;
    bw_print_stats_json(handler_fd);
    handler_done = 1;
}

static void get_stats_handler(int signal_number) {
    (void)signal_number;
    bw_get_stats(&handler_stats);
    handler_info = mallinfo2();
    malloc_stats(); /* to stderr, the child's pipe */
    handler_done = 1;
}

/* Raises SIGUSR1 with `handler` installed while this thread holds every
 * allocator lock, as bw_fork_prepare takes them; releases them after. */
static void raise_with_locks_held(void (*handler)(int)) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = handler;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGUSR1, &action, NULL) != 0) _exit(20);
    handler_done = 0;
    alarm(ALARM_SECONDS);
    bw_locks_take_all();
    raise(SIGUSR1);
    bw_locks_release_all();
    alarm(0);
    if (!handler_done) _exit(21);
}

/* Reads what the handler wrote into the pipe (it fits in the pipe's
 * buffer, so the handler never blocks on it). */
static void read_report(int fd, char *text, size_t size) {
    ssize_t n = read(fd, text, size - 1);
    if (n <= 0) {
        fprintf(stderr, "no statistics in the pipe (%s)\n", n < 0 ? strerror(errno) : "empty");
        _exit(22);
    }
    text[n] = 0;
}

static void expect_text(const char *text, const char *wanted) {
    if (strstr(text, wanted)) return;
    fprintf(stderr, "statistics lack \"%s\":\n%s", wanted, text);
    _exit(23);
}

static void print_stats_child(void *arg) {
    (void)arg;
    void *large = malloc(LARGE_BYTES);
    if (!large) _exit(24);
    struct bw_stats before;
    bw_get_stats(&before);
    int fds[2];
    if (pipe(fds) != 0) _exit(25);
    handler_fd = fds[1];
    raise_with_locks_held(print_stats_handler);
    char text[2048], line[96];
    read_report(fds[0], text, sizeof text);
    expect_text(text, "bulwark " BW_PROFILE_NAME " statistics\n");
    snprintf(line, sizeof line, "  large in use bytes:    %zu\n", before.large_in_use_bytes);
    expect_text(text, line);
    snprintf(line, sizeof line, "  large allocations:     %zu\n", before.large_count);
    expect_text(text, line);
    free(large);
}

static void print_stats_in_handler_with_locks_held(void **state) {
    (void)state;
    bw_expect_no_report(print_stats_child, NULL);
}

static void print_stats_json_child(void *arg) {
    (void)arg;
    void *large = malloc(LARGE_BYTES);
    if (!large) _exit(24);
    struct bw_stats before;
    bw_get_stats(&before);
    int fds[2];
    if (pipe(fds) != 0) _exit(25);
    handler_fd = fds[1];
    raise_with_locks_held(print_stats_json_handler);
    static char text[16384];
    char wanted[128];
    read_report(fds[0], text, sizeof text);
    expect_text(text, "\"profile\":\"" BW_PROFILE_NAME "\"");
    snprintf(wanted, sizeof wanted, "\"large\":{\"in_use_bytes\":%zu,\"count\":%zu,",
             before.large_in_use_bytes, before.large_count);
    expect_text(text, wanted);
    size_t length = strlen(text);
    if (text[0] != '{' || length < 3 || strcmp(text + length - 2, "}\n") != 0 ||
        strchr(text, '\n') != text + length - 1) {
        fprintf(stderr, "not one JSON object on one line:\n%s", text);
        _exit(28);
    }
    free(large);
}

static void print_stats_json_in_handler_with_locks_held(void **state) {
    (void)state;
    bw_expect_no_report(print_stats_json_child, NULL);
}

static void get_stats_child(void *arg) {
    (void)arg;
    void *large = malloc(LARGE_BYTES);
    void *small = malloc(100);
    if (!large || !small) _exit(24);
    struct bw_stats before;
    bw_get_stats(&before);
    raise_with_locks_held(get_stats_handler);
    const struct bw_stats *s = &handler_stats;
    if (s->large_in_use_bytes != before.large_in_use_bytes ||
        s->large_count != before.large_count || s->large_in_use_bytes < LARGE_BYTES ||
        s->small_in_use_bytes < 100 || s->segments_in_use == 0 || s->heaps_live == 0) {
        fprintf(stderr,
                "bw_get_stats in the handler: large %zu bytes in %zu, small %zu bytes, "
                "%zu segments, %zu heaps; before: large %zu bytes in %zu\n",
                s->large_in_use_bytes, s->large_count, s->small_in_use_bytes, s->segments_in_use,
                s->heaps_live, before.large_in_use_bytes, before.large_count);
        _exit(26);
    }
    if (handler_info.hblkhd != before.large_in_use_bytes ||
        handler_info.hblks != before.large_count ||
        handler_info.uordblks != s->small_in_use_bytes + s->large_in_use_bytes) {
        fprintf(stderr, "mallinfo2 in the handler: hblkhd %zu, hblks %zu, uordblks %zu\n",
                handler_info.hblkhd, handler_info.hblks, handler_info.uordblks);
        _exit(27);
    }
    free(small);
    free(large);
}

static void get_stats_and_mallinfo2_in_handler_with_locks_held(void **state) {
    (void)state;
    bw_expect_no_report(get_stats_child, NULL);
}

static void get_stats_writes_only_the_callers_struct(void **state) {
    (void)state;
    const size_t first_header = offsetof(struct bw_stats, numa_nodes) + sizeof(size_t);
    unsigned char buffer[sizeof(struct bw_stats) + 32];
    memset(buffer, 0xab, sizeof buffer);
    (bw_get_stats)((struct bw_stats *)(void *)buffer); /* the old symbol */
    struct bw_stats *seen = (struct bw_stats *)(void *)buffer;
    assert_true(seen->numa_nodes >= 1);
    for (size_t i = first_header; i < sizeof buffer; i++) assert_int_equal(buffer[i], 0xab);
    memset(buffer, 0xab, sizeof buffer);
    bw_get_stats_sized((struct bw_stats *)(void *)buffer, 12);
    for (size_t i = 12; i < sizeof buffer; i++) assert_int_equal(buffer[i], 0xab);
    struct bw_stats whole;
    memset(&whole, 0xab, sizeof whole);
    bw_get_stats(&whole); /* the header's macro: every field */
    assert_true(whole.reserved_space == 0 || whole.reserved_space == 1);
    assert_true(whole.metadata_pkey >= -1);
}

int main(void) {
    bw_unit_enter_as_allocator();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(print_stats_in_handler_with_locks_held),
        cmocka_unit_test(print_stats_json_in_handler_with_locks_held),
        cmocka_unit_test(get_stats_and_mallinfo2_in_handler_with_locks_held),
        cmocka_unit_test(get_stats_writes_only_the_callers_struct),
    };
    bw_test_filters_from_env();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
