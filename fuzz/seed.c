/* seed.c — the BULWARK_SEED determinism harness (fuzz profile).
 *
 * The harness runs the input's op sequence (bw_fuzz.c) in two fresh
 * processes with the same BULWARK_SEED and fails when what they observed
 * differs. This file builds twice: as the harness (LLVMFuzzerTestOneInput)
 * and, with -DBW_SEED_CHILD, as `seed-child`, the program each of the two
 * processes runs (fork + execve, so each is a new process that reads the seed
 * at start-up, exactly as a crash replayed with its seed would).
 *
 * Input: bytes 0-3 are the seed (BULWARK_SEED=<that u32>), byte 4 a flag
 * byte, the rest the op sequence. With flag bit 0, after the ops the child
 * writes one byte past the request of one live block and frees it: the fuzz
 * profile must then stop the child (the report line of bulwark, or a fault
 * at the guard page), identically in both runs.
 *
 * What is compared: each child writes one line per allocation call (op
 * letter, address, size), then "end"; the parent compares the two outputs,
 * the two exit statuses and the two stderr texts (bulwark's report line).
 *
 * What the seed governs, and therefore what is compared exactly: every
 * choice bulwark makes (README "BULWARK_SEED"): region bases, large-region
 * addresses, keys, canaries, placement, quarantine exits, and its clock,
 * which counts its own reads under a seed. So raw addresses and raw report
 * lines are compared, byte for byte (BW_SEED_GOVERNS_ADDRESSES and
 * BW_SEED_GOVERNS_TIME are 1). Built with either at 0 the harness falls
 * back to the weaker comparisons it made before the seed governed them:
 * addresses relative to the arena base ("a+<offset>", "m+<offset in
 * page>" outside it), and a difference after a child ran for
 * BW_SEED_SLOW_MS or more called inconclusive. Anything else the seed comes
 * to govern is checked by writing one more
 * line in bw_seed_note (child side); the parent compares whole outputs. */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bw_fuzz.h"
#include "bw_internal.h"

#ifndef BW_SEED_GOVERNS_ADDRESSES
#define BW_SEED_GOVERNS_ADDRESSES 1
#endif

#ifndef BW_SEED_GOVERNS_TIME
#define BW_SEED_GOVERNS_TIME 1
#endif
/* A child that ran this long may have crossed an aging boundary. */
#define BW_SEED_SLOW_MS (BW_PURGE_DELAY_MS - 50)

#define BW_SEED_HEADER 5 /* seed (4 bytes) and flags */

/* Writes "a+<hex>" / "m+<hex>" (or the raw "0x<hex>") for an address. */
static size_t bw_seed_addr(char *out, uintptr_t v, uintptr_t base) {
    static const char hex[] = "0123456789abcdef";
    char tmp[20];
    size_t n = 0, at = 0;
    if (BW_SEED_GOVERNS_ADDRESSES) {
        out[at++] = '0', out[at++] = 'x';
    } else if (v - base < BW_ARENA_SIZE) {
        out[at++] = 'a', out[at++] = '+';
        v -= base;
    } else {
        out[at++] = 'm', out[at++] = '+';
        v &= 4095;
    }
    do {
        tmp[n++] = hex[v & 15];
        v >>= 4;
    } while (v);
    while (n) out[at++] = tmp[--n];
    return at;
}

#ifdef BW_SEED_CHILD
/* ------------------------------------------------------------ the child */
static char bw_seed_out[1 << 18];
static size_t bw_seed_used;

static uint64_t bw_seed_start_ms;

/* The arena base and the time run so far go to descriptor 3, outside what
 * is compared: the parent needs the base to read the report's address as
 * an arena offset, and the time to judge a difference. */
static void bw_seed_tell_base(void) {
    char line[48];
    size_t at = bw_fmt_hex(line, bw_layout.arena_base);
    line[at++] = ' ';
    at += bw_fmt_u64(line + at, bw_os_now_ms() - bw_seed_start_ms);
    line[at++] = '\n';
    ssize_t unused = pwrite(3, line, at, 0);
    (void)unused;
}

static void bw_seed_flush(void) {
    size_t off = 0;
    while (off < bw_seed_used) {
        ssize_t w = write(1, bw_seed_out + off, bw_seed_used - off);
        if (w <= 0) break;
        off += (size_t)w;
    }
    bw_seed_used = 0;
}

