/* policy/fuzz.h — the fuzz profile, for fuzzing harnesses (AFL++, libFuzzer):
 * every detection on, and BULWARK_SEED makes the random choices reproducible so
 * a crash replays exactly.
 *
 * Every knob is a compile-time constant; `make PROFILE=default` includes this
 * file before every translation unit. Each line says what the knob stops and
 * what it costs. */
#ifndef BW_POLICY_H
#define BW_POLICY_H

#define BW_PROFILE_NAME "fuzz"

/* Arena, segment and slab sizes, purge delay, large-block cache. */
#include "common/layout.h"

/* ---- hardening: everything strict has ---- */
#define BW_RANDOM_FREELIST 1
#define BW_ENCODE_LINKS    1
#define BW_SLAB_GUARD      1
#define BW_CANARY          1

/* Byte-exact overflow detection: the canary records the requested size and
 * the bytes between it and the canary hold a pattern, checked at free and
 * realloc, so a write of any byte past the request is reported (the
 * off-by-one of a malloc(strlen(s)) copy included); malloc_usable_size
 * returns the request. Costs filling and comparing the class's slack
 * (below 20% of the block) per malloc and free. */
#define BW_EXACT_SIZE        1
#define BW_ZERO_ON_FREE      1
#define BW_WAF_CHECK_MAX     16384
#define BW_QUARANTINE_SLOTS  8192
#define BW_QUARANTINE_BYTES  (16u << 20)
#define BW_LARGE_QUARANTINE  64
#define BW_LARGE_RIGHT_ALIGN 1

/* Page mode, as libdislocator (AFL++) places blocks: every block that is
 * not zero bytes gets pages of its own, ends at its trailing guard page
 * (the bytes between the request and the 16-byte boundary are checked at
 * free), and is inaccessible once freed while the large quarantine holds
 * it, so that an overflow, a read past the end and a use after free fault
 * at the access, in the first execution that commits them. On unless
 * BULWARK_FUZZ_PAGES=0 (or a statically linked program defines
 * `int bulwark_fuzz_pages = 0;`, as bulwark's own harnesses do): then the
 * slab layers serve small blocks as in the other profiles. */
#define BW_PAGE_MODE 1

/* BULWARK_SEED=<decimal> fixes every random choice (free-list order,
 * quarantine exits, keys, canaries, region bases, large-region addresses)
 * and replaces the clock of the time-driven choices by a count, so a crash
 * reproduces with the same report line (random.c, DESIGN.md "Seeded
 * runs"); it makes them all predictable, so it is for fuzzing only.
 * Ignored in set-uid processes (AT_SECURE). */
#define BW_SEED_FROM_ENV 1

/* malloc(0) returns a unique pointer into never-accessible address space:
 * any read or write through it faults. Costs a lock per malloc(0). */
#define BW_ZERO_SIZE_FAULTS 1

/* Metadata (slab descriptors, bitmaps, segment headers, heaps, the large
 * table) carries an x86 protection key that is write-disabled except while
 * a thread runs inside bulwark: a stray or attacker-controlled write from
 * the program into allocator state faults (SEGV_PKUERR) instead of forging
 * it. Costs two WRPKRU per call where the CPU has PKU, and they are not
 * cheap: on the KVM AMD EPYC of bench/RESULTS.md (2026-12-02) bench/pairs 64
 * under strict took 1.33-1.48 s user for 10M pairs, 0.39-0.51 s with this
 * off (about 50 ns per call). Elsewhere (no pku flag in /proc/cpuinfo)
 * nothing changes but one predicted branch. */
#define BW_PKEY_METADATA 1

/* Placement entropy (Guarder's metric): each malloc picks one of several
 * open slabs at random so that it lands among at least 2^bits candidate
 * blocks (10 bits up to 256 bytes, 8 above, as Guarder's default). Stops
 * heap feng shui that relies on predictable neighbours. Costs a random byte
 * per malloc and more open slabs per size class (RSS). */
#define BW_ENTROPY_BITS_SMALL 10
#define BW_ENTROPY_BITS_LARGE 8

#endif
