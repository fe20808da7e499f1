/* report.c — the one fatal path and the low-level text output.
 *
 * Invariant 6: a detected corruption writes exactly one line,
 *   bulwark: <bug class> of 0x<addr> (<size class or mapping size>) in <function>
 * with write(2) into a stack buffer, and aborts. It allocates nothing and
 * takes no lock, so it is safe from any path, including one that holds an
 * allocator lock or runs in a signal handler. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bw_internal.h"

size_t bw_fmt_u64(char *out, uint64_t v) {
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    return n;
}

size_t bw_fmt_hex(char *out, uint64_t v) {
    static const char digits[] = "0123456789abcdef";
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = digits[v & 15];
        v >>= 4;
    } while (v);
    for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    return n;
}

static void bw_write_all(int fd, const char *buf, size_t len) {
    while (len) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        buf += w;
        len -= (size_t)w;
    }
}

void bw_write_buf(int fd, const char *buf, size_t len) {
    bw_write_all(fd, buf, len);
}

void bw_write_str(int fd, const char *s) {
    bw_write_all(fd, s, strlen(s));
}

static size_t bw_append(char *buf, size_t at, size_t cap, const char *s) {
    while (*s && at < cap) buf[at++] = *s++;
    return at;
}

void bw_fatal(const char *bug_class, const void *ptr, bw_info_kind_t kind, size_t size,
              const char *function) {
    char line[256];
    char num[24];
    const size_t cap = sizeof line - 1;
    size_t n = bw_append(line, 0, cap, "bulwark: ");
    n = bw_append(line, n, cap, bug_class);
    n = bw_append(line, n, cap, " of 0x");
    num[bw_fmt_hex(num, (uintptr_t)ptr)] = 0;
    n = bw_append(line, n, cap, num);
    n = bw_append(line, n, cap, " (");
    if (kind == BW_INFO_NONE) {
        n = bw_append(line, n, cap, "not a bulwark block");
    } else {
        num[bw_fmt_u64(num, size)] = 0;
        n = bw_append(line, n, cap, num);
        n = bw_append(line, n, cap, kind == BW_INFO_CLASS ? "-byte class" : "-byte mapping");
    }
    n = bw_append(line, n, cap, ") in ");
    n = bw_append(line, n, cap, function);
    line[n++] = '\n';
    bw_write_all(STDERR_FILENO, line, n);
    abort();
}

/* A fatal condition that is not a heap bug: "bulwark: fatal: <what>". */
void bw_fatal_message(const char *what) {
    char line[192];
    size_t n = bw_append(line, 0, sizeof line - 1, "bulwark: fatal: ");
    n = bw_append(line, n, sizeof line - 1, what);
    line[n++] = '\n';
    bw_write_all(STDERR_FILENO, line, n);
    abort();
}

/* A system call failed in a way that leaves the allocator's state unknown. */
void bw_fatal_os(const char *what, int err) {
    char text[128];
    char num[24];
    size_t n = bw_append(text, 0, sizeof text - 1, what);
    n = bw_append(text, n, sizeof text - 1, " failed, errno ");
    num[bw_fmt_u64(num, (uint64_t)err)] = 0;
    n = bw_append(text, n, sizeof text - 1, num);
    text[n] = 0;
    bw_fatal_message(text);
}
