/* bw_test.c — shared helpers for the cmocka tests (see bw_test.h).
 *
 * Nothing here depends on bulwark's internals, so the same file serves the
 * statically linked tests and the .dyn builds run under LD_PRELOAD. */
#include "bw_test.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* cmocka.h needs stdarg.h, stddef.h and setjmp.h first; a separate block
 * keeps clang-format from sorting it above them. */
#include <setjmp.h>

#include <cmocka.h>

/* ------------------------------------------------------------ death tests */

/* Enough for the report line plus whatever else a misbehaving child prints;
 * the rest is drained and dropped. */
#define DEATH_OUTPUT_MAX 16384
#define DEATH_TIMEOUT_MS 30000

uint64_t bw_test_now_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
}

/* The fuzz profile's page mode (every block on pages of its own) is off in
 * the test binaries that link libbulwark.a: they test the slab layers, as
 * in every other profile. test_page_mode.c's strong definition turns it on
 * there; tests/run.sh sets BULWARK_FUZZ_PAGES=0 for the preloaded tests and
 * the scripts, which cannot see this symbol. */
__attribute__((weak)) int bulwark_fuzz_pages = 0;

static int64_t monotonic_ms(void) {
    return (int64_t)bw_test_now_ms();
}

/* The child: deliver a crash as a crash. cmocka installs handlers for SIGSEGV
 * and friends that longjmp back into its runner, which in a forked child
 * would go on running the remaining tests; restore the defaults instead. */
static __attribute__((noreturn)) void death_child(int write_fd, void (*fn)(void *), void *arg) {
    static const int fatal_signals[] = {SIGABRT, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGSYS};
    struct rlimit no_core = {0, 0};
    sigset_t unblock;

    setrlimit(RLIMIT_CORE, &no_core);
    sigemptyset(&unblock);
    for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++) {
        signal(fatal_signals[i], SIG_DFL);
        sigaddset(&unblock, fatal_signals[i]);
    }
    sigprocmask(SIG_UNBLOCK, &unblock, NULL);

    /* stdout too, so that anything unexpected the child prints shows up in
     * the failure message instead of in the middle of cmocka's output. */
    if (dup2(write_fd, STDERR_FILENO) < 0 || dup2(write_fd, STDOUT_FILENO) < 0) _exit(111);
    close(write_fd);

    fn(arg);
    _exit(0);
}

/* Reads the child's output until EOF or the deadline. Returns the number of
 * bytes kept (output[kept] = 0) or -1 on timeout. */
static ssize_t read_child_output(int fd, char *output, size_t capacity) {
    size_t kept = 0;
    int64_t deadline = monotonic_ms() + DEATH_TIMEOUT_MS;

    for (;;) {
        int64_t left = deadline - monotonic_ms();
        if (left <= 0) return -1;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int ready = poll(&pfd, 1, (int)left);
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) return -1;
        char chunk[1024];
        ssize_t got = read(fd, chunk, sizeof chunk);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        size_t take = (size_t)got;
        if (take > capacity - 1 - kept) take = capacity - 1 - kept;
        memcpy(output + kept, chunk, take);
        kept += take;
    }
    output[kept] = '\0';
    return (ssize_t)kept;
}

static bool starts_with(const char *s, size_t len, const char *prefix) {
    size_t plen = strlen(prefix);
    return len >= plen && memcmp(s, prefix, plen) == 0;
}

static bool ends_with(const char *s, size_t len, const char *suffix) {
    size_t slen = strlen(suffix);
    return len >= slen && memcmp(s + len - slen, suffix, slen) == 0;
}

/* Checks one report line against
 *     bulwark: <bug_class> of 0x<hex> (<info>) in <function>
 * and returns NULL if it matches, otherwise what is wrong. */
