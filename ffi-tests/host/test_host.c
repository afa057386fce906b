/* Tests of the C host model itself (links only the host, no Rust library). */
#include "check.h" /* first: it sets the POSIX level its helpers need */
#include "host/cllm_host.h"

#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(CLLMBatch) == 40, "CLLMBatch is 40 bytes on x86-64");
_Static_assert(offsetof(CLLMBatch, input_ids) == 0, "layout");
_Static_assert(offsetof(CLLMBatch, target_ids) == 8, "layout");
_Static_assert(offsetof(CLLMBatch, attention_mask) == 16, "layout");
_Static_assert(offsetof(CLLMBatch, batch_size) == 24, "layout");
_Static_assert(offsetof(CLLMBatch, seq_len) == 28, "layout");
_Static_assert(offsetof(CLLMBatch, num_valid_tokens) == 32, "layout");

static uint32_t* synthetic(size_t n, uint32_t vocab, uint64_t seed) {
    uint32_t* tokens = malloc(n * sizeof *tokens);
    CHECK(tokens && cllm_host_synthetic_tokens(tokens, n, vocab, seed) == n, "generator");
    return tokens;
}

static void test_synthetic_stream_is_deterministic_and_in_range(void) {
    uint32_t* a = synthetic(500, 64, 7);
    uint32_t* b = synthetic(500, 64, 7);
    uint32_t* c = synthetic(500, 64, 8);
    CHECK(memcmp(a, b, 500 * sizeof *a) == 0, "same seed, same stream");
    CHECK(memcmp(a, c, 500 * sizeof *a) != 0, "other seed, other stream");
    int in_range = 1;
    for (size_t i = 0; i < 500; i++) in_range &= a[i] != CLLM_HOST_PAD && a[i] < 64;
    CHECK(in_range, "tokens in 1..vocab-1");
    CHECK(cllm_host_synthetic_tokens(a, 10, 5, 1) == 0, "vocab too small is refused");
    free(a);
    free(b);
    free(c);
}

static void test_iterator_rejects_bad_input(void) {
    uint32_t tokens[4] = {5, 6, 0, 7};
    CHECK(cllm_host_iterator_create(NULL, 4, 1, 1, 0) == NULL, "NULL tokens");
    CHECK(cllm_host_iterator_create(tokens, 0, 1, 1, 0) == NULL, "no tokens");
    CHECK(cllm_host_iterator_create(tokens, 2, 0, 1, 0) == NULL, "batch_size 0");
    CHECK(cllm_host_iterator_create(tokens, 2, 1, 0, 0) == NULL, "seq_len 0");
    CHECK(cllm_host_iterator_create(tokens, 4, 1, 1, 0) == NULL, "a PAD token in the data");
    CHECK(cllm_batch_iterator_next(NULL) == NULL, "next(NULL)");
    CHECK(cllm_batch_iterator_num_batches(NULL) == 0, "num_batches(NULL)");
    cllm_batch_iterator_reset(NULL);
    cllm_batch_free(NULL);
    cllm_host_iterator_free(NULL);
}

/* 23 tokens = 22 pairs; batches of 2 x 4 = 8 pairs: 2 full batches and one
 * of 6 pairs. */
