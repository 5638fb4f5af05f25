// The first touch of a fresh 256 MB anonymous region on THREADS threads, each writing one byte
// per 4 KiB page of its own contiguous share (the point table's first touch before a bulk fill,
// docs/performance.md, session 15), with MADV_HUGEPAGE (HUGE=1) or without. Prints when each
// share started and ended, from the start, and the total.
//
//   cc -O2 -pthread -o first_touch first_touch.c && ./first_touch 1 2 && ./first_touch 1 1
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static char *base;
static size_t share;
static double start;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *touch(void *arg) {
    size_t k = (size_t)arg;
    double from = now();
    char *p = base + k * share;
    for (size_t offset = 0; offset < share; offset += 4096) p[offset] = 1;
    printf("share %zu: %.0f..%.0f ms\n", k, (from - start) * 1e3, (now() - start) * 1e3);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s HUGE THREADS\n", argv[0]);
        return 2;
    }
    int huge = atoi(argv[1]);
    size_t threads = strtoul(argv[2], 0, 10), len = 256 << 20, huge_page = 2 << 20;
    if (threads < 1 || threads > 8) return 2;
    char *raw = mmap(0, len + huge_page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return 1;
    base = (char *)(((uintptr_t)raw + huge_page - 1) & ~(uintptr_t)(huge_page - 1));
    if (huge) madvise(base, len, MADV_HUGEPAGE);
    share = len / threads;
    start = now();
    pthread_t t[8];
    for (size_t i = 1; i < threads; i++) pthread_create(&t[i], 0, touch, (void *)i);
    touch(0);
    for (size_t i = 1; i < threads; i++) pthread_join(t[i], 0);
    printf("huge %d, %zu threads: %.0f ms\n", huge, threads, (now() - start) * 1e3);
    return 0;
}
