/*
 * pmemobj_kv: the PMDK peer of mcstore-bench. A small transactional hash map written against
 * libpmemobj's public API (separate chaining; every put is one pmemobj transaction), measured on
 * W1 (one durable put per call, 1 thread) and W4 (random get over N keys, read in place with a
 * copy of the value out, 1 thread). Keys and values follow the bench's scheme: 16-byte keys
 * (a SplitMix64-scrambled prefix, then the item number, both big-endian), 100-byte values.
 *
 * usage: pmemobj_kv POOL W1_MAX_OPS W4_KEYS W4_MAX_GETS BUDGET_MS
 * prints: "w1 ops=N seconds=S p50_ns=X p99_ns=Y" and "w4 ..." lines; exit 1 with a message on
 * stderr on any failure. Run with PMEM_IS_PMEM_FORCE=1 on tmpfs (as mcstore's ForcedPmem).
 */
#include <errno.h>
#include <libpmemobj.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEY_BYTES 16
#define VALUE_BYTES 100
#define SAMPLE_EVERY 16
#define LOAD_BATCH 1000

struct entry {
	PMEMoid next;
	uint8_t key[KEY_BYTES];
	uint32_t value_len;
	uint8_t value[];
};

struct root {
	uint64_t bucket_count; /* a power of two */
	PMEMoid buckets;       /* PMEMoid[bucket_count] */
};

static PMEMobjpool *pop;
static PMEMoid *buckets;
static uint64_t bucket_mask;

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static void make_key(uint64_t i, uint8_t key[KEY_BYTES])
{
	uint64_t prefix = mix64(i);
	for (int b = 0; b < 8; b++) {
		key[b] = (uint8_t)(prefix >> (56 - 8 * b));
		key[8 + b] = (uint8_t)(i >> (56 - 8 * b));
	}
}

static void make_value(uint64_t i, uint8_t value[VALUE_BYTES])
{
	for (int w = 0; w < VALUE_BYTES; w += 8) {
		uint64_t r = mix64(i * 31 + (uint64_t)w);
		memcpy(value + w, &r, VALUE_BYTES - w < 8 ? VALUE_BYTES - w : 8);
	}
}

static uint64_t bucket_of(const uint8_t key[KEY_BYTES])
{
	uint64_t a, b;
	memcpy(&a, key, 8);
	memcpy(&b, key + 8, 8);
	return mix64(a ^ mix64(b)) & bucket_mask;
}

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "pmemobj_kv: %s: %s (%s)\n", what, pmemobj_errormsg(), strerror(errno));
	exit(1);
}

/* Insert or overwrite inside the caller's transaction. */
static void put_in_tx(const uint8_t key[KEY_BYTES], const uint8_t *value, uint32_t len)
{
	PMEMoid *slot = &buckets[bucket_of(key)];
	for (PMEMoid cur = *slot; !OID_IS_NULL(cur);) {
		struct entry *e = pmemobj_direct(cur);
		if (memcmp(e->key, key, KEY_BYTES) == 0 && e->value_len == len) {
			pmemobj_tx_add_range_direct(e->value, len);
			memcpy(e->value, value, len);
			return;
		}
		cur = e->next;
	}
	PMEMoid fresh = pmemobj_tx_alloc(sizeof(struct entry) + len, 1);
	struct entry *e = pmemobj_direct(fresh);
	e->next = *slot;
	memcpy(e->key, key, KEY_BYTES);
	e->value_len = len;
	memcpy(e->value, value, len);
	pmemobj_tx_add_range_direct(slot, sizeof(*slot));
	*slot = fresh;
}

static void put(const uint8_t key[KEY_BYTES], const uint8_t *value, uint32_t len)
{
	TX_BEGIN(pop) {
		put_in_tx(key, value, len);
	} TX_ONABORT {
		die("put transaction aborted");
	} TX_END
}

/* Copy the value of key into out; returns its length, or -1 when absent. */
static int get(const uint8_t key[KEY_BYTES], uint8_t *out)
{
	for (PMEMoid cur = buckets[bucket_of(key)]; !OID_IS_NULL(cur);) {
		const struct entry *e = pmemobj_direct(cur);
		if (memcmp(e->key, key, KEY_BYTES) == 0) {
			memcpy(out, e->value, e->value_len);
			return (int)e->value_len;
		}
		cur = e->next;
	}
	return -1;
}

