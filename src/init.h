/* init.h — start-up (init.c). */
#ifndef BW_INIT_H
#define BW_INIT_H

#include "config.h"

extern BW_HIDDEN atomic_int bw_init_state; /* 0 = not started, 1 = running, 2 = done,
                                              3 = failed (for good: init.c) */
/* init.c */
bool bw_ensure_init(void);
void bw_locks_take_all(void); /* every lock (lock.h, bw_locks), as fork does */
void bw_locks_release_all(void);

#endif
