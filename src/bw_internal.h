/* bw_internal.h — types and layout shared by every layer of bulwark.
 *
 * Address space (DESIGN.md "segments"): one arena reservation of
 * 2^BW_ARENA_SHIFT bytes at a random base, cut into 2^BW_SEGMENT_SHIFT
 * segments, each cut into 2^BW_SLAB_SHIFT slabs. A block's slab descriptor is
 * found from its address by arithmetic: (addr - arena_base) >> BW_SLAB_SHIFT
 * indexes an array of descriptors that lives in a separate metadata
 * reservation (invariant 1). Nothing here is exported. */
#ifndef BW_INTERNAL_H
#define BW_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define bw_likely(x)   __builtin_expect(!!(x), 1)
#define bw_unlikely(x) __builtin_expect(!!(x), 0)
#define BW_HIDDEN      __attribute__((visibility("hidden")))
#define BW_NOINLINE    __attribute__((noinline))
#define BW_COLD        __attribute__((cold, noinline))
#define BW_INLINE      static inline __attribute__((always_inline))

#define BW_PAGE_SIZE         4096u
#define BW_ARENA_SIZE        ((uintptr_t)1 << BW_ARENA_SHIFT)
#define BW_SEGMENT_SIZE      ((uintptr_t)1 << BW_SEGMENT_SHIFT)
#define BW_SLAB_SIZE         ((uintptr_t)1 << BW_SLAB_SHIFT)
#define BW_SLABS_PER_SEGMENT (1u << (BW_SEGMENT_SHIFT - BW_SLAB_SHIFT))
#define BW_SEGMENT_COUNT     (1u << (BW_ARENA_SHIFT - BW_SEGMENT_SHIFT))
#define BW_SLAB_COUNT        ((size_t)1 << (BW_ARENA_SHIFT - BW_SLAB_SHIFT))

/* Size classes: see sizeclass.c for the table and its derivation. */
#define BW_CLASS_COUNT           49 /* class 0 is "no class"; 1..48 are real */
#define BW_SMALL_MAX             131072u
#define BW_MIN_BLOCK             16u
#define BW_MAX_BLOCKS_PER_SLAB   (BW_SLAB_SIZE / BW_MIN_BLOCK)
/* Bitmap words per slab slot: four per 1 KiB of arena (see bw_bits_group). */
#define BW_BITMAP_WORDS_PER_SLAB (4 * (BW_SLAB_SIZE >> 10))

#define BW_MAX_NUMA_NODES 64u

/* Knobs a profile may leave out default to "off". */
#ifndef BW_RANDOM_FREELIST
#define BW_RANDOM_FREELIST 0
#endif
#ifndef BW_ENCODE_LINKS
#define BW_ENCODE_LINKS 0
#endif
#ifndef BW_SLAB_GUARD
#define BW_SLAB_GUARD 0
#endif
#ifndef BW_CANARY
#define BW_CANARY 0
#endif
#ifndef BW_ZERO_ON_FREE
#define BW_ZERO_ON_FREE 0
#endif
#ifndef BW_WAF_CHECK_MAX
#define BW_WAF_CHECK_MAX 0
#endif
#ifndef BW_QUARANTINE_SLOTS
#define BW_QUARANTINE_SLOTS 0
#define BW_QUARANTINE_BYTES 0
#endif
#ifndef BW_LARGE_QUARANTINE
#define BW_LARGE_QUARANTINE 0
#endif
#ifndef BW_LARGE_RIGHT_ALIGN
#define BW_LARGE_RIGHT_ALIGN 0
#endif
#ifndef BW_SEED_FROM_ENV
#define BW_SEED_FROM_ENV 0
#endif
#ifndef BW_ZERO_SIZE_FAULTS
#define BW_ZERO_SIZE_FAULTS 0
#endif
#ifndef BW_PKEY_METADATA
#define BW_PKEY_METADATA 0
#endif
#ifndef BW_EXACT_SIZE
#define BW_EXACT_SIZE 0
#endif
#ifndef BW_ENTROPY_BITS_SMALL
#define BW_ENTROPY_BITS_SMALL 0
#define BW_ENTROPY_BITS_LARGE 0
#endif
/* Random ways: a bin keeps up to BW_WAYS_MAX open slabs and every malloc
 * picks one at random (sizeclass.c explains the counts). The ways of all
 * classes share one flat array of BW_WAYS_TOTAL slots per heap. */