static void test_iterator_partial_batch_and_drop_last(void) {
    uint32_t tokens[23];
    for (uint32_t i = 0; i < 23; i++) tokens[i] = 10 + i;
    CLLMBatchIterator* keep = cllm_host_iterator_create(tokens, 23, 2, 4, 0);
    CLLMBatchIterator* drop = cllm_host_iterator_create(tokens, 23, 2, 4, 1);
    CHECK(keep && drop, "created");
    if (!keep || !drop) return;
    CHECK(cllm_batch_iterator_num_batches(keep) == 3, "drop_last 0: ceil(22/8) = 3, got %zu",
          cllm_batch_iterator_num_batches(keep));
    CHECK(cllm_batch_iterator_num_batches(drop) == 2, "drop_last 1: floor(22/8) = 2, got %zu",
          cllm_batch_iterator_num_batches(drop));

    for (int k = 0; k < 2; k++) {
        CLLMBatch* a = cllm_batch_iterator_next(keep);
        CLLMBatch* b = cllm_batch_iterator_next(drop);
        CHECK(a && b, "full batch %d", k);
        if (!a || !b) return;
        CHECK(a->batch_size == 2 && a->seq_len == 4 && a->num_valid_tokens == 8, "full batch shape");
        int ok = 1;
        for (uint32_t i = 0; i < 8; i++) {
            ok &= a->input_ids[i] == 10 + 8 * (uint32_t)k + i;
            ok &= a->target_ids[i] == a->input_ids[i] + 1;
            ok &= a->attention_mask[i] == 1.0f;
            ok &= a->input_ids[i] == b->input_ids[i] && a->target_ids[i] == b->target_ids[i];
        }
        CHECK(ok, "batch %d holds pairs (t[i], t[i+1]) in order", k);
        cllm_batch_free(a);
        cllm_batch_free(b);
    }
    /* The last, partial batch: 6 real pairs, 2 padded. */
    CLLMBatch* last = cllm_batch_iterator_next(keep);
    CHECK(last != NULL, "drop_last 0 returns the partial batch");
    if (last) {
        CHECK(last->num_valid_tokens == 6, "6 valid tokens, got %u", last->num_valid_tokens);
        CHECK(last->input_ids[5] == 31 && last->target_ids[5] == 32, "last real pair");
        CHECK(last->input_ids[6] == CLLM_HOST_PAD && last->target_ids[7] == CLLM_HOST_PAD,
              "padding is PAD");
        CHECK(last->attention_mask[5] == 1.0f && last->attention_mask[6] == 0.0f &&
                  last->attention_mask[7] == 0.0f,
              "mask 0.0 on padding");
        cllm_batch_free(last);
    }
    CHECK(cllm_batch_iterator_next(drop) == NULL, "drop_last 1 ends with NULL");
    CHECK(cllm_batch_iterator_next(drop) == NULL, "and stays at NULL");
    /* The defect reproduced: padding-only batches forever. */
    int padding_only = 1;
    for (int k = 0; k < 5; k++) {
        CLLMBatch* pad = cllm_batch_iterator_next(keep);
        padding_only &= pad != NULL && pad->num_valid_tokens == 0 && pad->attention_mask[0] == 0.0f &&
                        pad->target_ids[7] == CLLM_HOST_PAD;
        cllm_batch_free(pad);
    }
    CHECK(padding_only, "drop_last 0 returns padding-only batches after the data");
    /* Reset starts the epoch again. */
    cllm_batch_iterator_reset(keep);
    CLLMBatch* first = cllm_batch_iterator_next(keep);
    CHECK(first && first->input_ids[0] == 10 && first->num_valid_tokens == 8, "reset restarts");
    cllm_batch_free(first);
    cllm_host_iterator_free(keep);
    cllm_host_iterator_free(drop);
}

static void test_iterator_exact_and_short_data(void) {
    uint32_t tokens[17];
    for (uint32_t i = 0; i < 17; i++) tokens[i] = 5 + i;
    /* 16 pairs = exactly 2 batches of 2 x 4. */
    CLLMBatchIterator* keep = cllm_host_iterator_create(tokens, 17, 2, 4, 0);
    CLLMBatchIterator* drop = cllm_host_iterator_create(tokens, 17, 2, 4, 1);
    CHECK(cllm_batch_iterator_num_batches(keep) == 2 && cllm_batch_iterator_num_batches(drop) == 2,
          "exact fit: 2 batches either way");
    cllm_host_iterator_free(keep);
    cllm_host_iterator_free(drop);
    /* 4 pairs: less than one batch. */
    keep = cllm_host_iterator_create(tokens, 5, 2, 4, 0);
    drop = cllm_host_iterator_create(tokens, 5, 2, 4, 1);
    CHECK(cllm_batch_iterator_num_batches(keep) == 1, "short data, drop_last 0: one batch");
    CHECK(cllm_batch_iterator_num_batches(drop) == 0, "short data, drop_last 1: none");
    CHECK(cllm_batch_iterator_next(drop) == NULL, "short data, drop_last 1: NULL at once");
    CLLMBatch* b = cllm_batch_iterator_next(keep);
    CHECK(b && b->num_valid_tokens == 4, "short data, drop_last 0: 4 valid tokens");
    cllm_batch_free(b);
    cllm_host_iterator_free(keep);
    cllm_host_iterator_free(drop);
}

