// Where a two-fence append's drain is paid, and what work can hide under it (docs/performance.md,
// session 15). Each step appends a 152-byte record to a shared mapping on /dev/shm (copy, clwb
// of its lines, sfence; tail word store, clwb, sfence), then does LOADS loads and STORES stores
// to a 16 KiB buffer (cached) and one locked add:
//   mode 0: the append and the locked add only;
//   mode 1: the work between the second sfence and the locked add;
//   mode 2: the locked add first, then the work.
// Prints nanoseconds per step.
//
//   cc -O2 -mclwb -o drain_overlap drain_overlap.c && for m in 0 1 2; do ./drain_overlap $m 100 30; done
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODE LOADS STORES\n", argv[0]);
        return 2;
    }
    int mode = atoi(argv[1]), loads = atoi(argv[2]), stores = atoi(argv[3]);
    const char *path = "/dev/shm/drain_overlap.probe";
    size_t len = 256 << 20, tail_at = 255 << 20;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, len) != 0) return 1;
    char *log = mmap(0, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (log == MAP_FAILED) return 1;
    memset(log, 0, len);
    static uint64_t area[2048];
    volatile uint64_t word = 0;
    uint64_t sink = 0;
    char record[152];
    memset(record, 3, sizeof record);
    size_t n = 400000, pos = 0;
    double start = now();
    for (size_t i = 0; i < n; i++) {
        memcpy(log + pos, record, sizeof record);
        for (int line = 0; line < 192; line += 64) _mm_clwb(log + pos + line);
        _mm_sfence();
        *(volatile uint64_t *)(log + tail_at) = pos;
        _mm_clwb(log + tail_at);
        _mm_sfence();
        pos = pos + 192 > (250 << 20) ? 0 : pos + 192;
        if (mode == 2) __atomic_fetch_add(&word, 1, __ATOMIC_SEQ_CST);
        if (mode != 0) {
            uint64_t h = i * 0x9e3779b97f4a7c15ull;
            for (int k = 0; k < loads; k++) sink += area[(h >> (k % 40)) & 2047];
            for (int k = 0; k < stores; k++) area[(h + k * 67) & 2047] = i + k;
        }
        if (mode != 2) __atomic_fetch_add(&word, 1, __ATOMIC_SEQ_CST);
    }
    printf("mode %d, %d loads, %d stores: %.0f ns per step (%lu)\n", mode, loads, stores,
           (now() - start) * 1e9 / n, (unsigned long)(sink & 1));
    unlink(path);
    return 0;
}
