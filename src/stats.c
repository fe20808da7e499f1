/* stats.c — statistics: bw_get_stats, mallinfo2's numbers, malloc_stats,
 * the text and JSON reports, malloc_info, and the report at exit that
 * BULWARK_STATS asks for. Counters are read without stopping other threads
 * and without taking any lock, so a snapshot is approximate while they
 * run, and bw_get_stats, bw_print_stats(_json), mallinfo2 and malloc_stats
 * are async-signal safe: a handler may interrupt a thread that holds an
 * allocator lock. The reports are built in a stack buffer and written with
 * write(2). Nothing here allocates except what stdio does inside
 * malloc_info. */
#include <fcntl.h>
#include <malloc.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "bulwark.h"
#include "bw_internal.h"

/* What the reports add to struct bw_stats: per class and per node. */
typedef struct {
    struct bw_stats s;
    size_t class_slabs[BW_CLASS_COUNT];
    size_t class_blocks[BW_CLASS_COUNT]; /* carved blocks of its slabs */
    size_t class_used[BW_CLASS_COUNT];   /* of them, not free (live, quarantined, pending) */
    size_t node_segments[BW_MAX_NUMA_NODES];
} bw_detail_t;

/* One pass over the descriptors of the carved segments. A span's tail
 * slots count as slab memory of the span's layer. */
static void bw_collect(bw_detail_t *d) {
    struct bw_stats *out = &d->s;
    size_t segments = bw_segments_in_use();
    out->segments_in_use = segments;
    for (size_t i = 0; i < segments; i++) {
        unsigned node = bw_layout.segments[i].node;
        d->node_segments[node < BW_MAX_NUMA_NODES ? node : 0]++;
    }
    for (size_t i = 0; i < segments * BW_SLABS_PER_SEGMENT; i++) {
        const bw_slab_t *slot = &bw_layout.slabs[i];
        if (BW_SLAB_GUARD && !slot->unguarded) out->guard_pages_slabs++;
        if (slot->state != BW_SLAB_ACTIVE && slot->state != BW_SLAB_ABANDONED) continue;
        const bw_slab_t *slab = slot - slot->head_back;
        bool medium = slab->span_shift > BW_SLAB_SHIFT;
        out->small_committed_bytes += BW_SLAB_SIZE;
        if (medium) out->medium_committed_bytes += BW_SLAB_SIZE;
        if (slot->head_back) continue;
        size_t used = slab->used > 0 ? (size_t)slab->used : 0;
        size_t bytes = used * slab->block_size;
        out->slabs_in_use++;
        out->small_in_use_bytes += bytes;
        if (medium) out->medium_in_use_bytes += bytes;
        unsigned c = slab->size_class < BW_CLASS_COUNT ? slab->size_class : 0;
        d->class_slabs[c]++;
        d->class_blocks[c] += slab->nblocks;
        d->class_used[c] += used;
    }
    bw_large_stats(&out->large_in_use_bytes, &out->large_cached_bytes, &out->large_count);
    bw_large_cache_stats(&out->large_free_extents, &out->large_quarantined, &out->large_regions);
    bw_heap_stats(&out->heaps_live, &out->slabs_abandoned);
    bw_quarantine_stats(&out->quarantine_blocks, &out->quarantine_bytes);
}

/* An entry point: metadata may be unreadable (BW_PKEY_METADATA) in a
 * thread that never allocated. */
static void bw_get_detail(bw_detail_t *d) {
    memset(d, 0, sizeof *d);
    d->s.numa_nodes = bw_topology.node_count;
    d->s.metadata_pkey = bw_meta_pkey;
    d->s.reserved_space = !bw_space_lazy;
    bw_os_guard_stats(&d->s.guard_pages_by_madvise, &d->s.guard_pages_by_mprotect);
    if (atomic_load_explicit(&bw_init_state, memory_order_acquire) != 2) return;
    BW_META_OPEN();
    bw_collect(d);
    BW_META_CLOSE();
}

