/* report.c — the one fatal path, the low-level text output, and the
 * reports of corrupted small blocks (bw_report_*: which bug a failed check
 * found, told from the block-state bitmaps).
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

#include "heap.h"
#include "report.h"
#include "slab.h"

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

/* ---------------------------------------------------------------- corruption reports
 * What a check of a small block found, named from the block-state bitmaps
 * (slab.h) and reported through bw_fatal. Called from the inline
 * checks of link.h, canary.h, block.h and alloc.h, and from slab.c and
 * quarantine.c; cold, never on a path that did not already fail a check. */
void bw_report_corrupt_link(const void *slot, const bw_slab_t *slab) {
    bw_fatal("free-list corruption", slot, BW_INFO_CLASS, slab->block_size, "malloc");
}

void bw_report_write_after_free(const void *block, const bw_slab_t *slab, const char *function) {
    bw_fatal("write after free", block, BW_INFO_CLASS, slab->block_size, function);
}

void bw_report_not_live(const void *ptr, const bw_slab_t *slot, const char *freed_class,
                        const char *invalid_class, const char *function) {
    const bw_slab_t *slab = slot - slot->head_back;
    uintptr_t offset = (uintptr_t)ptr - bw_layout.arena_base;
    const _Atomic(uint64_t) *bits = bw_bits_group(offset);
    bool handed_out =
        (offset & 15) == 0 && (bw_bits_load(&bits[BW_BITS_HANDED_OUT]) & bw_bits_mask(offset));
    if (slab->block_size == 0) /* a slot that never served a class */
        bw_fatal(invalid_class, ptr, BW_INFO_NONE, 0, function);
    bw_fatal(handed_out ? freed_class : invalid_class, ptr, BW_INFO_CLASS, slab->block_size,
             function);
}

/* bw_slab_pop found its block not free. Freed by the owner and claimed by
 * another thread's free as well is the trace of a racing double free
 * (slab.h); anything else means a link led to a block still live,
 * in a quarantine or pending collection: the list was forged or crossed. */
void bw_report_not_free(const void *block, const bw_slab_t *slab) {
    uintptr_t offset = (uintptr_t)block - bw_layout.arena_base;
    const _Atomic(uint64_t) *bits = bw_bits_group(offset);
    uint64_t bit = bw_bits_mask(offset);
    bool raced = !(bw_bits_load(&bits[BW_BITS_ALLOCATED]) & bit) &&
                 (bw_bits_load(&bits[BW_BITS_PENDING]) & bit);
    bw_fatal(raced ? "double free" : "free-list corruption", block, BW_INFO_CLASS, slab->block_size,
             "malloc");
}

/* A damaged canary. If another thread's free claimed the block while this
 * free was under way (a racing double free, slab.h), the damage is
 * the other free's wipe: PENDING set while the owner frees it, or PENDING
 * set and ALLOCATED already cleared by the owner while another thread
 * frees it. */
void bw_report_overflow(const void *block, const bw_slab_t *slab, const char *function) {
    uintptr_t offset = (uintptr_t)block - bw_layout.arena_base;
    const _Atomic(uint64_t) *bits = bw_bits_group(offset);
    uint64_t bit = bw_bits_mask(offset);
    bool owner = atomic_load_explicit(&slab->owner, memory_order_relaxed) == bw_tls_heap;
    bool claimed = bw_bits_load(&bits[BW_BITS_PENDING]) & bit;
    bool allocated = bw_bits_load(&bits[BW_BITS_ALLOCATED]) & bit;
    bool raced = claimed && (owner || !allocated);
    bw_fatal(raced ? "double free" : "heap overflow", block, BW_INFO_CLASS, slab->block_size,
             function);
}
