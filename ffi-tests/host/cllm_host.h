/* cllm_host: a small but real CLLM-like host, in C11.
 *
 * It implements exactly the host interface of cllm-abi.md section 2 (the
 * types CLLMBatch, CLLMBatchIterator, CLLMTraining and the eight functions
 * the drop-in calls, declared in cllm_batch.h and cllm_training.h as CLLM
 * declares them), the replica operations of include/cllm_training_ext.h,
 * and helpers for tests and the demo.
 *
 * The model is a next-token language model:
 *   x      = concat(E[tok(t)], E[tok(t-1)], ..., E[tok(t-W+1)])   (W*d; zero
 *            vectors before the start of the sequence)
 *   hidden = tanh(W1 x + b1)                                     (h)
 *   logits = W2 hidden + b2                                      (vocab)
 * trained with mean cross-entropy over the batch's non-padding targets
 * (target == CLLM_HOST_PAD is ignored) and Adam.
 *
 * Like the real host, none of the four training functions may be called
 * concurrently on one CLLMTraining. Unlike the real host, misuse is counted:
 * a call that finds its training object already in use, an optimizer step
 * while another object reads the same weights (or a forward/backward while
 * the weights are being written), and an optimizer step on a replica all
 * increment cllm_host_counters().misuse (and print one line to stderr).
 *
 * Replicas (cllm_host_replica_create) share the master's weights and have
 * their own activations and gradients; the weights are reference-counted,
 * so master and replicas may be freed in any order.
 *
 * Thread safety: different training objects may be used from different
 * threads; the counters are atomic. An iterator is not thread-safe.
 */
#ifndef CLLM_HOST_H
#define CLLM_HOST_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Special tokens (as in CLLM's vocabulary). */
#define CLLM_HOST_PAD 0u
#define CLLM_HOST_UNK 1u
#define CLLM_HOST_BOS 2u
#define CLLM_HOST_EOS 3u
/* The first id of an ordinary token. */
#define CLLM_HOST_FIRST_TOKEN 4u

/* The host's types and functions of cllm-abi.md section 2, in files named
 * as CLLM names them (the drop-in header includes them); our extensions of
 * the drop-in (cllm_float_span, cllm_replica_ops). */
#include "cllm_batch.h"
#include "cllm_training.h"
#include "cllm_training_ext.h"

/* A batch iterator over a token array (the host's semantics):
 * sequence j holds the (input, target) pairs (t[i], t[i+1]) for
 * i = j*seq_len .. j*seq_len+seq_len-1; batch k holds sequences
 * k*batch_size .. k*batch_size+batch_size-1. With drop_last = 1 only full
 * batches are returned, then NULL. With drop_last = 0 the last batch is
 * padded (PAD tokens, mask 0.0) and then, reproducing the defect of
 * cllm-abi.md section 3 item 9, padding-only batches are returned forever. */
struct CLLMBatchIterator {
    uint32_t* tokens;      /* owned copy */
    size_t num_tokens;
    uint32_t batch_size;
    uint32_t seq_len;
    int drop_last;
    size_t next_pair;      /* first pair of the next batch */
    size_t batches_returned;
};

/* ---- Creating and freeing ----------------------------------------------- */

cllm_host_config cllm_host_config_default(void);
cllm_host_config cllm_host_config_demo(void);

/* A master training object with fresh weights (from config->seed); NULL
 * config means the defaults. NULL on a bad config or allocation failure. */
CLLMTraining* cllm_host_training_create(const cllm_host_config* config);
/* Frees a master or a replica; NULL is a no-op. */
void cllm_host_training_free(CLLMTraining* training);

/* An iterator over a copy of `tokens`. NULL if a size is 0, a token is PAD
 * (so that mask 1.0 <=> target != PAD), or on allocation failure. */
CLLMBatchIterator* cllm_host_iterator_create(const uint32_t* tokens, size_t num_tokens,
                                             uint32_t batch_size, uint32_t seq_len,
                                             int drop_last);
void cllm_host_iterator_free(CLLMBatchIterator* iter);