#if BW_ENTROPY_BITS_SMALL || BW_ENTROPY_BITS_LARGE
#define BW_RANDOM_WAYS 1
#define BW_WAYS_MAX    256u  /* one random byte per malloc picks the way */
#define BW_WAYS_TOTAL  2176u /* the default knobs need 2,078 */
#else
#define BW_RANDOM_WAYS 0
#define BW_WAYS_MAX    1u
#define BW_WAYS_TOTAL  BW_CLASS_COUNT
#endif
#if BW_WAF_CHECK_MAX && !BW_ZERO_ON_FREE
#error "BW_WAF_CHECK_MAX (write-after-free check) requires BW_ZERO_ON_FREE"
#endif
#if BW_LARGE_RIGHT_ALIGN && !BW_LARGE_QUARANTINE
#error "BW_LARGE_RIGHT_ALIGN needs BW_LARGE_QUARANTINE (parking unguards the pages it guards)"
#endif
#if BW_QUARANTINE_SLOTS & (BW_QUARANTINE_SLOTS - 1)
#error "BW_QUARANTINE_SLOTS must be a power of two"
#endif
#if BW_EXACT_SIZE && !BW_CANARY
#error "BW_EXACT_SIZE keeps the requested size in the canary: it needs BW_CANARY"
#endif

/* Bytes a slab can carve (the guard page is not usable) and the canary room
 * every small block reserves. */
#define BW_SLAB_USABLE  (BW_SLAB_SIZE - (BW_SLAB_GUARD ? BW_PAGE_SIZE : 0))
#define BW_CANARY_BYTES (BW_CANARY ? 8u : 0u)
/* A block handed out is proven zero over this many leading bytes: zeroed at
 * free and checked at reuse. calloc skips its memset below it. */
#if BW_ZERO_ON_FREE && BW_WAF_CHECK_MAX
#define BW_KNOWN_ZERO_BYTES BW_WAF_CHECK_MAX
#else
#define BW_KNOWN_ZERO_BYTES 0
#endif

_Static_assert(BW_SLABS_PER_SEGMENT <= 64, "segment slot bitmap is one word");
_Static_assert(BW_SEGMENT_SHIFT > BW_SLAB_SHIFT, "a segment holds several slabs");
/* The largest span (bw_class_span_slots) is 16 slots and holds at least 7
 * of the largest class; link.h's offsets cover it. */
#define BW_SPAN_SLOTS_MAX 16u
#define BW_SPAN_MAX_BYTES (BW_SPAN_SLOTS_MAX * BW_SLAB_SIZE)
_Static_assert(BW_SLABS_PER_SEGMENT >= BW_SPAN_SLOTS_MAX, "a segment holds the largest span");
_Static_assert((BW_SPAN_SLOTS_MAX * BW_SLAB_SIZE - BW_PAGE_SIZE) / BW_SMALL_MAX >= 7,
               "the largest span holds at least 7 of the largest class");

/* ------------------------------------------------------------------ locks */
/* A futex mutex: U. Drepper, "Futexes Are Tricky" (2011), mutex 2. state is
 * 0 free, 1 held, 2 held and some thread may sleep on it. A waiter spins
 * briefly, then sleeps in FUTEX_WAIT until the holder's unlock wakes one;
 * an uncontended lock and unlock make no system call. Sleeping, not
 * yielding, matters when threads outnumber CPUs: a holder preempted (or
 * its virtual CPU descheduled by the host) gets the CPU back instead of
 * competing with every waiter's sched_yield loop. Never taken on the fast
 * path. Fork-safe: the child has no other thread, so no waiter either, and
 * resets every lock to 0 (bw_lock_reset_in_child). */
typedef struct {
    atomic_int state;
} bw_lock_t;

void bw_lock_acquire_slow(bw_lock_t *lock);
void bw_lock_wake_one(bw_lock_t *lock);
BW_INLINE void bw_lock(bw_lock_t *lock) {
    int expected = 0;
    if (bw_likely(atomic_compare_exchange_strong_explicit(
            &lock->state, &expected, 1, memory_order_acquire, memory_order_relaxed)))
        return;
    bw_lock_acquire_slow(lock);
}
BW_INLINE void bw_unlock(bw_lock_t *lock) {
    if (bw_unlikely(atomic_exchange_explicit(&lock->state, 0, memory_order_release) == 2))
        bw_lock_wake_one(lock);
}
/* fork child: whoever held the lock in the parent does not exist here. */
BW_INLINE void bw_lock_reset_in_child(bw_lock_t *lock) {
    atomic_store_explicit(&lock->state, 0, memory_order_relaxed);
}

/* ------------------------------------------------------------------ metadata keys
 * BW_PKEY_METADATA (x86 protection keys, where the CPU and kernel have them):
 * every metadata mapping carries bw_meta_pkey, which is write-disabled in a
 * thread's PKRU register except while the thread runs inside bulwark. Every
 * entry point opens it (BW_META_OPEN) and closes it on the way out
 * (BW_META_CLOSE); nested entries (malloc called from inside bulwark) find it
 * open and leave it so. Without a key (no PKU, or the profile off) the test
 * is one predicted branch. RDPKRU/WRPKRU are spelled as bytes so no -mpku is
 * needed (and so no code path needs the CPU feature unless a key exists). */
