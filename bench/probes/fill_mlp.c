// How fast one thread can place random keys into a large table of 64-byte slots, the shape of
// the recovery's newest-wins fill (docs/performance.md, session 15): 2 M placements into 4 M
// slots (256 MB, 2 MiB pages), each slot's line prefetched AHEAD placements before it is
// written, the slot claimed with a compare-and-swap on its sequence word (CLAIM=cas) or with a
// plain store (CLAIM=plain). Prints nanoseconds per placement.
//
//   cc -O2 -o fill_mlp fill_mlp.c && ./fill_mlp cas 16 && ./fill_mlp plain 16
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <x86intrin.h>

typedef struct {
    uint32_t seq, len;
    uint64_t hash, key0, key1, extra, offset, segment_seq, lsn;
} slot_t;

typedef struct {
    uint64_t hash, key0, key1, offset, lsn, segment_seq, pad[2];
} entry_t;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s cas|plain AHEAD\n", argv[0]);
        return 2;
    }
    int cas = strcmp(argv[1], "cas") == 0;
    size_t ahead = strtoul(argv[2], 0, 10);
    size_t capacity = 1 << 22, mask = capacity - 1, n = 2000000, huge = 2 << 20;
    char *raw = mmap(0, capacity * 64 + huge, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return 1;
    slot_t *slots = (slot_t *)(((uintptr_t)raw + huge - 1) & ~(uintptr_t)(huge - 1));
    madvise(slots, capacity * 64, MADV_HUGEPAGE);
    memset(slots, 0, capacity * 64);
    entry_t *entries = malloc(n * sizeof(entry_t));
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        entries[i] = (entry_t){.hash = x | 2, .key0 = x, .key1 = i, .offset = i * 152, .lsn = i};
    }
    double start = now();
    for (size_t i = 0; i < n; i++) {
        if (i + ahead < n) _mm_prefetch((char *)&slots[entries[i + ahead].hash & mask], _MM_HINT_T0);
        const entry_t *e = &entries[i];
        for (size_t j = e->hash & mask;; j = (j + 1) & mask) {
            slot_t *s = &slots[j];
            if (__atomic_load_n(&s->seq, __ATOMIC_ACQUIRE) == 0) {
                if (cas) {
                    uint32_t zero = 0;
                    if (!__atomic_compare_exchange_n(&s->seq, &zero, 1, 0, __ATOMIC_ACQUIRE,
                                                     __ATOMIC_RELAXED))
                        continue;
                } else {
                    s->seq = 1;
                }
                s->hash = e->hash, s->key0 = e->key0, s->key1 = e->key1;
                s->offset = e->offset, s->lsn = e->lsn;
                __atomic_store_n(&s->seq, 2, __ATOMIC_RELEASE);
                break;
            }
            if (s->hash == e->hash && s->key0 == e->key0) break;
        }
    }
    printf("%s, %zu ahead: %.1f ns per placement\n", argv[1], ahead, (now() - start) * 1e9 / n);
    return 0;
}
