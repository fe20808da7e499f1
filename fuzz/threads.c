/* threads.c — the multi-threaded harness: three threads run op sequences
 * concurrently and pass blocks to each other, so blocks are freed,
 * reallocated and checked by threads that did not allocate them (remote
 * frees), some of them after the allocating thread exited.
 *
 * Replayable: byte i of the input belongs to thread i % 3, and blocks change
 * hands only between two barriers. In a phase each thread runs ops from its
 * own bytes (until it has read BW_TH_PHASE_BYTES of them) and may put blocks
 * into its outbox or take them from its inbox; between phases, each outbox
 * moves into the inbox of the next thread. Which block ends up where, and
 * every pattern, depend only on the input; what races is the allocator's
 * work, concurrent as in a real program. */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bw_fuzz.h"

#define BW_TH_THREADS     3
#define BW_TH_SLOTS       64
#define BW_TH_BOX         8
#define BW_TH_PHASE_BYTES 48

typedef struct {
    bw_fz_ctx_t ctx;
    bw_fz_input_t in;
    uint8_t *bytes; /* this thread's share of the input */
    bw_fz_slot_t inbox[2 * BW_TH_BOX];
    bw_fz_slot_t outbox[BW_TH_BOX];
    char name[16];
    int leave_blocks; /* exit with live slots: the main thread frees them */
} bw_th_t;

static bw_th_t bw_th[BW_TH_THREADS];
static pthread_barrier_t bw_th_barrier;
static int bw_th_running; /* threads with input left; read only after a barrier */
static int bw_th_done[BW_TH_THREADS];

static bw_fz_slot_t *bw_th_box_slot(bw_fz_slot_t *box, unsigned n, uint8_t pick, int full) {
    for (unsigned i = 0; i < n; i++) {
        bw_fz_slot_t *s = &box[(pick + i) % n];
        if ((s->ptr != NULL) == full) return s;
    }
    return NULL;
}

/* The ops that move blocks between threads; anything else is an engine op. */
static void bw_th_step(bw_th_t *t) {
    bw_fz_input_t *in = &t->in;
    uint8_t sel = in->pos < in->size ? in->data[in->pos] : 0;
    if (sel < 200) {
        bw_fz_step(&t->ctx, in);
        return;
    }
    in->pos++;
    uint8_t arg = bw_fz_u8(in);
    bw_fz_slot_t *mine = &t->ctx.slots[arg % t->ctx.nslots];
    bw_fz_slot_t *box;
    switch (sel % 4) {
    case 0: /* give: a block of mine into the outbox */
        box = bw_th_box_slot(t->outbox, BW_TH_BOX, arg, 0);
        if (box && mine->ptr) {
            bw_fz_check(&t->ctx, mine, mine->len, "content changed before handoff");
            t->ctx.live_bytes -= mine->req;
            *box = *mine;
            memset(mine, 0, sizeof *mine);
        }
        break;
    case 1: /* take: a block from the inbox becomes mine */
        box = bw_th_box_slot(t->inbox, 2 * BW_TH_BOX, arg, 1);
        if (box) {
            bw_fz_free_slot(&t->ctx, mine, arg);
            bw_fz_check(&t->ctx, box, box->len, "content changed in handoff");
            t->ctx.live_bytes += box->req;
            *mine = *box;
            memset(box, 0, sizeof *box);
        }
        break;
    case 2: /* a remote free, by any of the three frees */
        box = bw_th_box_slot(t->inbox, 2 * BW_TH_BOX, arg, 1);
        if (box) {
            t->ctx.live_bytes += box->req; /* bw_fz_free_slot takes it off again */
            bw_fz_free_slot(&t->ctx, box, bw_fz_u8(in));
        }
        break;
    default: /* a remote realloc: take it, then let the engine realloc it */
        box = bw_th_box_slot(t->inbox, 2 * BW_TH_BOX, arg, 1);
        if (box) {
            bw_fz_free_slot(&t->ctx, mine, arg);
            t->ctx.live_bytes += box->req;
            *mine = *box;
            memset(box, 0, sizeof *box);
            /* op 3 = realloc, on the slot just filled */
            uint8_t op[8] = {3, arg};
            bw_fz_input_t sub = {op, sizeof op, 0};
            size_t size = bw_fz_size(in);
            op[2] = 252; /* bw_fz_size: 24-bit size, modulo 4 MiB + 1 */
            op[3] = (uint8_t)size;
            op[4] = (uint8_t)(size >> 8);
            op[5] = (uint8_t)(size >> 16);
            bw_fz_step(&t->ctx, &sub);
        }
        break;
    }
}

