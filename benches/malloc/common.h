/* Shared helpers of the allocator workloads: a PRNG that is the same on
 * every allocator (so every run does identical work), argument parsing,
 * and a touch/check of each block so a broken allocator is caught, not
 * timed. */
#ifndef SKMEM_MALLOC_BENCH_COMMON_H
#define SKMEM_MALLOC_BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* xorshift64*: fast, deterministic from its seed. */
static inline uint64_t rng_next(uint64_t *state) {
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* A size in [lo, hi] with small sizes far more likely (1/x-like), as
 * real programs and glibc's bench-malloc-thread draw them. */
static inline size_t rng_size(uint64_t *state, size_t lo, size_t hi) {
    uint64_t r = rng_next(state);
    unsigned span_bits = 0;
    while (((size_t)1 << (span_bits + 1)) <= hi - lo + 1)
        span_bits++;
    unsigned bits = (unsigned)(r % (span_bits + 1));
    size_t cap = ((size_t)1 << bits);
    return lo + (size_t)((r >> 8) % cap);
}

static inline long arg_long(int argc, char **argv, int i, long dflt) {
    return argc > i ? strtol(argv[i], NULL, 10) : dflt;
}

/* Writes a tag at both ends of the block (small blocks: every byte). */
static inline void stamp(void *p, size_t size, uint64_t tag) {
    if (size >= 2 * sizeof tag) {
        memcpy(p, &tag, sizeof tag);
        memcpy((char *)p + size - sizeof tag, &tag, sizeof tag);
    } else if (size > 0) {
        memset(p, (int)(tag & 0xff), size);
    }
}

/* Whether the block still holds the tag `stamp` wrote; a failure means the
 * allocator handed the same memory out twice or corrupted it. */
static inline int stamped(const void *p, size_t size, uint64_t tag) {
    if (size >= 2 * sizeof tag) {
        uint64_t a, b;
        memcpy(&a, p, sizeof a);
        memcpy(&b, (const char *)p + size - sizeof b, sizeof b);
        return a == tag && b == tag;
    }
    for (size_t i = 0; i < size; i++)
        if (((const unsigned char *)p)[i] != (unsigned char)(tag & 0xff))
            return 0;
    return 1;
}

static inline void *xmalloc(size_t size) {
    void *p = malloc(size);
    if (p == NULL) {
        fprintf(stderr, "malloc(%zu) failed\n", size);
        abort();
    }
    return p;
}

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            abort();                                                           \
        }                                                                      \
    } while (0)

#endif
