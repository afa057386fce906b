/* End-to-end tests of the drop-in (threaded_training_*) against the C host
 * model of ffi-tests/host: correct training in both modes, determinism,
 * equality with the sequential references, the epoch limit, statistics, and
 * every bad input. Runs plain and under valgrind. */
#include "check.h"
#include "host/cllm_host.h"
#include "cllm_training_threaded.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { NUM_TOKENS = 1200, EPOCHS = 3 };

static uint32_t tokens[NUM_TOKENS];

static cllm_host_config config(void) {
    cllm_host_config c = cllm_host_config_default();
    return c;
}

static CLLMBatchIterator *iterator(int drop_last) {
    cllm_host_config c = config();
    return cllm_host_iterator_create(tokens, NUM_TOKENS, c.batch_size, c.seq_len, drop_last);
}

/* Trains EPOCHS epochs through the drop-in; returns the system's losses. */
static void train(CLLMTraining *t, CLLMBatchIterator *it, int threads, int replicas, float losses[EPOCHS]) {
    cllm_replica_ops ops = cllm_host_replica_ops();
    ThreadedTrainingSystem *sys = replicas ? threaded_training_create_with_replicas(t, it, threads, &ops)
                                           : threaded_training_create(t, it, threads);
    CHECK(sys != NULL, "create (%d threads, replicas %d): %s", threads, replicas, cllm_last_error());
    if (!sys) return;
    CHECK(threaded_training_get_num_workers(sys) == threads, "workers %d", threaded_training_get_num_workers(sys));
    for (int e = 0; e < EPOCHS; e++) losses[e] = threaded_train_epoch(sys);
    threaded_training_free(sys);
}

static void test_serialised_mode_equals_the_plain_loop(void) {
    for (int threads = 1; threads <= 3; threads++) {
        cllm_host_config c = config();
        CLLMTraining *a = cllm_host_training_create(&c), *b = cllm_host_training_create(&c);
        CLLMBatchIterator *ia = iterator(0), *ib = iterator(0);
        float losses[EPOCHS], plain[EPOCHS];
        train(a, ia, threads, 0, losses);
        for (int e = 0; e < EPOCHS; e++) plain[e] = cllm_host_train_epoch_plain(b, ib);
        CHECK(cllm_host_weights_equal(a, b), "serialised (%d threads) weights differ from the plain loop", threads);
        for (int e = 0; e < EPOCHS; e++)
            CHECK(losses[e] == plain[e], "epoch %d loss %.9g vs plain %.9g", e, losses[e], plain[e]);
        CHECK(losses[EPOCHS - 1] < losses[0], "loss falls: %f -> %f", losses[0], losses[EPOCHS - 1]);
        cllm_host_iterator_free(ia);
        cllm_host_iterator_free(ib);
        cllm_host_training_free(a);
        cllm_host_training_free(b);
    }
}

static void test_replica_mode_is_deterministic_and_matches_the_reference(void) {
    int counts[] = {1, 2, 4};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        int n = counts[i];
        cllm_host_config c = config();
        CLLMTraining *a = cllm_host_training_create(&c), *b = cllm_host_training_create(&c),
                     *ref = cllm_host_training_create(&c);
        CLLMBatchIterator *ia = iterator(0), *ib = iterator(0), *iref = iterator(0);
        float la[EPOCHS], lb[EPOCHS], lref[EPOCHS];
        train(a, ia, n, 1, la);
        train(b, ib, n, 1, lb);
        for (int e = 0; e < EPOCHS; e++) lref[e] = cllm_host_train_epoch_replica_reference(ref, iref, n);
        CHECK(cllm_host_weights_equal(a, b), "replica mode, %d spheres: two runs differ", n);
        CHECK(cllm_host_weights_equal(a, ref), "replica mode, %d spheres: differs from the sequential reference", n);
        for (int e = 0; e < EPOCHS; e++) {
            CHECK(la[e] == lb[e], "run-to-run loss differs at epoch %d", e);
            CHECK(la[e] == lref[e], "epoch %d loss %.9g vs reference %.9g", e, la[e], lref[e]);
        }
        CHECK(la[EPOCHS - 1] < la[0], "loss falls with %d spheres: %f -> %f", n, la[0], la[EPOCHS - 1]);
        cllm_host_iterator_free(ia);
        cllm_host_iterator_free(ib);
        cllm_host_iterator_free(iref);
        cllm_host_training_free(a);
        cllm_host_training_free(b);
        cllm_host_training_free(ref);
    }
}