void bw_get_stats_sized(struct bw_stats *out, size_t size) {
    bw_detail_t d;
    bw_get_detail(&d);
    memcpy(out, &d.s, size < sizeof d.s ? size : sizeof d.s);
}

/* The first struct bw_stats ended with numa_nodes. */
void(bw_get_stats)(struct bw_stats *out) {
    bw_get_stats_sized(out, offsetof(struct bw_stats, numa_nodes) + sizeof out->numa_nodes);
}

const char *bw_profile(void) {
    return BW_PROFILE_NAME;
}

const char *bw_guard_method(void) {
    return bw_os_guard_method();
}

/* ------------------------------------------------------------ output
 * A report goes through a stack buffer written out whenever it fills: a
 * report fits in one write(2) in the usual case, which an O_APPEND file
 * keeps whole when several processes append to it. */
typedef struct {
    int fd;
    size_t n;
    char buf[3072];
} bw_out_t;

static void bw_flush(bw_out_t *o) {
    bw_write_buf(o->fd, o->buf, o->n);
    o->n = 0;
}

static void bw_put(bw_out_t *o, const char *text) {
    for (; *text; text++) {
        if (o->n == sizeof o->buf) bw_flush(o);
        o->buf[o->n++] = *text;
    }
}

static void bw_put_u64(bw_out_t *o, uint64_t value) {
    char digits[24];
    digits[bw_fmt_u64(digits, value)] = 0;
    bw_put(o, digits);
}

static void bw_put_int(bw_out_t *o, long value) {
    if (value < 0) bw_put(o, "-");
    bw_put_u64(o, value < 0 ? (uint64_t)-value : (uint64_t)value);
}

static void bw_line(bw_out_t *o, const char *label, size_t value) {
    bw_put(o, label);
    bw_put_u64(o, value);
    bw_put(o, "\n");
}

static const char *bw_pkey_text(int key) {
    if (key >= 0) return "metadata write-protected by a protection key";
    return BW_PKEY_METADATA ? "none (no PKU in this CPU or kernel)" : "not used by this profile";
}

void bw_print_stats(int fd) {
    bw_detail_t d;
    bw_get_detail(&d);
    const struct bw_stats *s = &d.s;
    bw_out_t o;
    o.fd = fd;
    o.n = 0;
    bw_put(&o, "bulwark " BW_PROFILE_NAME " statistics\n");
    bw_line(&o, "  small in use bytes:    ", s->small_in_use_bytes);
    bw_line(&o, "  small slab bytes:      ", s->small_committed_bytes);
    bw_line(&o, "  large in use bytes:    ", s->large_in_use_bytes);
    bw_line(&o, "  large cached bytes:    ", s->large_cached_bytes);
    bw_line(&o, "  large allocations:     ", s->large_count);
    bw_line(&o, "  segments (4 MiB):      ", s->segments_in_use);
    bw_line(&o, "  slabs in use:          ", s->slabs_in_use);
    bw_line(&o, "  slabs abandoned:       ", s->slabs_abandoned);
    bw_line(&o, "  live thread heaps:     ", s->heaps_live);
    bw_line(&o, "  NUMA nodes:            ", s->numa_nodes);
    bw_line(&o, "  guard pages by madvise: ", bw_os_has_guard_madvise());
    bw_line(&o, "  pid:                   ", (size_t)getpid());
    bw_put(&o, "  profile:               " BW_PROFILE_NAME "\n  guard pages:           ");
    bw_put(&o, bw_os_guard_method());
    bw_put(&o, "\n  protection keys:       ");
    bw_put(&o, bw_pkey_text(s->metadata_pkey));
    bw_put(&o, s->reserved_space ? "\n  address space:         reserved\n"
                                 : "\n  address space:         lazy (finite RLIMIT_AS)\n");
    bw_put(&o, bw_page_mode() ? "  page mode:             on\n" : "  page mode:             off\n");
    bw_line(&o, "  of small, medium bytes: ", s->medium_in_use_bytes);
    bw_line(&o, "  of slab, medium bytes: ", s->medium_committed_bytes);
    bw_line(&o, "  quarantine blocks:     ", s->quarantine_blocks);
    bw_line(&o, "  quarantine bytes:      ", s->quarantine_bytes);
    bw_line(&o, "  large free extents:    ", s->large_free_extents);
    bw_line(&o, "  large quarantined:     ", s->large_quarantined);
    bw_line(&o, "  large regions:         ", s->large_regions);
    bw_line(&o, "  slab guard pages:      ", s->guard_pages_slabs);
    bw_line(&o, "  guarded by madvise:    ", s->guard_pages_by_madvise);
    bw_line(&o, "  guarded by mprotect:   ", s->guard_pages_by_mprotect);
    for (unsigned n = 0; n < s->numa_nodes && n < BW_MAX_NUMA_NODES; n++) {
        bw_put(&o, "  segments on node ");
        bw_put_u64(&o, n);
        bw_line(&o, ":   ", d.node_segments[n]);
    }
    for (unsigned c = 1; c < BW_CLASS_COUNT; c++) {
        if (!d.class_slabs[c]) continue;
        bw_put(&o, "  class ");
        bw_put_u64(&o, bw_class_size[c]);
        bw_put(&o, ": slabs ");
        bw_put_u64(&o, d.class_slabs[c]);
        bw_put(&o, ", blocks ");
        bw_put_u64(&o, d.class_blocks[c]);
        bw_line(&o, ", in use ", d.class_used[c]);
    }
    bw_flush(&o);
}

