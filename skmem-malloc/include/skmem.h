/* skmem.h: libskmem.so, a malloc over skmem's size classes of magazine
 * caches.
 *
 * The standard functions (malloc, free, calloc, realloc, reallocarray,
 * posix_memalign, aligned_alloc, memalign, valloc, pvalloc,
 * malloc_usable_size) keep their <stdlib.h> / <malloc.h> declarations:
 * link with -lskmem (pkg-config --libs skmem) or preload the library
 * (LD_PRELOAD=libskmem.so) and they are skmem's. Their behaviour is C's
 * and glibc's: NULL with errno ENOMEM or EINVAL on failure (posix_memalign
 * returns the error), malloc(0) unique and non-NULL, realloc(p, 0) frees p
 * and returns NULL, free of a pointer skmem did not return prints the
 * address on stderr and aborts.
 *
 * Environment: SKMEM_SHOW_STATS=1 prints a one-line summary on stderr at
 * exit.
 *
 * This header adds what only skmem has. */
#ifndef SKMEM_H
#define SKMEM_H

#include <stdlib.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1 if ptr points into memory of skmem's allocator (any block, live or
 * free, its start or inside it), 0 otherwise. Constant time, no lock. */
int skmem_owns(const void *ptr);

/* Prints the one-line summary (what SKMEM_SHOW_STATS=1 prints at exit) on
 * stderr now. Does not allocate. */
void skmem_print_summary(void);

#ifdef __cplusplus
}
#endif

#endif /* SKMEM_H */