static cllm_host_config tiny_config(void) {
    cllm_host_config c = cllm_host_config_default();
    c.vocab_size = 9;
    c.embed_dim = 3;
    c.hidden_dim = 4;
    c.context = 2;
    c.batch_size = 2;
    c.seq_len = 3;
    c.seed = 3;
    return c;
}

static float loss_of(CLLMTraining* t, uint32_t* in, uint32_t* tg) {
    cllm_forward_training(t, in);
    return cllm_compute_loss_training(t, tg);
}

/* Central differences of the loss against backward, for every parameter of
 * a tiny model; the batch has one padded position (target PAD). */
static void test_backward_matches_finite_differences(void) {
    cllm_host_config c = tiny_config();
    CLLMTraining* t = cllm_host_training_create(&c);
    CHECK(t != NULL, "tiny model");
    if (!t) return;
    uint32_t in[6] = {4, 5, 8, 6, 7, 4};
    uint32_t tg[6] = {5, 8, 6, 7, 4, CLLM_HOST_PAD};
    loss_of(t, in, tg);
    cllm_backward_training(t, tg);
    const size_t n = cllm_host_num_params(t);
    float* analytic = malloc(n * sizeof(float));
    memcpy(analytic, t->grads, n * sizeof(float));
    size_t bad = 0, nonzero = 0;
    const float eps = 1e-2f;
    for (size_t i = 0; i < n; i++) {
        float* w = &t->model->params[i];
        const float saved = *w;
        *w = saved + eps;
        const float up = loss_of(t, in, tg);
        *w = saved - eps;
        const float down = loss_of(t, in, tg);
        *w = saved;
        const float numeric = (up - down) / (2.0f * eps);
        if (fabsf(numeric - analytic[i]) > 2e-3f + 2e-2f * fabsf(analytic[i])) {
            if (bad < 5) fprintf(stderr, "param %zu: numeric %g analytic %g\n", i, numeric, analytic[i]);
            bad++;
        }
        nonzero += analytic[i] != 0.0f;
    }
    CHECK(bad == 0, "%zu of %zu gradients differ from finite differences", bad, n);
    CHECK(nonzero > n / 2, "most gradients are non-zero (%zu of %zu)", nonzero, n);
    free(analytic);
    cllm_host_training_free(t);
}

static void test_backward_zeroes_first_and_step_clears(void) {
    cllm_host_config c = tiny_config();
    CLLMTraining* t = cllm_host_training_create(&c);
    uint32_t in[6] = {4, 5, 8, 6, 7, 4};
    uint32_t tg[6] = {5, 8, 6, 7, 4, 5};
    loss_of(t, in, tg);
    cllm_backward_training(t, tg);
    const double once = cllm_host_gradient_sumsq(t);
    cllm_backward_training(t, tg);
    CHECK(once > 0.0 && cllm_host_gradient_sumsq(t) == once, "backward twice = backward once");
    const uint64_t before = cllm_host_weights_checksum(t);
    cllm_optimizer_step_adam(t);
    CHECK(cllm_host_weights_checksum(t) != before, "the step changes the weights");
    CHECK(cllm_host_gradient_sumsq(t) == 0.0, "the step clears the gradients");
    /* Only padding: loss 0, gradients 0. */
    uint32_t pad[6] = {0, 0, 0, 0, 0, 0};
    CHECK(loss_of(t, pad, pad) == 0.0f, "padding-only loss is 0");
    cllm_backward_training(t, pad);
    CHECK(cllm_host_gradient_sumsq(t) == 0.0, "padding-only gradients are 0");
    cllm_host_training_free(t);
}

