/* bw_fuzz.c — the op engine of the fuzz/ harnesses (bw_fuzz.h).
 *
 * One op is an op byte (its value modulo 16 picks the call) followed by
 * argument bytes; a slot byte picks one of the context's slots. The calls are
 * the libc names, which the harness binaries get from the statically linked
 * libbulwark.a, so the fuzzer exercises the exported entry points exactly as
 * a program does. Every call is a valid one: whatever bulwark reports is a
 * false positive or a real bug in it. */
#include "bw_fuzz.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The fuzz profile's page mode would serve every block from the large
 * layer; the harnesses fuzz the slab layers (BULWARK_FUZZ_PAGES=1 in the
 * environment still turns it on). */
int bulwark_fuzz_pages = 0;

uint8_t bw_fz_u8(bw_fz_input_t *in) {
    return in->pos < in->size ? in->data[in->pos++] : 0;
}

uint32_t bw_fz_u16(bw_fz_input_t *in) {
    uint32_t lo = bw_fz_u8(in);
    return lo | (uint32_t)bw_fz_u8(in) << 8;
}

uint32_t bw_fz_u24(bw_fz_input_t *in) {
    uint32_t lo = bw_fz_u16(in);
    return lo | (uint32_t)bw_fz_u8(in) << 16;
}

/* Skewed so that small sizes dominate, as in real programs, while every
 * size class and the large path stay reachable: half of the selector values
 * give 0-128 bytes, a quarter up to 1 KiB, then up to 16 KiB, 160 KiB (past
 * BW_SMALL_MAX, 128 KiB) and, 1 time in 64, up to 4 MiB. */
size_t bw_fz_size(bw_fz_input_t *in) {
    uint8_t sel = bw_fz_u8(in);
    if (sel < 128) return bw_fz_u8(in) % 129u;
    if (sel < 192) return bw_fz_u16(in) % 1025u;
    if (sel < 232) return bw_fz_u16(in) % 16385u;
    if (sel < 252) return bw_fz_u24(in) % (160u * 1024u + 1u);
    return bw_fz_u24(in) % (BW_FZ_MAX_SIZE + 1);
}

static size_t bw_fz_fmt(char *out, size_t at, const char *text) {
    while (*text && at < 255) out[at++] = *text++;
    return at;
}

static size_t bw_fz_fmt_num(char *out, size_t at, uint64_t v, unsigned base) {
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    if (base == 16) at = bw_fz_fmt(out, at, "0x");
    while (n && at < 255) out[at++] = tmp[--n];
    return at;
}

/* To stderr and, when BW_FUZZ_LOG names a file, appended to it: afl-fuzz
 * throws the target's stderr away, and fuzz/run.sh shows that file. */
void bw_fz_log(const char *text, size_t len) {
    ssize_t unused = write(2, text, len);
    const char *path = getenv("BW_FUZZ_LOG");
    if (path && *path) {
        int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0) {
            unused = write(fd, text, len);
            close(fd);
        }
    }
    (void)unused;
}

/* One line with write(2) from a stack buffer: the heap may be what broke. */
_Noreturn void bw_fz_fail(const bw_fz_ctx_t *ctx, const char *what, const void *ptr, size_t a,
                          size_t b) {
    char line[256];
    size_t at = bw_fz_fmt(line, 0, "bw_fuzz: ");
    at = bw_fz_fmt(line, at, ctx && ctx->name ? ctx->name : "harness");
    at = bw_fz_fmt(line, at, ": ");
    at = bw_fz_fmt(line, at, what);
    at = bw_fz_fmt(line, at, " at ");
    at = bw_fz_fmt_num(line, at, (uintptr_t)ptr, 16);
    at = bw_fz_fmt(line, at, " (");
    at = bw_fz_fmt_num(line, at, a, 10);
    at = bw_fz_fmt(line, at, ", ");
    at = bw_fz_fmt_num(line, at, b, 10);
    at = bw_fz_fmt(line, at, ") op ");
    at = bw_fz_fmt_num(line, at, ctx ? ctx->ops : 0, 10);
    line[at++] = '\n';
    bw_fz_log(line, at);
    abort();
}