static const char *check_report_line(const char *line, size_t len, const char *bug_class,
                                     const char *function, uintptr_t *address_out) {
    char prefix[256];
    char suffix[256];
    snprintf(prefix, sizeof prefix, "bulwark: %s of 0x", bug_class);
    snprintf(suffix, sizeof suffix, ") in %s", function);

    if (!starts_with(line, len, prefix))
        return "the line does not start with \"bulwark: <bug class> of 0x\"";
    size_t pos = strlen(prefix);
    uintptr_t address = 0;
    size_t digits = 0;
    while (pos < len) {
        char c = line[pos];
        unsigned v;
        if (c >= '0' && c <= '9')
            v = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v = (unsigned)(c - 'A' + 10);
        else
            break;
        address = (address << 4) | v;
        digits++;
        pos++;
    }
    if (digits == 0 || digits > 2 * sizeof(uintptr_t))
        return "the address after 0x is not 1-16 hex digits";
    if (!starts_with(line + pos, len - pos, " ("))
        return "the address is not followed by \" (<info>)\"";
    if (!ends_with(line + pos, len - pos, suffix))
        return "the line does not end with \"(<info>) in <function>\"";
    *address_out = address;
    return NULL;
}

static void expect_death_impl(void (*fn)(void *), void *arg, const char *bug_class,
                              const char *function, bool check_address, uintptr_t expected) {
    static char output[DEATH_OUTPUT_MAX];
    int fds[2];

    if (pipe2(fds, O_CLOEXEC) != 0) fail_msg("pipe2: %s", strerror(errno));
    /* Nothing buffered may be written twice by the child's copy of stdio. */
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        close(fds[0]);
        death_child(fds[1], fn, arg);
    }
    close(fds[1]);
    ssize_t kept = read_child_output(fds[0], output, sizeof output);
    close(fds[0]);
    if (kept < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fail_msg("child still running after %d ms (deadlock?) expecting \"%s\" in %s",
                 DEATH_TIMEOUT_MS, bug_class, function);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) fail_msg("waitpid: %s", strerror(errno));
    }

    /* Find the lines that mention bulwark; remember the first. */
    size_t report_lines = 0;
    const char *report = NULL;
    size_t report_len = 0;
    for (const char *line = output; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *hit = memmem(line, len, "bulwark:", 8);
        if (hit) {
            if (report_lines == 0) {
                report = line;
                report_len = len;
            }
            report_lines++;
        }
        line += len + (end ? 1 : 0);
    }

    char problem[512] = "";
    if (!WIFSIGNALED(status)) {
        snprintf(problem, sizeof problem, "child exited with status %d instead of dying of SIGABRT",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    } else if (WTERMSIG(status) != SIGABRT) {
        snprintf(problem, sizeof problem, "child died of signal %d (%s) instead of SIGABRT",
                 WTERMSIG(status), strsignal(WTERMSIG(status)));
    } else if (report_lines != 1) {
        snprintf(problem, sizeof problem, "child wrote %zu lines containing \"bulwark:\", not 1",
                 report_lines);
    } else {
        uintptr_t reported = 0;
        const char *why = check_report_line(report, report_len, bug_class, function, &reported);
        if (why) {
            snprintf(problem, sizeof problem, "%s", why);
        } else if (check_address && reported != expected) {
            snprintf(problem, sizeof problem, "reported address 0x%jx, expected 0x%jx",
                     (uintmax_t)reported, (uintmax_t)expected);
        }
    }
    if (problem[0]) {
        print_error("expected: bulwark: %s of 0x%s (...) in %s\n", bug_class,
                    check_address ? "<the pointer>" : "...", function);
        print_error("child output (%zd bytes):\n%s%s", kept, output,
                    kept > 0 && output[kept - 1] != '\n' ? "\n" : "");
        fail_msg("%s", problem);
    }
}

void bw_expect_death(void (*fn)(void *), void *arg, const char *bug_class, const char *function) {
    expect_death_impl(fn, arg, bug_class, function, false, 0);
}

void bw_expect_death_at(void (*fn)(void *), void *arg, const char *bug_class, const char *function,
                        const void *address) {
    expect_death_impl(fn, arg, bug_class, function, true, (uintptr_t)address);
}

/* ------------------------------------------------------------ is it bulwark? */