static void test_loss_ignores_padding_positions(void) {
    cllm_host_config c = tiny_config();
    c.seq_len = 4;
    c.batch_size = 1;
    CLLMTraining* t = cllm_host_training_create(&c);
    /* The padded position's input differs, its target is PAD: same loss. */
    uint32_t in1[4] = {4, 5, 6, 0};
    uint32_t in2[4] = {4, 5, 6, 8};
    uint32_t tg[4] = {5, 6, 7, CLLM_HOST_PAD};
    const float a = loss_of(t, in1, tg);
    const float b = loss_of(t, in2, tg);
    CHECK(a == b && a > 0.0f, "loss %g vs %g", a, b);
    cllm_host_training_free(t);
}

static void test_loss_falls_with_the_plain_loop(void) {
    cllm_host_config c = cllm_host_config_default();
    CLLMTraining* t = cllm_host_training_create(&c);
    const size_t n = 2000;
    uint32_t* tokens = synthetic(n, c.vocab_size, 11);
    CLLMBatchIterator* it = cllm_host_iterator_create(tokens, n, c.batch_size, c.seq_len, 0);
    CHECK(t && it, "created");
    if (!t || !it) return;
    float first = 0.0f, last = 0.0f;
    for (int epoch = 0; epoch < 4; epoch++) {
        const float loss = cllm_host_train_epoch_plain(t, it);
        if (epoch == 0) first = loss;
        last = loss;
    }
    CHECK(isfinite(first) && first < logf((float)c.vocab_size) + 0.5f, "first loss %g", first);
    CHECK(last < 0.7f * first, "loss falls: first %g, last %g", first, last);
    CHECK(cllm_host_counters_get().misuse == 0, "no misuse");
    CHECK(isnan(cllm_host_train_epoch_plain(NULL, it)), "NULL training gives NAN");
    CLLMBatchIterator* other = cllm_host_iterator_create(tokens, n, c.batch_size + 1, c.seq_len, 0);
    CHECK(isnan(cllm_host_train_epoch_plain(t, other)), "mismatched batch shape gives NAN");
    cllm_host_iterator_free(other);
    cllm_host_iterator_free(it);
    cllm_host_training_free(t);
    free(tokens);
}

static void test_training_is_deterministic(void) {
    cllm_host_config c = cllm_host_config_default();
    CLLMTraining* a = cllm_host_training_create(&c);
    CLLMTraining* b = cllm_host_training_create(&c);
    c.seed++;
    CLLMTraining* other = cllm_host_training_create(&c);
    CHECK(cllm_host_weights_equal(a, b), "same seed, same weights");
    CHECK(!cllm_host_weights_equal(a, other), "other seed, other weights");
    uint32_t* tokens = synthetic(600, c.vocab_size, 5);
    CLLMBatchIterator* it = cllm_host_iterator_create(tokens, 600, c.batch_size, c.seq_len, 0);
    const float la = cllm_host_train_epoch_plain(a, it);
    const float lb = cllm_host_train_epoch_plain(b, it);
    CHECK(la == lb, "same loss %g %g", la, lb);
    CHECK(cllm_host_weights_equal(a, b) &&
              cllm_host_weights_checksum(a) == cllm_host_weights_checksum(b),
          "same training, bitwise equal weights");
    CHECK(cllm_host_set_weights(other, a) == 0 && cllm_host_weights_equal(a, other), "set_weights");
    const size_t n = cllm_host_num_params(a);
    float* copy = malloc(n * sizeof(float));
    CHECK(cllm_host_copy_weights(a, copy, n) == n && memcmp(copy, a->model->params, n * 4) == 0,
          "copy_weights");
    CHECK(cllm_host_copy_weights(a, NULL, 0) == n, "copy_weights reports the count");
    free(copy);
    cllm_host_iterator_free(it);
    free(tokens);
    cllm_host_training_free(a);
    cllm_host_training_free(b);
    cllm_host_training_free(other);
}

/* The replica-mode reference: group 1 is the plain loop bitwise; larger
 * groups train, deterministically. */