static void test_epoch_limit_and_statistics(void) {
    cllm_host_config c = config();
    CLLMTraining *t = cllm_host_training_create(&c);
    /* drop_last = 0: after the data, the iterator returns padding forever. */
    CLLMBatchIterator *it = iterator(0);
    cllm_replica_ops ops = cllm_host_replica_ops();
    ThreadedTrainingSystem *sys = threaded_training_create_with_replicas(t, it, 2, &ops);
    CHECK(sys != NULL, "create: %s", cllm_last_error());
    if (!sys) return;
    CHECK(threaded_training_get_gradient_norm(sys) == -1.0f, "no norm before the first step");
    float loss = threaded_train_epoch(sys);
    size_t limit = cllm_batch_iterator_num_batches(it);
    CHECK(it->batches_returned <= limit, "fetched %zu batches, limit %zu", it->batches_returned, limit);
    CHECK(isfinite(loss) && loss > 0, "loss %f", loss);
    int total = 0;
    for (int s = 0; s < 2; s++) {
        int batches = -1;
        float mean = -1;
        CHECK(threaded_training_get_sphere_stats(sys, s, &batches, &mean) == 0, "sphere %d stats", s);
        CHECK(batches > 0 && mean > 0, "sphere %d: %d batches, mean loss %f", s, batches, mean);
        total += batches;
    }
    CHECK((size_t)total == limit, "spheres trained %d batches of %zu", total, limit);
    CHECK(threaded_training_get_gradient_norm(sys) > 0, "gradient norm %f", threaded_training_get_gradient_norm(sys));

    cllm_training_stats st;
    CHECK_STATUS(threaded_training_get_stats(sys, &st), CLLM_OK);
    CHECK(st.epochs == 1 && st.batches == (uint64_t)limit && st.replica_mode == 1 && st.num_workers == 2,
          "stats: %llu epochs %llu batches", (unsigned long long)st.epochs, (unsigned long long)st.batches);
    CHECK(st.last_loss == loss && st.tokens > 0 && st.last_epoch_tokens_per_second > 0, "stats figures");
    CHECK(st.optimizer_steps == (uint64_t)((limit + 1) / 2), "one step per group of 2: %llu",
          (unsigned long long)st.optimizer_steps);
    CHECK_STATUS(threaded_training_get_stats(sys, NULL), CLLM_ERR_NULL);
    CHECK_STATUS(threaded_training_get_stats(NULL, &st), CLLM_ERR_NULL);
    threaded_training_print_stats(sys);
    threaded_training_free(sys);
    cllm_host_iterator_free(it);
    cllm_host_training_free(t);

    /* Serialised mode: the gradients are not reachable. */
    t = cllm_host_training_create(&c);
    it = iterator(1);
    sys = threaded_training_create(t, it, 2);
    CHECK(sys != NULL, "create: %s", cllm_last_error());
    if (sys) {
        CHECK(threaded_train_epoch(sys) > 0, "serialised epoch");
        CHECK(threaded_training_get_gradient_norm(sys) == -1.0f, "serialised mode has no norm");
        threaded_training_free(sys);
    }
    cllm_host_iterator_free(it);
    cllm_host_training_free(t);
}

