// How fast a plain copy reads a cold value: SIZE-byte pieces at random places of a 256 MiB
// buffer (eight times this machine's L3), each copied into one destination, 8 bytes past a line
// as a value after its record header is (docs/performance.md, session 16). PREFETCH > 0 first
// issues a prefetch for each of the piece's first PREFETCH bytes' lines. Prints the best of 5
// rounds in GB/s. `mcstore-bench` reports the same copy (no prefetch) beside W7's gets as
// "memcpy 4 KiB pieces, cold, random".
//
//   cc -O2 -march=native -o cold_pieces cold_pieces.c && for p in 0 1024 4160; do ./cold_pieces 4096 $p; done
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    size_t big = (size_t)256 << 20;
    size_t size = argc > 1 ? (size_t)atol(argv[1]) : 4096;
    size_t prefetch = argc > 2 ? (size_t)atol(argv[2]) : 0;
    char *src = malloc(big);
    char *dst = aligned_alloc(64, (size + 63) / 64 * 64);
    size_t pieces = big / size, lines = (big - size - 64) / 64;
    size_t *starts = malloc(pieces * sizeof *starts);
    if (!src || !dst || !starts) return 1;
    memset(src, 0x5a, big);
    uint64_t x = 88172645463325252ull;
    double best = 0;
    for (int round = 0; round < 5; round++) {
        for (size_t i = 0; i < pieces; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            starts[i] = (x % lines) * 64 + 8;
        }
        double t = now();
        for (size_t i = 0; i < pieces; i++) {
            const char *s = src + starts[i];
            for (size_t o = 0; o < prefetch && o < size + 64; o += 64) _mm_prefetch(s + o, _MM_HINT_T0);
            memcpy(dst, s, size);
            __asm__ volatile("" ::"r"(dst) : "memory");
        }
        double gbps = pieces * size / (now() - t) / 1e9;
        if (gbps > best) best = gbps;
    }
    printf("%zu B pieces, prefetch %zu B: %.2f GB/s\n", size, prefetch, best);
    return 0;
}