static void test_replica_reference_trains_and_group_1_is_the_plain_loop(void) {
    cllm_host_config c = cllm_host_config_default();
    const size_t n = 1500;
    uint32_t* tokens = synthetic(n, c.vocab_size, 21);
    CLLMBatchIterator* it = cllm_host_iterator_create(tokens, n, c.batch_size, c.seq_len, 0);
    CLLMTraining* plain = cllm_host_training_create(&c);
    CLLMTraining* one = cllm_host_training_create(&c);
    const float lp = cllm_host_train_epoch_plain(plain, it);
    const float l1 = cllm_host_train_epoch_replica_reference(one, it, 1);
    CHECK(lp == l1 && cllm_host_weights_equal(plain, one), "group 1 = plain loop (%g, %g)", lp, l1);
    CLLMTraining* a = cllm_host_training_create(&c);
    CLLMTraining* b = cllm_host_training_create(&c);
    cllm_host_counters_reset();
    float first = 0.0f, last = 0.0f;
    for (int epoch = 0; epoch < 4; epoch++) {
        last = cllm_host_train_epoch_replica_reference(a, it, 3);
        cllm_host_train_epoch_replica_reference(b, it, 3);
        if (epoch == 0) first = last;
    }
    CHECK(last < 0.8f * first, "group 3 trains: first %g, last %g", first, last);
    CHECK(cllm_host_weights_equal(a, b), "group 3 is deterministic");
    CHECK(!cllm_host_weights_equal(a, plain), "group 3 differs from group 1");
    const size_t batches = cllm_batch_iterator_num_batches(it);
    cllm_host_counters counters = cllm_host_counters_get();
    CHECK(counters.step == 8 * ((batches + 2) / 3) && counters.forward == 8 * batches &&
              counters.misuse == 0,
          "one step per group: %llu steps for %zu batches", (unsigned long long)counters.step, batches);
    CHECK(isnan(cllm_host_train_epoch_replica_reference(a, it, 0)), "group 0");
    CHECK(isnan(cllm_host_train_epoch_replica_reference(NULL, it, 2)), "NULL master");
    cllm_host_training_free(plain);
    cllm_host_training_free(one);
    cllm_host_training_free(a);
    cllm_host_training_free(b);
    cllm_host_iterator_free(it);
    free(tokens);
}

static void test_gradient_buffers_match_between_master_and_replica(void) {
    CLLMTraining* master = cllm_host_training_create(NULL);
    cllm_replica_ops ops = cllm_host_replica_ops();
    CLLMTraining* replica = ops.create_replica(ops.user, master);
    CHECK(replica != NULL && replica->is_replica && replica->model == master->model,
          "the replica shares the weights");
    cllm_float_span a[8], b[8];
    const size_t na = ops.gradient_buffers(ops.user, master, a, 8);
    const size_t nb = ops.gradient_buffers(ops.user, replica, b, 8);
    CHECK(na == 5 && nb == 5, "five buffers, got %zu and %zu", na, nb);
    size_t total = 0;
    int same = 1;
    for (size_t i = 0; i < na; i++) {
        same &= a[i].len == b[i].len && a[i].data != b[i].data;
        total += a[i].len;
    }
    CHECK(same, "same sizes, own memory");
    CHECK(total == cllm_host_num_params(master), "buffers cover every parameter");
    cllm_float_span one = {NULL, 0};
    CHECK(ops.gradient_buffers(ops.user, master, &one, 1) == 5 && one.data == a[0].data &&
              one.len == a[0].len,
          "capacity 1 writes one span, returns the total");
    CHECK(ops.gradient_buffers(ops.user, master, NULL, 0) == 5, "capacity 0");
    CHECK(ops.gradient_buffers(ops.user, NULL, a, 8) == 0, "NULL training");
    CHECK(ops.create_replica(ops.user, NULL) == NULL, "replica of NULL");
    ops.free_replica(ops.user, NULL);
    ops.free_replica(ops.user, replica);
    cllm_host_training_free(master);
}

/* A replica computes the master's gradients bitwise, sees the master's
 * weight updates, and may outlive the master. */