static void bw_field(bw_out_t *o, const char *key, size_t value) {
    bw_put(o, "\"");
    bw_put(o, key);
    bw_put(o, "\":");
    bw_put_u64(o, value);
}

/* One object on one line; docs/OPERATIONS.md documents every field. */
void bw_print_stats_json(int fd) {
    bw_detail_t d;
    bw_get_detail(&d);
    const struct bw_stats *s = &d.s;
    bw_out_t o;
    o.fd = fd;
    o.n = 0;
    bw_put(&o, "{");
    bw_field(&o, "pid", (size_t)getpid());
    bw_put(&o, ",\"profile\":\"" BW_PROFILE_NAME "\",\"features\":{\"guard_method\":\"");
    bw_put(&o, bw_os_guard_method());
    bw_put(&o, "\",\"metadata_pkey\":");
    bw_put_int(&o, s->metadata_pkey);
    bw_put(&o, ",\"protection_keys\":\"");
    bw_put(&o, bw_pkey_text(s->metadata_pkey));
    bw_put(&o, "\",");
    bw_field(&o, "numa_nodes", s->numa_nodes);
    bw_put(&o,
           s->reserved_space ? ",\"address_space\":\"reserved\"" : ",\"address_space\":\"lazy\"");
    bw_put(&o, bw_page_mode() ? ",\"page_mode\":true}" : ",\"page_mode\":false}");
    bw_put(&o, ",\"small\":{");
    bw_field(&o, "in_use_bytes", s->small_in_use_bytes - s->medium_in_use_bytes);
    bw_put(&o, ",");
    bw_field(&o, "slab_bytes", s->small_committed_bytes - s->medium_committed_bytes);
    bw_put(&o, "},\"medium\":{");
    bw_field(&o, "in_use_bytes", s->medium_in_use_bytes);
    bw_put(&o, ",");
    bw_field(&o, "slab_bytes", s->medium_committed_bytes);
    bw_put(&o, "},\"slabs\":{");
    bw_field(&o, "in_use", s->slabs_in_use);
    bw_put(&o, ",");
    bw_field(&o, "abandoned", s->slabs_abandoned);
    bw_put(&o, "},");
    bw_field(&o, "heaps", s->heaps_live);
    bw_put(&o, ",\"segments\":{");
    bw_field(&o, "total", s->segments_in_use);
    bw_put(&o, ",\"by_node\":[");
    for (unsigned n = 0; n < s->numa_nodes && n < BW_MAX_NUMA_NODES; n++) {
        if (n) bw_put(&o, ",");
        bw_put_u64(&o, d.node_segments[n]);
    }
    bw_put(&o, "]},\"quarantine\":{");
    bw_field(&o, "blocks", s->quarantine_blocks);
    bw_put(&o, ",");
    bw_field(&o, "bytes", s->quarantine_bytes);
    bw_put(&o, ",");
    bw_field(&o, "slots_per_heap", BW_QUARANTINE_SLOTS);
    bw_put(&o, ",");
    bw_field(&o, "bytes_per_heap", BW_QUARANTINE_BYTES);
    bw_put(&o, "},\"large\":{");
    bw_field(&o, "in_use_bytes", s->large_in_use_bytes);
    bw_put(&o, ",");
    bw_field(&o, "count", s->large_count);
    bw_put(&o, ",");
    bw_field(&o, "cached_bytes", s->large_cached_bytes);
    bw_put(&o, ",");
    bw_field(&o, "free_extents", s->large_free_extents);
    bw_put(&o, ",");
    bw_field(&o, "quarantined", s->large_quarantined);
    bw_put(&o, ",");
    bw_field(&o, "quarantine_slots", bw_large_quarantine_slots());
    bw_put(&o, ",");
    bw_field(&o, "regions", s->large_regions);
    bw_put(&o, "},\"guards\":{\"method\":\"");
    bw_put(&o, bw_os_guard_method());
    bw_put(&o, "\",");
    bw_field(&o, "slab_pages", s->guard_pages_slabs);
    bw_put(&o, ",");
    bw_field(&o, "installed_by_madvise", s->guard_pages_by_madvise);
    bw_put(&o, ",");
    bw_field(&o, "installed_by_mprotect", s->guard_pages_by_mprotect);
    bw_put(&o, "},\"classes\":[");
    bool first = true;
    for (unsigned c = 1; c < BW_CLASS_COUNT; c++) {
        if (!d.class_slabs[c]) continue;
        bw_put(&o, first ? "{" : ",{");
        first = false;
        bw_field(&o, "size", bw_class_size[c]);
        bw_put(&o, ",");
        bw_field(&o, "slabs", d.class_slabs[c]);
        bw_put(&o, ",");
        bw_field(&o, "blocks", d.class_blocks[c]);
        bw_put(&o, ",");
        bw_field(&o, "in_use", d.class_used[c]);
        bw_put(&o, "}");
    }
    bw_put(&o, "]}\n");
    bw_flush(&o);
}

