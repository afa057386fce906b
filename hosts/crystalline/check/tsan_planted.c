/*
 * A planted race for the ThreadSanitizer check: linked into train_model with
 *   -Wl,--wrap=cllm_batch_iterator_next,--wrap=cllm_batch_free
 * this host touches each batch again after handing it to the drop-in: when
 * the drop-in asks for the next batch, the host rewrites the first input
 * token of the previous one (the same value, so training is unchanged).
 * Nothing orders that write before the sphere's reads of the batch, so TSan
 * must report it even though the drop-in's hand-offs are annotated
 * (tsan.rs). The rewrite is in plant_touch(), which the check looks for in
 * TSan's report.
 *
 * So that the touch never reads freed memory, cllm_batch_free only queues
 * the batch; the queue is freed at exit (after train_model has joined every
 * sphere).
 */
#include <pthread.h>
#include <stdlib.h>

#include "cllm_batch.h"

CLLMBatch* __real_cllm_batch_iterator_next(CLLMBatchIterator* iter);
void __real_cllm_batch_free(CLLMBatch* batch);
CLLMBatch* __wrap_cllm_batch_iterator_next(CLLMBatchIterator* iter);
void __wrap_cllm_batch_free(CLLMBatch* batch);

static CLLMBatch* last_handed;     /* caller's thread only */
static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static CLLMBatch** queue;
static size_t queued, capacity;

/* The planted race: a write to a batch the drop-in already owns. */
__attribute__((noinline)) void plant_touch(CLLMBatch* batch);
__attribute__((noinline)) void plant_touch(CLLMBatch* batch) {
    volatile uint32_t* first = batch->input_ids;
    *first = *first;
}

CLLMBatch* __wrap_cllm_batch_iterator_next(CLLMBatchIterator* iter) {
    if (last_handed && last_handed->input_ids) plant_touch(last_handed);
    last_handed = __real_cllm_batch_iterator_next(iter);
    return last_handed;
}

void __wrap_cllm_batch_free(CLLMBatch* batch) {
    if (!batch) return;
    pthread_mutex_lock(&queue_lock);
    if (queued == capacity) {
        size_t more = capacity ? 2 * capacity : 256;
        CLLMBatch** grown = realloc(queue, more * sizeof *grown);
        if (!grown) abort();
        queue = grown;
        capacity = more;
    }
    queue[queued++] = batch;
    pthread_mutex_unlock(&queue_lock);
}

__attribute__((destructor)) static void free_queue(void) {
    for (size_t i = 0; i < queued; i++) __real_cllm_batch_free(queue[i]);
    free(queue);
}
