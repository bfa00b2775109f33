/* glibc-thread: the loop of glibc's benchtests/bench-malloc-thread.c, with
 * a fixed iteration count instead of a fixed time so every allocator does
 * the same work. Each thread keeps 1024 blocks and replaces a random one
 * per iteration; sizes come from glibc's table (4 to 32768 bytes, the
 * probability of a size falling as 1/size).
 *
 * usage: glibc-thread [threads=1] [iterations=5000000]
 * prints: a checksum (identical under every allocator). */
#include <math.h>
#include <pthread.h>

#include "common.h"

#define WORKING_SET 1024
#define NUM_SIZES 4096
#define MIN_SIZE 4
#define MAX_SIZE 32768

static size_t g_sizes[NUM_SIZES];
static long g_iterations;

/* glibc's init_random_values: inverse-distribution sizes. */
static void init_sizes(void) {
    uint64_t rng = 12345;
    const double min = MIN_SIZE, max = MAX_SIZE;
    for (size_t i = 0; i < NUM_SIZES; i++) {
        double u = (double)(rng_next(&rng) >> 11) / (double)(1ULL << 53);
        /* Inverse of the CDF of a 1/x density on [min, max]. */
        g_sizes[i] = (size_t)(min * pow(max / min, u));
    }
}

struct job {
    uint64_t seed;
    uint64_t bytes;
};

static void *worker(void *arg) {
    struct job *job = arg;
    void *blocks[WORKING_SET] = {0};
    uint64_t rng = job->seed;
    uint64_t bytes = 0;
    for (long i = 0; i < g_iterations; i++) {
        uint64_t r = rng_next(&rng);
        size_t idx = r % WORKING_SET;
        size_t size = g_sizes[(r >> 16) % NUM_SIZES];
        free(blocks[idx]);
        blocks[idx] = xmalloc(size);
        /* Touch the block, as a real caller would. */
        ((char *)blocks[idx])[0] = (char)i;
        bytes += size;
    }
    for (size_t i = 0; i < WORKING_SET; i++)
        free(blocks[i]);
    job->bytes = bytes;
    return NULL;
}

int main(int argc, char **argv) {
    long threads = arg_long(argc, argv, 1, 1);
    g_iterations = arg_long(argc, argv, 2, 5000000);
    init_sizes();
    pthread_t *tids = xmalloc(sizeof *tids * (size_t)threads);
    struct job *jobs = xmalloc(sizeof *jobs * (size_t)threads);
    for (long t = 0; t < threads; t++) {
        jobs[t].seed = 0xBADC0FFEE0DDF00DULL + (uint64_t)t;
        CHECK(pthread_create(&tids[t], NULL, worker, &jobs[t]) == 0, "pthread_create");
    }
    uint64_t bytes = 0;
    for (long t = 0; t < threads; t++) {
        pthread_join(tids[t], NULL);
        bytes += jobs[t].bytes;
    }
    printf("glibc-thread threads=%ld iterations=%ld bytes=%llu\n", threads, g_iterations,
           (unsigned long long)bytes);
    free(tids);
    free(jobs);
    return 0;
}
