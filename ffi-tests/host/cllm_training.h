/* cllm_training.h of the stand-in host (ffi-tests/host): the training state
 * and the four training functions of cllm-abi.md section 2. The drop-in
 * header cllm_training_threaded.h includes a file of this name, as CLLM's
 * original includes CLLM's (where CLLMTraining is an anonymous struct; here it
 * is tagged, which the drop-in does not need). */
#ifndef CLLM_TRAINING_H
#define CLLM_TRAINING_H

#include <stddef.h>
#include <stdint.h>
#if defined(__cplusplus) && __cplusplus < 202302L
/* C++ before C++23 has no <stdatomic.h>; std::atomic<int> has the layout of
 * C's atomic_int on GCC and Clang, so a C++ file can include this header. */
#include <atomic>
typedef std::atomic<int> atomic_int;
#else
#include <stdatomic.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The model's sizes and optimizer settings; one source of truth for a
 * training object. cllm_host_config_default() fills a small model for tests,
 * cllm_host_config_demo() a larger one for the demo. */
typedef struct cllm_host_config {
    uint32_t vocab_size;   /* >= CLLM_HOST_FIRST_TOKEN + 1 */
    uint32_t embed_dim;    /* d */
    uint32_t hidden_dim;   /* h */
    uint32_t context;      /* W: the current token and W-1 before it */
    uint32_t batch_size;   /* sequences per batch */
    uint32_t seq_len;      /* tokens per sequence */
    float learning_rate;   /* Adam */
    float beta1;
    float beta2;
    float epsilon;
    uint64_t seed;         /* weight initialisation */
} cllm_host_config;

/* The weights and everything that belongs to them (shared by replicas).
 * `params` is one block: embed | w1 | b1 | w2 | b2. */
typedef struct cllm_host_model {
    cllm_host_config config;
    size_t num_params;
    float* params;
    float* embed;   /* vocab x d */
    float* w1;      /* h x (W*d), row-major */
    float* b1;      /* h */
    float* w2;      /* vocab x h, row-major */
    float* b2;      /* vocab */
    atomic_int refs;     /* master + live replicas */
    atomic_int readers;  /* forward/backward calls running on these weights */
    atomic_int writing;  /* an optimizer step is running */
} cllm_host_model;

/* The training state: model (shared), activations, gradients, optimizer. */
typedef struct CLLMTraining {
    cllm_host_config config;
    cllm_host_model* model;
    int is_replica;
    /* Gradients, laid out like model->params (same offsets). */
    float* grads;
    /* Adam moments (master only; NULL for a replica). */
    float* adam_m;
    float* adam_v;
    uint64_t adam_steps;
    /* Activations of the last forward: batch_size*seq_len positions. */
    uint32_t* inputs;      /* the input tokens, clamped to the vocabulary */
    float* hidden;         /* positions x h */
    float* logits;         /* positions x vocab */
    /* Scratch for backward. */
    float* x;              /* W*d */
    float* dlogits;        /* vocab */
    float* dhidden;        /* h */
    float* dx;             /* W*d */
    int has_forward;       /* forward ran since creation */
    float last_loss;
    /* Non-zero while a host call runs on this object. */
    atomic_int in_use;
} CLLMTraining;

/* Reads batch_size*seq_len input tokens (ids >= vocab count as UNK); returns 0. */
float cllm_forward_training(CLLMTraining* training, uint32_t* input_tokens);
/* Mean cross-entropy of the last forward over the targets that are not PAD
 * (0 if there are none). */
float cllm_compute_loss_training(CLLMTraining* training, uint32_t* target_tokens);
/* Zeroes the gradients, then fills them with the gradient of that mean. */
void cllm_backward_training(CLLMTraining* training, uint32_t* target_tokens);
/* Applies the gradients to the weights with Adam and clears them. */
void cllm_optimizer_step_adam(CLLMTraining* training);

#ifdef __cplusplus
}
#endif

#endif /* CLLM_TRAINING_H */