extern BW_HIDDEN int bw_meta_pkey; /* -1: no protection key */
#if BW_PKEY_METADATA
BW_INLINE uint32_t bw_rdpkru(void) {
    uint32_t eax, edx;
    __asm__ volatile(".byte 0x0f, 0x01, 0xee" : "=a"(eax), "=d"(edx) : "c"(0));
    (void)edx;
    return eax;
}
BW_INLINE void bw_wrpkru(uint32_t value) {
    __asm__ volatile(".byte 0x0f, 0x01, 0xef" : : "a"(value), "c"(0), "d"(0) : "memory");
}
/* Returns whether the metadata was writable already (a nested entry). */
BW_INLINE bool bw_meta_open(void) {
    int key = bw_meta_pkey;
    if (bw_likely(key < 0)) return false;
    uint32_t pkru = bw_rdpkru();
    uint32_t mask = 3u << (2 * key);
    if (!(pkru & mask)) return true;
    bw_wrpkru(pkru & ~mask);
    return false;
}
/* Back to write-disabled (reads stay allowed), unless the caller's entry
 * was nested. Also right when the key was allocated during this call. */
BW_INLINE void bw_meta_close(bool was_open) {
    int key = bw_meta_pkey;
    if (bw_likely(key < 0) || was_open) return;
    bw_wrpkru((bw_rdpkru() & ~(3u << (2 * key))) | (2u << (2 * key))); /* PKEY_DISABLE_WRITE */
}
#define BW_META_OPEN()  bool bw_meta_was_open_ = bw_meta_open()
#define BW_META_CLOSE() bw_meta_close(bw_meta_was_open_)
#else
#define BW_META_OPEN()  (void)0
#define BW_META_CLOSE() (void)0
#endif

/* ------------------------------------------------------------------ slabs */
struct bw_heap;

/* Out-of-line slab descriptor, one per 64 KiB slot of the arena, 128 bytes
 * (a power of two, so the lookup is a shift). The first cache line holds
 * what the owner's fast paths read and write; other threads only read
 * `owner` there. What other threads write (the remote list and its queue
 * link) lives in the second line, next to the slow-path list links, so a
 * cross-thread free never invalidates the line the owner's malloc uses. */
typedef struct bw_slab {
    /* --- first line: owner-thread fast path --- */
    void *free;                      /* blocks ready to hand out (the fast path pops here) */
    void *local_free;                /* blocks the owner freed since `free` was last refilled:
                                        a freed block is not handed out again before the rest
                                        of `free`, and an empty `free` sends malloc to the
                                        slow path regularly, where the periodic work runs
                                        (mimalloc's local free list does both) */
    uint64_t key;                    /* per-slab secret of the encoded free-list links */
    _Atomic(struct bw_heap *) owner; /* NULL while abandoned or unused, and in span tails */
    uint64_t canary;                 /* per-slab canary secret */
    uint64_t div_magic;              /* ceil(2^64 / block_size): boundary test by one multiply */
    uint32_t limit;                  /* nblocks * block_size: offsets at or past it hold no block */
    uint32_t block_size;             /* bytes per block, 0 when the slot never served a class */
    uint16_t nblocks;                /* blocks carved in this slab */
    int16_t used;                    /* blocks on neither free list (owner's view: remote frees
                                        not yet collected and quarantined blocks count) */
    int16_t notify_at;               /* a local free that brings `used` down to this calls the
                                        heap (bw_free_slow_local); -1 = never */
    uint8_t size_class;              /* 0 = slot not serving a class */
    uint8_t span_shift;              /* log2 of the bytes the slab spans (bw_class_span_slots:
                                        16 to 20) */
    /* --- second line: slow paths and cross-thread fields --- */
    struct bw_slab *next, *prev;           /* bin lists, abandoned list */
    _Atomic(void *) remote;                /* blocks freed by other threads, not yet collected */
    _Atomic(struct bw_slab *) remote_next; /* link in the owner heap's remote-slab stack */
    uint64_t freed_at_ms;                  /* when the slot became free (purge delay) */
    uint64_t fresh_chunks; /* order of the chunks not linked yet, 4 bits each (slab.c) */
    atomic_uchar queued;   /* on some heap's remote-slab stack */
    uint8_t idle;          /* a way slab found empty by the last aging scan */
    uint8_t list;          /* bw_slab_list: where its heap keeps it */
    uint8_t node;          /* NUMA node of the segment */
    uint16_t way;          /* index in its heap's ways while list == WAY */
    uint8_t fresh_left;    /* chunks not linked yet */
    uint8_t zero_fresh;    /* chunks must be zeroed before they are linked */
    uint8_t state;         /* bw_slab_state */
    uint8_t head_back;     /* > 0: this slot is a span's tail; its head is that many
                              descriptors back (kept until the slot is formatted again,
                              so a stale pointer into a released span is still named) */
    uint8_t unguarded;     /* the slot's last page is not a guard page: it lay inside a
                              span when the slot was last formatted (slab.c puts guards
                              back lazily, when a format makes that page a slab's end) */
    uint8_t pad[1];
    uint32_t gen; /* fork generation of its keys (bw_rng_generation when formatted): a
                     forked child never allocates from a slab of an earlier one */
} bw_slab_t;
_Static_assert(sizeof(bw_slab_t) == 128, "slab descriptor lookup is a shift by 7");
_Static_assert(offsetof(bw_slab_t, next) == 64, "the fast path's fields fill the first line");

