/* rlimit_as.c — run by tests/stress/rlimit_as.sh under `ulimit -v`, with
 * and without libbulwark.so preloaded (see there for the claims). Plain C,
 * no cmocka and no stdio before the measurement: under a tiny limit every
 * byte of address space counts, and stdio allocates.
 *
 *   rlimit_as small   64-byte blocks until malloc returns NULL: prints
 *                     "small COUNT errno ERRNO", then frees them all;
 *   rlimit_as large   the same with 1 MiB blocks ("large COUNT errno ERRNO");
 *   rlimit_as start   exits 0 at once (the script finds the smallest limit
 *                     the program starts under);
 *   rlimit_as retry   two mallocs under a limit too small for bulwark:
 *                     prints the mmap/mprotect/munmap calls each made (as
 *                     counted by the preloaded shim_count_maps.so), the
 *                     anonymous mappings left between 1 and 64 TiB (where
 *                     bulwark places its regions) and what pkey_alloc
 *                     answers afterwards;
 *   rlimit_as skip    with bulwark, under a limit: a segment whose addresses
 *                     the program mapped first is skipped (skip() says how);
 *   rlimit_as lower [small]  lowers the limit after start-up, then
 *                     fills as large (and small) do (lower() says how).
 * The blocks are chained through their first word, so counting millions of
 * them needs no array (which would take address space of its own). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Defined by shim_count_maps.so when it is preloaded; weak so the program
 * also runs without it. */
extern unsigned long bw_shim_map_calls(void) __attribute__((weak));

static void say(const char *text) {
    ssize_t ignored = write(STDOUT_FILENO, text, strlen(text));
    (void)ignored;
}

static void say_num(unsigned long value) {
    char digits[24];
    size_t n = sizeof digits;
    digits[--n] = 0;
    do {
        digits[--n] = (char)('0' + value % 10);
        value /= 10;
    } while (value && n > 0);
    say(digits + n);
}

static int fill(size_t size, const char *name) {
    void *chain = NULL;
    unsigned long count = 0;
    int err;
    for (;;) {
        errno = 0;
        void **block = malloc(size);
        if (!block) {
            err = errno;
            break;
        }
        block[0] = chain;
        ((char *)block)[size - 1] = 1; /* the block is usable to its end */
        chain = block;
        count++;
    }
    while (chain) {
        void *next = *(void **)chain;
        free(chain);
        chain = next;
    }
    say(name);
    say(" ");
    say_num(count);
    say(" errno ");
    say_num((unsigned long)err);
    say("\n");
    return err == ENOMEM ? 0 : 1;
}

static unsigned long map_calls(void) {
    return bw_shim_map_calls ? bw_shim_map_calls() : 0;
}

/* Anonymous mappings starting in [1 TiB, 64 TiB), from /proc/self/maps,
 * read without stdio (every line starts with "start-end "). */
static unsigned long mappings_in_bulwark_range(void) {
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return (unsigned long)-1;
    static char text[1 << 16];
    size_t length = 0;
    ssize_t n;
    while (length < sizeof text - 1 && (n = read(fd, text + length, sizeof text - 1 - length)) > 0)
        length += (size_t)n;
    close(fd);
    text[length] = 0;
    unsigned long count = 0;
    for (char *line = text; *line;) {
        char *end = strchr(line, '\n');
        uintptr_t start = (uintptr_t)strtoull(line, NULL, 16);
        if (start >= (uintptr_t)1 << 40 && start < (uintptr_t)64 << 40) count++;
        if (!end) break;
        line = end + 1;
    }
    return count;
}