/* Byte i of a block with tag t. Cheap enough to be vectorised, and no two
 * neighbouring allocations (consecutive tags) agree on any byte. */
static inline unsigned char bw_fz_byte(uint32_t tag, size_t i) {
    return (unsigned char)(tag + i * 151u + (i >> 8));
}

void bw_fz_fill(bw_fz_slot_t *slot, size_t from, size_t to) {
    unsigned char *p = slot->ptr;
    uint32_t tag = slot->tag;
    for (size_t i = from; i < to; i++) p[i] = bw_fz_byte(tag, i);
}

void bw_fz_check(const bw_fz_ctx_t *ctx, const bw_fz_slot_t *slot, size_t len, const char *where) {
    const unsigned char *p = slot->ptr;
    uint32_t tag = slot->tag;
    unsigned char diff = 0;
    for (size_t i = 0; i < len; i++) diff |= (unsigned char)(p[i] ^ bw_fz_byte(tag, i));
    if (!diff) return;
    size_t i = 0;
    while (p[i] == bw_fz_byte(tag, i)) i++;
    bw_fz_fail(ctx, where, p, i, len);
}

void bw_fz_init(bw_fz_ctx_t *ctx, const char *name, unsigned nslots, size_t max_live) {
    memset(ctx, 0, sizeof *ctx);
    ctx->name = name;
    ctx->nslots = nslots > BW_FZ_SLOTS ? BW_FZ_SLOTS : nslots;
    ctx->max_live = max_live;
    ctx->next_tag = 0x5a;
    ctx->max_ops = BW_FZ_MAX_OPS;
}

static void bw_fz_note(bw_fz_ctx_t *ctx, char op, const void *result, size_t size) {
    if (ctx->note) ctx->note(ctx, op, result, size);
}

/* malloc gives every block the fundamental alignment (16 on x86-64); a
 * zero-byte one is not an object and may be anything. */
static void bw_fz_check_align(bw_fz_ctx_t *ctx, const void *p, size_t size, size_t align) {
    if (!p) return;
    size_t need = align > 16 ? align : 16;
    if (size == 0 && align <= 16) return;
    if ((uintptr_t)p & (need - 1)) bw_fz_fail(ctx, "misaligned block", p, size, need);
    size_t usable = malloc_usable_size((void *)p);
    if (usable < size) bw_fz_fail(ctx, "usable size below the request", p, usable, size);
}

/* Takes the slot's block, checks it and fills it; `size` bytes asked. */
static void bw_fz_adopt(bw_fz_ctx_t *ctx, bw_fz_slot_t *slot, void *p, size_t size, size_t align,
                        uint8_t kind) {
    slot->ptr = p;
    slot->req = size;
    slot->len = size;
    slot->align = align;
    slot->kind = kind;
    slot->tag = ctx->next_tag++;
    ctx->live_bytes += size;
    bw_fz_fill(slot, 0, size);
}

void bw_fz_free_slot(bw_fz_ctx_t *ctx, bw_fz_slot_t *slot, uint8_t how) {
    if (!slot->ptr) return;
    bw_fz_check(ctx, slot, slot->len, "content changed before free");
    ctx->live_bytes -= slot->req;
    switch (how % 3) {
    case 0:
        free(slot->ptr);
        break;
    case 1:
        if (slot->kind == BW_FZ_PLAIN)
            free_sized(slot->ptr, slot->req);
        else if (slot->kind == BW_FZ_ALIGNED)
            free_aligned_sized(slot->ptr, slot->align, slot->req);
        else
            free(slot->ptr);
        break;
    default:
        /* free_sized(p, 0) and free_aligned_sized of an unaligned block
         * are not valid calls; size-less free is. */
        if (slot->kind == BW_FZ_ALIGNED)
            free_aligned_sized(slot->ptr, slot->align, slot->req);
        else
            free(slot->ptr);
        break;
    }
    memset(slot, 0, sizeof *slot);
}

