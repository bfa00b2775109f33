/* prodcons: producer/consumer with every free on another thread. Each pair
 * has a bounded single-producer single-consumer ring; the producer mallocs
 * and fills blocks, the consumer checks and frees them. This is the
 * pattern that defeats a purely thread-local allocator: all memory flows
 * one way.
 *
 * usage: prodcons [pairs=1] [blocks_per_producer=10000000] [min=16] [max=512]
 * prints: a checksum (identical under every allocator). */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "common.h"

#define RING 1024

struct ring {
    _Alignas(64) _Atomic size_t head; /* written by the consumer */
    _Alignas(64) _Atomic size_t tail; /* written by the producer */
    _Alignas(64) void *items[RING];
    size_t sizes[RING];
    uint64_t seed;
    uint64_t checksum;
};

static long g_blocks, g_min, g_max;

static void *producer(void *arg) {
    struct ring *r = arg;
    uint64_t rng = r->seed;
    for (long i = 0; i < g_blocks; i++) {
        size_t size = rng_size(&rng, (size_t)g_min, (size_t)g_max);
        void *p = xmalloc(size);
        stamp(p, size, (uint64_t)i);
        size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
        while (tail - atomic_load_explicit(&r->head, memory_order_acquire) == RING)
            sched_yield();
        r->items[tail % RING] = p;
        r->sizes[tail % RING] = size;
        atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
    }
    return NULL;
}

static void *consumer(void *arg) {
    struct ring *r = arg;
    uint64_t sum = 0;
    for (long i = 0; i < g_blocks; i++) {
        size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
        while (atomic_load_explicit(&r->tail, memory_order_acquire) == head)
            sched_yield();
        void *p = r->items[head % RING];
        size_t size = r->sizes[head % RING];
        CHECK(stamped(p, size, (uint64_t)i), "prodcons: block %p corrupted", p);
        sum += size;
        free(p);
        atomic_store_explicit(&r->head, head + 1, memory_order_release);
    }
    r->checksum = sum;
    return NULL;
}

int main(int argc, char **argv) {
    long pairs = arg_long(argc, argv, 1, 1);
    g_blocks = arg_long(argc, argv, 2, 10000000);
    g_min = arg_long(argc, argv, 3, 16);
    g_max = arg_long(argc, argv, 4, 512);
    struct ring *rings = aligned_alloc(64, sizeof *rings * (size_t)pairs);
    CHECK(rings != NULL, "aligned_alloc failed");
    pthread_t *tids = xmalloc(sizeof *tids * 2 * (size_t)pairs);
    for (long i = 0; i < pairs; i++) {
        atomic_init(&rings[i].head, 0);
        atomic_init(&rings[i].tail, 0);
        rings[i].seed = 0xC0FFEEULL + (uint64_t)i;
        CHECK(pthread_create(&tids[2 * i], NULL, producer, &rings[i]) == 0, "pthread_create");
        CHECK(pthread_create(&tids[2 * i + 1], NULL, consumer, &rings[i]) == 0, "pthread_create");
    }
    uint64_t sum = 0;
    for (long i = 0; i < pairs; i++) {
        pthread_join(tids[2 * i], NULL);
        pthread_join(tids[2 * i + 1], NULL);
        sum += rings[i].checksum;
    }
    printf("prodcons pairs=%ld blocks=%ld bytes=%llu\n", pairs, g_blocks, (unsigned long long)sum);
    free(rings);
    free(tids);
    return 0;
}