/* Where a heap keeps one of its slabs, and when a local free must tell it:
 *   WAY    the fast path allocates from it: never (notify_at -1; the aging
 *          scan retires idle ways);
 *   AVAIL  has free blocks, waits to become a way: when it is empty
 *          (notify_at 0), so its slot goes back to the segment;
 *   FULL   had no free block when last looked at: when 1/8 of it is free
 *          again (notify_at = nblocks - bw_refill_batch), so it moves to
 *          AVAIL;
 *   SEALED inherited across fork (its keys and free-list order are the
 *          parent's, which a sibling process shares): never allocated from,
 *          only freed into (notify_at -1); the aging scan that finds it
 *          empty twice gives its slot back to the segment, to be formatted
 *          anew with fresh keys. Waiting for a batch rather
 * than for the first free keeps a slab from bouncing between the lists on every free and every
 *          refill (a random free into a full slab used to cost a branch
 *          miss and, soon after, a refill that found one block).
 * The fast path's test is one compare, `--used <= notify_at`. */
enum bw_slab_list { BW_LIST_WAY = 0, BW_LIST_AVAIL = 1, BW_LIST_FULL = 2, BW_LIST_SEALED = 3 };

BW_INLINE int bw_refill_batch(const struct bw_slab *slab) {
    return slab->nblocks >= 16 ? slab->nblocks / 8 : 1;
}

enum bw_slab_state {
    BW_SLAB_UNUSED = 0,   /* slot free, memory decommitted or never touched */
    BW_SLAB_DIRTY = 1,    /* slot free, memory still committed */
    BW_SLAB_ACTIVE = 2,   /* owned by a heap */
    BW_SLAB_ABANDONED = 3 /* owner thread exited; waits for adoption */
};

/* Out-of-line segment header. */
typedef struct bw_segment {
    uint64_t free_slots;   /* bit i: slab slot i is free */
    uint64_t dirty_slots;  /* bit i: free and still committed */
    uint32_t node;         /* NUMA node the segment is bound to */
    uint32_t in_pool_list; /* on its node's partial list */
    struct bw_segment *next, *prev;
    uint8_t pad[24];
} bw_segment_t;
_Static_assert(sizeof(bw_segment_t) == 64, "segment header lookup is a shift by 6");

/* ------------------------------------------------------------------ heaps */
typedef struct {
    bw_slab_t *avail;     /* other slabs that may have free blocks (list head) */
    bw_slab_t *full;      /* slabs that had no free block when last looked at, newest first */
    bw_slab_t *full_tail; /* ... and the oldest, which refill looks at first */
    uint32_t way_base;    /* this class's first slot in the heap's ways */
    uint32_t way_count;   /* ways the fast path chooses among: follows `live`, up to
                             bw_class_ways (bw_heap_fit_ways) */
    int32_t live;         /* BW_RANDOM_WAYS: blocks of the class this heap handed out and
                             that were not freed yet (remote frees count when collected);
                             what sets way_count (bw_heap_fit_ways) */
    int32_t open_at;      /* `live` at which the next way opens (INT32_MAX: all open) */
} bw_bin_t;

/* Per-thread CSPRNG (random.c): 1 KiB of ChaCha20 keystream consumed a
 * word at a time, so a draw is a load and an increment. 1 KiB lets
 * libsodium's AVX2 ChaCha20 work on whole 512-byte batches. */
#define BW_RNG_WORDS 128u
typedef struct {
    uint64_t words[BW_RNG_WORDS];
    uint32_t pos;        /* next unused word; BW_RNG_WORDS = refill */
    uint32_t generation; /* fork generation the key belongs to */
    uint64_t nonce;
    uint64_t stream; /* which heap this is, for a reproducible fixed seed */
    uint64_t spare;  /* unused 16-bit draws of the last word */
    uint32_t spare_count;
    uint8_t key[32];
} bw_rng_t;

typedef struct bw_heap {
    uint64_t way_random; /* random bytes for the fast path's way choice */
    uint32_t way_draws;  /* bytes left in way_random; 0 in the empty heap */
    uint32_t pad_heap;
    bw_bin_t bins[BW_CLASS_COUNT];
    bw_rng_t rng;
#if BW_QUARANTINE_SLOTS
    size_t quarantine_count;
    size_t quarantine_bytes;
    uint8_t quarantine_epoch; /* bumped by each aging scan */
    void *quarantine[BW_QUARANTINE_SLOTS];
    uint8_t quarantine_age[BW_QUARANTINE_SLOTS]; /* epoch when each entry came in */
#endif
    bw_slab_t *sealed;                 /* slabs inherited across fork (BW_LIST_SEALED) */
    _Atomic(bw_slab_t *) remote_slabs; /* slabs with remote frees to collect */
    struct bw_heap *next_free;         /* heap pool free list */
    uint32_t node;                     /* NUMA pool index of the CPU at the last refill */
    uint32_t ways_node;                /* ... at the last bw_heap_follow_node */
    uint32_t live;                     /* 1 while a thread uses the heap */
    uint64_t slow_calls;               /* slow-path entries, to pace maintenance */
    bw_slab_t *ways[BW_WAYS_TOTAL];    /* slabs the fast path allocates from; never NULL */
    uint64_t last_age_ms;              /* last aging scan of the ways */
} bw_heap_t;

