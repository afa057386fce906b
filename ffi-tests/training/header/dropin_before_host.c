/* Compile-only check: the drop-in header before the host's own headers, and
 * our extensions' header after both. */
#include "cllm_training_threaded.h"
#include "cllm_training.h"
#include "cllm_batch.h"
#include "cllm_training_ext.h"

int dropin_before_host(CLLMTraining* t, CLLMBatchIterator* it) {
    ThreadedTrainingSystem* s = threaded_training_create(t, it, 0);
    cllm_training_stats st;
    int ok = threaded_training_get_stats(s, &st) == CLLM_OK;
    threaded_training_free(s);
    return ok;
}
