/* bw_fuzz.h — the op engine shared by the harnesses in fuzz/ (see
 * fuzz/README.md).
 *
 * An input is a byte string read front to back: each op takes an op byte
 * and then as many argument bytes as it needs; bytes past the end read as
 * zero, so every input is valid and a shorter one is a prefix of a longer
 * run. Every block the engine holds is filled with a pattern derived from
 * its tag (one per allocation) and the byte's index, and is checked before
 * it is freed or reallocated and after realloc for the kept prefix: any
 * difference, a misaligned result, a usable size below the request or a
 * wrong errno is a harness failure (a line on stderr, then abort), which
 * AFL++ and libFuzzer record as a crash. A bulwark report (SIGABRT after
 * its one line) is a crash too: the engine only ever makes valid calls. */
#ifndef BW_FUZZ_H
#define BW_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* glibc 2.36 does not declare the C23 sized frees; bulwark exports both. */
void free_sized(void *ptr, size_t size);
void free_aligned_sized(void *ptr, size_t alignment, size_t size);

/* The input, consumed from the front. */
typedef struct {
    const uint8_t *data;
    size_t size;
    size_t pos;
} bw_fz_input_t;

uint8_t bw_fz_u8(bw_fz_input_t *in);
uint32_t bw_fz_u16(bw_fz_input_t *in);
uint32_t bw_fz_u24(bw_fz_input_t *in);
/* A size from 0 to 4 MiB, small ones far more likely (see bw_fuzz.c). */
size_t bw_fz_size(bw_fz_input_t *in);
static inline int bw_fz_done(const bw_fz_input_t *in) {
    return in->pos >= in->size;
}

/* How a block was obtained: it decides which sized free is valid (C23
 * free_sized for malloc/calloc/realloc, free_aligned_sized for the
 * aligned allocations). */
enum { BW_FZ_PLAIN = 1, BW_FZ_ALIGNED = 2 };

typedef struct {
    unsigned char *ptr; /* NULL: the slot is empty */
    size_t req;         /* the size asked for (what a sized free passes) */
    size_t len;         /* bytes holding the pattern (req, or the usable size) */
    size_t align;       /* alignment passed (power of two), for free_aligned_sized */
    uint32_t tag;       /* pattern of this allocation */
    uint8_t kind;       /* BW_FZ_PLAIN or BW_FZ_ALIGNED */
} bw_fz_slot_t;

#define BW_FZ_SLOTS    256
#define BW_FZ_MAX_OPS  4096              /* ops per input: bounds the time of one run */
#define BW_FZ_MAX_LIVE (48u << 20)       /* bytes live at once, across the slots */
#define BW_FZ_MAX_SIZE ((size_t)4 << 20) /* largest request */

typedef struct bw_fz_ctx {
    bw_fz_slot_t slots[BW_FZ_SLOTS];
    unsigned nslots;   /* slots in use by this context (<= BW_FZ_SLOTS) */
    size_t live_bytes; /* sum of req over the full slots */
    size_t max_live;   /* cap on live_bytes */
    uint32_t next_tag;
    unsigned ops;
    unsigned max_ops; /* BW_FZ_MAX_OPS unless the harness sets fewer */
    const char *name; /* for failure messages: "ops", "threads[1]", ... */
    /* Called after every allocation call with its op letter, result and
     * request (the seed harness records them); may be NULL. */
    void (*note)(struct bw_fz_ctx *ctx, char op, const void *result, size_t size);
    void *note_arg;
} bw_fz_ctx_t;

void bw_fz_init(bw_fz_ctx_t *ctx, const char *name, unsigned nslots, size_t max_live);
/* Runs one op from `in`; returns 0 once the input or the op budget is
 * exhausted. */
int bw_fz_step(bw_fz_ctx_t *ctx, bw_fz_input_t *in);
/* Runs ops until the input is exhausted, then frees every slot (checked). */
void bw_fz_run(bw_fz_ctx_t *ctx, bw_fz_input_t *in);
void bw_fz_release_all(bw_fz_ctx_t *ctx);

/* Pattern helpers, also for blocks that move between contexts. */
void bw_fz_fill(bw_fz_slot_t *slot, size_t from, size_t to);
void bw_fz_check(const bw_fz_ctx_t *ctx, const bw_fz_slot_t *slot, size_t len, const char *where);
/* Checks and frees the slot's block (with free, free_sized or
 * free_aligned_sized, chosen by `how`), then empties the slot. */
void bw_fz_free_slot(bw_fz_ctx_t *ctx, bw_fz_slot_t *slot, uint8_t how);
/* Writes to stderr and appends to the file BW_FUZZ_LOG names, if any. */
void bw_fz_log(const char *text, size_t len);
/* Reports a harness failure (one line, bw_fz_log) and aborts. */
_Noreturn void bw_fz_fail(const bw_fz_ctx_t *ctx, const char *what, const void *ptr, size_t a,
                          size_t b);

#endif