/* ---- Replicas ----------------------------------------------------------- */

/* A replica of `master` (or of a replica's master): same weights (shared),
 * own activations and gradients, no optimizer state. NULL on failure. */
CLLMTraining* cllm_host_replica_create(CLLMTraining* master);
/* Frees a replica; NULL is a no-op. (Same as cllm_host_training_free.) */
void cllm_host_replica_free(CLLMTraining* replica);
/* Writes up to `capacity` gradient spans (embed, w1, b1, w2, b2) to `out`
 * and returns the total number (5); 0 for NULL `training`. */
size_t cllm_host_gradient_buffers(CLLMTraining* training, cllm_float_span* out, size_t capacity);
/* The replica operations for threaded_training_create_with_replicas
 * (user = NULL). */
cllm_replica_ops cllm_host_replica_ops(void);

/* ---- Helpers for tests and the demo ------------------------------------ */

size_t cllm_host_num_params(const CLLMTraining* training);
/* Copies up to `capacity` weights to `out`; returns the number of weights. */
size_t cllm_host_copy_weights(const CLLMTraining* training, float* out, size_t capacity);
/* Copies the weights of `src` into `dst` (same config sizes); 0 ok, -1 not. */
int cllm_host_set_weights(CLLMTraining* dst, const CLLMTraining* src);
/* 1 if both have the same sizes and bitwise equal weights, else 0. */
int cllm_host_weights_equal(const CLLMTraining* a, const CLLMTraining* b);
/* FNV-1a 64 of the weights' bytes. */
uint64_t cllm_host_weights_checksum(const CLLMTraining* training);
/* Sum of squares of the gradients (double, in buffer order). */
double cllm_host_gradient_sumsq(const CLLMTraining* training);

/* The plain sequential loop: reset, then for each of num_batches batches:
 * forward, loss, backward, optimizer step. Returns the epoch loss, the mean
 * over valid tokens (sum of loss * num_valid_tokens / sum of num_valid_tokens,
 * in double, in batch order); NAN on bad arguments. */
float cllm_host_train_epoch_plain(CLLMTraining* training, CLLMBatchIterator* iter);

/* The sequential reference of replica mode: one replica per slot of a group;
 * for each group of up to `group` consecutive batches (of the epoch's
 * num_batches): forward, loss and backward of batch i on replica i; then the
 * master's gradients become, per element,
 *   g = w_0*g_0;  g = g + w_i*g_i  for i = 1, 2, ... (float, in order),
 *   w_i = (float)((double)n_i / (double)(n_0 + n_1 + ...)),  n_i = num_valid_tokens,
 * (grad-reduce's Weights::Given(token_weights(counts)), no clipping); then
 * one optimizer step on the master. Returns the epoch loss as the plain loop
 * does; NAN on bad arguments or allocation failure. */
float cllm_host_train_epoch_replica_reference(CLLMTraining* master, CLLMBatchIterator* iter,
                                              int group);

/* Writes `n` tokens of a deterministic, learnable stream over the ids
 * CLLM_HOST_FIRST_TOKEN .. vocab-1 (mostly a fixed successor per token,
 * sometimes a random one; sentences between BOS and EOS). Returns n, or 0
 * if vocab is too small. */
size_t cllm_host_synthetic_tokens(uint32_t* out, size_t n, uint32_t vocab_size, uint64_t seed);

/* The character tokeniser of the demo: '\n' -> 4, ' '..'~' -> 5..99,
 * anything else -> UNK. Writes `len` ids to `out`; returns len. */
#define CLLM_HOST_TEXT_VOCAB 100u
size_t cllm_host_tokenize_text(const char* text, size_t len, uint32_t* out);

/* Call counters over all training objects (atomic). */
typedef struct cllm_host_counters {
    uint64_t forward;
    uint64_t loss;
    uint64_t backward;
    uint64_t step;
    uint64_t misuse;   /* see the top of this header */
} cllm_host_counters;
cllm_host_counters cllm_host_counters_get(void);
void cllm_host_counters_reset(void);

#endif /* CLLM_HOST_H */