void bw_malloc_stats(void) {
    bw_print_stats(STDERR_FILENO);
}

/* glibc's layout (malloc/malloc.c, __malloc_info): one <heap> (bulwark's
 * threads share one pool of slabs), whose <sizes> lists, like glibc's bins,
 * the free blocks of every size class that has slabs: from/to are the
 * request sizes the class serves, total the free bytes, count the free
 * blocks. Large free extents follow as one entry above the largest class. */
int bw_malloc_info(int options, FILE *stream) {
    if (options != 0) return -1; /* glibc: EINVAL for non-zero options */
    bw_detail_t d;
    bw_get_detail(&d);
    const struct bw_stats *s = &d.s;
    size_t free_small = s->small_committed_bytes - s->small_in_use_bytes;
    size_t free_blocks = 0;
    fprintf(stream, "<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n");
    for (unsigned c = 1; c < BW_CLASS_COUNT; c++) {
        if (!d.class_slabs[c]) continue;
        size_t count = d.class_blocks[c] - d.class_used[c];
        free_blocks += count;
        fprintf(stream, "  <size from=\"%u\" to=\"%u\" total=\"%zu\" count=\"%zu\"/>\n",
                bw_class_size[c - 1] + 1, bw_class_size[c], count * bw_class_size[c], count);
    }
    if (s->large_free_extents)
        fprintf(stream, "  <size from=\"%u\" to=\"%zu\" total=\"%zu\" count=\"%zu\"/>\n",
                BW_SMALL_MAX + 1, s->large_cached_bytes, s->large_cached_bytes,
                s->large_free_extents);
    fprintf(stream,
            "</sizes>\n"
            "<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
            "<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n"
            "<system type=\"current\" size=\"%zu\"/>\n"
            "<system type=\"max\" size=\"%zu\"/>\n"
            "<aspace type=\"total\" size=\"%zu\"/>\n"
            "<aspace type=\"mprotect\" size=\"%zu\"/>\n"
            "</heap>\n"
            "<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
            "<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n"
            "<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>\n"
            "<system type=\"current\" size=\"%zu\"/>\n"
            "<system type=\"max\" size=\"%zu\"/>\n"
            "<aspace type=\"total\" size=\"%zu\"/>\n"
            "<aspace type=\"mprotect\" size=\"%zu\"/>\n"
            "</malloc>\n",
            free_blocks, free_small, s->small_committed_bytes, s->small_committed_bytes,
            s->small_committed_bytes, s->small_committed_bytes, free_blocks + s->large_free_extents,
            free_small + s->large_cached_bytes, s->large_count, s->large_in_use_bytes,
            s->small_committed_bytes + s->large_in_use_bytes,
            s->small_committed_bytes + s->large_in_use_bytes,
            s->small_committed_bytes + s->large_in_use_bytes,
            s->small_committed_bytes + s->large_in_use_bytes);
    return 0;
}

