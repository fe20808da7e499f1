/* random.c — the per-thread CSPRNG (DESIGN.md layer "random").
 *
 * Each heap keys a ChaCha20 keystream (libsodium crypto_stream_chacha20)
 * from the kernel (getrandom, os.c's bw_os_random) and consumes it 8 bytes
 * at a time from a 1 KiB buffer: a draw on the fast path is a load and an
 * increment, the cipher runs once every 128 draws, and no draw is a system
 * call. The key is replaced after fork (the child must not repeat its
 * parent's choices), and the same getrandom call that draws a key fills the
 * first buffer, so a forked child that draws fewer than 128 words runs no
 * libsodium code at all: a fork server's child touched 8 pages of libsodium
 * and libc to re-key (randombytes_buf, its getrandom stub, the cipher and
 * its constants, explicit_bzero), each a page fault, since fork copies no
 * page table entry of a library's code.
 * Every other random choice (region bases, large-region addresses, a
 * canary drawn before a thread has a heap) takes bytes from
 * bw_random_bytes. No other entropy source is read (os.c's clock is
 * replaced by a count while seeded, see bw_os_now_ms).
 *
 * The fuzz profile may take a fixed seed from BULWARK_SEED so a crash
 * reproduces byte for byte: then every key and every byte above comes from
 * ChaCha20 keyed by the seed and the process's lineage (0 in the first
 * process; a forked child's is derived from its parent's lineage and the
 * number of forks the parent made, so a child is reproducible and siblings
 * differ), never from the kernel. No other profile reads the environment,
 * and none does in a set-uid/set-gid process (AT_SECURE). Nothing here
 * allocates. */
#include <fcntl.h>
#include <sodium.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "heap.h"
#include "hot.h"
#include "os.h"
#include "random.h"
#include "report.h"

static uint64_t bw_lineage;                /* 0, or derived at each fork (seeded) */
static uint64_t bw_forks_made;             /* by this process, counted in prepare */
static atomic_uint_fast64_t bw_seed_block; /* next block of the process stream */

/* Nonces of the seeded key: heaps use their stream number (below 2^16);
 * these two sit far above. */
#define BW_NONCE_SECRETS 0xffffffffffffffffull
#define BW_NONCE_PROCESS 0xfffffffffffffffeull

/* ChaCha20 keyed by seed || lineage, at `nonce`, from 64-byte block
 * `block` on (crypto_stream_chacha20_xor_ic over zeros: the keystream). */
static void bw_seeded_stream(void *out, size_t size, uint64_t nonce, uint64_t block) {
    unsigned char key[crypto_stream_chacha20_KEYBYTES] = {0};
    unsigned char n[crypto_stream_chacha20_NONCEBYTES];
    memcpy(key, &bw_secrets.seed, sizeof bw_secrets.seed);
    memcpy(key + 8, &bw_lineage, sizeof bw_lineage);
    memcpy(n, &nonce, sizeof n);
    memset(out, 0, size);
    crypto_stream_chacha20_xor_ic(out, out, size, n, block, key);
}

/* The kernel's random bytes: getrandom(2) (bw_os_random), or where the
 * kernel refuses it libsodium's randombytes_buf (/dev/urandom). Never
 * allocates. */
static void bw_kernel_bytes(void *buf, size_t size) {
    if (!bw_os_random(buf, size)) randombytes_buf(buf, size);
}

/* Random bytes for choices outside the heaps' keystreams: the kernel's,
 * or, with a seed, the process stream, whose blocks are taken in turn by an
 * atomic counter (thread-safe; reproducible as far as the calls come in the
 * same order). */
void bw_random_bytes(void *buf, size_t size) {
    if (!bw_random_seeded()) {
        bw_kernel_bytes(buf, size);
        return;
    }
    uint64_t blocks = (size + 63) / 64;
    uint64_t first = atomic_fetch_add_explicit(&bw_seed_block, blocks, memory_order_relaxed);
    bw_seeded_stream(buf, size, BW_NONCE_PROCESS, first);
}