/* The markers on stderr delimit the two calls in an strace log. */
static int retry(void) {
    unsigned long before = map_calls();
    ssize_t ignored = write(STDERR_FILENO, "first malloc\n", 13);
    void *first = malloc(16);
    int first_errno = errno;
    unsigned long middle = map_calls();
    ignored = write(STDERR_FILENO, "second malloc\n", 14);
    errno = 0;
    void *second = malloc(16);
    int second_errno = errno;
    unsigned long after = map_calls();
    ignored = write(STDERR_FILENO, "done\n", 5);
    (void)ignored;
    /* More failing calls: a key allocated per attempt would run out. */
    for (int i = 0; i < 20; i++) free(malloc(16));
    long key = syscall(SYS_pkey_alloc, 0ul, 0ul);
    int key_errno = errno;
    say("first ");
    say(first ? "ok" : "null");
    say(" errno ");
    say_num((unsigned long)first_errno);
    say(" calls ");
    say_num(middle - before);
    say("\nsecond ");
    say(second ? "ok" : "null");
    say(" errno ");
    say_num((unsigned long)second_errno);
    say(" calls ");
    say_num(after - middle);
    say("\nmappings ");
    say_num(mappings_in_bulwark_range());
    say("\npkey ");
    if (key >= 0) {
        say("ok");
        syscall(SYS_pkey_free, (unsigned long)key);
    } else {
        say("errno ");
        say_num((unsigned long)key_errno);
    }
    say("\n");
    free(first);
    free(second);
    return 0;
}

/* Lazy space only (run with the preload under a finite limit): a page
 * mapped by the program where bulwark's next arena segment would go makes
 * bulwark skip that segment. The first block's segment is carved first, so
 * the next one starts 4 MiB (a segment) further; blocks of about 4 KiB are
 * taken until one lies past the skipped segment. None may lie in it, and
 * the page keeps what the program wrote there. */
static int skip(void) {
    const uintptr_t segment = (uintptr_t)4 << 20;
    char *first = malloc(4000);
    if (!first) return say("skip: the first malloc failed\n"), 1;
    uintptr_t next = ((uintptr_t)first & ~(segment - 1)) + segment;
    char *page = mmap((void *)next, 4096, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (page != (char *)next) return say("skip: the next segment is mapped already\n"), 1;
    memset(page, 0x7e, 4096);
    void *chain = NULL;
    unsigned long inside = 0, count = 0;
    bool past = false;
    while (!past && count < 100000) {
        void **block = malloc(4000);
        if (!block) return say("skip: malloc failed\n"), 1;
        memset(block, 0x11, 4000);
        block[0] = chain;
        chain = block;
        count++;
        uintptr_t at = (uintptr_t)block;
        if (at >= next && at < next + segment) inside++;
        past = at >= next + segment;
    }
    bool intact = true;
    for (int i = 0; i < 4096; i++) intact &= page[i] == 0x7e;
    while (chain) {
        void *after = *(void **)chain;
        free(chain);
        chain = after;
    }
    free(first);
    say("skip: ");
    say_num(count);
    say(past ? " blocks to pass the segment, " : " blocks and still not past it, ");
    say_num(inside);
    say(intact ? " in it, the page intact\n" : " in it, the page overwritten\n");
    return past && inside == 0 && intact ? 0 : 1;
}

/* The program lowers RLIMIT_AS to its current size plus 32 MiB after
 * bulwark started (with the limit it was run under, maybe none): 1 MiB
 * blocks, then with `small` 64-byte blocks, until malloc fails, which it
 * must do with ENOMEM. Not `small` in reserved space: small blocks are
 * committed inside the reservation the limit already counts, so they run
 * out only with the arena (64 GiB) or the memory. */
static int lower(bool small) {
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 1;
    static char text[8192];
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0) return 1;
    text[n] = 0;
    const char *line = strstr(text, "VmSize:");
    if (!line) return 1;
    unsigned long long kib = strtoull(line + 7, NULL, 10);
    struct rlimit limit;
    if (getrlimit(RLIMIT_AS, &limit) != 0) return 1;
    limit.rlim_cur = (kib << 10) + (32u << 20); /* the hard limit stays */
    if (setrlimit(RLIMIT_AS, &limit) != 0) return say("setrlimit failed\n"), 1;
    int status = fill(1u << 20, "large");
    return small ? status | fill(64, "small") : status;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "small")) return fill(64, "small");
    if (!strcmp(mode, "large")) return fill(1u << 20, "large");
    if (!strcmp(mode, "start")) return 0;
    if (!strcmp(mode, "retry")) return retry();
    if (!strcmp(mode, "skip")) return skip();
    if (!strcmp(mode, "lower")) return lower(argc > 2 && !strcmp(argv[2], "small"));
    say("usage: rlimit_as small|large|start|retry|skip|lower\n");
    return 2;
}