static void test_replica_gradients_equal_master_gradients(void) {
    cllm_host_config c = cllm_host_config_default();
    CLLMTraining* master = cllm_host_training_create(&c);
    CLLMTraining* replica = cllm_host_replica_create(master);
    const size_t n = (size_t)c.batch_size * c.seq_len + 1;
    uint32_t* tokens = synthetic(2 * n, c.vocab_size, 9);
    CLLMBatchIterator* it = cllm_host_iterator_create(tokens, 2 * n, c.batch_size, c.seq_len, 1);
    CLLMBatch* batch = cllm_batch_iterator_next(it);
    const size_t np = cllm_host_num_params(master);
    for (int round = 0; round < 2; round++) {
        const float lm = loss_of(master, batch->input_ids, batch->target_ids);
        cllm_backward_training(master, batch->target_ids);
        const float lr = loss_of(replica, batch->input_ids, batch->target_ids);
        cllm_backward_training(replica, batch->target_ids);
        CHECK(lm == lr, "round %d: same loss %g %g", round, lm, lr);
        CHECK(memcmp(master->grads, replica->grads, np * sizeof(float)) == 0,
              "round %d: bitwise equal gradients", round);
        cllm_optimizer_step_adam(master);  /* the replica sees the new weights next round */
    }
    cllm_host_training_free(master);
    const float after = loss_of(replica, batch->input_ids, batch->target_ids);
    CHECK(isfinite(after) && after > 0.0f, "the replica outlives its master");
    cllm_batch_free(batch);
    cllm_host_replica_free(replica);
    cllm_host_iterator_free(it);
    free(tokens);
}

struct replica_job {
    CLLMTraining* replica;
    CLLMBatch* batch;
};

static void* replica_thread(void* arg) {
    struct replica_job* job = arg;
    for (int i = 0; i < 3; i++) {
        cllm_forward_training(job->replica, job->batch->input_ids);
        cllm_compute_loss_training(job->replica, job->batch->target_ids);
        cllm_backward_training(job->replica, job->batch->target_ids);
    }
    return NULL;
}

/* Two replicas computing at once on two threads: allowed, no misuse, and the
 * same gradients as alone. */
static void test_replicas_run_concurrently(void) {
    cllm_host_config c = cllm_host_config_default();
    CLLMTraining* master = cllm_host_training_create(&c);
    const size_t n = (size_t)c.batch_size * c.seq_len + 1;
    uint32_t* tokens = synthetic(n, c.vocab_size, 4);
    CLLMBatchIterator* it = cllm_host_iterator_create(tokens, n, c.batch_size, c.seq_len, 1);
    CLLMBatch* batch = cllm_batch_iterator_next(it);
    struct replica_job jobs[2] = {{cllm_host_replica_create(master), batch},
                                  {cllm_host_replica_create(master), batch}};
    cllm_host_counters_reset();
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) pthread_create(&threads[i], NULL, replica_thread, &jobs[i]);
    for (int i = 0; i < 2; i++) pthread_join(threads[i], NULL);
    loss_of(master, batch->input_ids, batch->target_ids);
    cllm_backward_training(master, batch->target_ids);
    const size_t np = cllm_host_num_params(master);
    CHECK(memcmp(jobs[0].replica->grads, master->grads, np * 4) == 0 &&
              memcmp(jobs[1].replica->grads, master->grads, np * 4) == 0,
          "concurrent replicas compute the master's gradients");
    cllm_host_counters counters = cllm_host_counters_get();
    CHECK(counters.misuse == 0, "no misuse");
    CHECK(counters.forward == 7 && counters.loss == 7 && counters.backward == 7,
          "counted calls: %llu %llu %llu", (unsigned long long)counters.forward,
          (unsigned long long)counters.loss, (unsigned long long)counters.backward);
    for (int i = 0; i < 2; i++) cllm_host_replica_free(jobs[i].replica);
    cllm_batch_free(batch);
    cllm_host_iterator_free(it);
    cllm_host_training_free(master);
    free(tokens);
}

