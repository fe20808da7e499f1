/* random.h — the per-thread generator and the process-wide secrets
 * (random.c). */
#ifndef BW_RANDOM_H
#define BW_RANDOM_H

#include "config.h"

/* Per-thread CSPRNG (random.c): 1 KiB of ChaCha20 keystream consumed a
 * word at a time, so a draw is a load and an increment. 1 KiB lets
 * libsodium's AVX2 ChaCha20 work on whole 512-byte batches. */
#define BW_RNG_WORDS 128u
typedef struct {
    uint64_t words[BW_RNG_WORDS];
    /* Right after the words: an unseeded (re)seed fills both with one
     * getrandom call (random.c, bw_rng_seed). */
    uint8_t key[32];
    uint32_t pos;        /* next unused word; BW_RNG_WORDS = refill */
    uint32_t generation; /* fork generation the key belongs to */
    uint64_t nonce;
    uint64_t stream; /* which heap this is, for a reproducible fixed seed */
    uint64_t spare;  /* unused 16-bit draws of the last word */
    uint32_t spare_count;
} bw_rng_t;

/* random.c */
uint64_t bw_rng_refill(bw_rng_t *rng);
void bw_rng_seed(bw_rng_t *rng, uint64_t stream);
void bw_random_init(void);
void bw_random_fork_prepare(void);
void bw_random_fork_child(void);
void bw_random_bytes(void *buf, size_t size);
void bw_secrets_seal(void);
BW_INLINE uint64_t bw_rng_next(bw_rng_t *rng) {
    if (bw_likely(rng->pos < BW_RNG_WORDS)) return rng->words[rng->pos++];
    return bw_rng_refill(rng);
}
/* 16 random bits: four per keystream word, for choices that need few
 * (quarantine exits), so the cipher runs a quarter as often. */
BW_INLINE uint32_t bw_rng_u16(bw_rng_t *rng) {
    if (bw_unlikely(rng->spare_count == 0)) {
        rng->spare = bw_rng_next(rng);
        rng->spare_count = 4;
    }
    uint32_t r = (uint32_t)(rng->spare & 0xffff);
    rng->spare >>= 16;
    rng->spare_count--;
    return r;
}

/* Uniform in [0, n) without division (Lemire's multiply-shift). */
BW_INLINE uint32_t bw_rng_below(bw_rng_t *rng, uint32_t n) {
    return (uint32_t)(((bw_rng_next(rng) & 0xffffffffu) * (uint64_t)n) >> 32);
}

/* Process-wide secrets of the per-block mechanisms, drawn once at start-up
 * (random.c) and then read-only: they share a page of their own that is
 * mprotected PROT_READ after initialisation, so a stray write cannot change
 * them. Per-slab secrets (bw_slab_t key and canary) are mixed in with them. */
typedef struct {
    uint64_t link_mul1, link_mul2; /* odd: the free-list link tag (link.h) */
    uint64_t canary_mul;           /* odd: the exact-size canary tag (canary.h) */
    /* BULWARK_SEED (random.c), here so that a stray write cannot turn a
     * process's randomness into a predictable one after start-up. */
    uint64_t seed, seeded;
    /* BW_PAGE_MODE: every block on pages of its own (bw_page_mode). */
    uint64_t page_mode;
    uint8_t rest_of_page[4096 - 6 * sizeof(uint64_t)];
} __attribute__((aligned(4096))) bw_secrets_t;
extern BW_HIDDEN bw_secrets_t bw_secrets;
/* Every random choice follows BULWARK_SEED: a constant false in the
 * profiles that do not read it. */
BW_INLINE bool bw_random_seeded(void) {
    return BW_SEED_FROM_ENV && bw_secrets.seeded;
}
/* Page mode (BW_PAGE_MODE, the fuzz profile; on unless BULWARK_FUZZ_PAGES=0
 * or the program defines bulwark_fuzz_pages = 0): every block that is not
 * zero bytes is a large block (large.c), on pages of its own, ending at its
 * trailing guard page (a read or write past the 16-byte-rounded request
 * faults, the bytes up to it are checked at free), and inaccessible once
 * freed while it waits in the large quarantine (a use after free faults).
 * libdislocator's design (AFL++), with guard markers instead of a mapping
 * per block. */
BW_INLINE bool bw_page_mode(void) {
    return BW_PAGE_MODE && bw_secrets.page_mode;
}
/* bw_rng_generation, bumped in every forked child: hot.h. */

#endif
