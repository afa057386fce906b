/* The drop-in's settings against the C host model (ffi-tests/host): a fixed
 * group size gives bitwise the same weights for 1 to 4 spheres (and equals
 * the sequential reference); the CLLM_TRAINING_* environment variables
 * override the caller and a bad value is refused with one stderr line naming
 * it; registered replica operations give replica mode to
 * threaded_training_create, their optimizer-step hook is called in both
 * modes; absurd gradient lengths are refused (issue 13, defect 7), and one
 * past each limit the header names; a non-finite host loss is reported
 * (defect 8). Runs plain and under
 * valgrind. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "host/cllm_host.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { NUM_TOKENS = 1200 };

static uint32_t tokens[NUM_TOKENS];

static CLLMBatchIterator* iterator(void) {
    cllm_host_config c = cllm_host_config_default();
    return cllm_host_iterator_create(tokens, NUM_TOKENS, c.batch_size, c.seq_len, 1);
}

static void clear_env(void) {
    unsetenv("CLLM_TRAINING_SPHERES");
    unsetenv("CLLM_TRAINING_MODE");
    unsetenv("CLLM_TRAINING_GROUP_SIZE");
}

/* ---- stderr capture ------------------------------------------------------ */

static char captured[4096];
static int saved_stderr = -1;
static FILE* capture_file;

static void capture_begin(void) {
    fflush(stderr);
    capture_file = tmpfile();
    saved_stderr = dup(2);
    dup2(fileno(capture_file), 2);
}

/* Ends the capture; returns the number of lines written meanwhile. */
static int capture_end(void) {
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    rewind(capture_file);
    size_t n = fread(captured, 1, sizeof captured - 1, capture_file);
    captured[n] = '\0';
    fclose(capture_file);
    int lines = 0;
    for (size_t i = 0; i < n; i++) lines += captured[i] == '\n';
    return lines;
}

/* ---- A fixed group: the same weights for any sphere count --------------- */

/* Trains 2 epochs with `spheres` spheres and a group of `group` batches. */
static CLLMTraining* train_grouped(int spheres, int group, float losses[2]) {
    cllm_host_config c = cllm_host_config_default();
    CLLMTraining* t = cllm_host_training_create(&c);
    CLLMBatchIterator* it = iterator();
    cllm_replica_ops ops = cllm_host_replica_ops();
    cllm_training_settings s = {spheres, CLLM_TRAINING_MODE_REPLICA, group, &ops};
    ThreadedTrainingSystem* sys = threaded_training_create_with_settings(t, it, &s);
    CHECK(sys != NULL, "create (%d spheres, group %d): %s", spheres, group, cllm_last_error());
    if (sys) {
        cllm_training_stats st;
        CHECK_STATUS(threaded_training_get_stats(sys, &st), CLLM_OK);
        CHECK(st.group_size == (uint32_t)group && st.num_workers == (uint32_t)spheres, "group %u, %u workers",
              st.group_size, st.num_workers);
        for (int e = 0; e < 2; e++) losses[e] = threaded_train_epoch(sys);
        threaded_training_free(sys);
    }
    cllm_host_iterator_free(it);
    return t;
}

static void test_a_fixed_group_is_independent_of_the_sphere_count(void) {
    int groups[] = {3, 4};
    for (size_t g = 0; g < 2; g++) {
        int group = groups[g];
        cllm_host_config c = cllm_host_config_default();
        CLLMTraining* ref = cllm_host_training_create(&c);
        CLLMBatchIterator* iref = iterator();
        float lref[2];
        for (int e = 0; e < 2; e++) lref[e] = cllm_host_train_epoch_replica_reference(ref, iref, group);
        for (int spheres = 1; spheres <= 4; spheres++) {
            float losses[2];
            CLLMTraining* t = train_grouped(spheres, group, losses);
            CHECK(cllm_host_weights_equal(t, ref), "group %d, %d spheres: weights differ from the reference",
                  group, spheres);
            CHECK(losses[0] == lref[0] && losses[1] == lref[1], "group %d, %d spheres: losses %.9g %.9g vs %.9g %.9g",
                  group, spheres, losses[0], losses[1], lref[0], lref[1]);
            cllm_host_training_free(t);
        }
        /* Run to run: the same again with 3 spheres. */
        float losses[2];
        CLLMTraining* again = train_grouped(3, group, losses);
        CHECK(cllm_host_weights_equal(again, ref), "group %d: a second run differs", group);
        cllm_host_training_free(again);
        cllm_host_iterator_free(iref);
        cllm_host_training_free(ref);
    }
}

