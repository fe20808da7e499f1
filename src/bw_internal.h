/* bw_internal.h — every layer's header, for the files that use several.
 * Each layer's types and calls sit in a header named after it (DESIGN.md,
 * "files"); this one only gathers them, lowest layer first. Nothing here is
 * exported. */
#ifndef BW_INTERNAL_H
#define BW_INTERNAL_H

#include "config.h"
#include "heap.h"
#include "hot.h"
#include "init.h"
#include "large.h"
#include "lock.h"
#include "meta_key.h"
#include "os.h"
#include "quarantine.h"
#include "random.h"
#include "report.h"
#include "segment.h"
#include "sizeclass.h"
#include "slab.h"
#include "ways.h"
#include "zero_size.h"

#endif
