/* cllm_batch.h of the stand-in host (ffi-tests/host): the batch types and
 * iterator functions of cllm-abi.md section 2, declared as CLLM's own
 * cllm_batch.h declares them. The drop-in header cllm_training_threaded.h
 * includes a file of this name, as CLLM's original does; the iterator's
 * definition and its constructor are in cllm_host.h. */
#ifndef CLLM_BATCH_H
#define CLLM_BATCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One batch: 40 bytes on x86-64 (three pointers, then three uint32). */
typedef struct {
    uint32_t* input_ids;      /* batch_size * seq_len */
    uint32_t* target_ids;     /* batch_size * seq_len */
    float* attention_mask;    /* batch_size * seq_len; 1.0 = real token, 0.0 = padding */
    uint32_t batch_size;
    uint32_t seq_len;
    uint32_t num_valid_tokens;
} CLLMBatch;

typedef struct CLLMBatchIterator CLLMBatchIterator;

void cllm_batch_iterator_reset(CLLMBatchIterator* iter);
/* A fresh heap batch (free it with cllm_batch_free), or NULL at the end
 * (drop_last = 1 only) or on allocation failure. */
CLLMBatch* cllm_batch_iterator_next(CLLMBatchIterator* iter);
/* Batches in one epoch: floor(pairs / (B*S)) with drop_last, else the ceiling. */
size_t cllm_batch_iterator_num_batches(CLLMBatchIterator* iter);
void cllm_batch_free(CLLMBatch* batch);

#ifdef __cplusplus
}
#endif

#endif /* CLLM_BATCH_H */
