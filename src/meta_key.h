/* meta_key.h — the protection key of the metadata (BW_PKEY_METADATA): the
 * open and close every entry point makes (the key itself: os.c). */
#ifndef BW_META_KEY_H
#define BW_META_KEY_H

#include "config.h"

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
    // cppcheck-suppress uninitvar ; eax is the asm statement's output
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

#endif
