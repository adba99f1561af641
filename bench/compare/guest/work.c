/* work.c — the same static binary runs on the host, in every container and in the VM guest.
 *
 *   work cpu ITERATIONS REPS   integer hash loop (no memory traffic); prints "cpu_ms <ms>" per rep
 *   work mem MIB REPS          copy between two MIB-sized buffers with a plain loop (no libc
 *                              memcpy, so the code path does not depend on the CPU features a
 *                              guest reports); prints "mem_gbs <GB/s>" per rep, counting bytes
 *                              read + written, as STREAM's copy does
 *
 * Each rep is timed inside the process with CLOCK_MONOTONIC, so start-up costs of the container
 * or VM are not part of the figures.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cpu(uint64_t iterations, int reps)
{
    for (int r = 0; r < reps; r++) {
        double t0 = now_ms();
        uint64_t x = 0x9e3779b97f4a7c15ULL + (uint64_t)r;
        for (uint64_t i = 0; i < iterations; i++) {
            /* splitmix64 step: multiplies, shifts, xors — pure ALU work */
            x += 0x9e3779b97f4a7c15ULL;
            uint64_t z = x;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
            x ^= z ^ (z >> 31);
        }
        double t1 = now_ms();
        printf("cpu_ms %.3f %016llx\n", t1 - t0, (unsigned long long)x);
        fflush(stdout);
    }
    return 0;
}

static int mem(size_t mib, int reps)
{
    size_t n = mib * 1024 * 1024 / sizeof(uint64_t);
    uint64_t *a = malloc(n * sizeof(uint64_t));
    uint64_t *b = malloc(n * sizeof(uint64_t));
    if (a == NULL || b == NULL) {
        fprintf(stderr, "work mem: cannot allocate 2 x %zu MiB\n", mib);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        a[i] = i;
        b[i] = 0;
    }
    uint64_t sum = 0;
    for (int r = 0; r < reps; r++) {
        uint64_t *volatile src = (r & 1) ? b : a;
        uint64_t *volatile dst = (r & 1) ? a : b;
        uint64_t *s = src, *d = dst;
        double t0 = now_ms();
        for (size_t i = 0; i < n; i++)
            d[i] = s[i];
        double t1 = now_ms();
        sum += d[n / 2];
        printf("mem_gbs %.3f\n", 2.0 * (double)n * sizeof(uint64_t) / ((t1 - t0) / 1e3) / 1e9);
        fflush(stdout);
    }
    free(a);
    free(b);
    return sum == 0xffffffffffffffffULL; /* keeps the copies observable */
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "cpu") == 0)
        return cpu(strtoull(argv[2], NULL, 10), atoi(argv[3]));
    if (argc == 4 && strcmp(argv[1], "mem") == 0)
        return mem(strtoull(argv[2], NULL, 10), atoi(argv[3]));
    fprintf(stderr, "usage: work cpu ITERATIONS REPS | work mem MIB REPS\n");
    return 2;
}