int bw_is_bulwark_loaded(void) {
    if (dlsym(RTLD_DEFAULT, "bw_malloc") != NULL) return 1;
    /* Static build: bw_malloc is not in the executable's dynamic symbol
     * table, but malloc is (libc.so defines it too, so the linker exports
     * the executable's definition to let it interpose). */
    void *process_malloc = dlsym(RTLD_DEFAULT, "malloc");
    Dl_info info;
    if (process_malloc == NULL || dladdr(process_malloc, &info) == 0) return 0;
    if (info.dli_fname != NULL && strstr(info.dli_fname, "libc.so") != NULL) return 0;
    return 1;
}

void bw_test_filters_from_env(void) {
    const char *only = getenv("BW_TEST_FILTER");
    const char *skip = getenv("BW_TEST_SKIP");
    if (only && *only) cmocka_set_test_filter(only);
    if (skip && *skip) cmocka_set_skip_filter(skip);
}

/* ------------------------------------------------------------ /proc readers */

/* Reads a small /proc file into buf with plain read(2) (no stdio, so no
 * allocation happens while measuring). Returns the length or 0. */
static size_t read_proc_file(const char *path, char *buf, size_t capacity) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    size_t len = 0;
    while (len < capacity - 1) {
        ssize_t got = read(fd, buf + len, capacity - 1 - len);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        len += (size_t)got;
    }
    close(fd);
    buf[len] = '\0';
    return len;
}

size_t bw_test_rss_bytes(void) {
    char buf[256];
    if (read_proc_file("/proc/self/statm", buf, sizeof buf) == 0) return 0;
    /* Fields: size resident shared text lib data dt (in pages). */
    char *cursor = buf;
    strtoull(cursor, &cursor, 10);
    unsigned long long resident_pages = strtoull(cursor, NULL, 10);
    return (size_t)resident_pages * (size_t)sysconf(_SC_PAGESIZE);
}

size_t bw_test_map_count(void) {
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    size_t lines = 0;
    char chunk[4096];
    for (;;) {
        ssize_t got = read(fd, chunk, sizeof chunk);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        for (ssize_t i = 0; i < got; i++) lines += chunk[i] == '\n';
    }
    close(fd);
    return lines;
}

/* ------------------------------------------------------------ patterns */

/* splitmix64's finaliser over (seed, word index): cheap, and every word of
 * every seed differs, so a block shifted by any amount or filled with another
 * seed does not match. */
static uint64_t pattern_word(uint64_t seed, uint64_t index) {
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + (index + 1) * 0xD1B54A32D192ED03ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void bw_fill(void *p, size_t n, uint64_t seed) {
    unsigned char *bytes = p;
    size_t words = n / 8;
    for (size_t w = 0; w < words; w++) {
        uint64_t v = pattern_word(seed, w);
        memcpy(bytes + 8 * w, &v, 8);
    }
    if (n % 8) {
        uint64_t v = pattern_word(seed, words);
        memcpy(bytes + 8 * words, &v, n % 8);
    }
}

bool bw_check(const void *p, size_t n, uint64_t seed) {
    const unsigned char *bytes = p;
    size_t words = (n + 7) / 8;
    for (size_t w = 0; w < words; w++) {
        uint64_t v = pattern_word(seed, w);
        size_t len = (w + 1) * 8 <= n ? 8 : n % 8;
        if (memcmp(bytes + 8 * w, &v, len) == 0) continue;
        const unsigned char *expected = (const unsigned char *)&v;
        for (size_t i = 0; i < len; i++) {
            if (bytes[8 * w + i] != expected[i]) {
                fprintf(stderr,
                        "bw_check: %p+%zu of %zu bytes (seed %ju): 0x%02x, expected 0x%02x\n", p,
                        8 * w + i, n, (uintmax_t)seed, bytes[8 * w + i], expected[i]);
                break;
            }
        }
        return false;
    }
    return true;
}

bool bw_check_zero(const void *p, size_t n) {
    const unsigned char *bytes = p;
    /* Word at a time first: calloc tests scan megabytes. */
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t word;
        memcpy(&word, bytes + i, 8);
        if (word != 0) break;
    }
    for (; i < n; i++) {
        if (bytes[i] != 0) {
            fprintf(stderr, "bw_check_zero: %p+%zu of %zu bytes is 0x%02x\n", p, i, n, bytes[i]);
            return false;
        }
    }
    return true;
}

