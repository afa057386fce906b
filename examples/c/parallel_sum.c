/* Example (a) of issue 14: the sum of 100 million doubles with the
 * reduction API, the same bits with 1, 2 and 4 threads.
 *
 *   parallel_sum [N]
 *
 * cllm_pool_reduce_sum_double adds the values in a fixed order (chunks of
 * 4096 values combined as a fixed tree), so the sum does not depend on the
 * number of threads or on timing. The values here are chosen so that the
 * order matters: a plain loop forwards and one backwards give different
 * bits, and the program checks that they do, so equal bits across thread
 * counts are not luck. It prints the sum and the time for each thread count
 * and exits non-zero if a check fails. */
#define _POSIX_C_SOURCE 200809L
#include "cllm_threaded.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The CPU model and the 1-minute load average (Linux; "?" elsewhere), so
 * that the times printed can be read: a loaded machine shows no speed-up. */
static void print_machine(void) {
    char line[256], model[256] = "?";
    double load = -1.0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && colon) {
            snprintf(model, sizeof model, "%s", colon + 2);
            model[strcspn(model, "\n")] = '\0';
            break;
        }
    }
    if (f) fclose(f);
    f = fopen("/proc/loadavg", "r");
    if (f && fscanf(f, "%lf", &load) != 1) load = -1.0;
    if (f) fclose(f);
    printf("CPU: %s, %zu CPUs, load average %.2f\n", model, cllm_available_cores(), load);
}

static uint64_t bits(double d) {
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

int main(int argc, char **argv) {
    size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 100000000;
    if (n == 0) {
        fprintf(stderr, "usage: parallel_sum [N > 0]\n");
        return 2;
    }
    double *data = malloc(n * sizeof *data);
    if (!data) {
        fprintf(stderr, "cannot allocate %zu doubles\n", n);
        return 1;
    }
    /* 1/(i+1) with alternating signs and magnitudes: order-sensitive. */
    for (size_t i = 0; i < n; i++) data[i] = (i % 3 == 0 ? -1e6 : 1.0) / (double)(i + 1);

    double forward = 0.0, backward = 0.0;
    for (size_t i = 0; i < n; i++) forward += data[i];
    for (size_t i = n; i-- > 0;) backward += data[i];
    int failed = 0;
    if (bits(forward) == bits(backward)) {
        /* Not a failure of the library, but the check below would prove nothing. */
        printf("note: this data sums to the same bits in both directions\n");
    }

    print_machine();
    printf("sum of %zu doubles\n", n);
    const int threads[] = {1, 2, 4};
    double first = 0.0;
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
        cllm_pool_options opts = cllm_pool_options_default();
        opts.total_threads = threads[t]; /* the calling thread included */
        cllm_pool *pool = NULL;
        if (cllm_pool_create(&opts, &pool) != CLLM_OK) {
            fprintf(stderr, "cllm_pool_create: %s\n", cllm_last_error());
            free(data);
            return 1;
        }
        double sum = 0.0, best = 1e300;
        for (int run = 0; run < 3; run++) {
            double t0 = now_s();
            double s = 0.0;
            if (cllm_pool_reduce_sum_double(pool, data, n, &s) != CLLM_OK) {
                fprintf(stderr, "cllm_pool_reduce_sum_double: %s\n", cllm_last_error());
                failed = 1;
                break;
            }
            double took = now_s() - t0;
            if (took < best) best = took;
            if (run > 0 && bits(s) != bits(sum)) {
                fprintf(stderr, "FAIL: %d threads gave different bits from run to run\n", threads[t]);
                failed = 1;
            }
            sum = s;
        }
        cllm_pool_free(pool);
        if (t == 0) first = sum;
        int same = bits(sum) == bits(first);
        printf("%d thread%s: sum %.17g (bits %016" PRIx64 ") in %.2f ms (best of 3)%s\n", threads[t],
               threads[t] == 1 ? " " : "s", sum, bits(sum), best * 1e3, same ? "" : "  DIFFERENT BITS");
        if (!same) failed = 1;
    }
    printf("plain loop forwards %.17g, backwards %.17g\n", forward, backward);
    free(data);
    printf("%s\n", failed ? "FAILED" : "same bits with 1, 2 and 4 threads");
    return failed;
}