/* A request that could not fit the live-bytes cap is cut down to a small
 * one, so the run goes on instead of ending. */
static size_t bw_fz_capped(const bw_fz_ctx_t *ctx, size_t size) {
    return ctx->live_bytes + size > ctx->max_live ? size & 0xfff : size;
}

static void bw_fz_expect_errno(bw_fz_ctx_t *ctx, const char *what, const void *p, int want) {
    int got = errno;
    if (p) bw_fz_fail(ctx, what, p, 0, 0);
    if (got != want) bw_fz_fail(ctx, "wrong errno", NULL, (size_t)got, (size_t)want);
}

/* Calls that cannot succeed: NULL (or an error code) with the errno C and
 * POSIX name, and the block passed to realloc untouched. */
static void bw_fz_impossible(bw_fz_ctx_t *ctx, bw_fz_slot_t *slot, uint8_t which) {
    /* Through a volatile, so the compiler neither warns about nor folds the
     * impossible sizes. */
    static volatile size_t max = SIZE_MAX;
    size_t huge = max;
    void *q = &q; /* a sentinel: posix_memalign must leave it alone */
    int rc;
    errno = 0;
    switch (which % 8) {
    case 0:
        bw_fz_expect_errno(ctx, "malloc above PTRDIFF_MAX", malloc(huge - 4095), ENOMEM);
        break;
    case 1:
        bw_fz_expect_errno(ctx, "malloc of 2^62", malloc(huge >> 2), ENOMEM);
        break;
    case 2:
        bw_fz_expect_errno(ctx, "calloc overflow", calloc(huge / 2, 3), ENOMEM);
        break;
    case 3:
        if (!slot->ptr) break;
        bw_fz_expect_errno(ctx, "realloc above PTRDIFF_MAX", realloc(slot->ptr, huge - 64), ENOMEM);
        bw_fz_check(ctx, slot, slot->len, "content changed by a failed realloc");
        break;
    case 4:
        if (!slot->ptr) break;
        bw_fz_expect_errno(ctx, "reallocarray overflow", reallocarray(slot->ptr, huge / 4, 8),
                           ENOMEM);
        bw_fz_check(ctx, slot, slot->len, "content changed by a failed reallocarray");
        break;
    case 5: {
        static const size_t bad[] = {0, 3, 4, 24, 4097};
        size_t align = bad[slot->tag % 5];
        rc = posix_memalign(&q, align, 64);
        if (rc != EINVAL || q != &q) bw_fz_fail(ctx, "posix_memalign bad alignment", q, rc, align);
        break;
    }
    case 6:
        bw_fz_expect_errno(ctx, "aligned_alloc above 2^63", aligned_alloc(huge / 2 + 2, 1), EINVAL);
        break;
    default:
        rc = posix_memalign(&q, 64, huge - 64);
        if (rc != ENOMEM || q != &q) bw_fz_fail(ctx, "posix_memalign too big", q, rc, 0);
        break;
    }
}

/* realloc, reallocarray and realloc to 0: check the block, then check the
 * kept prefix at its new place and extend the pattern over the rest. */
