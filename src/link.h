/* link.h — free-list links in user memory (DESIGN.md invariant 3).
 *
 * A free block's first 8 bytes hold the link to the next block of the same
 * list, the only allocator data (with canaries) kept in user pages. The
 * program can read and write a freed block (use after free), so a link must
 * neither tell an attacker how to forge another nor be followed when forged.
 *
 * A link is not an encrypted pointer but a short offset with a keyed tag:
 *
 *     bits  4..20  offset of the next block from the start of the span, a
 *                  multiple of 16 below 2^20 (a span is at most 16 slots,
 *                  1 MiB); 0x1ffff0, past every span, ends the list
 *     bits  0..3 and 21..63
 *                  tag = those 47 bits of mix(slot ^ slab key ^ offset << 43)
 *
 * where slot is the link's own address and mix is a multiply, xorshift,
 * multiply with the process's secret odd multipliers (bw_secrets). Block
 * offsets are multiples of 16, so the offset's low four bits carry tag bits
 * too and spans up to 1 MiB keep the 47-bit tag 128 KiB spans had with a
 * 17-bit byte offset. The tag covers both the slot and the target, so a
 * leaked link, even one whose target is known (a list's end), tells nothing
 * about the link another target or another slot needs: XORing in a
 * different pointer, replaying a link at another address or guessing a key
 * from a known plaintext (the 2^17 search that broke the old
 * rotl(next ^ slot ^ key, 17) + key) all leave a tag that does not match,
 * except with probability 2^-47 per try.
 * The mix is not a cryptographic MAC: it is a keyed, non-linear hash whose
 * outputs are truncated, chosen to cost two multiplies.
 *
 * Decoding is also cheap on the malloc critical path: the next pointer is
 * the span start plus the low bits; the tag is checked beside it. A decoded
 * link must also land on a block boundary of the same slab (below its last
 * block), and the block it names must be free when it is handed out
 * (bw_slab_pop checks the bitmaps): a forged link never hands out a live
 * block or one in a quarantine, even with the keys known. */
#ifndef BW_LINK_H
#define BW_LINK_H

#include "random.h"
#include "report.h"
#include "slab.h"

/* Offset bits 4..20 of the link word (the offset's low four are zero). */
#define BW_LINK_OFFSET_MASK ((uint64_t)0x1ffff0)
#define BW_LINK_END         BW_LINK_OFFSET_MASK
#define BW_LINK_TAG_SHIFT   43 /* puts the offset's bits 4..20 at 47..63, above any slot */
_Static_assert(BW_SPAN_MAX_BYTES <= ((uint64_t)1 << 20),
               "a span's offsets are below the end marker and fit the link's offset field");

#if BW_ENCODE_LINKS
/* The tag of a link at `slot` naming span offset `offset`, in the link's
 * 47 bits outside the offset field (the others zero). slot is below 2^47
 * (user space) and offset a multiple of 16 below 2^21, so offset << 43
 * lies in bits 47..63 and the XOR is injective in (slot, offset) for a
 * given key. */
BW_INLINE uint64_t bw_link_tag(const bw_slab_t *slab, const void *slot, uint64_t offset) {
    uint64_t h =
        ((uintptr_t)slot ^ slab->key ^ (offset << BW_LINK_TAG_SHIFT)) * bw_secrets.link_mul1;
    h ^= h >> 29;
    h *= bw_secrets.link_mul2;
    return h & ~BW_LINK_OFFSET_MASK;
}
#endif

BW_INLINE void bw_link_store(const bw_slab_t *slab, void *slot, void *next) {
#if BW_ENCODE_LINKS
    uint64_t offset = next ? (uintptr_t)next - bw_span_start_of(slab, slot) : BW_LINK_END;
    *(uint64_t *)slot = offset | bw_link_tag(slab, slot, offset);
#else
    (void)slab;
    *(void **)slot = next;
#endif
}

BW_INLINE void *bw_link_load(const bw_slab_t *slab, void *slot) {
#if BW_ENCODE_LINKS
    uint64_t word = *(uint64_t *)slot;
    uint64_t offset = word & BW_LINK_OFFSET_MASK;
    bool end = offset == BW_LINK_END;
    bool tag_ok = (word & ~BW_LINK_OFFSET_MASK) == bw_link_tag(slab, slot, offset);
    if (bw_unlikely(!tag_ok ||
                    (!end && (offset >= slab->limit || !bw_slab_on_boundary(slab, offset)))))
        bw_report_corrupt_link(slot, slab);
    return end ? NULL : (void *)(bw_span_start_of(slab, slot) + offset);
#else
    (void)slab;
    return *(void **)slot;
#endif
}

#endif