/* ---- The environment ---------------------------------------------------- */

static void test_the_environment_overrides_the_trainer(void) {
    cllm_host_config c = cllm_host_config_default();
    CLLMTraining* t = cllm_host_training_create(&c);
    CLLMBatchIterator* it = iterator();

    setenv("CLLM_TRAINING_SPHERES", "3", 1);
    ThreadedTrainingSystem* sys = threaded_training_create(t, it, 2);
    CHECK(sys && threaded_training_get_num_workers(sys) == 3, "CLLM_TRAINING_SPHERES=3 overrides 2: %s",
          sys ? "wrong count" : cllm_last_error());
    threaded_training_free(sys);
    setenv("CLLM_TRAINING_SPHERES", "1", 1); /* one sphere, which train_model --threads 1 never reaches */
    sys = threaded_training_create(t, it, 8);
    CHECK(sys && threaded_training_get_num_workers(sys) == 1, "CLLM_TRAINING_SPHERES=1");
    threaded_training_free(sys);
    clear_env();

    const char* bad[][2] = {
        {"CLLM_TRAINING_SPHERES", "zero"},  {"CLLM_TRAINING_SPHERES", "0"},
        {"CLLM_TRAINING_SPHERES", "99999"}, {"CLLM_TRAINING_MODE", "parallel"},
        {"CLLM_TRAINING_MODE", "replica"},  /* no replica operations registered */
        {"CLLM_TRAINING_GROUP_SIZE", "4"},  /* serialised mode has no groups */
        {"CLLM_TRAINING_GROUP_SIZE", "-2"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv(bad[i][0], bad[i][1], 1);
        capture_begin();
        sys = threaded_training_create(t, it, 2);
        int lines = capture_end();
        CHECK(sys == NULL, "%s=%s must be refused", bad[i][0], bad[i][1]);
        threaded_training_free(sys);
        char expected[128];
        snprintf(expected, sizeof expected, "%s=\"%s\"", bad[i][0], bad[i][1]);
        CHECK(lines == 1 && strstr(captured, expected) != NULL, "one stderr line naming %s: %d lines: %s", expected,
              lines, captured);
        CHECK(strstr(cllm_last_error(), expected) != NULL, "last error: %s", cllm_last_error());
        clear_env();
    }
    cllm_host_iterator_free(it);
    cllm_host_training_free(t);
}

/* ---- Registered operations and the optimizer-step hook ------------------ */

static int hook_calls;

static void counting_step(void* user, CLLMTraining* t, float loss) {
    (void)user;
    CHECK(isfinite(loss) && loss > 0, "hook loss %f", loss);
    hook_calls++;
    cllm_optimizer_step_adam(t);
}

static void test_registered_operations(void) {
    cllm_host_config c = cllm_host_config_default();
    cllm_replica_ops ops = cllm_host_replica_ops();
    ops.optimizer_step = counting_step;
    cllm_replica_ops missing = ops;
    missing.create_replica = NULL;
    CHECK_STATUS(threaded_training_register_replica_ops(&missing), CLLM_ERR_NULL);
    CHECK_STATUS(threaded_training_register_replica_ops(&ops), CLLM_OK);

    /* An unmodified trainer's call now trains in replica mode. */
    CLLMTraining* t = cllm_host_training_create(&c);
    CLLMBatchIterator* it = iterator();
    ThreadedTrainingSystem* sys = threaded_training_create(t, it, 2);
    CHECK(sys != NULL, "create with registered ops: %s", cllm_last_error());
    size_t batches = cllm_batch_iterator_num_batches(it);
    if (sys) {
        hook_calls = 0;
        CHECK(threaded_train_epoch(sys) > 0, "epoch");
        cllm_training_stats st;
        CHECK_STATUS(threaded_training_get_stats(sys, &st), CLLM_OK);
        CHECK(st.replica_mode == 1 && st.group_size == 2, "replica mode %u, group %u", st.replica_mode, st.group_size);
        CHECK(hook_calls == (int)((batches + 1) / 2), "hook once per group: %d calls, %zu batches", hook_calls,
              batches);
        threaded_training_free(sys);
    }

    /* The environment's group size applies, and the reference agrees. */
    setenv("CLLM_TRAINING_GROUP_SIZE", "4", 1);
    setenv("CLLM_TRAINING_SPHERES", "3", 1);
    CLLMTraining* a = cllm_host_training_create(&c);
    CLLMTraining* ref = cllm_host_training_create(&c);
    CLLMBatchIterator* iref = iterator();
    ops.optimizer_step = NULL; /* the reference steps with cllm_optimizer_step_adam */
    CHECK_STATUS(threaded_training_register_replica_ops(&ops), CLLM_OK);
    sys = threaded_training_create(a, it, 2);
    CHECK(sys != NULL, "create with GROUP_SIZE=4: %s", cllm_last_error());
    if (sys) {
        float l = threaded_train_epoch(sys);
        float lr = cllm_host_train_epoch_replica_reference(ref, iref, 4);
        CHECK(l == lr && cllm_host_weights_equal(a, ref), "group 4 over 3 spheres: %.9g vs reference %.9g", l, lr);
        threaded_training_free(sys);
    }
    clear_env();

    /* CLLM_TRAINING_MODE=serial: serialised, and the hook still steps. */
    ops.optimizer_step = counting_step;
    CHECK_STATUS(threaded_training_register_replica_ops(&ops), CLLM_OK);
    setenv("CLLM_TRAINING_MODE", "serial", 1);
    sys = threaded_training_create(t, it, 2);
    CHECK(sys != NULL, "create serial: %s", cllm_last_error());
    if (sys) {
        hook_calls = 0;
        threaded_train_epoch(sys);
        cllm_training_stats st;
        CHECK_STATUS(threaded_training_get_stats(sys, &st), CLLM_OK);
        CHECK(st.replica_mode == 0 && st.group_size == 1, "serialised");
        CHECK(hook_calls == (int)batches, "hook once per batch: %d of %zu", hook_calls, batches);
        threaded_training_free(sys);
    }
    clear_env();

    /* Forgetting them gives serialised mode again. */
    CHECK_STATUS(threaded_training_register_replica_ops(NULL), CLLM_OK);
    sys = threaded_training_create(t, it, 2);
    cllm_training_stats st;
    CHECK(sys && threaded_training_get_stats(sys, &st) == CLLM_OK && st.replica_mode == 0, "serialised after NULL");
    threaded_training_free(sys);

    cllm_host_iterator_free(iref);
    cllm_host_iterator_free(it);
    cllm_host_training_free(ref);
    cllm_host_training_free(a);
    cllm_host_training_free(t);
}

/* ---- Gradient lengths (issue 13, defect 7) and the header's limits ------ */

/* The length that every object's one gradient buffer claims. */
static size_t claimed_len;

static size_t claiming_buffers(void* user, CLLMTraining* t, cllm_float_span* out, size_t capacity) {
    (void)user;
    if (capacity >= 1) {
        out[0].data = t->grads; /* never read: the length is refused first */
        out[0].len = claimed_len;
    }
    return 1;
}

/* 2^58 gradient floats (which used to be allocated until the process died)
 * and one past CLLM_TRAINING_MAX_GRADIENT_FLOATS are refused, and so is a
 * group one past CLLM_TRAINING_MAX_GROUP_SIZE; the messages name the
 * header's values. */
static void test_lengths_and_groups_past_the_limits_are_refused(void) {
    cllm_host_config c = cllm_host_config_default();
    CLLMTraining* t = cllm_host_training_create(&c);
    CLLMBatchIterator* it = iterator();
    cllm_replica_ops ops = cllm_host_replica_ops();
    char expected[128];

    cllm_training_settings s = {2, CLLM_TRAINING_MODE_REPLICA, CLLM_TRAINING_MAX_GROUP_SIZE + 1, &ops};
    ThreadedTrainingSystem* sys = threaded_training_create_with_settings(t, it, &s);
    CHECK(sys == NULL, "a group of CLLM_TRAINING_MAX_GROUP_SIZE + 1 must be refused");
    threaded_training_free(sys);
    snprintf(expected, sizeof expected, "expected 1 to %d", CLLM_TRAINING_MAX_GROUP_SIZE);
    CHECK(strstr(cllm_last_error(), expected) != NULL, "names %s: %s", expected, cllm_last_error());

    size_t lens[] = {(size_t)1 << 58, (size_t)CLLM_TRAINING_MAX_GRADIENT_FLOATS + 1};
    snprintf(expected, sizeof expected, "the limit is %llu floats",
             (unsigned long long)CLLM_TRAINING_MAX_GRADIENT_FLOATS);
    ops.gradient_buffers = claiming_buffers;
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        claimed_len = lens[i];
        sys = threaded_training_create_with_replicas(t, it, 2, &ops);
        CHECK(sys == NULL, "%zu gradient floats must be refused", lens[i]);
        threaded_training_free(sys);
        CHECK(strstr(cllm_last_error(), expected) != NULL, "names %s: %s", expected, cllm_last_error());
    }
    cllm_host_iterator_free(it);
    cllm_host_training_free(t);
}