static void bw_fz_realloc(bw_fz_ctx_t *ctx, bw_fz_slot_t *slot, size_t size, int array) {
    if (slot->ptr) bw_fz_check(ctx, slot, slot->len, "content changed before realloc");
    size_t count = 1, unit = size;
    if (array && size) { /* reallocarray(p, count, unit) with count * unit == size */
        count = (size & 7) + 1;
        while (size % count) count--;
        unit = size / count;
    }
    errno = 0;
    void *p = array ? reallocarray(slot->ptr, count, unit) : realloc(slot->ptr, size);
    bw_fz_note(ctx, array ? 'A' : 'R', p, size);
    if (size == 0 && slot->ptr) {
        /* glibc's realloc(p, 0): frees p and returns NULL. */
        if (p) bw_fz_fail(ctx, "realloc(p, 0) returned a block", p, 0, 0);
        ctx->live_bytes -= slot->req;
        memset(slot, 0, sizeof *slot);
        return;
    }
    if (!p) bw_fz_fail(ctx, "realloc failed", slot->ptr, size, (size_t)errno);
    bw_fz_check_align(ctx, p, size, 0);
    if (!slot->ptr) {
        bw_fz_adopt(ctx, slot, p, size, 0, BW_FZ_PLAIN);
        return;
    }
    size_t kept = slot->len < size ? slot->len : size;
    ctx->live_bytes = ctx->live_bytes - slot->req + size;
    slot->ptr = p;
    bw_fz_check(ctx, slot, kept, "prefix changed by realloc");
    bw_fz_fill(slot, kept, size);
    slot->req = size;
    slot->len = size;
    slot->kind = BW_FZ_PLAIN; /* C23: a realloc'd block is freed with free_sized */
    slot->align = 0;
}

/* An alignment from 1 to 128 KiB, now and then one that is not a power of
 * two (glibc's memalign and aligned_alloc accept those; bulwark rounds them
 * up). *pow2 is the power of two honoured, 0 when none was asked. */
static size_t bw_fz_alignment(bw_fz_input_t *in, size_t *pow2) {
    uint8_t a = bw_fz_u8(in);
    size_t align = (size_t)1 << (a % 18);
    *pow2 = align;
    if (a >= 240) {
        align += 8;
        *pow2 = 0;
    }
    return align;
}

