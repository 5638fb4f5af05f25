// The machine's bound for a durable put of a large value: a raw two-fence append of a REC-byte
// record to a pre-faulted mapping on /dev/shm, in two ways (docs/performance.md, session 16):
//   mode 0: memcpy, clwb of each line, sfence; tail word store, clwb, sfence;
//   mode 1: the record's lines streamed with 32-byte non-temporal stores, sfence; tail word
//           store, clwb, sfence (what `Medium::write_through` does for a value's whole lines).
// Prints nanoseconds per append and GB/s, 3 rounds of up to 100 000 appends.
//
//   cc -O2 -march=native -o append_large append_large.c && ./append_large 4144 0 && ./append_large 4144 1 && ./append_large 152 0
#define _GNU_SOURCE
#include <fcntl.h>
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    size_t rec = argc > 1 ? (size_t)atol(argv[1]) : 4144;
    int streamed = argc > 2 ? atoi(argv[2]) : 0;
    size_t len = (size_t)512 << 20;
    const char *path = "/dev/shm/mcstore-probe-append-large";
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)len) != 0) return 1;
    char *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) return 1;
    memset(map, 0, len); // fault every page in before timing
    char *record = aligned_alloc(64, (rec + 63) / 64 * 64);
    if (!record) return 1;
    memset(record, 0xa7, rec);
    size_t n = (len - 4096) / rec;
    if (n > 100000) n = 100000;
    for (int round = 0; round < 3; round++) {
        size_t at = 4096;
        double t = now();
        for (size_t i = 0; i < n; i++) {
            char *d = map + at;
            if (streamed) {
                for (size_t o = 0; o + 64 <= rec; o += 64) {
                    __m256i a = _mm256_loadu_si256((const void *)(record + o));
                    __m256i b = _mm256_loadu_si256((const void *)(record + o + 32));
                    _mm256_stream_si256((void *)(d + o), a);
                    _mm256_stream_si256((void *)(d + o + 32), b);
                }
            } else {
                memcpy(d, record, rec);
                for (uintptr_t l = (uintptr_t)d & ~(uintptr_t)63; l < (uintptr_t)(d + rec); l += 64)
                    _mm_clwb((void *)l);
            }
            _mm_sfence();
            *(volatile uint64_t *)map = at + rec;
            _mm_clwb(map);
            _mm_sfence();
            at += (rec + 63) & ~(size_t)63;
            if (at + rec > len) at = 4096;
        }
        double e = now() - t;
        printf("%zu B, %s: %.0f ns per append, %.2f GB/s\n", rec, streamed ? "streamed" : "clwb",
               e / n * 1e9, n * rec / e / 1e9);
    }
    munmap(map, len);
    close(fd);
    unlink(path);
    return 0;
}
