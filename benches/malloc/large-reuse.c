/* large-reuse: one thread allocates a large buffer (256 KiB to 1 MiB,
 * above every small-object class), touches each of its pages, and frees
 * it, over and over: a buffer per request, a scratch array per iteration.
 * An allocator that maps and unmaps every such block pays a system call
 * pair and a page fault per page each time; glibc raises its mmap
 * threshold, mimalloc and jemalloc keep freed segments, skmem keeps a
 * small cache of freed large mappings. Some iterations ask for zeroed
 * memory (calloc), which must be zero even when the block is reused.
 *
 * usage: large-reuse [iterations=20000]
 * prints: a checksum (identical under every allocator). */
#include "common.h"

int main(int argc, char **argv) {
    long iters = arg_long(argc, argv, 1, 20000);
    uint64_t rng = 0x1234567;
    uint64_t sum = 0;
    for (long i = 0; i < iters; i++) {
        size_t size = 256 * 1024 + (size_t)(rng_next(&rng) % (768 * 1024));
        int zero = i % 8 == 0;
        unsigned char *p = zero ? calloc(1, size) : malloc(size);
        if (p == NULL) {
            fprintf(stderr, "large-reuse: allocation of %zu bytes failed\n", size);
            return 1;
        }
        for (size_t off = 0; off < size; off += 4096) {
            if (zero && p[off] != 0) {
                fprintf(stderr, "large-reuse: calloc(%zu) not zero at %zu\n", size, off);
                return 1;
            }
            p[off] = (unsigned char)(i + off / 4096);
        }
        sum += p[size / 2 / 4096 * 4096] + size;
        free(p);
    }
    printf("large-reuse iterations=%ld bytes=%llu\n", iters, (unsigned long long)sum);
    return 0;
}