/* mallinfo2 in glibc's terms: arena = small slab bytes, uordblks = bytes
 * in use (small blocks at class size plus large mappings), fordblks = free
 * bytes held, hblks/hblkhd = large mappings. */
struct mallinfo2 bw_mallinfo2_impl(void);
struct mallinfo2 bw_mallinfo2_impl(void) {
    struct bw_stats s;
    bw_get_stats(&s);
    struct mallinfo2 mi;
    memset(&mi, 0, sizeof mi);
    mi.arena = s.small_committed_bytes;
    mi.ordblks = s.slabs_in_use;
    mi.hblks = s.large_count;
    mi.hblkhd = s.large_in_use_bytes;
    mi.uordblks = s.small_in_use_bytes + s.large_in_use_bytes;
    mi.fordblks = s.small_committed_bytes - s.small_in_use_bytes + s.large_cached_bytes;
    mi.keepcost = s.large_cached_bytes;
    return mi;
}

/* ------------------------------------------------------------ at exit
 * BULWARK_STATS=[json:]stderr|PATH: the report, text or JSON, when the
 * process exits (a library destructor: exit() and a return from main run
 * it, _exit and a fatal signal do not). A PATH is opened at exit with
 * O_APPEND, so every process that inherits the variable (forked children,
 * programs it runs) adds its own report; a relative PATH is taken from the
 * working directory at exit. Output only: nothing else reads the variable,
 * and a set-uid or set-gid process (AT_SECURE) ignores it, as it ignores
 * BULWARK_SEED. Read in a constructor, before the program can change its
 * environment; getenv does not allocate. */
static int bw_exit_format;     /* 0 none, 1 text, 2 JSON */
static char bw_exit_path[256]; /* empty: stderr */

__attribute__((constructor)) static void bw_stats_read_env(void) {
    if (getauxval(AT_SECURE)) return;
    const char *value = getenv("BULWARK_STATS");
    if (!value || !*value) return;
    bw_exit_format = 1;
    if (!strncmp(value, "json", 4) && (value[4] == ':' || value[4] == 0)) {
        bw_exit_format = 2;
        value += value[4] ? 5 : 4;
    }
    if (!*value || !strcmp(value, "stderr")) return;
    size_t length = strlen(value);
    if (length >= sizeof bw_exit_path) { /* not a path we can keep: stderr */
        bw_write_str(STDERR_FILENO, "bulwark: BULWARK_STATS path too long; statistics to stderr\n");
        return;
    }
    memcpy(bw_exit_path, value, length + 1);
}

__attribute__((destructor)) static void bw_stats_at_exit(void) {
    if (!bw_exit_format) return;
    int fd = STDERR_FILENO;
    if (bw_exit_path[0]) {
        fd = open(bw_exit_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) return;
    }
    if (bw_exit_format == 2)
        bw_print_stats_json(fd);
    else
        bw_print_stats(fd);
    if (fd != STDERR_FILENO) close(fd);
}