/* Put items first..end in one transaction. */
static void load_batch(uint64_t first, uint64_t end)
{
	uint8_t key[KEY_BYTES], value[VALUE_BYTES];
	TX_BEGIN(pop) {
		for (uint64_t i = first; i < end; i++) {
			make_key(i, key);
			make_value(i, value);
			put_in_tx(key, value, VALUE_BYTES);
		}
	} TX_ONABORT {
		die("load transaction aborted");
	} TX_END
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void report(const char *name, uint64_t ops, double seconds, double *samples, uint64_t n)
{
	qsort(samples, n, sizeof(double), cmp_double);
	double p50 = n ? samples[(uint64_t)((double)n * 0.50 + 0.999999) - 1] : 0;
	double p99 = n ? samples[(uint64_t)((double)n * 0.99 + 0.999999) - 1] : 0;
	printf("%s ops=%llu seconds=%.6f p50_ns=%.1f p99_ns=%.1f\n", name, (unsigned long long)ops,
	       seconds, p50, p99);
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: pmemobj_kv POOL W1_MAX_OPS W4_KEYS W4_MAX_GETS BUDGET_MS\n");
		return 2;
	}
	const char *path = argv[1];
	uint64_t w1_ops = strtoull(argv[2], NULL, 10);
	uint64_t w4_keys = strtoull(argv[3], NULL, 10);
	uint64_t w4_gets = strtoull(argv[4], NULL, 10);
	double budget_ns = strtod(argv[5], NULL) * 1e6;

	uint64_t items = w1_ops + w4_keys;
	uint64_t bucket_count = 1024;
	while (bucket_count < items)
		bucket_count <<= 1;
	size_t pool_bytes = (size_t)(items * 256 + bucket_count * sizeof(PMEMoid)) + (64u << 20);
	pop = pmemobj_create(path, "mcstore_bench_kv", pool_bytes, 0600);
	if (pop == NULL)
		die("pmemobj_create");
	PMEMoid root_oid = pmemobj_root(pop, sizeof(struct root));
	struct root *root = pmemobj_direct(root_oid);
	TX_BEGIN(pop) {
		pmemobj_tx_add_range(root_oid, 0, sizeof(struct root));
		root->bucket_count = bucket_count;
		root->buckets = pmemobj_tx_zalloc(bucket_count * sizeof(PMEMoid), 2);
	} TX_ONABORT {
		die("bucket array allocation");
	} TX_END
	buckets = pmemobj_direct(root->buckets);
	bucket_mask = bucket_count - 1;

	uint8_t key[KEY_BYTES], value[VALUE_BYTES], out[VALUE_BYTES];
	double *samples = malloc(sizeof(double) * (w1_ops / SAMPLE_EVERY + w4_gets / SAMPLE_EVERY + 2));
	if (samples == NULL)
		die("malloc");

	/* W1: one transaction per put; W1 items live above 2^40 so they never meet W4's keys. */
	uint64_t n = 0, ops = 0;
	double start = now_ns();
	for (; ops < w1_ops; ops++) {
		uint64_t item = (1ULL << 40) | ops;
		make_key(item, key);
		make_value(item, value);
		if (ops % SAMPLE_EVERY == 0) {
			double t = now_ns();
			put(key, value, VALUE_BYTES);
			samples[n++] = now_ns() - t;
		} else {
			put(key, value, VALUE_BYTES);
		}
		if (ops % 64 == 63 && now_ns() - start >= budget_ns) {
			ops++;
			break;
		}
	}
	report("w1", ops, (now_ns() - start) / 1e9, samples, n);

	/* W4: load in transactions of LOAD_BATCH puts, then random gets. */
	for (uint64_t first = 0; first < w4_keys; first += LOAD_BATCH)
		load_batch(first, first + LOAD_BATCH < w4_keys ? first + LOAD_BATCH : w4_keys);
	n = 0;
	uint64_t state = 7, sum = 0;
	start = now_ns();
	for (ops = 0; ops < w4_gets; ops++) {
		state += 0x9e3779b97f4a7c15ULL;
		uint64_t item = (uint64_t)(((unsigned __int128)mix64(state) * w4_keys) >> 64);
		make_key(item, key);
		int len;
		if (ops % SAMPLE_EVERY == 0) {
			double t = now_ns();
			len = get(key, out);
			samples[n++] = now_ns() - t;
		} else {
			len = get(key, out);
		}
		if (len != VALUE_BYTES) {
			fprintf(stderr, "pmemobj_kv: loaded item %llu not found\n", (unsigned long long)item);
			return 1;
		}
		sum += out[0];
		if (ops % 64 == 63 && now_ns() - start >= budget_ns) {
			ops++;
			break;
		}
	}
	report("w4", ops, (now_ns() - start) / 1e9, samples, n);
	fprintf(stderr, "pmemobj_kv: checksum %llu\n", (unsigned long long)sum);
	free(samples);
	pmemobj_close(pop);
	return 0;
}
