/*
 * Link-time wrappers for the real-CLLM check (hosts/crystalline/check/).
 * Linked into every train_model variant with
 *   -Wl,--wrap=srand,--wrap=threaded_training_create,--wrap=threaded_training_free,--wrap=cllm_write_model
 * so that train_model.c itself stays unmodified:
 * - srand: train_model seeds rand() with time(NULL); every variant must start
 *   from the same weights, so every seed becomes CHECK_SEED.
 * - threaded_training_create/free: train_model creates the threaded system
 *   once per epoch; the time from create to free is that epoch's time
 *   (printed to stderr as "cllm-check epoch_seconds=<s>").
 * - cllm_write_model: also writes every float of model->weights (layer-norm
 *   gamma/beta included, which the .cllm file leaves out) to <path>.weights,
 *   for the bitwise comparisons.
 * Compiled with CLLM's own flags against its headers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cllm.h"
#include "cllm_batch.h"
#include "cllm_training.h"

/* A fixed seed: the check compares runs, any constant does. */
#define CHECK_SEED 20251126u

typedef struct ThreadedTrainingSystem ThreadedTrainingSystem;

void __real_srand(unsigned int seed);
ThreadedTrainingSystem* __real_threaded_training_create(CLLMTraining* training,
                                                        CLLMBatchIterator* iter,
                                                        int num_threads);
void __real_threaded_training_free(ThreadedTrainingSystem* system);
int __real_cllm_write_model(const CLLMModel* model, const char* filepath);

void __wrap_srand(unsigned int seed);
ThreadedTrainingSystem* __wrap_threaded_training_create(CLLMTraining* training,
                                                        CLLMBatchIterator* iter,
                                                        int num_threads);
void __wrap_threaded_training_free(ThreadedTrainingSystem* system);
int __wrap_cllm_write_model(const CLLMModel* model, const char* filepath);

void __wrap_srand(unsigned int seed) {
    (void)seed;
    __real_srand(CHECK_SEED);
}

/* train_model creates and frees one system per epoch, on its main thread. */
static struct timespec epoch_start;

ThreadedTrainingSystem* __wrap_threaded_training_create(CLLMTraining* training,
                                                        CLLMBatchIterator* iter,
                                                        int num_threads) {
    clock_gettime(CLOCK_MONOTONIC, &epoch_start);
    return __real_threaded_training_create(training, iter, num_threads);
}

void __wrap_threaded_training_free(ThreadedTrainingSystem* system) {
    __real_threaded_training_free(system);
    if (system) {
        struct timespec end;
        clock_gettime(CLOCK_MONOTONIC, &end);
        double s = (double)(end.tv_sec - epoch_start.tv_sec) +
                   (double)(end.tv_nsec - epoch_start.tv_nsec) * 1e-9;
        fprintf(stderr, "cllm-check epoch_seconds=%.6f\n", s);
    }
}

int __wrap_cllm_write_model(const CLLMModel* model, const char* filepath) {
    int rc = __real_cllm_write_model(model, filepath);
    if (rc != 0 || !model || !model->weights) return rc;
    size_t len = strlen(filepath) + sizeof(".weights");
    char* path = malloc(len);
    if (!path) return -1;
    snprintf(path, len, "%s.weights", filepath);
    FILE* f = fopen(path, "wb");
    if (!f || fwrite(model->weights, sizeof(float), model->num_weights, f) != model->num_weights) {
        fprintf(stderr, "cllm-check: cannot write %s\n", path);
        rc = -1;
    }
    if (f && fclose(f) != 0) rc = -1;
    free(path);
    return rc;
}