/* A section of its own, which the linker puts after the file's other
 * writable data, right before .bss: sealed, the page then sits between the
 * two, one mapping more (in .bss it split .bss in two: two more; a
 * fuzz-profile process had 48 mappings, 47 now). A program that has
 * sections of its own there may put it between them (test_vma_count). */
bw_secrets_t bw_secrets __attribute__((section("bw_sealed")));
_Static_assert(sizeof(bw_secrets_t) == 4096, "the secrets fill the page they seal");

/* The process-wide multipliers (random.h, bw_secrets_t): from the
 * kernel, or from BULWARK_SEED so that a crash replays exactly.
 * Forced odd, so a multiply by one is a bijection. */
static void bw_secrets_draw(void) {
    uint64_t words[3];
    if (bw_random_seeded())
        bw_seeded_stream(words, sizeof words, BW_NONCE_SECRETS, 0);
    else
        bw_kernel_bytes(words, sizeof words);
    bw_secrets.link_mul1 = words[0] | 1;
    bw_secrets.link_mul2 = words[1] | 1;
    bw_secrets.canary_mul = words[2] | 1;
}

/* Once initialisation succeeded: the secrets' page becomes read-only. */
void bw_secrets_seal(void) {
    bw_os_protect_readonly(&bw_secrets, sizeof bw_secrets);
}

#if BW_SEED_FROM_ENV || BW_PAGE_MODE
/* The value of environment variable `name` ("NAME="), or NULL; none in a
 * set-user-ID or set-group-ID program (AT_SECURE). getenv does not
 * allocate; but a malloc made before libc has set `environ` (clang's
 * -fsanitize=fuzzer binaries: a runtime start-up function in
 * .preinit_array allocates) finds no variable at all, so then the kernel's
 * copy, /proc/self/environ, is read into a static buffer (raw syscalls, no
 * allocation; the first 64 KiB). The value lasts until the next call. */
