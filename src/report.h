/* report.h — the fatal path, text output and the corruption reports of
 * small blocks (report.c). */
#ifndef BW_REPORT_H
#define BW_REPORT_H

#include "config.h"

struct bw_slab;

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
__attribute__((noreturn)) void bw_report_corrupt_link(const void *slot, const struct bw_slab *slab);
/* A freed block written to while it was free (wipe.h via block.h, quarantine.c). */
__attribute__((noreturn)) void
bw_report_write_after_free(const void *block, const struct bw_slab *slab, const char *function);
/* A damaged canary or slack (canary.h). */
__attribute__((noreturn)) void bw_report_overflow(const void *block, const struct bw_slab *slab,
                                                  const char *function);
/* A pointer into the arena that is not a live block: a block freed before
 * (freed_class, e.g. "double free") if its granule was handed out since the
 * slab was formatted, anything else (never allocated, inside a block, not
 * 16-byte aligned, in an unused slot) invalid_class. */
__attribute__((noreturn)) void bw_report_not_live(const void *ptr, const struct bw_slab *slab,
                                                  const char *freed_class,
                                                  const char *invalid_class, const char *function);
/* A free list led to a block that is not free (block.h, bw_slab_pop). */
__attribute__((noreturn)) void bw_report_not_free(const void *block, const struct bw_slab *slab);

#endif
