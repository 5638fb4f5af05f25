// What a random access costs by the size of the region it falls in: a dependent chase through
// every 64-byte line of an MB-MiB region, in a random cyclic order, on 2 MiB pages (HUGE=1,
// MADV_HUGEPAGE) or 4 KiB pages (HUGE=0, MADV_NOHUGEPAGE). Prints ns per load over 3 M steps.
// Within 1 MiB it is the L2; past it, on this VM, DRAM plus, on 4 KiB pages, the translation
// (docs/performance.md, session 17).
//
//   cc -O2 -o chase chase.c && for mb in 1 8 24 64 256; do ./chase $mb 1; done && ./chase 256 0
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: chase MB HUGE\n");
        return 2;
    }
    size_t len = (size_t)atol(argv[1]) << 20;
    int huge = atoi(argv[2]);
    size_t align = 2 << 20;
    char *map = mmap(0, len + align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    char *p = (char *)(((uintptr_t)map + align - 1) & ~(uintptr_t)(align - 1));
    madvise(p, len, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    memset(p, 0, len);
    size_t lines = len / 64;
    uint32_t *order = malloc(lines * sizeof *order);
    for (size_t i = 0; i < lines; i++) order[i] = (uint32_t)i;
    uint64_t x = 88172645463325252ULL;
    for (size_t i = lines - 1; i > 0; i--) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t j = x % (i + 1);
        uint32_t t = order[i];
        order[i] = order[j], order[j] = t;
    }
    for (size_t i = 0; i < lines; i++)
        *(char **)(p + (size_t)order[i] * 64) = p + (size_t)order[(i + 1) % lines] * 64;
    char *at = p;
    long steps = 3000000;
    double start = now();
    for (long i = 0; i < steps; i++) at = *(char **)at;
    double took = now() - start;
    printf("%s MiB, %s pages: %.1f ns per load (%p)\n", argv[1], huge ? "2 MiB" : "4 KiB",
           took / steps * 1e9, (void *)at);
    return 0;
}