extern char **environ;
static const char *bw_env_text(const char *name) {
    if (getauxval(AT_SECURE)) return NULL;
    size_t name_length = strlen(name);
    if (environ) return getenv(name);
    static char buffer[65536];
    int fd = open("/proc/self/environ", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    size_t length = 0;
    ssize_t got;
    while (length < sizeof buffer - 1 &&
           (got = read(fd, buffer + length, sizeof buffer - 1 - length)) > 0)
        length += (size_t)got;
    close(fd);
    buffer[length] = 0;
    for (size_t at = 0; at < length; at += strlen(buffer + at) + 1)
        if (strncmp(buffer + at, name, name_length) == 0 && buffer[at + name_length] == '=')
            return buffer + at + name_length + 1;
    return NULL;
}
#endif

#if BW_PAGE_MODE
/* A program linked with libbulwark.a may set page mode's default by
 * defining this (0: off); BULWARK_FUZZ_PAGES overrides it. bulwark's own
 * harnesses (fuzz/) turn it off to fuzz the slab layers. */
extern int bulwark_fuzz_pages __attribute__((weak));

static bool bw_page_mode_wanted(void) {
    bool wanted = &bulwark_fuzz_pages ? bulwark_fuzz_pages != 0 : true;
    const char *text = bw_env_text("BULWARK_FUZZ_PAGES");
    if (text && *text) wanted = *text != '0';
    return wanted;
}
#endif

/* At initialisation: read BULWARK_SEED when the profile allows it. */
void bw_random_init(void) {
    /* Picks libsodium's SIMD ChaCha20 (4x faster than the portable code it
     * uses otherwise); allocates nothing, takes only libsodium's own lock. */
    if (sodium_init() < 0) bw_fatal_os("sodium_init", 0);
#if BW_SEED_FROM_ENV
    const char *text = bw_env_text("BULWARK_SEED");
    if (text && *text) {
        uint64_t seed = 0;
        for (const char *c = text; *c >= '0' && *c <= '9'; c++)
            seed = seed * 10 + (uint64_t)(*c - '0');
        bw_secrets.seed = seed;
        bw_secrets.seeded = 1;
        /* Which node's memory a thread gets depends on the CPU it runs on:
         * a seeded process acts as if it had one node, so the scheduler
         * cannot change an address either. */
        bw_topology.node_count = 1;
    }
#endif
#if BW_PAGE_MODE
    bw_secrets.page_mode = bw_page_mode_wanted();
#endif
    bw_secrets_draw();
}

void bw_rng_seed(bw_rng_t *rng, uint64_t stream) {
    rng->stream = stream;
    rng->generation = atomic_load_explicit(&bw_rng_generation, memory_order_relaxed);
    rng->nonce = 0;
    rng->spare_count = 0;
    /* Seeded: the heap's key is the keystream of seed || lineage at the
     * heap's stream number; a child's new lineage gives every heap a new key,
     * and the words come from the cipher. Otherwise one getrandom call draws
     * the key and a first buffer of words (independent bytes, none derived
     * from the key): every child and every heap its own. */
    if (bw_random_seeded()) {
        bw_seeded_stream(rng->key, sizeof rng->key, stream, 0);
        rng->pos = BW_RNG_WORDS;
    } else {
        bw_kernel_bytes((char *)rng + offsetof(bw_rng_t, words),
                        sizeof rng->words + sizeof rng->key);
        rng->pos = 0;
    }
}
_Static_assert(offsetof(bw_rng_t, key) == offsetof(bw_rng_t, words) + BW_RNG_WORDS * 8,
               "the key follows the words: one getrandom call fills both");

uint64_t bw_rng_refill(bw_rng_t *rng) {
    unsigned generation = atomic_load_explicit(&bw_rng_generation, memory_order_relaxed);
    if (rng->generation != generation) {
        bw_rng_seed(rng, rng->stream);
        if (rng->pos < BW_RNG_WORDS) return rng->words[rng->pos++];
    }
    unsigned char nonce[crypto_stream_chacha20_NONCEBYTES];
    memcpy(nonce, &rng->nonce, sizeof nonce);
    rng->nonce++;
    crypto_stream_chacha20((unsigned char *)rng->words, sizeof rng->words, nonce, rng->key);
    rng->pos = 1;
    return rng->words[0];
}

/* In the parent, before the fork: one more fork. The child inherits the
 * count with this fork in it, which tells it from its siblings. */
void bw_random_fork_prepare(void) {
    if (bw_random_seeded()) bw_forks_made++; /* only a seeded child reads it */
}

/* splitmix64's finalizer (Steele, Lea, Flood, "Fast splittable
 * pseudorandom number generators", OOPSLA 2014; Vigna's constants): a
 * bijective mix of 64 bits, so (lineage, fork number) pairs rarely meet. */
static uint64_t bw_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* In the child after fork: every heap's key is stale; the calling thread's
 * buffered randomness (keystream words, spare 16-bit draws and the fast
 * path's way bytes) is discarded so that sibling children do not repeat the
 * same choices. Seeded, the child's lineage follows from its parent's and
 * the parent's fork count: reproducible, and different for each sibling. */
void bw_random_fork_child(void) {
    if (bw_random_seeded()) {
        bw_lineage = bw_mix64(bw_lineage ^ bw_mix64(bw_forks_made));
        bw_forks_made = 0;
        atomic_store_explicit(&bw_seed_block, 0, memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&bw_rng_generation, 1, memory_order_relaxed);
    bw_heap_t *heap = bw_tls_heap;
    if (heap != &bw_empty_heap) {
        heap->rng.pos = BW_RNG_WORDS;
        heap->rng.spare_count = 0;
        heap->way_draws = 0;
    }
}
