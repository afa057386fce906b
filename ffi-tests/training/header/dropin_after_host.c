/* Compile-only check: the drop-in header after the host's own headers. */
#include "cllm_training.h"
#include "cllm_batch.h"
#include "cllm_training_threaded.h"

int dropin_after_host(CLLMTraining* t, CLLMBatchIterator* it) {
    ThreadedTrainingSystem* s = threaded_training_create(t, it, 2);
    int n = threaded_training_get_num_workers(s);
    threaded_training_free(s);
    return n;
}