int bw_fz_step(bw_fz_ctx_t *ctx, bw_fz_input_t *in) {
    if (bw_fz_done(in) || ctx->ops >= ctx->max_ops) return 0;
    ctx->ops++;
    uint8_t op = bw_fz_u8(in);
    bw_fz_slot_t *slot = &ctx->slots[bw_fz_u8(in) % ctx->nslots];
    size_t size, align, pow2;
    void *p;
    switch (op % 16) {
    case 0:
    case 1:
        size = bw_fz_capped(ctx, bw_fz_size(in));
        bw_fz_free_slot(ctx, slot, op >> 4);
        p = malloc(size);
        bw_fz_note(ctx, 'M', p, size);
        if (!p) bw_fz_fail(ctx, "malloc failed", NULL, size, (size_t)errno);
        bw_fz_check_align(ctx, p, size, 0);
        bw_fz_adopt(ctx, slot, p, size, 0, BW_FZ_PLAIN);
        break;
    case 2: {
        size_t count = bw_fz_u8(in) % 16u + 1;
        size = bw_fz_capped(ctx, bw_fz_size(in)) / count;
        bw_fz_free_slot(ctx, slot, op >> 4);
        p = calloc(count, size);
        bw_fz_note(ctx, 'C', p, count * size);
        if (!p) bw_fz_fail(ctx, "calloc failed", NULL, count * size, (size_t)errno);
        bw_fz_check_align(ctx, p, count * size, 0);
        for (size_t i = 0; i < count * size; i++)
            if (((unsigned char *)p)[i])
                bw_fz_fail(ctx, "calloc block not zero", p, i, count * size);
        bw_fz_adopt(ctx, slot, p, count * size, 0, BW_FZ_PLAIN);
        break;
    }
    case 3:
    case 4:
        size = bw_fz_size(in);
        if (size > (slot->ptr ? slot->req : 0)) size = bw_fz_capped(ctx, size);
        bw_fz_realloc(ctx, slot, size, 0);
        break;
    case 5:
    case 6:
    case 15:
        bw_fz_free_slot(ctx, slot, op >> 4);
        break;
    case 7:
    case 9:
        align = bw_fz_alignment(in, &pow2);
        size = bw_fz_capped(ctx, bw_fz_size(in));
        bw_fz_free_slot(ctx, slot, op >> 4);
        p = op % 16 == 7 ? aligned_alloc(align, size) : memalign(align, size);
        bw_fz_note(ctx, op % 16 == 7 ? 'L' : 'G', p, size);
        if (!p) bw_fz_fail(ctx, "aligned allocation failed", NULL, size, align);
        if (!pow2) { /* rounded up to the next power of two */
            size_t rounded = 1;
            while (rounded < align) rounded <<= 1;
            bw_fz_check_align(ctx, p, size, rounded);
        } else {
            bw_fz_check_align(ctx, p, size, pow2);
        }
        bw_fz_adopt(ctx, slot, p, size, pow2, pow2 ? BW_FZ_ALIGNED : 0);
        break;
    case 8: {
        align = bw_fz_alignment(in, &pow2);
        if (!pow2 || pow2 < sizeof(void *)) align = sizeof(void *);
        size = bw_fz_capped(ctx, bw_fz_size(in));
        bw_fz_free_slot(ctx, slot, op >> 4);
        p = NULL;
        int rc = posix_memalign(&p, align, size);
        bw_fz_note(ctx, 'P', p, size);
        if (rc || !p) bw_fz_fail(ctx, "posix_memalign failed", p, size, (size_t)rc);
        bw_fz_check_align(ctx, p, size, align);
        bw_fz_adopt(ctx, slot, p, size, align, BW_FZ_ALIGNED);
        break;
    }
    case 10:
        /* Every byte up to malloc_usable_size may be used (glibc's
         * contract, which programs rely on): extend the pattern over it. */
        if (slot->ptr) {
            size_t usable = malloc_usable_size(slot->ptr);
            if (usable < slot->req)
                bw_fz_fail(ctx, "usable size below the request", slot->ptr, usable, slot->req);
            if (usable > slot->len) {
                bw_fz_fill(slot, slot->len, usable);
                slot->len = usable;
            }
        }
        break;
    case 11:
        size = bw_fz_size(in);
        if (size > (slot->ptr ? slot->req : 0)) size = bw_fz_capped(ctx, size);
        bw_fz_realloc(ctx, slot, size, 1);
        break;
    case 12:
        bw_fz_impossible(ctx, slot, bw_fz_u8(in));
        break;
    case 13:
        bw_fz_realloc(ctx, slot, 0, 0);
        break;
    default: /* 14: valloc and pvalloc, freed with plain free */
        size = bw_fz_capped(ctx, bw_fz_size(in));
        bw_fz_free_slot(ctx, slot, op >> 4);
        p = op & 0x80 ? pvalloc(size) : valloc(size);
        bw_fz_note(ctx, op & 0x80 ? 'V' : 'v', p, size);
        if (!p) bw_fz_fail(ctx, "valloc failed", NULL, size, (size_t)errno);
        /* pvalloc asks for whole pages (one for 0): all of them are the
         * block, and its end is where an overflow starts. */
        if (op & 0x80) size = size ? (size + 4095) & ~(size_t)4095 : 4096;
        bw_fz_check_align(ctx, p, size, 4096);
        bw_fz_adopt(ctx, slot, p, size, 0, 0);
        break;
    }
    return 1;
}

void bw_fz_release_all(bw_fz_ctx_t *ctx) {
    for (unsigned i = 0; i < ctx->nslots; i++) bw_fz_free_slot(ctx, &ctx->slots[i], (uint8_t)i);
}

void bw_fz_run(bw_fz_ctx_t *ctx, bw_fz_input_t *in) {
    while (bw_fz_step(ctx, in)) {
    }
    bw_fz_release_all(ctx);
}