/* ------------------------------------------------------------ size classes */

size_t bw_test_class_size(size_t index) {
    if (index < 8) return 16 * (index + 1); /* 16 .. 128 */
    index -= 8;
    size_t power = (size_t)128 << (index / 4); /* 128 .. 65536 */
    return power + power / 4 * (index % 4 + 1);
}

size_t bw_test_class_of(size_t size) {
    if (size > BW_TEST_SMALL_MAX) return 0;
    for (size_t i = 0; i < BW_TEST_CLASS_COUNT; i++) {
        if (bw_test_class_size(i) >= size) return bw_test_class_size(i);
    }
    return 0;
}

size_t bw_test_class_aligned(size_t request, size_t alignment) {
    for (size_t i = 0; i < BW_TEST_CLASS_COUNT; i++) {
        size_t size = bw_test_class_size(i);
        if (size >= request + BW_TEST_CANARY_BYTES && size % alignment == 0) return size;
    }
    return 0;
}

/* ------------------------------------------------------------ security tests */

/* The child of the security helpers: death_child's set-up (default signal
 * dispositions, no core, output into the pipe), and, when asked, a handler
 * for SIGSEGV and SIGBUS that writes the faulting address before the fault
 * is delivered again with the default action (SA_RESETHAND): the child
 * still dies of the signal, and the parent learns where it happened. */
struct child_call {
    void (*fn)(void *);
    void *arg;
    bool record_faults;
};

#define FAULT_TAG "bw_test: fault at 0x"

static void record_fault(int signal_number, siginfo_t *info, void *context) {
    (void)signal_number;
    (void)context;
    char line[64] = FAULT_TAG;
    size_t len = strlen(line);
    uintptr_t address = (uintptr_t)info->si_addr;
    char digits[16];
    size_t n = 0;
    do {
        digits[n++] = "0123456789abcdef"[address & 15];
        address >>= 4;
    } while (address);
    while (n) line[len++] = digits[--n];
    line[len++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, len);
    (void)ignored;
    /* Returning re-executes the access, which faults again and, the
     * handler being reset, kills the child with the same signal. */
}

static void child_trampoline(void *arg) {
    const struct child_call *call = arg;
    if (call->record_faults) {
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_sigaction = record_fault;
        action.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_NODEFER;
        sigemptyset(&action.sa_mask);
        sigaction(SIGSEGV, &action, NULL);
        sigaction(SIGBUS, &action, NULL);
    }
    call->fn(call->arg);
}

struct child_outcome {
    int status;
    ssize_t kept;
    char *output;        /* NUL-terminated */
    size_t report_lines; /* lines containing "bulwark:" */
    const char *report;  /* the first of them */
    size_t report_len;
    bool fault_seen;
    uintptr_t fault_address;
};

static void run_child(void (*fn)(void *), void *arg, bool record_faults,
                      struct child_outcome *out) {
    static char output[DEATH_OUTPUT_MAX];
    int fds[2];
    struct child_call call = {fn, arg, record_faults};

    memset(out, 0, sizeof *out);
    out->output = output;
    if (pipe2(fds, O_CLOEXEC) != 0) fail_msg("pipe2: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        close(fds[0]);
        death_child(fds[1], child_trampoline, &call);
    }
    close(fds[1]);
    ssize_t kept = read_child_output(fds[0], output, sizeof output);
    close(fds[0]);
    if (kept < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fail_msg("child still running after %d ms (deadlock or endless loop?)", DEATH_TIMEOUT_MS);
    }
    out->kept = kept;
    while (waitpid(pid, &out->status, 0) < 0) {
        if (errno != EINTR) fail_msg("waitpid: %s", strerror(errno));
    }
    for (const char *line = output; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (memmem(line, len, "bulwark:", 8)) {
            if (out->report_lines == 0) {
                out->report = line;
                out->report_len = len;
            }
            out->report_lines++;
        }
        if (!out->fault_seen && starts_with(line, len, FAULT_TAG)) {
            out->fault_seen = true;
            out->fault_address = (uintptr_t)strtoull(line + strlen(FAULT_TAG), NULL, 16);
        }
        line += len + (end ? 1 : 0);
    }
}