/* Between barriers: thread (i + 1)'s inbox takes what fits from thread i's
 * outbox. Runs in one thread while the others wait. */
static void bw_th_rotate(void) {
    for (int i = 0; i < BW_TH_THREADS; i++) {
        bw_th_t *from = &bw_th[i], *to = &bw_th[(i + 1) % BW_TH_THREADS];
        for (unsigned j = 0; j < BW_TH_BOX; j++) {
            if (!from->outbox[j].ptr) continue;
            bw_fz_slot_t *dst = bw_th_box_slot(to->inbox, 2 * BW_TH_BOX, (uint8_t)j, 0);
            if (!dst) break;
            *dst = from->outbox[j];
            memset(&from->outbox[j], 0, sizeof from->outbox[j]);
        }
    }
}

static void *bw_th_main(void *arg) {
    bw_th_t *t = arg;
    int me = (int)(t - bw_th);
    for (;;) {
        size_t stop = t->in.pos + BW_TH_PHASE_BYTES;
        while (!bw_fz_done(&t->in) && t->in.pos < stop && t->ctx.ops < t->ctx.max_ops)
            bw_th_step(t);
        int finished = bw_fz_done(&t->in) || t->ctx.ops >= t->ctx.max_ops;
        if (finished && !bw_th_done[me]) {
            bw_th_done[me] = 1;
            __atomic_fetch_sub(&bw_th_running, 1, __ATOMIC_RELAXED);
        }
        pthread_barrier_wait(&bw_th_barrier);
        int any = __atomic_load_n(&bw_th_running, __ATOMIC_RELAXED);
        if (me == 0) bw_th_rotate();
        pthread_barrier_wait(&bw_th_barrier);
        if (!any) break;
    }
    if (!t->leave_blocks) bw_fz_release_all(&t->ctx);
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* The first byte says which threads exit with blocks still live. */
    uint8_t flags = size ? data[0] : 0;
    if (size) data++, size--;
    bw_th_running = BW_TH_THREADS;
    pthread_barrier_init(&bw_th_barrier, NULL, BW_TH_THREADS);
    for (int i = 0; i < BW_TH_THREADS; i++) {
        bw_th_t *t = &bw_th[i];
        memset(t, 0, sizeof *t);
        bw_th_done[i] = 0;
        memcpy(t->name, "thread0", 8);
        t->name[6] = (char)('0' + i);
        size_t n = size / BW_TH_THREADS + (size % BW_TH_THREADS > (size_t)i);
        t->bytes = malloc(n ? n : 1);
        if (!t->bytes) bw_fz_fail(NULL, "out of memory", NULL, n, 0);
        for (size_t j = 0; j < n; j++) t->bytes[j] = data[j * BW_TH_THREADS + (size_t)i];
        t->in = (bw_fz_input_t){t->bytes, n, 0};
        t->leave_blocks = (flags >> i) & 1;
        bw_fz_init(&t->ctx, t->name, BW_TH_SLOTS, BW_FZ_MAX_LIVE / BW_TH_THREADS);
    }
    pthread_t tid[BW_TH_THREADS];
    for (int i = 0; i < BW_TH_THREADS; i++)
        if (pthread_create(&tid[i], NULL, bw_th_main, &bw_th[i]))
            bw_fz_fail(NULL, "pthread_create failed", NULL, (size_t)i, 0);
    for (int i = 0; i < BW_TH_THREADS; i++) pthread_join(tid[i], NULL);
    pthread_barrier_destroy(&bw_th_barrier);
    /* What the threads left: their slots (if told to keep them) and both
     * boxes, freed here by the main thread after their owners exited. */
    for (int i = 0; i < BW_TH_THREADS; i++) {
        bw_th_t *t = &bw_th[i];
        bw_fz_release_all(&t->ctx);
        for (unsigned j = 0; j < 2 * BW_TH_BOX; j++) {
            t->ctx.live_bytes += t->inbox[j].req;
            bw_fz_free_slot(&t->ctx, &t->inbox[j], (uint8_t)j);
        }
        for (unsigned j = 0; j < BW_TH_BOX; j++) {
            t->ctx.live_bytes += t->outbox[j].req;
            bw_fz_free_slot(&t->ctx, &t->outbox[j], (uint8_t)j);
        }
        free(t->bytes);
    }
    return 0;
}