/* ------------------------------------------------------------------ globals */
typedef struct {
    uintptr_t arena_base;       /* start of the small-object reservation */
    uintptr_t arena_size;       /* bytes of carved segments; 0 until then: every free is slow */
    uintptr_t arena_granules;   /* arena_size / 16: free()'s one range-and-alignment test */
    bw_slab_t *slabs;           /* descriptor array, one per slab slot */
    bw_segment_t *segments;     /* header array, one per segment */
    _Atomic(uint64_t) *bitmaps; /* BW_BITMAP_WORDS_PER_SLAB words per slab slot */
} bw_layout_t;

extern BW_HIDDEN bw_layout_t bw_layout;
extern BW_HIDDEN __thread bw_heap_t *bw_tls_heap;
extern BW_HIDDEN bw_heap_t bw_empty_heap;
extern BW_HIDDEN bw_slab_t bw_sentinel_slab;
extern BW_HIDDEN atomic_int bw_init_state; /* 0 = not started, 1 = running, 2 = done,
                                              3 = failed (for good: init.c) */

/* size classes (sizeclass.c) */
extern BW_HIDDEN const uint8_t bw_class_by_16[1024 / 16 + 1];
extern BW_HIDDEN const uint8_t bw_class_by_128[BW_SMALL_MAX / 128 + 1];
_Static_assert(BW_CLASS_COUNT <= 256, "a class number is a byte");
extern BW_HIDDEN const uint32_t bw_class_size[BW_CLASS_COUNT];

/* Size → class without loops or division: two small tables. */
BW_INLINE unsigned bw_size_class(size_t size) {
    if (size <= 1024) return bw_class_by_16[(size + 15) >> 4];
    return bw_class_by_128[(size + 127) >> 7]; /* caller guarantees size <= BW_SMALL_MAX */
}
unsigned bw_size_class_aligned(size_t size, size_t alignment);
extern BW_HIDDEN uint16_t bw_class_ways[BW_CLASS_COUNT];
extern BW_HIDDEN uint16_t bw_class_way_base[BW_CLASS_COUNT];
extern BW_HIDDEN uint16_t bw_class_way_step[BW_CLASS_COUNT];
extern BW_HIDDEN uint16_t bw_class_way_delay[BW_CLASS_COUNT];
/* Ways a class opens per way's worth of live blocks (heap.c): enough that
 * the entropy targets hold once 2^target blocks are live (test_entropy).
 * With 4 the 256-byte class measured 9.95-10.15 bits against its 10-bit
 * target, with 8 it measures 10.1-10.3. The classes above
 * BW_MEDIUM_WAYS_ABOVE start later (bw_class_way_delay, sizeclass.c), and
 * have all their ways open once BW_WAYS_FULL_MEDIUM_NUM / 16 of 2^target
 * blocks are live. */
#define BW_WAYS_PER_LIVE 8u
#ifndef BW_MEDIUM_WAYS_ABOVE
#define BW_MEDIUM_WAYS_ABOVE 16384u
#endif
#ifndef BW_WAYS_FULL_MEDIUM_NUM
#define BW_WAYS_FULL_MEDIUM_NUM 12u
#endif
/* Slots (64 KiB each) a slab of the class spans: the fewest, a power of two
 * up to BW_SPAN_SLOTS_MAX, whose span less its trailing guard holds at least
 * 7 blocks (sizeclass.c: 1 up to 8 KiB, 2 up to 16 KiB, 4 up to 32 KiB, 8 up
 * to 64 KiB, 16 up to 128 KiB). Slow paths only: a loop of at most 4 steps. */
BW_INLINE unsigned bw_class_span_slots(unsigned size_class) {
    uint32_t size = bw_class_size[size_class];
    unsigned slots = 1;
    while (slots < BW_SPAN_SLOTS_MAX &&
           (slots * BW_SLAB_SIZE - (BW_SLAB_GUARD ? BW_PAGE_SIZE : 0)) / size < 7)
        slots *= 2;
    return slots;
}
/* Bytes a slab of the class can carve: its slots but the trailing guard. */
BW_INLINE uint32_t bw_class_span_usable(unsigned size_class) {
    return (uint32_t)(bw_class_span_slots(size_class) * BW_SLAB_SIZE -
                      (BW_SLAB_GUARD ? BW_PAGE_SIZE : 0));
}
void bw_ways_init(void);

