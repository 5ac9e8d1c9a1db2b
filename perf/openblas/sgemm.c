/* OpenBLAS's SGEMM timed in a process of its own: the check on perf/Bench's in-process baseline.
 *
 *   gcc -O2 -o sgemm perf/openblas/sgemm.c /usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0
 *   env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ./sgemm THREADS REPEATS N [N ...]
 *
 * Prints the kernel OpenBLAS chose and, per size, the median GFLOP/s of REPEATS row-major C = A·B products after
 * one warm-up (the statistic perf/Bench reports). Declares the few symbols it calls, so no header is needed. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

void cblas_sgemm(int order, int transa, int transb, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc);
char *openblas_get_corename(void);
void openblas_set_num_threads(int threads);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int compare(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s THREADS REPEATS N [N ...]\n", argv[0]);
        return 2;
    }
    int threads = atoi(argv[1]), repeats = atoi(argv[2]);
    if (threads < 1 || repeats < 1) {
        fprintf(stderr, "THREADS and REPEATS must be positive integers\n");
        return 2;
    }
    openblas_set_num_threads(threads);
    printf("corename %s threads %d\n", openblas_get_corename(), threads);
    for (int i = 3; i < argc; i++) {
        int n = atoi(argv[i]);
        if (n < 1) { fprintf(stderr, "N must be a positive integer, not '%s'\n", argv[i]); return 2; }
        float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
        for (long j = 0; j < (long)n * n; j++) { a[j] = (float)rand() / RAND_MAX * 2 - 1; b[j] = (float)rand() / RAND_MAX * 2 - 1; }
        double *ms = malloc(sizeof(double) * repeats);
        cblas_sgemm(101, 111, 111, n, n, n, 1, a, n, b, n, 0, c, n);
        for (int r = 0; r < repeats; r++) {
            double t = now();
            cblas_sgemm(101, 111, 111, n, n, n, 1, a, n, b, n, 0, c, n);
            ms[r] = now() - t;
        }
        qsort(ms, repeats, sizeof(double), compare);
        double median = repeats % 2 ? ms[repeats / 2] : 0.5 * (ms[repeats / 2 - 1] + ms[repeats / 2]);
        printf("sgemm %d %.1f\n", n, 2.0 * n * n * n / median / 1e9);
        free(a); free(b); free(c); free(ms);
    }
    return 0;
}
