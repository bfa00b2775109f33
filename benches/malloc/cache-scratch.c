/* cache-scratch: passive false sharing, after Hoard's benchmark of the same
 * name (Berger et al., 2000). The main thread allocates one small object
 * per worker and hands it over; each worker frees it and then, over and
 * over, mallocs an object of the same size and writes it hard. An
 * allocator that hands the freed objects (which share cache lines) back
 * to different threads makes the cores fight over those lines.
 *
 * usage: cache-scratch [threads=2] [iterations=1000] [objsize=8]
 *        [repetitions=400000 (split between the threads)]
 * prints: a checksum (identical under every allocator). */
#include <pthread.h>

#include "common.h"

static long g_iterations, g_objsize, g_repetitions;

struct job {
    char *handed_over;
    uint64_t sum;
};

static void *worker(void *arg) {
    struct job *job = arg;
    free(job->handed_over);
    uint64_t sum = 0;
    for (long i = 0; i < g_iterations; i++) {
        volatile char *a = xmalloc((size_t)g_objsize);
        for (long j = 0; j < g_repetitions; j++) {
            long k = j % g_objsize;
            a[k] = (char)(i + j);
            sum += (unsigned char)a[k];
        }
        free((void *)a);
    }
    job->sum = sum;
    return NULL;
}

int main(int argc, char **argv) {
    long threads = arg_long(argc, argv, 1, 2);
    g_iterations = arg_long(argc, argv, 2, 1000);
    g_objsize = arg_long(argc, argv, 3, 8);
    g_repetitions = arg_long(argc, argv, 4, 400000) / threads;
    pthread_t *tids = xmalloc(sizeof *tids * (size_t)threads);
    struct job *jobs = xmalloc(sizeof *jobs * (size_t)threads);
    /* Consecutive small objects from one thread: neighbours in memory. */
    for (long t = 0; t < threads; t++)
        jobs[t].handed_over = xmalloc((size_t)g_objsize);
    for (long t = 0; t < threads; t++)
        CHECK(pthread_create(&tids[t], NULL, worker, &jobs[t]) == 0, "pthread_create");
    uint64_t sum = 0;
    for (long t = 0; t < threads; t++) {
        pthread_join(tids[t], NULL);
        sum += jobs[t].sum;
    }
    printf("cache-scratch threads=%ld iterations=%ld sum=%llu\n", threads, g_iterations,
           (unsigned long long)sum);
    free(tids);
    free(jobs);
    return 0;
}