/* The misuse counter that the drop-in's tests assert on really fires. */
static void test_misuse_is_detected(void) {
    CLLMTraining* master = cllm_host_training_create(NULL);
    CLLMTraining* replica = cllm_host_replica_create(master);
    uint32_t tokens[64];
    for (int i = 0; i < 64; i++) tokens[i] = 5;
    cllm_host_counters_reset();
    fprintf(stderr, "(the next MISUSE lines are expected)\n");
    atomic_store(&master->in_use, 1);  /* as if another thread were inside */
    cllm_forward_training(master, tokens);
    CHECK(cllm_host_counters_get().misuse == 1, "concurrent call on one object");
    atomic_store(&master->in_use, 0);
    cllm_optimizer_step_adam(replica);
    CHECK(cllm_host_counters_get().misuse == 2, "optimizer step on a replica");
    atomic_store(&master->model->readers, 1);  /* as if a replica were computing */
    cllm_optimizer_step_adam(master);
    CHECK(cllm_host_counters_get().misuse == 3, "optimizer step while a replica reads");
    atomic_store(&master->model->readers, 0);
    atomic_store(&master->model->writing, 1);  /* as if a step were running */
    cllm_backward_training(replica, tokens);
    CHECK(cllm_host_counters_get().misuse == 4, "backward while the weights are written");
    atomic_store(&master->model->writing, 0);
    cllm_forward_training(master, tokens);
    CHECK(cllm_host_counters_get().misuse == 4, "ordinary use is not misuse");
    cllm_host_counters_reset();
    CHECK(cllm_host_counters_get().misuse == 0 && cllm_host_counters_get().forward == 0, "reset");
    cllm_host_replica_free(replica);
    cllm_host_training_free(master);
}

static void test_bad_arguments_are_harmless(void) {
    cllm_host_config c = cllm_host_config_default();
    c.vocab_size = 4;
    CHECK(cllm_host_training_create(&c) == NULL, "vocabulary without ordinary tokens");
    c = cllm_host_config_default();
    c.batch_size = 0;
    CHECK(cllm_host_training_create(&c) == NULL, "batch_size 0");
    CHECK(cllm_forward_training(NULL, NULL) == 0.0f, "forward(NULL)");
    CHECK(cllm_compute_loss_training(NULL, NULL) == 0.0f, "loss(NULL)");
    cllm_backward_training(NULL, NULL);
    cllm_optimizer_step_adam(NULL);
    cllm_host_training_free(NULL);
    cllm_host_replica_free(NULL);
    CHECK(cllm_host_weights_checksum(NULL) == 0 && cllm_host_num_params(NULL) == 0, "helpers(NULL)");
    CHECK(cllm_host_set_weights(NULL, NULL) == -1 && !cllm_host_weights_equal(NULL, NULL),
          "weights helpers(NULL)");
    /* Token ids beyond the vocabulary are read as UNK, not out of bounds. */
    CLLMTraining* t = cllm_host_training_create(NULL);
    uint32_t* big = malloc(64 * sizeof(uint32_t));
    for (int i = 0; i < 64; i++) big[i] = 1000000u + (uint32_t)i;
    const float loss = loss_of(t, big, big);
    cllm_backward_training(t, big);
    CHECK(isfinite(loss) && loss > 0.0f, "out-of-vocabulary ids count as UNK");
    free(big);
    cllm_host_training_free(t);
}

static void test_tokenize_text(void) {
    const char text[] = "Hi\n~\t";
    uint32_t ids[5];
    CHECK(cllm_host_tokenize_text(text, 5, ids) == 5, "count");
    CHECK(ids[0] == 5u + ('H' - ' ') && ids[1] == 5u + ('i' - ' ') && ids[2] == 4 &&
              ids[3] == CLLM_HOST_TEXT_VOCAB - 1 && ids[4] == CLLM_HOST_UNK,
          "ids %u %u %u %u %u", ids[0], ids[1], ids[2], ids[3], ids[4]);
}

int main(void) {
    test_synthetic_stream_is_deterministic_and_in_range();
    test_iterator_rejects_bad_input();
    test_iterator_partial_batch_and_drop_last();
    test_iterator_exact_and_short_data();
    test_backward_matches_finite_differences();
    test_backward_zeroes_first_and_step_clears();
    test_loss_ignores_padding_positions();
    test_loss_falls_with_the_plain_loop();
    test_training_is_deterministic();
    test_replica_reference_trains_and_group_1_is_the_plain_loop();
    test_gradient_buffers_match_between_master_and_replica();
    test_replica_gradients_equal_master_gradients();
    test_replicas_run_concurrently();
    test_misuse_is_detected();
    test_bad_arguments_are_harmless();
    test_tokenize_text();
    return check_summary();
}