static void describe_status(char *buf, size_t size, int status) {
    if (WIFSIGNALED(status))
        snprintf(buf, size, "died of signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else if (WIFEXITED(status))
        snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
    else
        snprintf(buf, size, "ended with wait status 0x%x", status);
}

static void fail_with_output(const struct child_outcome *out, const char *expected,
                             const char *problem) {
    print_error("expected: %s\n", expected);
    print_error("child output (%zd bytes):\n%s%s", out->kept, out->output,
                out->kept > 0 && out->output[out->kept - 1] != '\n' ? "\n" : "");
    fail_msg("%s", problem);
}

/* A page shared with every forked child, where a child records the address
 * its bug is to be reported at (bw_test_record_address). */
static volatile uintptr_t *recorded_address;

void bw_test_record_address(const void *address) {
    if (recorded_address) *recorded_address = (uintptr_t)address;
}

uintptr_t bw_test_recorded_address(void) {
    return recorded_address ? *recorded_address : 0;
}

static void reset_recorded_address(void) {
    if (!recorded_address) {
        void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (page == MAP_FAILED) fail_msg("mmap: %s", strerror(errno));
        recorded_address = page;
    }
    *recorded_address = 0;
}

static void expect_report_impl(void (*fn)(void *), void *arg, const char *bug_class,
                               bool use_recorded, const void *address, const char *info,
                               const char *function) {
    reset_recorded_address();
    struct child_outcome out;
    run_child(fn, arg, false, &out);
    if (use_recorded) {
        if (!*recorded_address) fail_msg("the child recorded no address before its bug");
        address = (const void *)*recorded_address;
    }
    char expected[512];
    snprintf(expected, sizeof expected, "bulwark: %s of 0x%jx (%s) in %s", bug_class,
             (uintmax_t)(uintptr_t)address, info, function);

    char problem[640] = "";
    char how[96];
    describe_status(how, sizeof how, out.status);
    if (!WIFSIGNALED(out.status) || WTERMSIG(out.status) != SIGABRT)
        snprintf(problem, sizeof problem, "child %s instead of dying of SIGABRT", how);
    else if (out.report_lines != 1)
        snprintf(problem, sizeof problem, "child wrote %zu lines containing \"bulwark:\", not 1",
                 out.report_lines);
    else if (out.report_len != strlen(expected) ||
             memcmp(out.report, expected, out.report_len) != 0)
        snprintf(problem, sizeof problem, "report line is \"%.*s\"", (int)out.report_len,
                 out.report);
    if (problem[0]) fail_with_output(&out, expected, problem);
}

void bw_expect_report(void (*fn)(void *), void *arg, const char *bug_class, const void *address,
                      const char *info, const char *function) {
    expect_report_impl(fn, arg, bug_class, false, address, info, function);
}

int bw_run_child(void (*fn)(void *), void *arg, char *report, size_t report_size,
                 size_t *report_lines) {
    struct child_outcome out;
    reset_recorded_address();
    run_child(fn, arg, false, &out);
    size_t n = out.report ? out.report_len : 0;
    if (n >= report_size) n = report_size - 1;
    if (n) memcpy(report, out.report, n);
    report[n] = 0;
    *report_lines = out.report_lines;
    return out.status;
}

void bw_expect_report_recorded(void (*fn)(void *), void *arg, const char *bug_class,
                               const char *info, const char *function) {
    expect_report_impl(fn, arg, bug_class, true, NULL, info, function);
}

static void expect_signal_impl(void (*fn)(void *), void *arg, int signal_number, bool check_fault,
                               uintptr_t low, uintptr_t high) {
    struct child_outcome out;
    run_child(fn, arg, check_fault, &out);

    char expected[160];
    if (check_fault)
        snprintf(expected, sizeof expected, "death by %s at an address in [0x%jx, 0x%jx)",
                 strsignal(signal_number), (uintmax_t)low, (uintmax_t)high);
    else
        snprintf(expected, sizeof expected, "death by %s, no report", strsignal(signal_number));
    char problem[256] = "";
    char how[96];
    describe_status(how, sizeof how, out.status);
    if (!WIFSIGNALED(out.status) || WTERMSIG(out.status) != signal_number)
        snprintf(problem, sizeof problem, "child %s", how);
    else if (out.report_lines != 0)
        snprintf(problem, sizeof problem, "child printed %zu \"bulwark:\" lines before the fault",
                 out.report_lines);
    else if (check_fault && !out.fault_seen)
        snprintf(problem, sizeof problem, "the fault handler did not run");
    else if (check_fault && (out.fault_address < low || out.fault_address >= high))
        snprintf(problem, sizeof problem, "fault at 0x%jx, outside [0x%jx, 0x%jx)",
                 (uintmax_t)out.fault_address, (uintmax_t)low, (uintmax_t)high);
    if (problem[0]) fail_with_output(&out, expected, problem);
}

void bw_expect_signal(void (*fn)(void *), void *arg, int signal_number) {
    expect_signal_impl(fn, arg, signal_number, false, 0, 0);
}

void bw_expect_fault_in(void (*fn)(void *), void *arg, const void *low, const void *high) {
    expect_signal_impl(fn, arg, SIGSEGV, true, (uintptr_t)low, (uintptr_t)high);
}

void bw_expect_no_report(void (*fn)(void *), void *arg) {
    struct child_outcome out;
    run_child(fn, arg, false, &out);
    char how[96];
    describe_status(how, sizeof how, out.status);
    if (!WIFEXITED(out.status) || WEXITSTATUS(out.status) != 0 || out.report_lines != 0) {
        char problem[160];
        snprintf(problem, sizeof problem, "child %s with %zu \"bulwark:\" lines", how,
                 out.report_lines);
        fail_with_output(&out, "exit status 0 and no report", problem);
    }
}

const char *bw_info_class(char *buf, size_t size, size_t class_size) {
    snprintf(buf, size, "%zu-byte class", class_size);
    return buf;
}

const char *bw_info_mapping(char *buf, size_t size, size_t map_size) {
    snprintf(buf, size, "%zu-byte mapping", map_size);
    return buf;
}

void bw_test_malloc_in_one_slab(size_t request, size_t count, void **out) {
    enum { MAX_DRAWN = 4096 };
    static void *drawn[MAX_DRAWN];
    size_t drawn_count = 0, found = 0;
    uintptr_t slab = 0;
    uintptr_t span = bw_test_span_bytes(BW_TEST_CLASS_FOR(request));
    while (found < count && drawn_count < MAX_DRAWN) {
        void *block = malloc(request);
        if (!block) break;
        drawn[drawn_count++] = block;
        /* How many drawn so far share this block's slab (a span of
         * several slots above 8 KiB)? */
        uintptr_t this_slab = (uintptr_t)block / span;
        size_t same = 0;
        for (size_t i = 0; i < drawn_count; i++) same += (uintptr_t)drawn[i] / span == this_slab;
        if (same >= count) {
            slab = this_slab;
            found = count;
        }
    }
    if (found < count) {
        for (size_t i = 0; i < drawn_count; i++) free(drawn[i]);
        fail_msg("no %zu blocks of %zu bytes in one slab among %zu drawn", count, request,
                 drawn_count);
    }
    size_t kept = 0;
    for (size_t i = 0; i < drawn_count; i++) {
        if ((uintptr_t)drawn[i] / span == slab && kept < count)
            out[kept++] = drawn[i];
        else
            free(drawn[i]);
    }
}
