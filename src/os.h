/* os.h — the system calls (os.c) and the NUMA topology they found. */
#ifndef BW_OS_H
#define BW_OS_H

#include "config.h"

/* Pages guarded since start-up, by how (statistics; os.c): on the locks'
 * page (bw_hot, hot.h), which page mode's every malloc and free writes. */
typedef struct {
    atomic_size_t by_madvise, by_mprotect;
} bw_guard_counts_t;

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
void *bw_os_map_none(size_t size);
bool bw_os_future_locked(void);
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
bool bw_os_random(void *buf, size_t size);
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

#endif
