/* random.c — the per-thread CSPRNG (DESIGN.md layer "random").
 *
 * Each heap keys a ChaCha20 keystream (libsodium crypto_stream_chacha20)
 * from libsodium's randombytes_buf and consumes it 8 bytes at a time from a
 * 256-byte buffer: a draw on the fast path is a load and an increment, the
 * cipher runs once every 32 draws, and no draw is a system call. The key is
 * replaced after fork (the child must not repeat its parent's choices). The
 * fuzz profile may take a fixed seed from BULWARK_SEED so a crash
 * reproduces; no other profile reads the environment, and none does in a
 * set-uid/set-gid process (AT_SECURE). Nothing here allocates. */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

#include "bw_internal.h"

atomic_uint bw_rng_generation = 1;
static bool bw_fixed_seed_set;
static uint64_t bw_fixed_seed;

bw_secrets_t bw_secrets;
_Static_assert(sizeof(bw_secrets_t) == 4096, "the secrets fill the page they seal");

/* The process-wide multipliers (bw_internal.h, bw_secrets_t): from
 * randombytes_buf, or from BULWARK_SEED so that a crash replays exactly.
 * Forced odd, so a multiply by one is a bijection. */
static void bw_secrets_draw(void) {
    uint64_t words[3];
    if (bw_fixed_seed_set) {
        unsigned char seed_key[crypto_stream_chacha20_KEYBYTES] = {0};
        unsigned char nonce[crypto_stream_chacha20_NONCEBYTES];
        memset(nonce, 0xff, sizeof nonce); /* heaps use nonces below 2^48 */
        memcpy(seed_key, &bw_fixed_seed, sizeof bw_fixed_seed);
        crypto_stream_chacha20((unsigned char *)words, sizeof words, nonce, seed_key);
    } else {
        randombytes_buf(words, sizeof words);
    }
    bw_secrets.link_mul1 = words[0] | 1;
    bw_secrets.link_mul2 = words[1] | 1;
    bw_secrets.canary_mul = words[2] | 1;
}

/* Once initialisation succeeded: the secrets' page becomes read-only. */
void bw_secrets_seal(void) {
    bw_os_protect_readonly(&bw_secrets, sizeof bw_secrets);
}

/* At initialisation: read BULWARK_SEED when the profile allows it. getenv
 * does not allocate. */
void bw_random_init(void) {
    /* Picks libsodium's SIMD ChaCha20 (4x faster than the portable code it
     * uses otherwise); allocates nothing, takes only libsodium's own lock. */
    if (sodium_init() < 0) bw_fatal_os("sodium_init", 0);
#if BW_SEED_FROM_ENV
    const char *text = getauxval(AT_SECURE) ? NULL : getenv("BULWARK_SEED");
    if (text && *text) {
        uint64_t seed = 0;
        for (const char *c = text; *c >= '0' && *c <= '9'; c++)
            seed = seed * 10 + (uint64_t)(*c - '0');
        bw_fixed_seed = seed;
        bw_fixed_seed_set = true;
    }
#endif
    bw_secrets_draw();
}

void bw_rng_seed(bw_rng_t *rng, uint64_t stream) {
    rng->stream = stream;
    rng->generation = atomic_load_explicit(&bw_rng_generation, memory_order_relaxed);
    rng->nonce = 0;
    rng->pos = BW_RNG_WORDS;
    rng->spare_count = 0;
    if (bw_fixed_seed_set) {
        /* key = ChaCha20(seed as key, nonce = stream ^ generation) */
        unsigned char seed_key[crypto_stream_chacha20_KEYBYTES] = {0};
        unsigned char nonce[crypto_stream_chacha20_NONCEBYTES];
        uint64_t n = stream ^ ((uint64_t)rng->generation << 48);
        memcpy(seed_key, &bw_fixed_seed, sizeof bw_fixed_seed);
        memcpy(nonce, &n, sizeof nonce);
        crypto_stream_chacha20(rng->key, sizeof rng->key, nonce, seed_key);
    } else {
        randombytes_buf(rng->key, sizeof rng->key);
    }
}

uint64_t bw_rng_refill(bw_rng_t *rng) {
    unsigned generation = atomic_load_explicit(&bw_rng_generation, memory_order_relaxed);
    if (rng->generation != generation) bw_rng_seed(rng, rng->stream);
    unsigned char nonce[crypto_stream_chacha20_NONCEBYTES];
    memcpy(nonce, &rng->nonce, sizeof nonce);
    rng->nonce++;
    crypto_stream_chacha20((unsigned char *)rng->words, sizeof rng->words, nonce, rng->key);
    rng->pos = 1;
    return rng->words[0];
}

/* In the child after fork: every heap's key is stale; the calling thread's
 * buffered randomness (keystream words, spare 16-bit draws and the fast
 * path's way bytes) is discarded so that sibling children do not repeat the
 * same choices. */
void bw_random_fork_child(void) {
    atomic_fetch_add_explicit(&bw_rng_generation, 1, memory_order_relaxed);
    bw_heap_t *heap = bw_tls_heap;
    if (heap != &bw_empty_heap) {
        heap->rng.pos = BW_RNG_WORDS;
        heap->rng.spare_count = 0;
        heap->way_draws = 0;
    }
}