/* ---- Issue 13, defect 8: a non-finite host loss ------------------------- */

static void test_a_non_finite_loss_is_reported(void) {
    cllm_host_config c = cllm_host_config_default();
    CLLMTraining* t = cllm_host_training_create(&c);
    CLLMBatchIterator* it = iterator();
    t->model->b2[CLLM_HOST_FIRST_TOKEN] = NAN; /* every logit row gets a NaN */
    ThreadedTrainingSystem* sys = threaded_training_create(t, it, 2);
    CHECK(sys != NULL, "create: %s", cllm_last_error());
    if (sys) {
        capture_begin();
        float l1 = threaded_train_epoch(sys);
        float l2 = threaded_train_epoch(sys);
        int lines = capture_end();
        CHECK(isnan(l1) && isnan(l2), "the epoch loss is not finite: %f %f", l1, l2);
        CHECK(lines == 1 && strstr(captured, "not finite") != NULL, "said once on stderr: %d lines: %s", lines,
              captured);
        cllm_training_stats st;
        CHECK_STATUS(threaded_training_get_stats(sys, &st), CLLM_OK);
        CHECK(st.nonfinite_losses == st.batches && st.batches > 0, "every batch counted: %llu of %llu",
              (unsigned long long)st.nonfinite_losses, (unsigned long long)st.batches);
        threaded_training_free(sys);
    }
    cllm_host_iterator_free(it);
    cllm_host_training_free(t);
}

int main(void) {
    clear_env();
    cllm_host_synthetic_tokens(tokens, NUM_TOKENS, cllm_host_config_default().vocab_size, 7);
    cllm_host_counters_reset();
    test_a_fixed_group_is_independent_of_the_sphere_count();
    test_the_environment_overrides_the_trainer();
    test_registered_operations();
    test_lengths_and_groups_past_the_limits_are_refused();
    test_a_non_finite_loss_is_reported();
    CHECK(cllm_host_counters_get().misuse == 0, "the host saw concurrent or misordered calls");
    return check_summary();
}
