/* churn: many sizes, random lifetimes, realloc. Each thread keeps a table
 * of slots; every step picks a random slot and allocates into it if it is
 * empty, otherwise frees it or (one time in four) reallocs it to a new
 * size, checking that the contents survived. Sizes run from 1 byte to
 * 64 KiB (small ones far more likely), with one allocation in 256 between
 * 64 KiB and 1 MiB, so every size class and the large path are exercised.
 *
 * usage: churn [threads=2] [steps=3000000] [slots=20000]
 * prints: a checksum (identical under every allocator). */
#include <pthread.h>

#include "common.h"

static long g_steps, g_slots;

struct slot {
    unsigned char *p;
    size_t size;
    uint64_t tag;
};

struct job {
    uint64_t seed;
    uint64_t bytes;
};

static size_t pick_size(uint64_t *rng) {
    if (rng_next(rng) % 256 == 0)
        return rng_size(rng, 65536, 1 << 20);
    return rng_size(rng, 1, 65536);
}

static void *worker(void *arg) {
    struct job *job = arg;
    uint64_t rng = job->seed;
    struct slot *table = calloc((size_t)g_slots, sizeof *table);
    CHECK(table != NULL, "calloc failed");
    for (long i = 0; i < g_steps; i++) {
        struct slot *s = &table[rng_next(&rng) % (uint64_t)g_slots];
        if (s->p == NULL) {
            s->size = pick_size(&rng);
            s->tag = rng_next(&rng);
            s->p = xmalloc(s->size);
            stamp(s->p, s->size, s->tag);
            job->bytes += s->size;
            continue;
        }
        CHECK(stamped(s->p, s->size, s->tag), "churn: block %p corrupted", (void *)s->p);
        if (rng_next(&rng) % 4 == 0) {
            size_t size = pick_size(&rng);
            size_t kept = size < s->size ? size : s->size;
            unsigned char first = s->p[0], last = s->p[kept - 1];
            unsigned char *q = realloc(s->p, size);
            CHECK(q != NULL, "realloc(%zu) failed", size);
            CHECK(q[0] == first && q[kept - 1] == last, "churn: realloc lost contents");
            s->p = q;
            s->size = size;
            s->tag = rng_next(&rng);
            stamp(s->p, s->size, s->tag);
            job->bytes += size;
        } else {
            free(s->p);
            s->p = NULL;
        }
    }
    for (long i = 0; i < g_slots; i++)
        free(table[i].p);
    free(table);
    return NULL;
}

int main(int argc, char **argv) {
    long threads = arg_long(argc, argv, 1, 2);
    g_steps = arg_long(argc, argv, 2, 3000000);
    g_slots = arg_long(argc, argv, 3, 20000);
    pthread_t *tids = xmalloc(sizeof *tids * (size_t)threads);
    struct job *jobs = xmalloc(sizeof *jobs * (size_t)threads);
    for (long t = 0; t < threads; t++) {
        jobs[t].seed = 0xA5A5A5A5DEADBEEFULL + (uint64_t)t;
        jobs[t].bytes = 0;
        CHECK(pthread_create(&tids[t], NULL, worker, &jobs[t]) == 0, "pthread_create");
    }
    uint64_t bytes = 0;
    for (long t = 0; t < threads; t++) {
        pthread_join(tids[t], NULL);
        bytes += jobs[t].bytes;
    }
    printf("churn threads=%ld steps=%ld bytes=%llu\n", threads, g_steps, (unsigned long long)bytes);
    free(tids);
    free(jobs);
    return 0;
}
