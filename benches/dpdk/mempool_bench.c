/*
 * DPDK reference numbers for the skmem benchmarks (issue 13): the time of
 * rte_mempool get+put of 1 object and of 32 (bulk), per object, with a
 * per-lcore cache of 256, on 64-byte objects; and rte_pktmbuf_alloc+free of
 * one mbuf and of 32 (alloc_bulk / free_bulk), per packet.
 *
 * Built and run by scripts/dpdk_bench.sh (EAL with --no-huge: anonymous
 * memory, no hugepages, no PCI). Prints one line per measurement:
 *     dpdk <name> <ns per object, median of ROUNDS rounds>
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_version.h>

#define OBJS 8191      /* pool sizes: 2^n - 1, as DPDK recommends */
#define CACHE 256      /* per-lcore cache, as in the figures */
#define BULK 32
#define ROUNDS 7
#define ITERS (2u * 1000 * 1000)

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Keeps the compiler from dropping or merging the calls around it. */
#define KEEP(p) __asm__ volatile("" : : "r"(p) : "memory")

static void die(const char *what)
{
	fprintf(stderr, "dpdk bench: %s: %s\n", what, rte_strerror(rte_errno));
	exit(1);
}

static double mempool_single(struct rte_mempool *mp)
{
	void *obj;
	double t0 = now_ns();
	for (unsigned i = 0; i < ITERS; i++) {
		if (rte_mempool_get(mp, &obj) != 0)
			die("rte_mempool_get");
		KEEP(obj);
		rte_mempool_put(mp, obj);
	}
	return (now_ns() - t0) / ITERS;
}

static double mempool_bulk(struct rte_mempool *mp)
{
	void *objs[BULK];
	unsigned n = ITERS / BULK;
	double t0 = now_ns();
	for (unsigned i = 0; i < n; i++) {
		if (rte_mempool_get_bulk(mp, objs, BULK) != 0)
			die("rte_mempool_get_bulk");
		KEEP(objs);
		rte_mempool_put_bulk(mp, objs, BULK);
	}
	return (now_ns() - t0) / ((double)n * BULK);
}

static double mbuf_single(struct rte_mempool *mp)
{
	double t0 = now_ns();
	for (unsigned i = 0; i < ITERS; i++) {
		struct rte_mbuf *m = rte_pktmbuf_alloc(mp);
		if (m == NULL)
			die("rte_pktmbuf_alloc");
		KEEP(m);
		rte_pktmbuf_free(m);
	}
	return (now_ns() - t0) / ITERS;
}

static double mbuf_bulk(struct rte_mempool *mp)
{
	struct rte_mbuf *ms[BULK];
	unsigned n = ITERS / BULK;
	double t0 = now_ns();
	for (unsigned i = 0; i < n; i++) {
		if (rte_pktmbuf_alloc_bulk(mp, ms, BULK) != 0)
			die("rte_pktmbuf_alloc_bulk");
		KEEP(ms);
		rte_pktmbuf_free_bulk(ms, BULK);
	}
	return (now_ns() - t0) / ((double)n * BULK);
}

static void report(const char *name, double (*fn)(struct rte_mempool *), struct rte_mempool *mp)
{
	double t[ROUNDS];
	fn(mp); /* warm the cache */
	for (int r = 0; r < ROUNDS; r++)
		t[r] = fn(mp);
	qsort(t, ROUNDS, sizeof t[0], cmp_double);
	printf("dpdk %s %.2f\n", name, t[ROUNDS / 2]);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	if (rte_eal_init(argc, argv) < 0)
		die("rte_eal_init");
	struct rte_mempool *mp = rte_mempool_create("bench-obj64", OBJS, 64, CACHE, 0, NULL, NULL, NULL,
						    NULL, (int)rte_socket_id(), 0);
	if (mp == NULL)
		die("rte_mempool_create");
	struct rte_mempool *mb = rte_pktmbuf_pool_create("bench-mbuf", OBJS, CACHE, 0,
							 RTE_MBUF_DEFAULT_BUF_SIZE, (int)rte_socket_id());
	if (mb == NULL)
		die("rte_pktmbuf_pool_create");
	printf("dpdk-version %s\n", rte_version());
	report("mempool-get-put-1", mempool_single, mp);
	report("mempool-get-put-bulk32", mempool_bulk, mp);
	report("pktmbuf-alloc-free-1", mbuf_single, mb);
	report("pktmbuf-alloc-free-bulk32", mbuf_bulk, mb);
	rte_mempool_free(mb);
	rte_mempool_free(mp);
	rte_eal_cleanup();
	return 0;
}