/* The class serving a request: canary room included. */
BW_INLINE bool bw_request_is_small(size_t size) {
    return size <= BW_SMALL_MAX - BW_CANARY_BYTES;
}
BW_INLINE unsigned bw_request_class(size_t size) {
    return bw_size_class(size + BW_CANARY_BYTES);
}

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

/* os.c — every system call lives there */
void *bw_os_reserve(size_t size, size_t alignment, bool random_base);
bool bw_os_commit(void *addr, size_t size);
bool bw_os_commit_meta(void *addr, size_t size);
bool bw_os_protect_meta(void *addr, size_t size);
void bw_os_meta_key_init(void);
bool bw_os_decommit(void *addr, size_t size);
void bw_os_release(void *addr, size_t size);
bool bw_os_guard(void *addr, size_t size);
bool bw_os_protect_none(void *addr, size_t size);
bool bw_os_protect_none_fresh(void *addr, size_t size);
/* What bw_os_unguard left: locked pages cannot be discarded, so a range
 * guarded by mprotect may come back with its old contents. */
typedef enum {
    BW_UNGUARD_FAILED, /* out of memory or mappings: still guarded */
    BW_UNGUARD_ZERO,   /* accessible, reads as zeros */
    BW_UNGUARD_STALE   /* accessible, may hold what it held when it was guarded */
} bw_unguard_t;
bw_unguard_t bw_os_unguard(void *addr, size_t size);
void *bw_os_map(size_t size);
bool bw_os_page_resident(void *addr);
bool bw_os_move_pages(void *from, size_t size, void *to, bool remap_source);
void bw_os_bind_node(void *addr, size_t size, unsigned node);
int bw_os_mbind_preferred(void *addr, size_t size, unsigned node);
void bw_os_meta_key_release(void);
/* Lazy space (os.c explains it): regions placed, pieces mapped on first
 * use. The bw_os_space_* calls work in either mode. */
extern BW_HIDDEN bool bw_space_lazy;
typedef enum {
    BW_MAP_OK,
    BW_MAP_TAKEN, /* lazy: another mapping holds (part of) the piece */
    BW_MAP_NOMEM  /* out of address space (RLIMIT_AS), memory or mappings */
} bw_map_t;
bool bw_os_space_limited(void);
void *bw_os_space_reserve(size_t size, size_t alignment);
void bw_os_space_release(void *base, size_t size);
bw_map_t bw_os_space_commit(void *addr, size_t size, bool meta);
bw_map_t bw_os_space_fault(void *addr, size_t size);
void bw_os_space_uncommit(void *addr, size_t size);
uint64_t bw_os_now_ms(void);
void bw_os_protect_readonly(void *addr, size_t size);
bool bw_os_has_guard_madvise(void);
const char *bw_os_guard_method(void);
void bw_os_guard_stats(size_t *by_madvise, size_t *by_mprotect);
void bw_os_report_no_space(const char *what);
void bw_os_init(void);

typedef struct {
    unsigned node_count;
    unsigned (*current_node)(void);
} bw_topology_t;
extern BW_HIDDEN bw_topology_t bw_topology;
unsigned bw_os_node_count_sysfs(void);
unsigned bw_os_current_node_getcpu(void);

/* report.c */
typedef enum {
    BW_INFO_NONE,    /* pointer not in any bulwark region */
    BW_INFO_CLASS,   /* size is a small size class */
    BW_INFO_MAPPING, /* size is a large mapping */
} bw_info_kind_t;
__attribute__((noreturn, cold)) void bw_fatal(const char *bug_class, const void *ptr,
                                              bw_info_kind_t kind, size_t size,
                                              const char *function);
__attribute__((noreturn, cold)) void bw_fatal_os(const char *what, int err);
__attribute__((noreturn, cold)) void bw_fatal_message(const char *what);
void bw_write_str(int fd, const char *s);
void bw_write_buf(int fd, const char *buf, size_t len);
size_t bw_fmt_u64(char *out, uint64_t v);
size_t bw_fmt_hex(char *out, uint64_t v);
/* The corruption reports of small blocks (report.c), one per check: */
/* A free-list link whose tag or shape is wrong (link.h, slab.c). */
__attribute__((noreturn)) void bw_report_corrupt_link(const void *slot, const bw_slab_t *slab);
/* A freed block written to while it was free (block.h, heap.c). */
__attribute__((noreturn)) void bw_report_write_after_free(const void *block, const bw_slab_t *slab,
                                                          const char *function);
/* A damaged canary or slack (canary.h). */
__attribute__((noreturn)) void bw_report_overflow(const void *block, const bw_slab_t *slab,
                                                  const char *function);
/* A pointer into the arena that is not a live block: a block freed before
 * (freed_class, e.g. "double free") if its granule was handed out since the
 * slab was formatted, anything else (never allocated, inside a block, not
 * 16-byte aligned, in an unused slot) invalid_class. */
__attribute__((noreturn)) void bw_report_not_live(const void *ptr, const bw_slab_t *slab,
                                                  const char *freed_class,
                                                  const char *invalid_class, const char *function);
