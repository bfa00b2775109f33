/* larson: server-style churn after Larson & Krishnan (1998). Each round
 * starts fresh threads; each takes over a table of live blocks that a
 * thread of the previous round filled, and replaces random blocks (free +
 * malloc of a random size). Blocks are freed by threads other than the one
 * that allocated them, and threads come and go as in a thread-per-request
 * server.
 *
 * usage: larson [threads=2] [rounds=20] [ops_per_round=200000]
 *        [slots=1000] [min=8] [max=1024]
 * prints: a checksum of the work done (identical under every allocator). */
#include <pthread.h>

#include "common.h"

struct slot {
    void *p;
    size_t size;
    uint64_t tag;
};

static long g_threads, g_rounds, g_ops, g_slots, g_min, g_max;
static struct slot **g_tables;

struct job {
    struct slot *table;
    uint64_t seed;
    uint64_t bytes;
};

static void *worker(void *arg) {
    struct job *job = arg;
    uint64_t rng = job->seed;
    for (long i = 0; i < g_ops; i++) {
        struct slot *s = &job->table[rng_next(&rng) % (uint64_t)g_slots];
        CHECK(stamped(s->p, s->size, s->tag), "larson: block %p corrupted", s->p);
        free(s->p);
        s->size = rng_size(&rng, (size_t)g_min, (size_t)g_max);
        s->tag = rng_next(&rng);
        s->p = xmalloc(s->size);
        stamp(s->p, s->size, s->tag);
        job->bytes += s->size;
    }
    return NULL;
}

int main(int argc, char **argv) {
    g_threads = arg_long(argc, argv, 1, 2);
    g_rounds = arg_long(argc, argv, 2, 20);
    g_ops = arg_long(argc, argv, 3, 200000);
    g_slots = arg_long(argc, argv, 4, 1000);
    g_min = arg_long(argc, argv, 5, 8);
    g_max = arg_long(argc, argv, 6, 1024);

    uint64_t rng = 0x9E3779B97F4A7C15ULL;
    g_tables = xmalloc(sizeof *g_tables * (size_t)g_threads);
    for (long t = 0; t < g_threads; t++) {
        g_tables[t] = xmalloc(sizeof **g_tables * (size_t)g_slots);
        for (long i = 0; i < g_slots; i++) {
            struct slot *s = &g_tables[t][i];
            s->size = rng_size(&rng, (size_t)g_min, (size_t)g_max);
            s->tag = rng_next(&rng);
            s->p = xmalloc(s->size);
            stamp(s->p, s->size, s->tag);
        }
    }

    pthread_t *tids = xmalloc(sizeof *tids * (size_t)g_threads);
    struct job *jobs = xmalloc(sizeof *jobs * (size_t)g_threads);
    uint64_t bytes = 0;
    for (long r = 0; r < g_rounds; r++) {
        for (long t = 0; t < g_threads; t++) {
            /* Thread t of this round takes the table thread t-1 of the
             * previous round filled: its frees are remote. */
            jobs[t].table = g_tables[(t + r) % g_threads];
            jobs[t].seed = 0x51ED270B27A3C5F1ULL ^ (uint64_t)(r * 1000 + t + 1);
            jobs[t].bytes = 0;
            CHECK(pthread_create(&tids[t], NULL, worker, &jobs[t]) == 0, "pthread_create");
        }
        for (long t = 0; t < g_threads; t++) {
            pthread_join(tids[t], NULL);
            bytes += jobs[t].bytes;
        }
    }
    for (long t = 0; t < g_threads; t++) {
        for (long i = 0; i < g_slots; i++) {
            struct slot *s = &g_tables[t][i];
            CHECK(stamped(s->p, s->size, s->tag), "larson: block %p corrupted", s->p);
            free(s->p);
        }
        free(g_tables[t]);
    }
    free(g_tables);
    free(tids);
    free(jobs);
    printf("larson threads=%ld rounds=%ld ops=%ld bytes=%llu\n", g_threads, g_rounds,
           g_ops, (unsigned long long)bytes);
    return 0;
}
