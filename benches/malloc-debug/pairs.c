/* The cost of an allocator's debug mode on the simplest workload: N
 * malloc(64) + free pairs, the first and last byte of each block written
 * (so poisoning and redzones have something to check), one thread. The
 * same binary runs under every allocator and debug switch (LD_PRELOAD and
 * environment variables; scripts/debug-bench.sh), so only the allocator
 * differs. Prints the time per pair in ns, and a checksum of the written
 * bytes read back.
 *
 * usage: pairs [N]   (default 2000000) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 2000000;
    struct timespec t0, t1;
    uint64_t sum = 0;
    /* Warm-up: the first allocations build the allocator's caches. */
    for (long i = 0; i < 1000; i++) {
        volatile unsigned char *p = malloc(64);
        p[0] = 1;
        free((void *)p);
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
        volatile unsigned char *p = malloc(64);
        if (!p) {
            fprintf(stderr, "pairs: malloc failed\n");
            return 1;
        }
        p[0] = (unsigned char)i;
        p[63] = (unsigned char)(i >> 8);
        sum += p[0] + p[63];
        free((void *)p);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
    printf("%.1f ns/pair checksum %llu\n", ns / (double)n, (unsigned long long)sum);
    return 0;
}
