/* cllm_pool_reduce and cllm_pool_reduce_sum_double: the same bits with 1, 2,
 * 3 and 4 threads and from run to run, the fixed combination order, and
 * every bad input. */
#include "check.h"
#include "cllm_threaded.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Values whose sum depends on the order of the additions (magnitudes 1e-8
 * to 1e8, both signs), from a fixed xorshift sequence. */
static double *order_sensitive(size_t n) {
    double *v = malloc(n * sizeof *v);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    double scale[17];
    scale[8] = 1.0;
    for (int e = 9; e < 17; e++) scale[e] = scale[e - 1] * 10.0;
    for (int e = 7; e >= 0; e--) scale[e] = scale[e + 1] / 10.0;
    for (size_t i = 0; v && i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double m = (double)(x >> 11) / 9007199254740992.0;
        v[i] = (x & 1 ? -1.0 : 1.0) * m * scale[(x >> 3) % 17];
    }
    return v;
}

static cllm_pool *pool_of(int threads) {
    cllm_pool_options opts = cllm_pool_options_default();
    opts.total_threads = threads;
    cllm_pool *pool = NULL;
    CHECK_STATUS(cllm_pool_create(&opts, &pool), CLLM_OK);
    return pool;
}

static uint64_t bits(double d) {
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

/* ---- a generic reduction: sum, count and the order of the chunks -------- */

typedef struct {
    double sum;
    uint64_t count;
    uint64_t first, last; /* the range covered: [first, last) */
    uint64_t misordered;  /* combines whose left did not end where right began */
} stats;

static int stats_map(void *arg, size_t begin, size_t end, void *partial) {
    const double *data = arg;
    stats *s = partial;
    if (s->count != 0 || s->sum != 0.0) return 90; /* must start as the identity */
    for (size_t i = begin; i < end; i++) s->sum += data[i];
    s->count = end - begin;
    s->first = begin;
    s->last = end;
    return 0;
}

static int stats_combine(void *arg, void *left, const void *right) {
    (void)arg;
    stats *l = left;
    const stats *r = right;
    l->misordered += r->misordered + (l->last != r->first);
    l->sum += r->sum;
    l->count += r->count;
    l->last = r->last;
    return 0;
}

static int fail_map_at_500(void *arg, size_t begin, size_t end, void *partial) {
    (void)arg;
    (void)partial;
    return begin <= 500 && 500 < end ? 41 : 0;
}

static int fail_combine(void *arg, void *left, const void *right) {
    (void)arg;
    (void)left;
    (void)right;
    return 42;
}

static void test_same_bits_for_any_thread_count(void) {
    enum { N = 1000003 };
    double *data = order_sensitive(N);
    if (!data) return;
    double forward = 0.0, backward = 0.0;
    for (size_t i = 0; i < N; i++) forward += data[i];
    for (size_t i = N; i-- > 0;) backward += data[i];
    CHECK(bits(forward) != bits(backward), "the data is order-sensitive");

    double ref_sum = 0.0;
    stats ref_stats = {0.0, 0, 0, 0, 0};
    const stats identity = {0.0, 0, 0, 0, 0};
    for (int threads = 1; threads <= 4; threads++) {
        cllm_pool *pool = pool_of(threads);
        if (!pool) continue;
        for (int run = 0; run < 3; run++) {
            double sum = -1.0;
            CHECK_STATUS(cllm_pool_reduce_sum_double(pool, data, N, &sum), CLLM_OK);
            stats st;
            CHECK_STATUS(cllm_pool_reduce(pool, 0, N, 1000, sizeof(stats), &identity, stats_map, stats_combine, data, &st),
                         CLLM_OK);
            if (threads == 1 && run == 0) {
                ref_sum = sum;
                ref_stats = st;
            }
            CHECK(bits(sum) == bits(ref_sum), "%d threads run %d: sum %.17g vs %.17g", threads, run, sum, ref_sum);
            CHECK(bits(st.sum) == bits(ref_stats.sum), "%d threads: generic sum %.17g vs %.17g", threads, st.sum,
                  ref_stats.sum);
            CHECK(st.count == N && st.first == 0 && st.last == N && st.misordered == 0,
                  "%d threads: count %llu range %llu..%llu misordered %llu", threads, (unsigned long long)st.count,
                  (unsigned long long)st.first, (unsigned long long)st.last, (unsigned long long)st.misordered);
        }
        cllm_pool_free(pool);
    }
    free(data);
}

static void test_bad_inputs(void) {
    cllm_pool *pool = pool_of(3);
    if (!pool) return;
    const stats identity = {1.5, 7, 0, 0, 0};
    double data[4] = {1, 2, 3, 4};
    stats out;
    double sum = -1.0;

    /* Empty ranges give the identity. */
    memset(&out, 0, sizeof out);
    CHECK_STATUS(cllm_pool_reduce(pool, 9, 9, 0, sizeof(stats), &identity, stats_map, stats_combine, data, &out),
                 CLLM_OK);
    CHECK(out.sum == 1.5 && out.count == 7, "empty range: the identity");
    CHECK_STATUS(cllm_pool_reduce_sum_double(pool, NULL, 0, &sum), CLLM_OK);
    CHECK(sum == 0.0, "empty sum");
    CHECK_STATUS(cllm_pool_reduce_sum_double(pool, data, 4, &sum), CLLM_OK);
    CHECK(sum == 10.0, "small sum %g", sum);

    stats untouched = {-9.0, 9, 9, 9, 9};
    out = untouched;
    CHECK_STATUS(cllm_pool_reduce(pool, 5, 4, 0, sizeof(stats), &identity, stats_map, stats_combine, data, &out),
                 CLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cllm_pool_reduce(pool, 0, 4, 0, 0, &identity, stats_map, stats_combine, data, &out),
                 CLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cllm_pool_reduce(pool, 0, 4, 0, CLLM_REDUCE_MAX_PARTIAL + 1, &identity, stats_map, stats_combine,
                                  data, &out),
                 CLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cllm_last_error(), "partial_size") != NULL, "%s", cllm_last_error());
    CHECK_STATUS(cllm_pool_reduce(NULL, 0, 4, 0, sizeof(stats), &identity, stats_map, stats_combine, data, &out),
                 CLLM_ERR_NULL);
    CHECK_STATUS(cllm_pool_reduce(pool, 0, 4, 0, sizeof(stats), NULL, stats_map, stats_combine, data, &out),
                 CLLM_ERR_NULL);
    CHECK(strstr(cllm_last_error(), "identity") != NULL, "%s", cllm_last_error());
    CHECK_STATUS(cllm_pool_reduce(pool, 0, 4, 0, sizeof(stats), &identity, NULL, stats_combine, data, &out),
                 CLLM_ERR_NULL);
    CHECK_STATUS(cllm_pool_reduce(pool, 0, 4, 0, sizeof(stats), &identity, stats_map, NULL, data, &out),
                 CLLM_ERR_NULL);
    CHECK_STATUS(cllm_pool_reduce(pool, 0, 4, 0, sizeof(stats), &identity, stats_map, stats_combine, data, NULL),
                 CLLM_ERR_NULL);
    CHECK_STATUS(cllm_pool_reduce(pool, 0, 10000, 10, sizeof(stats), &identity, fail_map_at_500, stats_combine, data,
                                  &out),
                 CLLM_ERR_JOB_FAILED);
    CHECK(strstr(cllm_last_error(), "41") != NULL, "%s", cllm_last_error());
    CHECK_STATUS(cllm_pool_reduce(pool, 0, 10000, 10, sizeof(stats), &identity, stats_map, fail_combine,
                                  data, &out),
                 CLLM_ERR_JOB_FAILED);
    CHECK(memcmp(&out, &untouched, sizeof out) == 0, "output written on failure");

    CHECK_STATUS(cllm_pool_reduce_sum_double(pool, NULL, 3, &sum), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_pool_reduce_sum_double(pool, data, SIZE_MAX, &sum), CLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cllm_pool_reduce_sum_double(pool, data, 4, NULL), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_pool_reduce_sum_double(NULL, data, 4, &sum), CLLM_ERR_NULL);
    cllm_pool_free(pool);
}

int main(void) {
    test_same_bits_for_any_thread_count();
    test_bad_inputs();
    return check_summary();
}