static void test_bad_input(void) {
    cllm_host_config c = config();
    CLLMTraining *t = cllm_host_training_create(&c);
    CLLMBatchIterator *it = iterator(1);
    cllm_replica_ops ops = cllm_host_replica_ops();

    CHECK(threaded_training_create(NULL, it, 2) == NULL, "NULL training");
    CHECK(strstr(cllm_last_error(), "training") != NULL, "message: %s", cllm_last_error());
    CHECK(threaded_training_create(t, NULL, 2) == NULL, "NULL iterator");
    CHECK(strcmp(cllm_last_error(), "batch_iterator is NULL") == 0, "message: %s", cllm_last_error());
    CHECK(threaded_training_create(t, it, 100000) == NULL, "absurd thread count");
    CHECK(strstr(cllm_last_error(), "4096") != NULL, "message: %s", cllm_last_error());
    CHECK(threaded_training_create_with_replicas(NULL, it, 2, &ops) == NULL, "NULL training, replicas");
    cllm_replica_ops missing = ops;
    missing.gradient_buffers = NULL;
    CHECK(threaded_training_create_with_replicas(t, it, 2, &missing) == NULL, "missing operation");
    CHECK(strcmp(cllm_last_error(),
                 "create_replica, free_replica or gradient_buffers of the replica operations is NULL") == 0,
          "message: %s", cllm_last_error());

    ThreadedTrainingSystem *sys = threaded_training_create(t, it, -1); /* auto */
    CHECK(sys != NULL, "auto thread count: %s", cllm_last_error());
    if (sys) {
        int expected = cllm_available_cores() > 1 ? (int)cllm_available_cores() - 1 : 1;
        CHECK(threaded_training_get_num_workers(sys) == expected, "auto workers %d", threaded_training_get_num_workers(sys));
        int batches = 7;
        float mean = 7;
        CHECK(threaded_training_get_sphere_stats(sys, -1, &batches, &mean) == -1, "negative id");
        CHECK(threaded_training_get_sphere_stats(sys, 64, &batches, &mean) == -1, "id out of range");
        CHECK(strstr(cllm_last_error(), "sphere_id 64 is out of range") != NULL, "message: %s", cllm_last_error());
        CHECK(threaded_training_get_sphere_stats(sys, 0, NULL, &mean) == -1, "NULL output");
        CHECK(threaded_training_get_sphere_stats(sys, 0, &batches, NULL) == -1, "NULL output");
        CHECK(batches == 7 && mean == 7, "nothing written on error");
        CHECK(threaded_training_get_sphere_stats(sys, 0, &batches, &mean) == 0 && batches == 0, "before training");
        threaded_training_free(sys);
    }
    CHECK(threaded_train_epoch(NULL) == -1.0f, "NULL system epoch");
    CHECK(strcmp(cllm_last_error(), "system is NULL") == 0, "message: %s", cllm_last_error());
    CHECK(threaded_training_get_num_workers(NULL) == -1, "NULL system workers");
    CHECK(threaded_training_get_gradient_norm(NULL) == -1.0f, "NULL system norm");
    CHECK(threaded_training_get_sphere_stats(NULL, 0, NULL, NULL) == -1, "NULL system stats");
    threaded_training_print_stats(NULL);
    threaded_training_free(NULL);
    cllm_host_iterator_free(it);
    cllm_host_training_free(t);
}

int main(void) {
    cllm_host_synthetic_tokens(tokens, NUM_TOKENS, config().vocab_size, 42);
    cllm_host_counters_reset();
    test_serialised_mode_equals_the_plain_loop();
    test_replica_mode_is_deterministic_and_matches_the_reference();
    test_epoch_limit_and_statistics();
    test_bad_input();
    cllm_host_counters counts = cllm_host_counters_get();
    CHECK(counts.misuse == 0, "the host saw %llu concurrent or misordered calls", (unsigned long long)counts.misuse);
    CHECK(counts.forward > 0 && counts.step > 0, "the host was used");
    return check_summary();
}