/* A free list led to a block that is not free (block.h, bw_slab_pop). */
__attribute__((noreturn)) void bw_report_not_free(const void *block, const bw_slab_t *slab);

/* segment.c */
bool bw_segments_init(void);
void bw_segments_release(void);
/* `block_size`: the class the span is for, which picks among free runs the
 * one whose last format fits best (segment.c); 0 for none. */
bw_slab_t *bw_slab_span_acquire(unsigned node, unsigned slots, uint32_t block_size);
BW_INLINE bw_slab_t *bw_slab_slot_acquire(unsigned node) {
    return bw_slab_span_acquire(node, 1, 0);
}
void bw_slab_slot_release(bw_slab_t *slab);
size_t bw_segments_purge(bool force);
void bw_segments_fork_prepare(void);
void bw_segments_fork_parent(void);
void bw_segments_fork_child(void);
size_t bw_segments_in_use(void);
unsigned bw_pool_index_for_node(unsigned node);

BW_INLINE size_t bw_slab_index(const bw_slab_t *slab) {
    return (size_t)(slab - bw_layout.slabs);
}
BW_INLINE uintptr_t bw_slab_start(const bw_slab_t *slab) {
    return bw_layout.arena_base + (bw_slab_index(slab) << BW_SLAB_SHIFT);
}
/* The descriptor of the slab that holds the slot: itself, or a span's head. */
BW_INLINE bw_slab_t *bw_slab_head(bw_slab_t *slot) {
    return slot - slot->head_back;
}
/* Descriptor of the slab holding arena offset `offset` (slow paths). */
BW_INLINE bw_slab_t *bw_slab_at(uintptr_t offset) {
    return bw_slab_head(&bw_layout.slabs[offset >> BW_SLAB_SHIFT]);
}

/* slab.c */
void bw_slab_format(bw_slab_t *slab, unsigned size_class, bw_heap_t *owner);
size_t bw_slab_collect_remote(bw_slab_t *slab);
void bw_slab_remote_free(bw_slab_t *slab, void *block, const char *function);
void bw_slab_remote_push(bw_slab_t *slab, void *block);
bool bw_slab_extend(bw_slab_t *slab, bw_heap_t *heap);
unsigned bw_slab_chunk_count(uint32_t nblocks, uint32_t block_size);
/* Block-state bitmaps (invariant 2), out of line and indexed by arena
 * offset, one bit per 16-byte granule (the smallest block) in each of four
 * words per 1 KiB of arena (32 bytes: a group never straddles a cache line):
 *   ALLOCATED    the granule starts a block the program holds, or one
 *                another thread freed that its owner has not collected yet;
 *   PENDING      ... a block a thread other than its owner freed and the
 *                owner has not collected yet (in that thread's quarantine
 *                or on the slab's remote list);
 *   HANDED_OUT   ... a block handed out at least once since its slab was
 *                formatted (tells a double free from a wild pointer);
 *   QUARANTINED  ... a block its owner freed that waits in the owner's
 *                quarantine.
 * A block may be handed out only when ALLOCATED, PENDING and QUARANTINED are
 * all clear: bw_slab_pop checks this, so a forged or crossed free-list link
 * can never hand out a live block or one still in a quarantine.
 * Only block starts ever have bits, so a pointer into the middle of a block
 * or past a slab's last block finds ALLOCATED clear: the free path's
 * liveness test is also its boundary test, and no block index (no multiply)
 * is needed.
 *
 * Writers: the owner thread alone writes ALLOCATED, HANDED_OUT and
 * QUARANTINED, with relaxed loads and stores (plain moves on x86). PENDING is
 * shared: another thread's free claims the block with an atomic OR and only
 * then checks ALLOCATED; the owner clears it with an atomic AND when it
 * collects the block.
 *
 * A double free racing between the owner and another thread: the owner's
 * free (load ALLOCATED and PENDING, store ALLOCATED) takes no atomic
 * read-modify-write (invariant 7), so both frees can pass their checks when
 * the other thread claims PENDING between the owner's load and store. Such a
 * block is left with ALLOCATED clear and PENDING set, a state no valid
 * sequence produces, and sits both in the owner's quarantine or local free
 * list and in the other thread's quarantine or the remote list. Whichever
 * copy the owner reaches first reports "double free": collection finds
 * ALLOCATED clear (the owner's own store), the quarantine release finds
 * PENDING set, and the pop finds PENDING set. The pop's load is ordered
 * after the other thread's claim by the full fence bw_slab_ready makes
 * before a local free list becomes the free list (once per refill, not per
 * block): the claim precedes that thread's load of ALLOCATED, which missed
 * the owner's store, which precedes the fence. */
