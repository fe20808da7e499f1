/* stats.c — statistics: bw_get_stats, mallinfo2's numbers, malloc_stats and
 * malloc_info output. Counters are read without stopping other threads and
 * without taking any lock, so a snapshot is approximate while they run, and
 * bw_get_stats, bw_print_stats, mallinfo2 and malloc_stats are async-signal
 * safe: a handler may interrupt a thread that holds an allocator lock.
 * Nothing here allocates except what stdio does inside malloc_info. */
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bulwark.h"
#include "bw_internal.h"

static void bw_collect(struct bw_stats *out) {
    size_t segments = bw_segments_in_use();
    out->segments_in_use = segments;
    for (size_t i = 0; i < segments * BW_SLABS_PER_SEGMENT; i++) {
        const bw_slab_t *slab = &bw_layout.slabs[i];
        if (slab->state != BW_SLAB_ACTIVE && slab->state != BW_SLAB_ABANDONED) continue;
        out->small_committed_bytes += BW_SLAB_SIZE; /* a span's tails count here too */
        if (slab->head_back) continue;
        out->slabs_in_use++;
        out->small_in_use_bytes += (size_t)slab->used * slab->block_size;
    }
    bw_large_stats(&out->large_in_use_bytes, &out->large_cached_bytes, &out->large_count);
    bw_heap_stats(&out->heaps_live, &out->slabs_abandoned);
}

/* An entry point: metadata may be unreadable (BW_PKEY_METADATA) in a
 * thread that never allocated. */
void bw_get_stats(struct bw_stats *out) {
    memset(out, 0, sizeof *out);
    out->numa_nodes = bw_topology.node_count;
    if (atomic_load_explicit(&bw_init_state, memory_order_acquire) != 2) return;
    BW_META_OPEN();
    bw_collect(out);
    BW_META_CLOSE();
}

static size_t bw_line(char *buf, const char *label, size_t value) {
    size_t n = strlen(label);
    memcpy(buf, label, n); // NOLINT(bugprone-not-null-terminated-result): a line, not a string
    n += bw_fmt_u64(buf + n, value);
    buf[n++] = '\n';
    return n;
}

void bw_print_stats(int fd) {
    struct bw_stats s;
    bw_get_stats(&s);
    char text[1024];
    size_t n = 0;
    n += bw_line(text + n, "bulwark " BW_PROFILE_NAME " statistics\n  small in use bytes:    ",
                 s.small_in_use_bytes);
    n += bw_line(text + n, "  small slab bytes:      ", s.small_committed_bytes);
    n += bw_line(text + n, "  large in use bytes:    ", s.large_in_use_bytes);
    n += bw_line(text + n, "  large cached bytes:    ", s.large_cached_bytes);
    n += bw_line(text + n, "  large allocations:     ", s.large_count);
    n += bw_line(text + n, "  segments (4 MiB):      ", s.segments_in_use);
    n += bw_line(text + n, "  slabs in use:          ", s.slabs_in_use);
    n += bw_line(text + n, "  slabs abandoned:       ", s.slabs_abandoned);
    n += bw_line(text + n, "  live thread heaps:     ", s.heaps_live);
    n += bw_line(text + n, "  NUMA nodes:            ", s.numa_nodes);
    n += bw_line(text + n, "  guard pages by madvise: ", bw_os_has_guard_madvise());
    text[n] = 0;
    bw_write_str(fd, text);
}

void bw_malloc_stats(void) {
    bw_print_stats(STDERR_FILENO);
}

int bw_malloc_info(int options, FILE *stream) {
    if (options != 0) return -1; /* glibc: EINVAL for non-zero options */
    struct bw_stats s;
    bw_get_stats(&s);
    fprintf(stream,
            "<malloc version=\"1\">\n"
            "<heap nr=\"0\">\n"
            "<sizes>\n</sizes>\n"
            "<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
            "<total type=\"rest\" count=\"0\" size=\"%zu\"/>\n"
            "<system type=\"current\" size=\"%zu\"/>\n"
            "<system type=\"max\" size=\"%zu\"/>\n"
            "<aspace type=\"total\" size=\"%zu\"/>\n"
            "<aspace type=\"mprotect\" size=\"%zu\"/>\n"
            "</heap>\n"
            "<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
            "<total type=\"rest\" count=\"0\" size=\"%zu\"/>\n"
            "<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>\n"
            "<system type=\"current\" size=\"%zu\"/>\n"
            "<system type=\"max\" size=\"%zu\"/>\n"
            "<aspace type=\"total\" size=\"%zu\"/>\n"
            "<aspace type=\"mprotect\" size=\"%zu\"/>\n"
            "</malloc>\n",
            s.small_committed_bytes - s.small_in_use_bytes, s.small_committed_bytes,
            s.small_committed_bytes, s.small_committed_bytes, s.small_committed_bytes,
            s.small_committed_bytes - s.small_in_use_bytes + s.large_cached_bytes, s.large_count,
            s.large_in_use_bytes, s.small_committed_bytes + s.large_in_use_bytes,
            s.small_committed_bytes + s.large_in_use_bytes,
            s.small_committed_bytes + s.large_in_use_bytes,
            s.small_committed_bytes + s.large_in_use_bytes);
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