/* A report aborts the child: what it observed so far is written first. */
static void bw_seed_on_signal(int sig) {
    bw_seed_flush();
    bw_seed_tell_base();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void bw_seed_line(const char *line, size_t len) {
    if (bw_seed_used + len > sizeof bw_seed_out) bw_seed_flush();
    memcpy(bw_seed_out + bw_seed_used, line, len);
    bw_seed_used += len;
}

static void bw_seed_note(bw_fz_ctx_t *ctx, char op, const void *result, size_t size) {
    (void)ctx;
    char line[64];
    size_t at = 0;
    line[at++] = op;
    line[at++] = ' ';
    at += bw_seed_addr(line + at, (uintptr_t)result, bw_layout.arena_base);
    line[at++] = ' ';
    at += bw_fmt_u64(line + at, size);
    line[at++] = '\n';
    bw_seed_line(line, at);
}

int main(void) {
    bw_seed_start_ms = bw_os_now_ms();
    static unsigned char input[1 << 20];
    size_t len = 0;
    ssize_t got;
    while (len < sizeof input && (got = pread(0, input + len, sizeof input - len, (off_t)len)) > 0)
        len += (size_t)got;
    signal(SIGABRT, bw_seed_on_signal);
    signal(SIGSEGV, bw_seed_on_signal);
    static bw_fz_ctx_t ctx;
    bw_fz_init(&ctx, "seed-child", BW_FZ_SLOTS, 16u << 20);
    ctx.max_ops = 1024;
    ctx.note = bw_seed_note;
    uint8_t flags = len > 4 ? input[4] : 0;
    bw_fz_input_t in = {input, len, len < BW_SEED_HEADER ? len : BW_SEED_HEADER};
    while (bw_fz_step(&ctx, &in)) {
    }
    if (flags & 1) {
        /* The planted bug: one byte past the request of the first live block
         * (from the slot the flags name), then the free that must see it. */
        for (unsigned i = 0; i < ctx.nslots; i++) {
            bw_fz_slot_t *slot = &ctx.slots[(i + (flags >> 1)) % ctx.nslots];
            if (!slot->ptr || slot->len != slot->req) continue;
            /* "plant <block> <request> <kind> <alignment>": which block. */
            char line[80];
            size_t at = 0;
            memcpy(line, "plant ", 6);
            at = 6;
            at += bw_seed_addr(line + at, (uintptr_t)slot->ptr, bw_layout.arena_base);
            line[at++] = ' ';
            at += bw_fmt_u64(line + at, slot->req);
            line[at++] = ' ';
            at += bw_fmt_u64(line + at, slot->kind);
            line[at++] = ' ';
            at += bw_fmt_u64(line + at, slot->align);
            line[at++] = '\n';
            bw_seed_line(line, at);
            bw_seed_flush();
            slot->ptr[slot->req] ^= 0x5a;
            free(slot->ptr);
            bw_seed_line("undetected\n", 11);
            memset(slot, 0, sizeof *slot);
            break;
        }
    }
    bw_fz_release_all(&ctx);
    bw_seed_line("end\n", 4);
    bw_seed_flush();
    bw_seed_tell_base();
    return 0;
}

#else
/* ----------------------------------------------------------- the parent */
extern char **environ;

typedef struct {
    pid_t pid;
    uint64_t started_ms, ended_ms; /* fork to waitpid, on bulwark's clock */
    int out, err, base;            /* memfds: the child's stdout, stderr and fd 3 */
    int status;
    char *out_text, *err_text, *base_text;
    size_t out_len, err_len;
} bw_seed_run_t;

static char bw_seed_child_path[4096];

/* seed-child sits next to the harness binary, unless BW_FUZZ_SEED_CHILD
 * names it. */
static void bw_seed_find_child(void) {
    if (bw_seed_child_path[0]) return;
    const char *env = getenv("BW_FUZZ_SEED_CHILD");
    if (env && *env && strlen(env) < sizeof bw_seed_child_path) {
        strcpy(bw_seed_child_path, env);
        return;
    }
    ssize_t n = readlink("/proc/self/exe", bw_seed_child_path, sizeof bw_seed_child_path - 16);
    if (n <= 0) bw_fz_fail(NULL, "readlink /proc/self/exe failed", NULL, (size_t)errno, 0);
    bw_seed_child_path[n] = 0;
    char *slash = strrchr(bw_seed_child_path, '/');
    strcpy(slash ? slash + 1 : bw_seed_child_path, "seed-child");
}

static char *bw_seed_slurp(int fd, size_t *len) {
    struct stat st;
    if (fstat(fd, &st)) bw_fz_fail(NULL, "fstat failed", NULL, (size_t)errno, 0);
    char *text = malloc((size_t)st.st_size + 1);
    if (!text) bw_fz_fail(NULL, "out of memory", NULL, (size_t)st.st_size, 0);
    size_t at = 0;
    ssize_t got;
    while (at < (size_t)st.st_size &&
           (got = pread(fd, text + at, (size_t)st.st_size - at, (off_t)at)) > 0)
        at += (size_t)got;
    text[at] = 0;
    *len = at;
    close(fd);
    return text;
}

static void bw_seed_spawn(bw_seed_run_t *run, int input, char **envp) {
    run->out = memfd_create("seed-out", 0);
    run->err = memfd_create("seed-err", 0);
    run->base = memfd_create("seed-base", 0);
    if (run->out < 0 || run->err < 0 || run->base < 0)
        bw_fz_fail(NULL, "memfd_create failed", NULL, (size_t)errno, 0);
    run->started_ms = bw_os_now_ms();
    run->pid = fork();
    if (run->pid < 0) bw_fz_fail(NULL, "fork failed", NULL, (size_t)errno, 0);
    if (run->pid == 0) {
        if (dup2(input, 0) < 0 || dup2(run->out, 1) < 0 || dup2(run->err, 2) < 0 ||
            dup2(run->base, 3) < 0)
            _exit(126);
        /* AFL++'s fork-server descriptors and the rest stay behind. */
        close_range(4, ~0u, 0);
        char *argv[] = {bw_seed_child_path, NULL};
        execve(bw_seed_child_path, argv, envp);
        _exit(127);
    }
}

static void bw_seed_wait(bw_seed_run_t *run) {
    while (waitpid(run->pid, &run->status, 0) < 0)
        if (errno != EINTR) bw_fz_fail(NULL, "waitpid failed", NULL, (size_t)errno, 0);
    run->ended_ms = bw_os_now_ms();
    run->out_text = bw_seed_slurp(run->out, &run->out_len);
    run->err_text = bw_seed_slurp(run->err, &run->err_len);
    size_t unused;
    run->base_text = bw_seed_slurp(run->base, &unused);
}

/* Rewrites every 0x number of a child's stderr relative to its arena base
 * (nothing to rewrite once raw addresses are compared). */
static char *bw_seed_normalise(const char *text, size_t len, uintptr_t base) {
    char *out = malloc(len * 2 + 64);
    if (!out) bw_fz_fail(NULL, "out of memory", NULL, len, 0);
    size_t at = 0;
    for (size_t i = 0; i < len;) {
        if (!BW_SEED_GOVERNS_ADDRESSES && text[i] == '0' && i + 1 < len && text[i + 1] == 'x') {
            uintptr_t v = 0;
            size_t j = i + 2;
            for (; j < len; j++) {
                char c = text[j];
                int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
                if (d < 0) break;
                v = v << 4 | (uintptr_t)d;
            }
            at += bw_seed_addr(out + at, v, base);
            i = j;
            continue;
        }
        out[at++] = text[i++];
    }
    out[at] = 0;
    return out;
}

static int bw_seed_slow; /* a child ran long enough for the clock to matter */

/* Prints both versions of what differs and aborts, or returns when a slow
 * child makes the difference inconclusive. */
static int bw_seed_differ(const char *what, const char *a, const char *b) {
    size_t line = 1, i = 0;
    while (a[i] && a[i] == b[i]) {
        if (a[i] == '\n') line++;
        i++;
    }
    while (i && a[i - 1] != '\n') i--;
    const char *ea = strchr(a + i, '\n'), *eb = strchr(b + i, '\n');
    int la = ea ? (int)(ea - (a + i)) : (int)strlen(a + i);
    int lb = eb ? (int)(eb - (b + i)) : (int)strlen(b + i);
    char msg[400];
    int n =
        snprintf(msg, sizeof msg, "seed: %s differs at line %zu:\n  first:  %.*s\n  second: %.*s\n",
                 what, line, la > 150 ? 150 : la, a + i, lb > 150 ? 150 : lb, b + i);
    size_t len = n > 0 && (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;
    if (!bw_seed_slow) {
        bw_fz_log(msg, len);
        abort();
    }
    static const char note[] = "seed: inconclusive: a child ran past the aging interval\n";
    ssize_t unused = write(2, msg, len);
    unused = write(2, note, sizeof note - 1);
    (void)unused;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bw_seed_find_child();
    uint32_t seed = 0;
    for (size_t i = 0; i < 4 && i < size; i++) seed |= (uint32_t)data[i] << (8 * i);

    /* The environment, with BULWARK_SEED replaced. */
    size_t n = 0;
    while (environ[n]) n++;
    char **envp = malloc((n + 2) * sizeof *envp);
    if (!envp) bw_fz_fail(NULL, "out of memory", NULL, n, 0);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "BULWARK_SEED=", 13) != 0) envp[k++] = environ[i];
    char seed_var[32] = "BULWARK_SEED=";
    size_t at = 13;
    at += bw_fmt_u64(seed_var + at, seed);
    seed_var[at] = 0;
    envp[k++] = seed_var;
    envp[k] = NULL;

    int input = memfd_create("seed-input", 0);
    if (input < 0) bw_fz_fail(NULL, "memfd_create failed", NULL, (size_t)errno, 0);
    for (size_t off = 0; off < size;) {
        ssize_t w = write(input, data + off, size - off);
        if (w <= 0) bw_fz_fail(NULL, "write failed", NULL, (size_t)errno, 0);
        off += (size_t)w;
    }

    bw_seed_run_t runs[2];
    memset(runs, 0, sizeof runs);
    bw_seed_spawn(&runs[0], input, envp);
    bw_seed_spawn(&runs[1], input, envp);
    bw_seed_wait(&runs[0]);
    bw_seed_wait(&runs[1]);
    close(input);
    free(envp);

    /* "<arena base hex> <ms>" from each child's descriptor 3. */
    char *rest;
    uintptr_t base0 = (uintptr_t)strtoull(runs[0].base_text, &rest, 16);
    unsigned long ms0 = strtoul(rest, NULL, 10);
    uintptr_t base1 = (uintptr_t)strtoull(runs[1].base_text, &rest, 16);
    unsigned long ms1 = strtoul(rest, NULL, 10);
    /* The child's own count starts at main, after bulwark started: the
     * parent's fork-to-wait time covers the whole process. */
    for (int i = 0; i < 2; i++) {
        unsigned long whole = (unsigned long)(runs[i].ended_ms - runs[i].started_ms);
        if (i == 0 && whole > ms0) ms0 = whole;
        if (i == 1 && whole > ms1) ms1 = whole;
    }
    bw_seed_slow = !BW_SEED_GOVERNS_TIME && (ms0 >= BW_SEED_SLOW_MS || ms1 >= BW_SEED_SLOW_MS);

    /* The op lines: identical, byte for byte (addresses are already
     * relative to the arena base, or raw when the seed governs them). */
    if (runs[0].out_len != runs[1].out_len ||
        memcmp(runs[0].out_text, runs[1].out_text, runs[0].out_len))
        bw_seed_differ("the sequence of results", runs[0].out_text, runs[1].out_text);
    if (runs[0].status != runs[1].status) {
        char a[32], b[32];
        a[bw_fmt_u64(a, (uint64_t)runs[0].status)] = 0;
        b[bw_fmt_u64(b, (uint64_t)runs[1].status)] = 0;
        bw_seed_differ("the wait status", a, b);
    }
    /* stderr: a report names a block by address, rewritten relative to
     * that child's own arena base (from its descriptor 3) to compare. */
    char *err0 = bw_seed_normalise(runs[0].err_text, runs[0].err_len, base0);
    char *err1 = bw_seed_normalise(runs[1].err_text, runs[1].err_len, base1);
    if (strcmp(err0, err1)) bw_seed_differ("stderr", err0, err1);

    /* Same in both: now judge what they did. A planted overflow must stop
     * the child; without one, the child must succeed. */
    int planted = strstr(runs[0].out_text, "plant ") != NULL;
    int clean = WIFEXITED(runs[0].status) && WEXITSTATUS(runs[0].status) == 0;
    if (planted && clean) bw_fz_fail(NULL, "seed: a planted overflow went undetected", NULL, 0, 0);
    if (!planted && !clean) {
        bw_fz_log(runs[0].err_text, runs[0].err_len);
        bw_fz_fail(NULL, "seed: the child failed", NULL, (size_t)runs[0].status, 0);
    }
    for (int i = 0; i < 2; i++)
        free(runs[i].out_text), free(runs[i].err_text), free(runs[i].base_text);
    free(err0);
    free(err1);
    return 0;
}
#endif