enum {
    BW_BITS_ALLOCATED = 0,
    BW_BITS_PENDING = 1,
    BW_BITS_HANDED_OUT = 2,
    BW_BITS_QUARANTINED = 3,
};
BW_INLINE _Atomic(uint64_t) *bw_bits_group(uintptr_t arena_offset) {
    return &bw_layout.bitmaps[(arena_offset >> 10) << 2];
}
BW_INLINE uint64_t bw_bits_mask(uintptr_t arena_offset) {
    return 1ull << ((arena_offset >> 4) & 63);
}
BW_INLINE uint64_t bw_bits_load(const _Atomic(uint64_t) *word) {
    return atomic_load_explicit(word, memory_order_relaxed);
}
BW_INLINE void bw_bits_set(_Atomic(uint64_t) *word, uint64_t bit) {
    atomic_store_explicit(word, bw_bits_load(word) | bit, memory_order_relaxed);
}
BW_INLINE void bw_bits_clear(_Atomic(uint64_t) *word, uint64_t bit) {
    atomic_store_explicit(word, bw_bits_load(word) & ~bit, memory_order_relaxed);
}

/* offset_in_slab (< 2^32) is a multiple of the block size: one multiply by
 * c = ceil(2^64 / size) and a compare (D. Lemire, O. Kaser, N. Kurz, "Faster
 * remainder by direct computation", 2019: for 32-bit n and d, n % d == 0
 * iff n * c mod 2^64 < c). tests/unit/test_sizeclass.c checks every class
 * and offset of its span. */
BW_INLINE uint64_t bw_div_magic(uint32_t block_size) {
    return UINT64_MAX / block_size + 1; /* = ceil(2^64 / size) for size > 1 */
}
BW_INLINE bool bw_slab_on_boundary(const bw_slab_t *slab, uint64_t offset_in_slab) {
    return offset_in_slab * slab->div_magic < slab->div_magic;
}
/* First byte of the span a block of the slab lies in: a slab is aligned to
 * the bytes it spans. */
BW_INLINE uintptr_t bw_span_start_of(const bw_slab_t *slab, const void *block) {
    return (uintptr_t)block & ~(((uintptr_t)1 << slab->span_shift) - 1);
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
    uint8_t rest_of_page[4096 - 5 * sizeof(uint64_t)];
} __attribute__((aligned(4096))) bw_secrets_t;
extern BW_HIDDEN bw_secrets_t bw_secrets;
/* Every random choice follows BULWARK_SEED: a constant false in the
 * profiles that do not read it. */
BW_INLINE bool bw_random_seeded(void) {
    return BW_SEED_FROM_ENV && bw_secrets.seeded;
}
extern BW_HIDDEN atomic_uint bw_rng_generation; /* bumped in every forked child */

/* large.c */
void *bw_large_alloc(size_t size, size_t alignment, bool zero);
void *bw_large_alloc_for_growth(size_t size);
bool bw_large_free(void *ptr, size_t size, size_t alignment, const char *function);
size_t bw_large_usable_size(const void *ptr, const char *function);
void *bw_large_realloc(void *ptr, size_t size);
size_t bw_large_trim(void);
void bw_large_fork_prepare(void);
void bw_large_fork_parent(void);
void bw_large_fork_child(void);
void bw_large_stats(size_t *in_use, size_t *cached, size_t *count);
void bw_large_cache_stats(size_t *free_extents, size_t *quarantined, size_t *regions);

/* heap.c */
void *bw_malloc_slow(size_t size, bool zero);
void bw_free_slow_local(bw_heap_t *heap, bw_slab_t *slab);
bw_heap_t *bw_heap_get_or_create(void);
void bw_heap_abandon(bw_heap_t *heap);
size_t bw_heap_trim_current(void);
size_t bw_abandoned_sweep(size_t max);
void bw_heaps_fork_prepare(void);
void bw_heaps_fork_parent(void);
void bw_heaps_fork_child(void);
void bw_heap_stats(size_t *heaps_live, size_t *abandoned);
void bw_heap_quarantine_stats(size_t *blocks, size_t *bytes);
void bw_heap_thread_exit(void *arg);
void bw_quarantine_put(bw_heap_t *heap, void *block, bw_slab_t *slab, const char *function);
void bw_quarantine_flush(bw_heap_t *heap, const char *function);
void *bw_malloc_class(unsigned size_class, size_t size);

/* alloc.c — the fast paths and the checked free */
void bw_free_checked(void *ptr, size_t size, size_t alignment, const char *function);
size_t bw_usable_size_checked(const void *ptr, const char *function);
void *bw_alloc_aligned(size_t alignment, size_t size);

/* zero_size.c — zero-byte allocations that fault on access (malloc(0)) */
bool bw_zero_init(void);
bool bw_zero_owns(const void *ptr);
void *bw_zero_alloc(void);
void bw_zero_free(void *ptr, size_t size, const char *function);
void bw_zero_validate(void *ptr, const char *freed_class, const char *invalid_class,
                      const char *function);
void bw_zero_fork_prepare(void);
void bw_zero_fork_parent(void);
void bw_zero_fork_child(void);

/* init.c */
bool bw_ensure_init(void);

/* stats.c */
void bw_collect_stats(void *out_stats);

#endif
